"""Functional models and task heads."""

from tfpretrain.models.bilm import BiLMLanguageModel
from tfpretrain.models.tagger import CRFTagger, build_tagger

__all__ = ["BiLMLanguageModel", "CRFTagger", "build_tagger"]
