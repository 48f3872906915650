"""Locked (variational) dropout: one mask per sequence, shared by every time step."""

import keras
from keras import ops

from tfpretrain.layers.hash_dropout import random_bits


def scaled_keep_mask(shape, rate, seed, dtype):
    """An inverted-dropout mask of ``shape``: 0 with probability ``rate``, else ``1 / (1 - rate)``.

    The bits come from `tfpretrain.layers.hash_dropout.random_bits` (a counter-based
    hash, cheap under XLA on a CPU, unlike TensorFlow's stateless random kernels).
    Shared by the AWD-LSTM dropouts (`LockedDropout`, `WeightDropLSTM`,
    `WordDropoutEmbedding`), which differ only in the mask's shape.

    Args:
        shape: tuple of ints or scalar tensors.
        rate: float in [0, 1).
        seed: int tensor of shape (2,), e.g. ``seed_generator.next()``.
        dtype: the mask's dtype.

    Example:

    >>> mask = scaled_keep_mask((4, 1, 8), 0.5, keras.random.SeedGenerator(0).next(), "float32")
    """
    bits = random_bits(shape, seed)
    keep = ops.greater_equal(bits, ops.cast(int(rate * 2**32), "uint32"))
    return ops.cast(keep, dtype) * ops.cast(1.0 / (1.0 - rate), dtype)


def check_rate(layer_name, argument, rate):
    """Raises a ValueError naming ``layer_name(argument=...)`` unless ``0 <= rate < 1``."""
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{layer_name} {argument} must be in [0, 1); got {rate}")
    return float(rate)


@keras.saving.register_keras_serializable(package="tfpretrain")
class LockedDropout(keras.layers.Layer):
    """Variational ("locked") dropout over a sequence: the same units dropped at every step.

    In training, each sequence of the batch draws one mask over the feature
    axis that is reused at every time step (``noise_shape = (batch, 1,
    features)``); kept values are scaled by ``1 / (1 - rate)``. A fresh mask is
    drawn on every call. At inference the layer is the identity. AWD-LSTM uses
    it on the embedding output, between LSTM layers and on the last layer's
    output.

    Args:
        rate: float in [0, 1). Fraction of feature units dropped per sequence.
        seed: int or None. Seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: ``(batch, time, ...features)``; the mask is shared over axis 1.

    Masking: values are dropped regardless of the mask; the mask passes through.

    Example:

    >>> dropout = tfpretrain.layers.LockedDropout(0.5, seed=0)
    >>> y = dropout(np.ones((2, 5, 4), "float32"), training=True)  # (batch, time, features)
    >>> bool(np.all(y == y[:, :1]))  # every step has its sequence's mask
    True

    References:
        Gal & Ghahramani (2016). A Theoretically Grounded Application of
        Dropout in Recurrent Neural Networks.
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("LockedDropout", "rate", rate)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, mask=None, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = ops.shape(inputs)
        noise_shape = (shape[0], 1) + tuple(shape[2:])  # (batch, 1, features): one mask per sequence
        return inputs * scaled_keep_mask(noise_shape, self.rate, self.seed_generator.next(), inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
