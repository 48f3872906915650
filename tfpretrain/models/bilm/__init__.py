"""The ELMo-style BiLM: the language model, its sizes, sampled softmax, its data (preprocessor) and directories."""

from tfpretrain.models.bilm.language_model import BiLMLanguageModel
from tfpretrain.models.bilm.preprocessor import (
    BEGIN_OF_SENTENCE,
    LANGUAGE_MODEL_RESERVED,
    count_tokens,
    language_model_dataset,
    tokenized_lines,
    word_lookup,
)
from tfpretrain.models.bilm.presets import BILM_PRESETS
from tfpretrain.models.bilm.sampled_softmax import (
    log_uniform_candidates,
    log_uniform_probability,
    sampled_softmax_loss,
)
from tfpretrain.models.bilm.saving import load_language_model, save_language_model

__all__ = ["BEGIN_OF_SENTENCE", "BILM_PRESETS", "BiLMLanguageModel", "LANGUAGE_MODEL_RESERVED", "count_tokens",
           "language_model_dataset", "load_language_model", "log_uniform_candidates", "log_uniform_probability",
           "sampled_softmax_loss", "save_language_model", "tokenized_lines", "word_lookup"]
