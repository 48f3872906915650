from tfpretrain.models.bilm.language_model import BiLMLanguageModel
from tfpretrain.models.bilm.presets import BILM_PRESETS

__all__ = ["BILM_PRESETS", "BiLMLanguageModel"]
