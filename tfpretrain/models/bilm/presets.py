"""Sizes of `BiLMLanguageModel`, as plain keyword dicts."""

BILM_PRESETS = {
    # For tests: trains in seconds.
    "tiny": dict(hidden_dim=32, num_layers=1, filters=[[1, 16], [2, 16], [3, 32]], num_sampled=128),
    # The main job's size: minutes on 2 CPU cores.
    "small": dict(hidden_dim=128, num_layers=2, filters=[[1, 32], [2, 32], [3, 64], [4, 128]],
                  num_sampled=512),
    # ELMo's "small" configuration (Peters et al. 2018 released 13.6M-parameter weights of this shape).
    "elmo_small": dict(hidden_dim=128, num_layers=2, char_embedding_dim=16,
                       filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
                       num_sampled=4096),
    # ELMo's original character CNN and depth, with 512-unit LSTMs (no LSTM projection).
    "elmo_original": dict(hidden_dim=512, num_layers=2, char_embedding_dim=16,
                          filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
                          num_sampled=8192),
}
