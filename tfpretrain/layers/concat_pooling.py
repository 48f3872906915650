"""ULMFiT's concat pooling: last real step, max and mean over the real steps."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class ConcatPooling(keras.layers.Layer):
    """Pools a sequence ``(batch, time, dim)`` to ``[last; max; mean]`` ``(batch, 3 * dim)``.

    ``last`` is the state at each sequence's last real (unmasked) step, ``max``
    and ``mean`` are taken over the real steps only, so padding never reaches
    the output, whichever side it is on. A sequence without any real step
    pools to zeros. The pooling runs in float32 and is cast back to the
    compute dtype.

    Args:
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: a ``(batch, time)`` mask, True at real steps (from a
    ``mask_zero`` embedding, or passed as ``mask=``); without one every step
    is real. The output has no time axis and no mask.

    Example:

    >>> states = np.random.rand(2, 4, 3).astype("float32")  # (batch, time, dim)
    >>> mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    >>> tfpretrain.layers.ConcatPooling()(states, mask=mask).shape
    TensorShape([2, 9])

    References:
        Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
        Classification (section 3.3, concat pooling).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")  # (batch, time, dim)
        time = ops.shape(x)[1]
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")  # (batch, time)
        real = ops.cast(mask, "float32")[..., None]  # (batch, time, 1)
        count = ops.sum(real, axis=1)  # (batch, 1)
        positions = ops.arange(time, dtype="int32")[None, :]  # (1, time)
        last_index = ops.max(ops.where(mask, positions, -1), axis=1)  # (batch,): -1 when no real step
        last = ops.take_along_axis(x, ops.maximum(last_index, 0)[:, None, None], axis=1)[:, 0]  # (batch, dim)
        has_real = count > 0  # (batch, 1)
        last = ops.where(has_real, last, 0.0)
        maximum = ops.max(ops.where(real > 0, x, float("-inf")), axis=1)  # (batch, dim)
        maximum = ops.where(has_real, maximum, 0.0)
        mean = ops.sum(x * real, axis=1) / ops.maximum(count, 1.0)  # (batch, dim)
        pooled = ops.concatenate([last, maximum, mean], axis=-1)  # (batch, 3 * dim)
        return ops.cast(pooled, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        dim = input_shape[-1]
        return (input_shape[0], None if dim is None else 3 * dim)

    def get_config(self):
        return super().get_config()  # no arguments of its own (and no auto-config of a dtype policy object)
