"""The BERT encoder: token + position + segment embeddings -> Transformer blocks -> [CLS] pooler."""

import keras

from tfpretrain.layers.transformer_encoder_block import TransformerEncoderBlock
from tfpretrain.models.backbone_config import BackboneConfig
from tfpretrain.models.transformer_backbone import transformer_layers

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="tfpretrain")
class BertEncoder(BackboneConfig, keras.Model):
    """A BERT encoder as a functional `keras.Model`.

    ``LayerNorm(token + position + segment embeddings)`` -> dropout ->
    ``num_layers`` `tfpretrain.layers.TransformerEncoderBlock` -> a tanh
    ``pooler`` dense layer on the ``[CLS]`` (first) position. The weights map
    one to one onto a Hugging Face ``BertModel`` (see
    `tfpretrain.models.bert.import_hf`).

    Args:
        vocabulary_size: int. Number of word pieces.
        num_layers: int. Number of Transformer blocks.
        num_heads: int. Attention heads per block.
        hidden_dim: int. Width of the embeddings and of every block.
        intermediate_dim: int. Width of the feed-forward layers.
        dropout: float, default 0.1. Dropout after the embeddings and on the
            blocks' residual branches.
        max_sequence_length: int, default 512. Number of position embeddings.
        num_segments: int, default 2. Number of segment (token type) embeddings.
        norm_first: bool, default False. Pre-LN blocks instead of BERT's post-LN.
        layer_norm_epsilon: float, default 1e-12.
        activation: str, default "gelu". The feed-forward activation: "gelu"
            (exact, erf-based, as BERT and Hugging Face's ``gelu``) or
            "gelu_approximate" (tanh approximation, Hugging Face's ``gelu_new``,
            which keras-hub's BERT uses for every checkpoint).
        dtype: optional dtype policy, e.g. "mixed_float16"; defaults to the
            global policy.
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: a dict of ``token_ids``, ``segment_ids`` and ``padding_mask``
    (batch, sequence_length) integers (``padding_mask`` may be bool; True or 1
    at real tokens).

    Outputs: a dict of ``sequence_output`` (batch, sequence_length,
    hidden_dim), ``pooled_output`` (batch, hidden_dim) and ``hidden_states``, a
    list of ``num_layers + 1`` tensors (batch, sequence_length, hidden_dim),
    the embedding output first and ``sequence_output`` last.

    Example:

    >>> encoder = tfpretrain.models.bert.BertEncoder(
    ...     vocabulary_size=30522, **tfpretrain.models.bert.BERT_PRESETS["tiny"])
    >>> outputs = encoder({"token_ids": np.ones((2, 16), "int32"),
    ...                    "segment_ids": np.zeros((2, 16), "int32"),
    ...                    "padding_mask": np.ones((2, 16), "int32")})
    >>> outputs["sequence_output"].shape, len(outputs["hidden_states"])
    (TensorShape([2, 16, 128]), 3)

    References:
        Devlin et al. (2019). BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding.
    """

    CONSTRUCTOR_ARGUMENTS = (
        "vocabulary_size",
        "num_layers",
        "num_heads",
        "hidden_dim",
        "intermediate_dim",
        "dropout",
        "max_sequence_length",
        "num_segments",
        "norm_first",
        "layer_norm_epsilon",
        "activation",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        norm_first=False,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        dtype=None,
        **kwargs,
    ):
        layers = transformer_layers(TransformerEncoderBlock, locals())
        token_embedding, position_embedding = layers["token_embedding"], layers["position_embedding"]
        embeddings_dropout, blocks, final_layer_norm = (
            layers["embeddings_dropout"], layers["blocks"], layers["final_layer_norm"])
        segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=layers["initializer"], dtype=dtype,
            name="segment_embedding",
        )
        embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm",
        )
        pooler = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=layers["initializer"], dtype=dtype, name="pooler",
        )

        # Functional graph.
        inputs = {
            "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input(shape=(None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
        }
        tokens = token_embedding(inputs["token_ids"])  # (batch, seq, hidden)
        x = tokens + position_embedding(tokens) + segment_embedding(inputs["segment_ids"])
        x = embeddings_dropout(embeddings_layer_norm(x))
        hidden_states = [x]
        for block in blocks:
            x = block(x, padding_mask=inputs["padding_mask"])
            hidden_states.append(x)
        if final_layer_norm is not None:
            x = final_layer_norm(x)
            hidden_states[-1] = x
        pooled = pooler(x[:, 0, :])  # (batch, hidden): [CLS]
        outputs = {"sequence_output": x, "pooled_output": pooled, "hidden_states": hidden_states}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        self.keep_constructor_arguments(locals())
        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.segment_embedding = segment_embedding
        self.embeddings_layer_norm = embeddings_layer_norm
        self.transformer_layers = blocks
        self.final_layer_norm = final_layer_norm
        self.pooler = pooler

