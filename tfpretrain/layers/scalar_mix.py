"""ELMo's scalar mix of language-model layers."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class ScalarMix(keras.layers.Layer):
    """Mixes a stack of layer states: ``gamma * sum_j softmax(s)_j * h_j``.

    The input is a stack of ``num_layers`` representations along axis 1, as
    returned by `tfpretrain.layers.BiLM`. The softmax-normalised weights ``s`` and
    the scale ``gamma`` are learned by the downstream task (Peters et al., 2018,
    eq. 1). The weights are kept and applied in float32.

    Args:
        num_layers: int. Number of stacked layers (the size of axis 1).
        initial_scalar_parameters: list of floats or None. Initial ``s`` (zeros:
            an equal mix).
        initial_gamma: float. Initial scale. Defaults to 1.0.
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: a ``(batch, time)`` mask passes through unchanged; masked steps are
    mixed like any other and are to be ignored downstream.

    Example:

    >>> states = np.random.rand(2, 3, 5, 8).astype("float32")  # (batch, layers, time, dim)
    >>> tfpretrain.layers.ScalarMix(num_layers=3)(states).shape
    TensorShape([2, 5, 8])

    References:
        Peters et al. (2018). Deep contextualized word representations.
    """

    def __init__(self, num_layers, initial_scalar_parameters=None, initial_gamma=1.0, **kwargs):
        super().__init__(**kwargs)
        if initial_scalar_parameters is not None and len(initial_scalar_parameters) != num_layers:
            raise ValueError(
                f"initial_scalar_parameters has {len(initial_scalar_parameters)} values but "
                f"num_layers={num_layers}; give one value per layer."
            )
        self.num_layers = int(num_layers)
        self.initial_scalar_parameters = (
            None if initial_scalar_parameters is None else [float(v) for v in initial_scalar_parameters]
        )
        self.initial_gamma = float(initial_gamma)
        self.supports_masking = True

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_layers:
            raise ValueError(
                f"ScalarMix(num_layers={self.num_layers}) got a stack of {input_shape[1]} layers "
                f"(input shape {tuple(input_shape)}); axis 1 must hold the layers."
            )
        initial = self.initial_scalar_parameters or [0.0] * self.num_layers
        self.scalar_parameters = self.add_weight(
            name="scalar_parameters", shape=(self.num_layers,), dtype="float32",
            initializer=keras.initializers.Constant(initial),
        )
        self.gamma = self.add_weight(
            name="gamma", shape=(), dtype="float32",
            initializer=keras.initializers.Constant(self.initial_gamma),
        )

    def call(self, inputs, mask=None):
        weights = ops.softmax(ops.convert_to_tensor(self.scalar_parameters))  # (layers,)
        stack = ops.cast(inputs, "float32")  # (batch, layers, time, dim)
        mixed = ops.einsum("l,bltd->btd", weights, stack) * self.gamma  # (batch, time, dim)
        return ops.cast(mixed, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            initial_scalar_parameters=self.initial_scalar_parameters,
            initial_gamma=self.initial_gamma,
        )
        return config
