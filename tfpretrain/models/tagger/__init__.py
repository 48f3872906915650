"""The CharCNN / BiLM / encoder-feature CRF tagger: the model, its sizes, its preprocessor and datasets, tagger directories."""

from tfpretrain.models.tagger.features import EncoderFeatures, FeatureCache
from tfpretrain.models.tagger.preprocessor import (
    EncoderTaggingPreprocessor,
    TaggingPreprocessor,
    keys_of,
    tagging_dataset,
    text_dataset,
    word_keys,
)
from tfpretrain.models.tagger.presets import TAGGER_PRESETS
from tfpretrain.models.tagger.tagger import CRFTagger, attach_encoder, build_tagger

__all__ = ["TAGGER_PRESETS", "CRFTagger", "EncoderFeatures", "EncoderTaggingPreprocessor", "FeatureCache",
           "TaggingPreprocessor", "attach_encoder", "build_tagger", "keys_of", "tagging_dataset", "text_dataset",
           "word_keys"]
