from tfpretrain.models.bilm.language_model import BiLMLanguageModel
from tfpretrain.models.bilm.presets import BILM_PRESETS
from tfpretrain.models.bilm.sampled_softmax import (
    log_uniform_candidates,
    log_uniform_probability,
    sampled_softmax_loss,
)

__all__ = ["BILM_PRESETS", "BiLMLanguageModel", "log_uniform_candidates", "log_uniform_probability",
           "sampled_softmax_loss"]
