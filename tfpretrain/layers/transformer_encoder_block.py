"""One Transformer encoder block (self-attention + feed-forward), BERT's post-LN or the pre-LN variant."""

import keras
from keras import ops

from tfpretrain.layers.hash_dropout import HashDropout


@keras.saving.register_keras_serializable(package="tfpretrain")
def gelu_approximate(x):
    """GELU with the tanh approximation (Hugging Face's ``gelu_new``; keras-hub's BERT uses it)."""
    return keras.activations.gelu(x, approximate=True)


def bert_kernel_initializer(stddev=0.02):
    """BERT's weight initialiser: a truncated normal with standard deviation 0.02."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="tfpretrain")
class TransformerEncoderBlock(keras.layers.Layer):
    """A Transformer encoder block: multi-head self-attention then a position-wise feed-forward net.

    Post-LN, as in BERT (``norm_first=False``)::

        x = LayerNorm(x + Dropout(Dense(Attention(x))))
        x = LayerNorm(x + Dropout(Dense(activation(Dense(x)))))

    Pre-LN (``norm_first=True``, Xiong et al. 2020) normalises the input of each
    sublayer instead, ``x = x + Dropout(Dense(Attention(LayerNorm(x))))``,
    which trains more stably without a learning-rate warm-up.

    The sublayers follow a Hugging Face ``BertLayer`` one to one, so that a
    checkpoint's tensors load without reshaping beyond a transpose:
    ``query_dense``, ``key_dense``, ``value_dense`` (``attention.self.*``),
    ``attention_output_dense`` and ``attention_layer_norm``
    (``attention.output.*``), ``intermediate_dense`` (``intermediate.dense``),
    ``output_dense`` and ``output_layer_norm`` (``output.*``). All are
    ``(hidden_dim, ...)`` `keras.layers.Dense` kernels, with the hidden size
    taken from the input.

    Attention runs through `keras.ops.dot_product_attention` with a boolean
    mask, so the masked logits are filled with a value that the logits' dtype
    can hold (the logits and the softmax are float32 even under
    ``mixed_float16``); layer norm statistics are float32 as in
    `keras.layers.LayerNormalization`. ``dropout`` applies to the two residual
    branches, with `tfpretrain.layers.HashDropout` (cheap under XLA on a CPU);
    unlike BERT there is no dropout on the attention probabilities
    (`keras.ops.dot_product_attention` has none).

    Args:
        num_heads: int. Number of attention heads; must divide the hidden size.
        intermediate_dim: int. Width of the feed-forward layer.
        dropout: float, default 0.1. Dropout rate of the residual branches.
        activation: str or callable, default "gelu" (exact, erf-based, as
            BERT). Activation of the feed-forward layer.
        layer_norm_epsilon: float, default 1e-12 (BERT's).
        norm_first: bool, default False. Pre-LN instead of BERT's post-LN.
        kernel_initializer_range: float, default 0.02. Standard deviation of
            the truncated normal kernel initialiser.
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: ``padding_mask`` (or a Keras mask) ``(batch, sequence_length)`` is
    True at real tokens. Padding tokens are never attended to, so the outputs
    at real tokens do not depend on the padding; the outputs at padding
    positions are computed but meaningless. The mask passes through unchanged.

    Example:

    >>> block = tfpretrain.layers.TransformerEncoderBlock(num_heads=2, intermediate_dim=64)
    >>> x = np.random.rand(2, 5, 32).astype("float32")  # (batch, sequence_length, hidden_dim)
    >>> padding_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    >>> block(x, padding_mask=padding_mask).shape
    TensorShape([2, 5, 32])

    References:
        Vaswani et al. (2017). Attention Is All You Need.
        Devlin et al. (2019). BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding.
        Xiong et al. (2020). On Layer Normalization in the Transformer
        Architecture.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        norm_first=False,
        kernel_initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.norm_first = bool(norm_first)
        self.kernel_initializer_range = float(kernel_initializer_range)
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim is None or hidden_dim % self.num_heads:
            raise ValueError(
                f"TransformerEncoderBlock needs a hidden size divisible by num_heads={self.num_heads}; "
                f"got inputs of shape {tuple(input_shape)}. Change num_heads or the hidden size."
            )
        self.hidden_dim = hidden_dim
        self.head_dim = hidden_dim // self.num_heads

        # Sublayers share the block's trainable flag, so a block revived frozen stays frozen once built.
        def dense(units, name, activation=None):
            return keras.layers.Dense(
                units, activation=activation, kernel_initializer=bert_kernel_initializer(self.kernel_initializer_range),
                dtype=self.dtype_policy, trainable=self.trainable, name=name,
            )

        def layer_norm(name):
            return keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, trainable=self.trainable, name=name
            )

        self.query_dense = dense(hidden_dim, "query_dense")
        self.key_dense = dense(hidden_dim, "key_dense")
        self.value_dense = dense(hidden_dim, "value_dense")
        self.attention_output_dense = dense(hidden_dim, "attention_output_dense")
        self.attention_layer_norm = layer_norm("attention_layer_norm")
        self.intermediate_dense = dense(self.intermediate_dim, "intermediate_dense", activation=self.activation)
        self.output_dense = dense(hidden_dim, "output_dense")
        self.output_layer_norm = layer_norm("output_layer_norm")
        self.attention_dropout = HashDropout(self.dropout, dtype=self.dtype_policy, name="attention_dropout")
        self.output_dropout = HashDropout(self.dropout, dtype=self.dtype_policy, name="output_dropout")

        for layer in (self.query_dense, self.key_dense, self.value_dense, self.intermediate_dense):
            layer.build(input_shape)
        self.attention_output_dense.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.attention_layer_norm.build(input_shape)
        self.output_layer_norm.build(input_shape)
        self.built = True

    def _attention(self, x, attention_mask, cache=None, cache_update_index=None):
        """Multi-head self-attention of ``x`` (batch, seq, hidden) -> ``(output, cache)``.

        ``attention_mask``: None or bool, broadcastable to (batch, heads,
        queries, keys), True where a query may attend to a key. With a
        ``cache`` (batch, 2, max_length, heads, head_dim) the keys and values
        of ``x`` are written into it from ``cache_update_index`` on and the
        queries attend to all ``max_length`` cached positions (the mask says
        which); the updated cache is returned (None without one).
        """
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        heads = (batch, length, self.num_heads, self.head_dim)
        query = ops.reshape(self.query_dense(x), heads)  # (batch, seq, heads, head_dim)
        key = ops.reshape(self.key_dense(x), heads)
        value = ops.reshape(self.value_dense(x), heads)
        if cache is not None:
            start = [0, cache_update_index, 0, 0]
            key = ops.slice_update(cache[:, 0], start, key)  # (batch, max_length, heads, head_dim)
            value = ops.slice_update(cache[:, 1], start, value)
            cache = ops.stack([key, value], axis=1)  # (batch, 2, max_length, heads, head_dim)
        context = ops.dot_product_attention(query, key, value, mask=attention_mask)  # (batch, seq, heads, head_dim)
        context = ops.reshape(context, (batch, length, self.hidden_dim))  # (batch, seq, hidden)
        return self.attention_output_dense(context), cache

    def _sublayers(self, x, attention_mask, training, cache=None, cache_update_index=None):
        """Attention and feed-forward with their residuals and layer norms -> ``(output, cache)``."""
        if self.norm_first:
            attended, cache = self._attention(self.attention_layer_norm(x), attention_mask, cache, cache_update_index)
            x = x + self.attention_dropout(attended, training=training)
            fed = self.output_dense(self.intermediate_dense(self.output_layer_norm(x)))
            return x + self.output_dropout(fed, training=training), cache
        attended, cache = self._attention(x, attention_mask, cache, cache_update_index)
        x = self.attention_layer_norm(x + self.attention_dropout(attended, training=training))
        fed = self.output_dense(self.intermediate_dense(x))  # (batch, seq, intermediate) -> (batch, seq, hidden)
        return self.output_layer_norm(x + self.output_dropout(fed, training=training)), cache

    def call(self, inputs, padding_mask=None, mask=None, training=None):
        if padding_mask is None:
            padding_mask = mask
        attention_mask = None
        if padding_mask is not None:
            # (batch, 1, 1, keys); expand_dims, not a new-axis slice (TFLite has no bool kernel for that)
            attention_mask = ops.expand_dims(ops.cast(padding_mask, "bool"), (1, 2))
        return self._sublayers(inputs, attention_mask, training)[0]

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            activation=keras.activations.serialize(self.activation),
            layer_norm_epsilon=self.layer_norm_epsilon,
            norm_first=self.norm_first,
            kernel_initializer_range=self.kernel_initializer_range,
        )
        return config
