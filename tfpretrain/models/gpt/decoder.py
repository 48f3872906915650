"""The GPT decoder: token + position embeddings -> causal Transformer blocks -> final layer norm."""

import keras
from keras import ops

from tfpretrain.layers.transformer_decoder_block import TransformerDecoderBlock
from tfpretrain.models.backbone_config import BackboneConfig
from tfpretrain.models.transformer_backbone import transformer_layers

DECODER_INPUTS = ("token_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="tfpretrain")
class GptDecoder(BackboneConfig, keras.Model):
    """A GPT decoder (a left-to-right Transformer language model body) as a functional `keras.Model`.

    ``token embedding + learned position embedding`` -> dropout ->
    ``num_layers`` `tfpretrain.layers.TransformerDecoderBlock` (causal
    self-attention) -> a final layer norm when the blocks are pre-LN (GPT-2's
    layout; the post-LN blocks of the original GPT end normalised already).
    The token embedding matrix doubles as the output projection onto the
    vocabulary (`tied_logits`), as in GPT.

    Args:
        vocabulary_size: int. Number of word pieces.
        num_layers: int. Number of decoder blocks.
        num_heads: int. Attention heads per block.
        hidden_dim: int. Width of the embeddings and of every block.
        intermediate_dim: int. Width of the feed-forward layers.
        max_sequence_length: int, default 512. Number of position embeddings,
            the longest sequence the decoder reads (prompt and generated
            tokens together).
        dropout: float, default 0.1. Dropout after the embeddings and on the
            blocks' residual branches.
        activation: str, default "gelu_approximate" (GPT's tanh
            approximation) or "gelu" (exact).
        norm_first: bool, default True. Pre-LN blocks and a final layer norm
            (GPT-2) instead of GPT's post-LN blocks.
        layer_norm_epsilon: float, default 1e-5.
        dtype: optional dtype policy, e.g. "mixed_float16"; defaults to the
            global policy.
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: a dict of ``token_ids`` and ``padding_mask`` (batch,
    sequence_length) int32 (``padding_mask`` 1 at real tokens). Padding goes
    on the right; position ``i`` of the output depends on tokens ``0..i`` only.

    Outputs: ``sequence_output`` (batch, sequence_length, hidden_dim), the
    final hidden states.

    Example:

    >>> decoder = tfpretrain.models.gpt.GptDecoder(
    ...     vocabulary_size=8000, **tfpretrain.models.gpt.GPT_PRESETS["tiny"])
    >>> hidden = decoder({"token_ids": np.ones((2, 16), "int32"),
    ...                   "padding_mask": np.ones((2, 16), "int32")})
    >>> hidden.shape, tied_logits(decoder, hidden).shape
    (TensorShape([2, 16, 128]), TensorShape([2, 16, 8000]))

    References:
        Radford et al. (2018). Improving Language Understanding by Generative
        Pre-Training.
        Radford et al. (2019). Language Models are Unsupervised Multitask
        Learners.
    """

    CONSTRUCTOR_ARGUMENTS = (
        "vocabulary_size",
        "num_layers",
        "num_heads",
        "hidden_dim",
        "intermediate_dim",
        "max_sequence_length",
        "dropout",
        "activation",
        "norm_first",
        "layer_norm_epsilon",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length=512,
        dropout=0.1,
        activation="gelu_approximate",
        norm_first=True,
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        layers = transformer_layers(TransformerDecoderBlock, locals())
        token_embedding, position_embedding = layers["token_embedding"], layers["position_embedding"]
        embeddings_dropout, blocks, final_layer_norm = (
            layers["embeddings_dropout"], layers["blocks"], layers["final_layer_norm"])

        # Functional graph.
        inputs = {
            "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
        }
        tokens = token_embedding(inputs["token_ids"])  # (batch, seq, hidden)
        x = embeddings_dropout(tokens + position_embedding(tokens))
        for block in blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
        if final_layer_norm is not None:
            x = final_layer_norm(x)
        super().__init__(inputs=inputs, outputs=x, dtype=dtype, **kwargs)

        self.keep_constructor_arguments(locals())
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.embeddings_dropout = embeddings_dropout
        self.transformer_layers = blocks
        self.final_layer_norm = final_layer_norm

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def empty_cache(self, batch_size, sequence_length):
        """A zero key/value cache for `call_with_cache`, (batch, num_layers, 2, sequence_length, num_heads, head_dim).

        ``sequence_length`` is the positions the cache holds: the prompt and every token to generate.
        """
        shape = (batch_size, self.num_layers, 2, sequence_length, self.num_heads, self.head_dim)
        return ops.zeros(shape, dtype=self.token_embedding.compute_dtype)  # the layers' (float16 when mixed)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs ``token_ids`` at positions ``cache_update_index ...`` against a key/value cache (inference only).

        The keys and values of these tokens are written into ``cache`` and
        every earlier cache position is attended to, so a decoding step costs
        one token's computation, not the whole prefix's. Cache positions at
        and after ``cache_update_index + length`` are never read.

        Args:
            token_ids: int (batch, length): the next tokens (length 1 while
                decoding; the whole prompt to fill an empty cache).
            cache: float (batch, num_layers, 2, sequence_length, num_heads, head_dim),
                from `empty_cache` or a previous call.
            cache_update_index: int or scalar int tensor: the position of
                ``token_ids[:, 0]``.

        Returns:
            ``(sequence_output, cache)``: the final hidden states (batch,
            length, hidden_dim) of these tokens and the updated cache.

        Example:

        >>> cache = decoder.empty_cache(batch_size=1, sequence_length=32)
        >>> hidden, cache = decoder.call_with_cache(prompt_ids, cache, 0)  # prompt_ids (1, 5)
        >>> hidden, cache = decoder.call_with_cache(next_ids, cache, 5)  # next_ids (1, 1)
        """
        tokens = self.token_embedding(token_ids)  # (batch, length, hidden)
        x = tokens + self.position_embedding(tokens, start_index=cache_update_index)
        caches = []
        for i, block in enumerate(self.transformer_layers):
            x, layer_cache = block(x, cache=cache[:, i], cache_update_index=cache_update_index)
            caches.append(layer_cache)
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
        # (batch, length, hidden), (batch, layers, 2, sequence_length, heads, head_dim)
        return x, ops.stack(caches, axis=1)


def tied_logits(decoder, sequence_output):
    """Next-token logits from hidden states through the decoder's token embedding matrix (weight tying).

    Args:
        decoder: a `GptDecoder`.
        sequence_output: float (batch, sequence_length, hidden_dim), the
            decoder's output.

    Returns:
        float32 logits (batch, sequence_length, vocabulary_size): position
        ``i`` scores the token at ``i + 1``.

    Example:

    >>> logits = tied_logits(decoder, decoder({"token_ids": ids, "padding_mask": mask}))

    References:
        Press & Wolf (2017). Using the Output Embedding to Improve Language
        Models.
    """
    logits = decoder.token_embedding(sequence_output, reverse=True)  # (batch, seq, vocabulary)
    return ops.cast(logits, "float32")
