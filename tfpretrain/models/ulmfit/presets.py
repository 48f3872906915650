"""Sizes and dropouts of `AwdLstmEncoder`, as plain keyword dicts.

The dropouts are ULMFiT's (Howard & Ruder 2018, the fastai ``awd_lstm_lm_config``
and ``awd_lstm_clas_config``): Merity et al.'s AWD-LSTM values scaled down for
fine-tuning. Scale them all by one factor (fastai's ``drop_mult``) to regularise
more or less:

>>> {k: v * 0.5 for k, v in CLASSIFIER_DROPOUTS.items()}
"""

# Language-model pretraining and fine-tuning (fastai awd_lstm_lm_config).
LANGUAGE_MODEL_DROPOUTS = dict(embedding_dropout=0.02, input_dropout=0.25, hidden_dropout=0.15, weight_dropout=0.2)
LANGUAGE_MODEL_OUTPUT_DROPOUT = 0.1  # `AwdLstmLanguageModel(output_dropout=...)`

# The classifier's encoder (fastai awd_lstm_clas_config).
CLASSIFIER_DROPOUTS = dict(embedding_dropout=0.05, input_dropout=0.4, hidden_dropout=0.3, weight_dropout=0.5)

AWD_LSTM_PRESETS = {
    # For tests: trains in seconds.
    "tiny": dict(embedding_dim=32, hidden_dim=64, num_layers=2, **LANGUAGE_MODEL_DROPOUTS),
    # Trainable on 2 CPU cores in minutes (EWT-sized corpora).
    "small": dict(embedding_dim=200, hidden_dim=400, num_layers=3, **LANGUAGE_MODEL_DROPOUTS),
    # ULMFiT's AWD-LSTM: 400-dimensional embeddings, 3 layers of 1150 units.
    "paper": dict(embedding_dim=400, hidden_dim=1150, num_layers=3, **LANGUAGE_MODEL_DROPOUTS),
}
