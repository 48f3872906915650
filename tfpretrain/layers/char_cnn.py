"""ELMo's character encoder: characters of each token -> one token vector."""

import keras
from keras import ops

from tfpretrain.layers.highway import Highway


@keras.saving.register_keras_serializable(package="tfpretrain")
class CharCNN(keras.layers.Layer):
    """Encodes each token from its characters (the ELMo character CNN).

    char ids -> char embeddings -> 1-D convolutions of several widths -> max-pool
    over the characters -> activation -> highway layers -> linear projection.
    Character id 0 is padding; a token whose ids are all 0 is a padded step.
    `tfpretrain.text.characters` produces these ids (UTF-8 bytes + 1, with
    begin/end-of-word markers), so any script or emoji has an encoding.

    Args:
        num_chars: int. Size of the character vocabulary (ids are
            ``0..num_chars-1``). Defaults to 259 (256 bytes, padding, BOW, EOW).
        char_embedding_dim: int. Defaults to 16.
        filters: list of ``[width, num_filters]`` pairs. Defaults to
            ``[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]]``.
        num_highway: int. Number of highway layers. Defaults to 2.
        output_dim: int. Size of the token vectors. Defaults to 256.
        activation: str. Applied after max-pooling. Defaults to "relu".
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: computes a ``(batch, time)`` mask that is True where a token has any
    non-zero character id.

    Example:

    >>> char_ids = np.random.randint(1, 259, size=(2, 7, 12))  # (batch, time, chars)
    >>> tfpretrain.layers.CharCNN(output_dim=64)(char_ids).shape
    TensorShape([2, 7, 64])

    References:
        Kim et al. (2016). Character-Aware Neural Language Models.
        Peters et al. (2018). Deep contextualized word representations.
    """

    def __init__(
        self,
        num_chars=259,
        char_embedding_dim=16,
        filters=((1, 32), (2, 32), (3, 64), (4, 128), (5, 256)),
        num_highway=2,
        output_dim=256,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_chars = int(num_chars)
        self.char_embedding_dim = int(char_embedding_dim)
        self.filters = [[int(width), int(count)] for width, count in filters]
        self.num_highway = int(num_highway)
        self.output_dim = int(output_dim)
        self.activation = activation
        self.supports_masking = True
        self.max_width = max(width for width, _ in self.filters)

        self.char_embedding = keras.layers.Embedding(
            self.num_chars, self.char_embedding_dim, name="char_embedding", dtype=self.dtype_policy
        )
        self.convolutions = [
            keras.layers.Conv1D(count, width, name=f"conv_{width}", dtype=self.dtype_policy)
            for width, count in self.filters
        ]
        self.highway = Highway(self.num_highway, name="highway", dtype=self.dtype_policy)
        self.projection = keras.layers.Dense(self.output_dim, name="projection", dtype=self.dtype_policy)
        self.pooled_activation = keras.activations.get(activation)

    def build(self, input_shape):
        max_chars = max(input_shape[-1] or self.max_width, self.max_width)
        self.char_embedding.build((None, max_chars))
        for conv in self.convolutions:
            conv.build((None, max_chars, self.char_embedding_dim))
        total = sum(count for _, count in self.filters)
        self.highway.build((None, total))
        self.projection.build((None, total))
        if not self.trainable:  # a frozen layer's sublayers stay frozen once built
            for layer in [self.char_embedding, self.highway, self.projection, *self.convolutions]:
                if layer is not None:
                    layer.trainable = False

    def call(self, char_ids, mask=None):  # the mask is computed from the ids
        char_ids = ops.cast(char_ids, "int32")
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[-1]))  # (batch * time, chars)
        if char_ids.shape[-1] is not None and char_ids.shape[-1] < self.max_width:
            flat = ops.pad(flat, [[0, 0], [0, self.max_width - char_ids.shape[-1]]])
        embedded = self.char_embedding(flat)  # (batch * time, chars, char_embedding_dim)
        pooled = [ops.max(conv(embedded), axis=1) for conv in self.convolutions]  # [(batch*time, n_k)]
        features = self.pooled_activation(ops.concatenate(pooled, axis=-1))  # (batch*time, sum n_k)
        vectors = self.projection(self.highway(features))  # (batch*time, output_dim)
        return ops.reshape(vectors, (shape[0], shape[1], self.output_dim))  # (batch, time, output_dim)

    def compute_mask(self, char_ids, mask=None):
        return ops.any(ops.not_equal(char_ids, 0), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_chars=self.num_chars,
            char_embedding_dim=self.char_embedding_dim,
            filters=self.filters,
            num_highway=self.num_highway,
            output_dim=self.output_dim,
            activation=self.activation,
        )
        return config
