"""Dropout whose mask comes from an integer hash: cheap under XLA on a CPU."""

import keras
from keras import ops

_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: a Weyl sequence over the element index


def _mix(h):
    """The ``lowbias32`` finaliser (Wellons' hash prospector): a bijection on uint32 with good avalanche."""
    h = ops.bitwise_xor(h, ops.right_shift(h, ops.cast(16, "uint32")))
    h = h * ops.cast(0x7FEB352D, "uint32")
    h = ops.bitwise_xor(h, ops.right_shift(h, ops.cast(15, "uint32")))
    h = h * ops.cast(0x846CA68B, "uint32")
    return ops.bitwise_xor(h, ops.right_shift(h, ops.cast(16, "uint32")))


def random_bits(shape, seed):
    """uint32 pseudo-random bits of ``shape``, a hash of each element's index and the two ``seed`` words."""
    seed = ops.cast(ops.bitwise_and(seed, 0xFFFFFFFF), "uint32")
    size = 1
    for dim in shape:
        size *= dim
    index = ops.cast(ops.arange(size, dtype="int32"), "uint32")
    bits = _mix(_mix(index * ops.cast(_GOLDEN, "uint32") + seed[0]) + seed[1])
    return ops.reshape(bits, shape)


def keep_mask(shape, rate, seed):
    """A boolean mask of ``shape``, False with probability ``rate``: ``random_bits >= rate * 2**32``."""
    return ops.greater_equal(random_bits(shape, seed), ops.cast(int(rate * 2**32), "uint32"))


def scaled_keep_mask(shape, rate, seed, dtype):
    """An inverted-dropout mask of ``shape``: 0 with probability ``rate``, else ``1 / (1 - rate)``.

    The bits come from `random_bits` (a counter-based hash, cheap under XLA on
    a CPU, unlike TensorFlow's stateless random kernels). Used by the dropouts
    that scale a weight or a row rather than mask an activation
    (`WeightDropLSTM`, `WordDropoutEmbedding`).

    Args:
        shape: tuple of ints or scalar tensors.
        rate: float in [0, 1).
        seed: int tensor of shape (2,), e.g. ``seed_generator.next()``.
        dtype: the mask's dtype.

    Example:

    >>> mask = scaled_keep_mask((4, 1, 8), 0.5, keras.random.SeedGenerator(0).next(), "float32")
    """
    return ops.cast(keep_mask(shape, rate, seed), dtype) * ops.cast(1.0 / (1.0 - rate), dtype)


def check_rate(layer_name, argument, rate):
    """Raises a ValueError naming ``layer_name(argument=...)`` unless ``0 <= rate < 1``."""
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{layer_name} {argument} must be in [0, 1); got {rate}")
    return float(rate)


@keras.saving.register_keras_serializable(package="tfpretrain")
class HashDropout(keras.layers.Layer):
    """Inverted dropout, like `keras.layers.Dropout`, with a mask from a counter-based hash.

    In training each value is zeroed with probability ``rate`` and the others
    are scaled by ``1 / (1 - rate)``; at inference the layer is the identity.
    The mask is ``hash(element index, seed) >= rate * 2**32`` with a fresh seed
    from a `keras.random.SeedGenerator` on every call: a few integer
    multiplies, shifts and xors per value, which XLA fuses into the
    surrounding computation. `keras.layers.Dropout` draws its mask with
    TensorFlow's stateless random kernels, which XLA compiles to slow code on
    a CPU (about 170 CPU-ms for a 16 x 128 x 256 mask, against 0.4 ms here),
    enough to make a ``jit_compile=True`` BERT train step slower than an
    uncompiled one. The hash is not cryptographic, but its bits pass the
    avalanche tests that matter for a dropout mask.

    Args:
        rate: float in [0, 1). Fraction of values to drop.
        seed: int or None. Seed of the layer's seed generator.
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: values are dropped independently of any mask; the mask passes
    through unchanged.

    Example:

    >>> dropout = tfpretrain.layers.HashDropout(0.1, seed=0)
    >>> x = np.ones((2, 1000), "float32")
    >>> y = dropout(x, training=True)  # about 10% zeros, the rest 1 / 0.9
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(type(self).__name__, "rate", rate)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, mask=None, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = keep_mask(self.noise_shape(inputs), self.rate, self.seed_generator.next())  # broadcasts
        return ops.where(keep, inputs * ops.cast(1.0 / (1.0 - self.rate), inputs.dtype), ops.zeros_like(inputs))

    def noise_shape(self, inputs):
        """The shape of the mask, broadcast over ``inputs``: one value per element here."""
        return ops.shape(inputs)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
