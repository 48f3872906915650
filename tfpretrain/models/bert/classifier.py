"""Sequence (and sentence-pair) classification on a BERT encoder's pooled ``[CLS]`` vector."""

import keras

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def encoder_inputs(encoder, sequence_length=None):
    """Fresh ``keras.Input``s for the encoder's ``token_ids``, ``segment_ids`` and ``padding_mask``.

    They take the dtypes of the encoder's own inputs, so a task model feeds the
    encoder exactly what it was built for.
    """
    specs = encoder.input if isinstance(encoder.input, dict) else {}
    inputs = {}
    for name in ENCODER_INPUTS:
        dtype = specs[name].dtype if name in specs else ("bool" if name == "padding_mask" else "int32")
        inputs[name] = keras.Input((sequence_length,), dtype=dtype, name=name)
    return inputs


def build_sequence_classifier(encoder, num_labels, dropout=0.1, sequence_length=None,
                              name="sequence_classifier"):
    """BERT's classifier: pooled ``[CLS]`` output -> Dropout -> Dense logits.

    One text (``[CLS] a [SEP]``, SST-2) or a pair (``[CLS] a [SEP] b [SEP]``,
    RTE) look the same to the model; `tfpretrain.text.pack_segments` makes either.
    Train with ``SparseCategoricalCrossentropy(from_logits=True)``.

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder` (its weights are fine-tuned).
        num_labels: int. Number of classes.
        dropout: float. Dropout on the pooled vector. Defaults to 0.1.
        sequence_length: int or None. Static length of the inputs.
        name: str. The model's name.

    Returns:
        A functional `keras.Model`: inputs ``{"token_ids", "segment_ids",
        "padding_mask"}`` (batch, sequence_length), output logits (batch, num_labels).

    Example:

    >>> encoder, tokenizer = tfpretrain.models.bert.load_bert("runs/bert")
    >>> model = build_sequence_classifier(encoder, num_labels=2)
    >>> model.compile(optimizer=bert_optimizer(5e-5, total_steps),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    References:
        Devlin et al. (2019). BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding, section 4.1.
    """
    if int(num_labels) < 2:
        raise ValueError(f"a classifier needs at least 2 labels, got num_labels={num_labels}")
    inputs = encoder_inputs(encoder, sequence_length)
    pooled = encoder(inputs)["pooled_output"]  # (batch, hidden)
    x = keras.layers.Dropout(dropout, name="classifier_dropout")(pooled)
    logits = keras.layers.Dense(
        int(num_labels), kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="classifier",
    )(x)  # (batch, num_labels)
    return keras.Model(inputs, logits, name=name)
