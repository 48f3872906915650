"""GPT: decoder, sizes, causal language model with generation, transfer to tasks (model, preprocessor), directories."""

from tfpretrain.models.gpt.causal_lm import GptCausalLM
from tfpretrain.models.gpt.causal_lm_preprocessor import causal_lm_dataset
from tfpretrain.models.gpt.decoder import GptDecoder, tied_logits
from tfpretrain.models.gpt.generation import SAMPLERS, make_sampler
from tfpretrain.models.gpt.presets import GPT_PRESETS
from tfpretrain.models.gpt.saving import is_gpt_dir, load_gpt, save_gpt
from tfpretrain.models.gpt.transfer import GptTransferModel
from tfpretrain.models.gpt.preprocessor import TRANSFER_TOKENS, encode_gpt_inputs
from tfpretrain.text.wordpiece import RESERVED_TOKENS

# A GPT vocabulary: BERT's reserved tokens ([SEP] ends every pretraining document), then GPT-1's transfer tokens.
GPT_RESERVED_TOKENS = RESERVED_TOKENS + list(TRANSFER_TOKENS)

__all__ = [
    "GPT_PRESETS", "GPT_RESERVED_TOKENS", "GptCausalLM", "GptDecoder", "GptTransferModel", "SAMPLERS",
    "TRANSFER_TOKENS", "causal_lm_dataset", "encode_gpt_inputs", "is_gpt_dir", "load_gpt", "make_sampler",
    "save_gpt", "tied_logits",
]
