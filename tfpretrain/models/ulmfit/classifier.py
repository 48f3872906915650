"""ULMFiT's classifier on an AWD-LSTM encoder, and the layer groups for discriminative rates and unfreezing."""

import keras
import numpy as np

from tfpretrain.layers.concat_pooling import ConcatPooling
from tfpretrain.models.ulmfit.awd_lstm import AwdLstmEncoder, AwdLstmLanguageModel


def build_ulmfit_classifier(encoder, num_labels, head_hidden_dim=50, head_dropout=(0.2, 0.1),
                            name="ulmfit_classifier"):
    """ULMFiT's text classifier: an `AwdLstmEncoder`, concat pooling and two linear blocks.

    ``token_ids`` -> encoder states (batch, time, embedding_dim) ->
    `tfpretrain.layers.ConcatPooling` ``[last real step; max; mean]`` over the
    real (non-padding) words (batch, 3 * embedding_dim) -> BatchNorm ->
    Dropout(``head_dropout[0]``) -> Dense(``head_hidden_dim``, relu) ->
    BatchNorm -> Dropout(``head_dropout[1]``) -> Dense(``num_labels``):
    float32 logits.

    Args:
        encoder: an `AwdLstmEncoder` (its weights are shared, e.g. the
            fine-tuned language model's ``lm.encoder``).
        num_labels: int >= 2.
        head_hidden_dim: int, default 50.
        head_dropout: pair of floats, default (0.2, 0.1): dropout before each dense layer.
        name: str, the model's name.

    Returns:
        a functional `keras.Model`: ``token_ids`` (batch, time) int32 (0 =
        padding; `tfpretrain.models.ulmfit.WordTokenizer` ids, ``.to_tensor()``) ->
        logits (batch, num_labels).

    Example:

    >>> encoder = AwdLstmEncoder(tokenizer.vocabulary_size(), **{**AWD_LSTM_PRESETS["small"], **CLASSIFIER_DROPOUTS})
    >>> classifier = build_ulmfit_classifier(encoder, num_labels=2)
    >>> classifier(tokenizer(tf.constant(["a fine film"])).to_tensor()).shape
    TensorShape([1, 2])

    References:
        Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
        Classification (section 3.3).
    """
    if int(num_labels) < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    head_dropout = tuple(head_dropout)  # config.json stores a list
    if len(head_dropout) != 2:
        raise ValueError(f"head_dropout holds one rate per dense layer (2), got {head_dropout}")
    dtype = encoder.dtype_policy
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.ops.not_equal(token_ids, 0)  # (batch, time)
    states = encoder(token_ids)  # (batch, time, embedding_dim)
    x = ConcatPooling(dtype=dtype, name="concat_pooling")(states, mask=padding_mask)  # (batch, 3 * embedding_dim)
    head = [
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype, name="head_batch_norm_0"),
        keras.layers.Dropout(head_dropout[0], dtype=dtype, name="head_dropout_0"),
        keras.layers.Dense(head_hidden_dim, activation="relu", dtype=dtype, name="head_dense_0"),
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype, name="head_batch_norm_1"),
        keras.layers.Dropout(head_dropout[1], dtype=dtype, name="head_dropout_1"),
        keras.layers.Dense(num_labels, dtype="float32", name="logits"),  # (batch, num_labels)
    ]
    for layer in head:
        x = layer(x)
    model = keras.Model(token_ids, x, name=name)
    model(np.ones((1, 2), "int32"))  # every variable created: checkpoints and saved head weights restore into it
    return model


def _find_encoder(model):
    if isinstance(model, AwdLstmEncoder):
        return model
    if isinstance(model, AwdLstmLanguageModel):
        return model.encoder
    encoders = [layer for layer in getattr(model, "layers", []) if isinstance(layer, AwdLstmEncoder)]
    if len(encoders) != 1:
        raise ValueError(
            f"layer_groups expects an AwdLstmEncoder, an AwdLstmLanguageModel or a model holding exactly one "
            f"AwdLstmEncoder (build_ulmfit_classifier); {model.name!r} holds {len(encoders)}"
        )
    return encoders[0]


def layer_groups(model):
    """An AWD-LSTM model's layers in ULMFiT's groups, bottom first: the unit of discriminative rates and unfreezing.

    Groups: ``[embedding, input dropout]``, then ``[lstm_i, hidden dropout_i]``
    for each LSTM layer (the last without dropout), then the head: for an
    `AwdLstmLanguageModel` ``[output dropout, OutputBias]`` (the decoder matrix
    is the tied embedding, in the first group), for a classifier every other
    layer (pooling, batch norms, dropouts, dense layers), for a bare encoder no
    head group. Every weight of the model is in exactly one group.

    Args:
        model: an `AwdLstmEncoder`, an `AwdLstmLanguageModel`, or a model
            from `build_ulmfit_classifier`.

    Returns:
        list of lists of `keras.layers.Layer`.

    Example:

    >>> groups = layer_groups(classifier)  # 3 LSTM layers: 5 groups
    >>> [layer.name for layer in groups[-1]][:2]
    ['concat_pooling', 'head_batch_norm_0']

    References:
        Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
        Classification (sections 3.2 and 3.3).
    """
    encoder = _find_encoder(model)
    groups = [[encoder.token_embedding, encoder.input_locked_dropout]]
    for i, lstm in enumerate(encoder.lstm_layers):
        groups.append([lstm] + ([encoder.hidden_locked_dropouts[i]] if i < encoder.num_layers - 1 else []))
    if isinstance(model, AwdLstmLanguageModel):
        groups.append([model.output_locked_dropout, model.output_bias])
    elif model is not encoder:
        groups.append([
            layer for layer in model.layers
            if layer is not encoder and not isinstance(layer, keras.layers.InputLayer)
        ])
    return groups
