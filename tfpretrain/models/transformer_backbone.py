"""What BERT's encoder and GPT's decoder build alike: checked sizes, token and position embeddings, the blocks.

Both backbones embed word pieces with a `keras.layers.ReversibleEmbedding`
(the language-model heads reuse it), add learned position embeddings, apply
dropout, run ``num_layers`` Transformer blocks and, with pre-LN blocks,
normalise the last output. The layer names are the ones the model directories'
weight files and the Hugging Face import use.

Example:

>>> layers = transformer_layers(TransformerDecoderBlock, dict(
...     vocabulary_size=8000, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512,
...     max_sequence_length=128, dropout=0.1, activation="gelu_approximate", norm_first=True,
...     layer_norm_epsilon=1e-5, dtype=None))
>>> len(layers["blocks"]), layers["final_layer_norm"].name
(2, 'final_layer_norm')
"""

import keras
import keras_hub

from tfpretrain.layers.hash_dropout import HashDropout
from tfpretrain.layers.transformer_encoder_block import bert_kernel_initializer, gelu_approximate

#: The feed-forward activations a backbone config may name.
ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": gelu_approximate}


def transformer_preset(num_layers, hidden_dim, num_heads, intermediate_dim, max_sequence_length=512):
    """One size of `BERT_PRESETS` or `GPT_PRESETS`: the constructor arguments except ``vocabulary_size``."""
    return {
        "num_layers": num_layers,
        "num_heads": num_heads,
        "hidden_dim": hidden_dim,
        "intermediate_dim": intermediate_dim,
        "dropout": 0.1,
        "max_sequence_length": max_sequence_length,
    }


def transformer_layers(block_class, arguments):
    """Checks the sizes and makes the layers a BERT encoder and a GPT decoder share.

    Args:
        block_class: `TransformerEncoderBlock` or `TransformerDecoderBlock`.
        arguments: dict, the backbone constructor's ``locals()``: its
            ``vocabulary_size``, ``num_layers``, ``num_heads``,
            ``hidden_dim``, ``intermediate_dim``, ``max_sequence_length``,
            ``dropout``, ``activation`` (one of `ACTIVATIONS`),
            ``norm_first``, ``layer_norm_epsilon`` and ``dtype``.

    Returns:
        A dict: ``initializer`` (BERT's truncated normal), ``token_embedding``,
        ``position_embedding``, ``embeddings_dropout``, ``blocks`` (a list of
        ``num_layers`` blocks named ``transformer_layer_{i}``) and
        ``final_layer_norm`` (pre-LN blocks leave the residual stream
        unnormalised; None for post-LN).

    Raises:
        ValueError: an unknown activation, or ``hidden_dim`` not divisible by ``num_heads``.
    """
    hidden_dim, num_heads, activation = arguments["hidden_dim"], arguments["num_heads"], arguments["activation"]
    dtype, dropout, epsilon = arguments["dtype"], arguments["dropout"], arguments["layer_norm_epsilon"]
    norm_first = arguments["norm_first"]
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if hidden_dim % num_heads:
        raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}; "
                         "pick num_heads among the divisors of hidden_dim")
    initializer = bert_kernel_initializer()
    blocks = [
        block_class(num_heads, arguments["intermediate_dim"], dropout=dropout, activation=ACTIVATIONS[activation],
                    layer_norm_epsilon=epsilon, norm_first=norm_first, dtype=dtype, name=f"transformer_layer_{i}")
        for i in range(arguments["num_layers"])
    ]
    final_layer_norm = None
    if norm_first:  # pre-LN leaves the residual stream unnormalised: normalise the last output
        final_layer_norm = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name="final_layer_norm")
    return {
        "initializer": initializer,
        "token_embedding": keras.layers.ReversibleEmbedding(
            arguments["vocabulary_size"], hidden_dim, embeddings_initializer=initializer, dtype=dtype,
            name="token_embedding"),
        "position_embedding": keras_hub.layers.PositionEmbedding(
            arguments["max_sequence_length"], initializer=initializer, dtype=dtype, name="position_embedding"),
        "embeddings_dropout": HashDropout(dropout, dtype=dtype, name="embeddings_dropout"),
        "blocks": blocks,
        "final_layer_norm": final_layer_norm,
    }
