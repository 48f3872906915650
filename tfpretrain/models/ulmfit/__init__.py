"""ULMFiT's AWD-LSTM: encoder, language model, classifier, layer groups, optimiser, preprocessor and directories."""

from tfpretrain.models.ulmfit.awd_lstm import AwdLstmEncoder, AwdLstmLanguageModel, OutputBias
from tfpretrain.models.ulmfit.classifier import build_ulmfit_classifier, layer_groups
from tfpretrain.models.ulmfit.fine_tuning import (
    ADAM_BETAS,
    CLASSIFIER_LEARNING_RATE,
    DOMAIN_LM_LEARNING_RATE,
    GENERAL_LM_LEARNING_RATE,
    SCHEDULES,
    language_model_groups,
    ulmfit_optimizer,
)
from tfpretrain.models.ulmfit.preprocessor import (
    WORD_LM_RESERVED,
    WordTokenizer,
    build_text_vocabulary,
    build_word_vocabulary,
    classification_batch_count,
    classification_dataset,
    classifier_token_ids,
    word_lm_dataset,
    word_tokens,
)
from tfpretrain.models.ulmfit.presets import (
    AWD_LSTM_PRESETS,
    CLASSIFIER_DROPOUTS,
    LANGUAGE_MODEL_DROPOUTS,
    LANGUAGE_MODEL_OUTPUT_DROPOUT,
)
from tfpretrain.models.ulmfit.saving import (
    expand_vocabulary,
    is_awd_lstm_dir,
    is_classifier_dir,
    load_awd_lstm,
    load_classifier,
    read_config,
    save_awd_lstm,
    save_classifier,
)

__all__ = [
    "ADAM_BETAS",
    "AWD_LSTM_PRESETS",
    "AwdLstmEncoder",
    "AwdLstmLanguageModel",
    "CLASSIFIER_DROPOUTS",
    "CLASSIFIER_LEARNING_RATE",
    "DOMAIN_LM_LEARNING_RATE",
    "GENERAL_LM_LEARNING_RATE",
    "LANGUAGE_MODEL_DROPOUTS",
    "LANGUAGE_MODEL_OUTPUT_DROPOUT",
    "OutputBias",
    "SCHEDULES",
    "WORD_LM_RESERVED",
    "WordTokenizer",
    "build_text_vocabulary",
    "build_ulmfit_classifier",
    "build_word_vocabulary",
    "classification_batch_count",
    "classification_dataset",
    "classifier_token_ids",
    "expand_vocabulary",
    "is_awd_lstm_dir",
    "is_classifier_dir",
    "language_model_groups",
    "layer_groups",
    "load_awd_lstm",
    "load_classifier",
    "read_config",
    "save_awd_lstm",
    "save_classifier",
    "ulmfit_optimizer",
    "word_lm_dataset",
    "word_tokens",
]
