"""Highway layers, as used on top of ELMo's character convolutions."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class Highway(keras.layers.Layer):
    """A stack of highway layers: ``y = g * relu(W x) + (1 - g) * x``.

    Each layer's gate ``g = sigmoid(W_g x + b_g)`` starts with ``b_g =
    gate_bias`` so that the layer first mostly carries its input (Srivastava et
    al., 2015). Input and output have the same last dimension.

    Args:
        num_layers: int. Number of highway layers. Defaults to 2.
        gate_bias: float. Initial gate bias; negative values favour carrying
            the input. Defaults to -1.0.
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: applied position-wise, so a mask passes through unchanged.

    Example:

    >>> tfpretrain.layers.Highway(num_layers=2)(np.ones((3, 16), "float32")).shape
    TensorShape([3, 16])

    References:
        Srivastava et al. (2015). Highway Networks.
    """

    def __init__(self, num_layers=2, gate_bias=-1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.gate_bias = float(gate_bias)
        self.supports_masking = True

    def build(self, input_shape):
        dim = input_shape[-1]
        self.transforms = []
        self.gates = []
        for i in range(self.num_layers):
            transform = keras.layers.Dense(
                dim, activation="relu", name=f"transform_{i}", dtype=self.dtype_policy
            )
            gate = keras.layers.Dense(
                dim, activation="sigmoid", name=f"gate_{i}", dtype=self.dtype_policy,
                bias_initializer=keras.initializers.Constant(self.gate_bias),
            )
            transform.build(input_shape)
            gate.build(input_shape)
            self.transforms.append(transform)
            self.gates.append(gate)
        if not self.trainable:  # a frozen layer's sublayers stay frozen once built
            for layer in self.transforms + self.gates:
                if layer is not None:
                    layer.trainable = False

    def call(self, inputs):
        x = inputs
        for transform, gate in zip(self.transforms, self.gates):
            g = gate(x)
            x = g * transform(x) + (1.0 - g) * x
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, gate_bias=self.gate_bias)
        return config
