"""A reversible word embedding with embedding dropout: whole words dropped per batch."""

import keras
from keras import ops

from tfpretrain.layers.hash_dropout import check_rate, scaled_keep_mask


@keras.saving.register_keras_serializable(package="tfpretrain")
class WordDropoutEmbedding(keras.layers.ReversibleEmbedding):
    """`keras.layers.ReversibleEmbedding` with AWD-LSTM's embedding dropout.

    In training, each call drops every row of the embedding matrix (every
    word type of the vocabulary) with probability ``dropout`` and scales the
    kept rows by ``1 / (1 - dropout)``: all occurrences of a dropped word in
    the batch become zero vectors, whatever their position. The mask is drawn
    over the vocabulary ``(input_dim,)`` and gathered with the token ids, so
    the embedding's gradient stays a sparse gather of rows. At inference, and
    in the reverse (tied output) projection, the layer is a plain
    `keras.layers.ReversibleEmbedding`.

    Args:
        input_dim: int. Vocabulary size.
        output_dim: int. Embedding size.
        dropout: float in [0, 1), default 0. Fraction of word types dropped per call.
        seed: int or None. Seed of the mask's `keras.random.SeedGenerator`.
        **kwargs: other `keras.layers.ReversibleEmbedding` arguments
            (``mask_zero``, ``embeddings_initializer``, ``tie_weights``, ``dtype``, ...).

    Masking: with ``mask_zero=True`` id 0 is padding and the output carries
    the mask ``token_ids != 0``.

    Example:

    >>> embedding = tfpretrain.layers.WordDropoutEmbedding(100, 8, dropout=0.1, mask_zero=True)
    >>> vectors = embedding(np.array([[5, 7, 5, 0]]), training=True)  # (batch, time, 8)
    >>> logits = embedding(vectors, reverse=True)  # (batch, time, 100): tied output projection

    References:
        Gal & Ghahramani (2016). A Theoretically Grounded Application of
        Dropout in Recurrent Neural Networks (section 4.2, word dropout).
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models (section 4.3, embedding dropout).
    """

    def __init__(self, input_dim, output_dim, dropout=0.0, seed=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.dropout = check_rate("WordDropoutEmbedding", "dropout", dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.dropout > 0 else None

    def call(self, inputs, reverse=False, training=None):
        outputs = super().call(inputs, reverse=reverse)  # (batch, time, output_dim) or logits
        if reverse or not training or self.dropout == 0.0:
            return outputs
        word_scale = scaled_keep_mask((self.input_dim,), self.dropout, self.seed_generator.next(), outputs.dtype)
        scale = ops.take(word_scale, ops.cast(inputs, "int32"))  # (batch, time): one draw per word type
        return outputs * ops.expand_dims(scale, -1)

    def compute_mask(self, inputs, mask=None):
        # ReversibleEmbedding attaches its mask inside call; the product above makes a new tensor,
        # so the mask is declared here instead: keras.layers.Embedding's rule for token ids, and
        # none for the logits of a reverse call (whose inputs are floats).
        if not self.mask_zero or "int" not in keras.backend.standardize_dtype(inputs.dtype):
            return None
        return ops.not_equal(inputs, 0)  # (batch, time)

    def get_config(self):
        config = super().get_config()
        config.update(dropout=self.dropout, seed=self.seed)
        return config
