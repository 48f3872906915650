"""A bidirectional LSTM language model's contextual layers (ELMo's biLM)."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class BiLM(keras.layers.Layer):
    """Forward and backward multi-layer LSTMs over shared token vectors.

    The forward stack reads left to right and is trained to predict the next
    word; the backward stack reads right to left and predicts the previous word
    (`tfpretrain.models.BiLMLanguageModel` adds the softmax). Layers after the
    first have residual connections. The output stacks every layer's states for
    downstream use (ELMo): layer 0 is the token vector repeated for both
    directions, layer ``j >= 1`` is ``[forward_j; backward_j]``.

    Args:
        hidden_dim: int. LSTM size of each direction. Defaults to 256.
        num_layers: int. LSTM layers per direction. Defaults to 2.
        dropout: float. Dropout between LSTM layers. Defaults to 0.1.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: token vectors ``(batch, time, dim)``; when ``dim != hidden_dim`` a
    linear projection to ``hidden_dim`` is learned. Output: ``(batch,
    num_layers + 1, time, 2 * hidden_dim)``.

    Masking: a ``(batch, time)`` mask of right-padded sequences. Masked steps are
    skipped by both directions (the backward direction starts at each
    sequence's last real token) and the mask is returned for the time axis.

    Example:

    >>> tokens = np.random.rand(2, 6, 32).astype("float32")  # (batch, time, dim)
    >>> tfpretrain.layers.BiLM(hidden_dim=32, num_layers=2)(tokens).shape
    TensorShape([2, 3, 6, 64])

    References:
        Peters et al. (2018). Deep contextualized word representations.
        Jozefowicz et al. (2016). Exploring the Limits of Language Modeling.
    """

    def __init__(self, hidden_dim=256, num_layers=2, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.supports_masking = True
        self.forward_layers = [self._lstm(f"forward_lstm_{i}") for i in range(self.num_layers)]
        self.backward_layers = [self._lstm(f"backward_lstm_{i}") for i in range(self.num_layers)]
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.input_projection = None

    def _lstm(self, name):
        return keras.layers.LSTM(
            self.hidden_dim, return_sequences=True, name=name, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        if input_shape[-1] != self.hidden_dim:
            self.input_projection = keras.layers.Dense(
                self.hidden_dim, name="input_projection", dtype=self.dtype_policy
            )
            self.input_projection.build(input_shape)
        sequence_shape = tuple(input_shape[:2]) + (self.hidden_dim,)
        for layer in self.forward_layers + self.backward_layers:
            layer.build(sequence_shape)
        if not self.trainable:  # a frozen layer's sublayers stay frozen once built
            for layer in [*self.forward_layers, *self.backward_layers, self.input_projection]:
                if layer is not None:
                    layer.trainable = False

    def _run_stack(self, layers, x, mask, training):
        states = []
        for i, lstm in enumerate(layers):
            h = self.dropout_layer(lstm(x, mask=mask, training=training), training=training)
            x = h if i == 0 else h + x  # residual connection from the second layer on
            states.append(x)
        return states

    def call(self, inputs, mask=None, training=None):
        x = inputs if self.input_projection is None else self.input_projection(inputs)
        x = ops.cast(x, self.compute_dtype)  # (batch, time, hidden)
        batch, time = ops.shape(x)[0], ops.shape(x)[1]
        if mask is None:
            lengths = ops.full((batch,), time, dtype="int32")
        else:
            lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        forward = self._run_stack(self.forward_layers, x, mask, training)
        # Reverse each sequence within its length, so padding stays at the end.
        reversed_x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        backward = [
            tf.reverse_sequence(h, lengths, seq_axis=1, batch_axis=0)
            for h in self._run_stack(self.backward_layers, reversed_x, mask, training)
        ]
        layers = [ops.concatenate([x, x], axis=-1)]  # (batch, time, 2 * hidden)
        layers += [ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward)]
        return ops.stack(layers, axis=1)  # (batch, num_layers + 1, time, 2 * hidden)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_layers + 1, input_shape[1], 2 * self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, num_layers=self.num_layers, dropout=self.dropout)
        return config
