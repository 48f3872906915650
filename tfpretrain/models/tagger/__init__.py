from tfpretrain.models.tagger.presets import TAGGER_PRESETS
from tfpretrain.models.tagger.tagger import CRFTagger, build_tagger

__all__ = ["TAGGER_PRESETS", "CRFTagger", "build_tagger"]
