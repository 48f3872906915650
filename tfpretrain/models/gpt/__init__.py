"""GPT: the decoder, its sizes, the causal language model with generation, GPT directories."""

from tfpretrain.models.gpt.causal_lm import GptCausalLM
from tfpretrain.models.gpt.decoder import GptDecoder, tied_logits
from tfpretrain.models.gpt.generation import SAMPLERS, make_sampler
from tfpretrain.models.gpt.presets import GPT_PRESETS
from tfpretrain.models.gpt.saving import is_gpt_dir, load_gpt, save_gpt
from tfpretrain.models.gpt.transfer import GptTransferModel
from tfpretrain.text.gpt_transforms import TRANSFER_TOKENS
from tfpretrain.text.wordpiece import RESERVED_TOKENS

# A GPT vocabulary: BERT's reserved tokens ([SEP] ends every pretraining document), then GPT-1's transfer tokens.
GPT_RESERVED_TOKENS = RESERVED_TOKENS + list(TRANSFER_TOKENS)

__all__ = [
    "GPT_PRESETS", "GPT_RESERVED_TOKENS", "GptCausalLM", "GptDecoder", "GptTransferModel", "SAMPLERS", "is_gpt_dir",
    "load_gpt", "make_sampler", "save_gpt", "tied_logits",
]
