"""Locked (variational) dropout: one mask per sequence, shared by every time step."""

import keras
from keras import ops

from tfpretrain.layers.hash_dropout import HashDropout


@keras.saving.register_keras_serializable(package="tfpretrain")
class LockedDropout(HashDropout):
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
    A `HashDropout` whose mask has ``noise_shape`` (batch, 1, features).

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

    def noise_shape(self, inputs):
        shape = ops.shape(inputs)
        return (shape[0], 1) + tuple(shape[2:])  # (batch, 1, features): one mask per sequence
