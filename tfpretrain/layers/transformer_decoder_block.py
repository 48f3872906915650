"""One Transformer decoder block: causal self-attention (with an optional key/value cache) + feed-forward."""

import keras
from keras import ops

from tfpretrain.layers.transformer_encoder_block import TransformerEncoderBlock, gelu_approximate


def causal_attention_mask(query_length, key_length, query_start=0):
    """Which keys each query may attend to: key ``j`` for the query at position ``query_start + i`` iff ``j <= i``.

    Args:
        query_length: int or scalar tensor. Number of queries.
        key_length: int or scalar tensor. Number of keys (the cache length when decoding with a cache).
        query_start: int or scalar tensor, default 0. Position of the first query in the sequence.

    Returns:
        bool tensor ``(query_length, key_length)``.

    Example:

    >>> causal_attention_mask(2, 4, query_start=1).numpy()
    array([[ True,  True, False, False],
           [ True,  True,  True, False]])
    """
    queries = ops.arange(query_length, dtype="int32") + ops.cast(query_start, "int32")  # (queries,)
    keys = ops.arange(key_length, dtype="int32")  # (keys,)
    return ops.greater_equal(queries[:, None], keys[None, :])  # (queries, keys)


@keras.saving.register_keras_serializable(package="tfpretrain")
class TransformerDecoderBlock(TransformerEncoderBlock):
    """A Transformer decoder block: causal multi-head self-attention then a feed-forward net (GPT's block).

    The same sublayers, weights and residual structure as
    `tfpretrain.layers.TransformerEncoderBlock` (which it extends), with two
    differences: position ``i`` attends only to positions ``<= i``, and
    attention can read and extend a key/value cache so that autoregressive
    decoding computes each new token in one step. Pre-LN by default (GPT-2's
    layout, ``norm_first=True``); ``norm_first=False`` gives the post-LN
    block of the original GPT. There is no cross-attention.

    With a ``cache`` (batch, 2, max_length, num_heads, head_dim) (keys at
    index 0, values at 1, as keras-hub's ``CachedMultiHeadAttention``) the
    ``sequence_length`` inputs are the tokens at positions
    ``cache_update_index ... cache_update_index + sequence_length - 1``:
    their keys and values are written into the cache there, their queries
    attend to cache positions up to their own, and the call returns
    ``(output, new_cache)``. Cache positions after the current ones may hold
    anything; they are never read.

    Args:
        num_heads: int. Number of attention heads; must divide the hidden size.
        intermediate_dim: int. Width of the feed-forward layer.
        dropout: float, default 0.1. Dropout rate of the residual branches.
        activation: str or callable, default "gelu_approximate" (GPT's tanh
            approximation of GELU). Activation of the feed-forward layer.
        layer_norm_epsilon: float, default 1e-5 (GPT's).
        norm_first: bool, default True. Pre-LN (GPT-2) instead of post-LN (GPT).
        kernel_initializer_range: float, default 0.02. Standard deviation of
            the truncated normal kernel initialiser.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor (batch, sequence_length, hidden_dim).
        padding_mask: optional (batch, keys) bool or int, True/1 at real tokens;
            ``keys`` is ``sequence_length``, or the cache's ``max_length`` with
            a cache. Padded positions are never attended to (with right
            padding the causal mask alone keeps real tokens from seeing them).
            A Keras mask is used when no ``padding_mask`` is given.
        cache: optional float tensor (batch, 2, max_length, num_heads, head_dim).
        cache_update_index: int or scalar int tensor: where ``inputs`` start
            in the cache. Required with ``cache``.
        training: bool. Dropout on or off.

    Returns:
        ``(batch, sequence_length, hidden_dim)``, or ``(output, new_cache)``
        when called with a cache.

    Example:

    >>> block = tfpretrain.layers.TransformerDecoderBlock(num_heads=2, intermediate_dim=64)
    >>> x = np.random.rand(2, 5, 32).astype("float32")  # (batch, sequence_length, hidden_dim)
    >>> block(x).shape
    TensorShape([2, 5, 32])
    >>> cache = np.zeros((2, 2, 8, 2, 16), "float32")  # (batch, 2, max_length, num_heads, head_dim)
    >>> output, cache = block(x[:, :1], cache=cache, cache_update_index=0)

    References:
        Vaswani et al. (2017). Attention Is All You Need.
        Radford et al. (2018). Improving Language Understanding by Generative
        Pre-Training.
        Radford et al. (2019). Language Models are Unsupervised Multitask
        Learners (GPT-2: pre-LN blocks).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="gelu_approximate",
        layer_norm_epsilon=1e-5,
        norm_first=True,
        kernel_initializer_range=0.02,
        **kwargs,
    ):
        if activation == "gelu_approximate":
            activation = gelu_approximate
        super().__init__(
            num_heads, intermediate_dim, dropout=dropout, activation=activation,
            layer_norm_epsilon=layer_norm_epsilon, norm_first=norm_first,
            kernel_initializer_range=kernel_initializer_range, **kwargs,
        )

    def call(self, inputs, padding_mask=None, cache=None, cache_update_index=None, mask=None, training=None):
        if padding_mask is None:
            padding_mask = mask
        if cache is not None and cache_update_index is None:
            raise ValueError("TransformerDecoderBlock: a cache needs cache_update_index, the position of the "
                             "inputs' first token in the cache; pass cache_update_index=0 to fill it from the start")
        if cache is None and cache_update_index is not None:
            raise ValueError("TransformerDecoderBlock: cache_update_index was given without a cache; pass the "
                             "cache (batch, 2, max_length, num_heads, head_dim) too, or neither")
        query_length = ops.shape(inputs)[1]
        key_length = query_length if cache is None else ops.shape(cache)[2]
        # expand_dims, not new-axis slices of bool tensors: TFLite has no bool kernel for those.
        attention_mask = ops.expand_dims(causal_attention_mask(
            query_length, key_length, 0 if cache is None else cache_update_index), (0, 1))  # (1, 1, queries, keys)
        if padding_mask is not None:
            attention_mask = ops.logical_and(
                attention_mask, ops.expand_dims(ops.cast(padding_mask, "bool"), (1, 2)))  # (batch, 1, queries, keys)
        output, cache = self._sublayers(inputs, attention_mask, training, cache, cache_update_index)
        return output if cache is None else (output, cache)
