"""The CharCNN / BiLM / CRF tagger: the model, its sizes, its preprocessor and datasets, tagger directories."""

from tfpretrain.models.tagger.preprocessor import TaggingPreprocessor, keys_of, tagging_dataset, text_dataset, word_keys
from tfpretrain.models.tagger.presets import TAGGER_PRESETS
from tfpretrain.models.tagger.tagger import CRFTagger, build_tagger

__all__ = ["TAGGER_PRESETS", "CRFTagger", "TaggingPreprocessor", "build_tagger", "keys_of", "tagging_dataset",
           "text_dataset", "word_keys"]
