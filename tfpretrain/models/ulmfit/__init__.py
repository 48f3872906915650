"""ULMFiT's AWD-LSTM: encoder, language model, classifier, layer groups and the on-disk format."""

from tfpretrain.models.ulmfit.awd_lstm import AwdLstmEncoder, AwdLstmLanguageModel, OutputBias
from tfpretrain.models.ulmfit.classifier import build_ulmfit_classifier, layer_groups
from tfpretrain.models.ulmfit.presets import (
    AWD_LSTM_PRESETS,
    CLASSIFIER_DROPOUTS,
    LANGUAGE_MODEL_DROPOUTS,
    LANGUAGE_MODEL_OUTPUT_DROPOUT,
)
from tfpretrain.models.ulmfit.saving import expand_vocabulary, is_awd_lstm_dir, load_awd_lstm, save_awd_lstm

__all__ = [
    "AWD_LSTM_PRESETS",
    "AwdLstmEncoder",
    "AwdLstmLanguageModel",
    "CLASSIFIER_DROPOUTS",
    "LANGUAGE_MODEL_DROPOUTS",
    "LANGUAGE_MODEL_OUTPUT_DROPOUT",
    "OutputBias",
    "build_ulmfit_classifier",
    "expand_vocabulary",
    "is_awd_lstm_dir",
    "layer_groups",
    "load_awd_lstm",
    "save_awd_lstm",
]
