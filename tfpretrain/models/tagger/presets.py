"""Sizes of `build_tagger`, as plain keyword dicts."""

TAGGER_PRESETS = {
    "tiny": dict(word_embedding_dim=16, char_filters=[[1, 8], [2, 16], [3, 16]], char_output_dim=16,
                 rnn_units=16),
    "small": dict(word_embedding_dim=64, char_filters=[[1, 16], [2, 32], [3, 64], [4, 64]],
                  char_output_dim=64, rnn_units=64),
    # Close to TagLM (Peters et al. 2017): 200-unit first BiLSTM, 100-dim word vectors.
    "base": dict(word_embedding_dim=100, char_filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 128]],
                 char_output_dim=128, rnn_units=200),
}
