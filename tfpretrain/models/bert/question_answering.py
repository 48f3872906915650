"""Extractive question answering (SQuAD) on a BERT encoder: start and end logits per piece."""

import keras
from keras import ops

from tfpretrain.models.bert.classifier import encoder_inputs

#: The model's outputs, also the keys of its training targets.
SPAN_OUTPUTS = ("start_logits", "end_logits")


def build_question_answerer(encoder, sequence_length=None, name="question_answerer"):
    """BERT's SQuAD head: ``sequence_output`` -> Dense(2) -> start and end logits.

    Padding positions get a large negative logit (in float32, whatever the
    compute dtype), so a softmax over the sequence ignores them. The encoder's
    pooler (the ``[CLS]`` vector) is unused here and frozen. Which positions
    may start or end an answer (context pieces only) is decided when decoding
    (`tfpretrain.text.squad.decode_answers`); in training, a window that does not
    hold the answer points both targets at ``[CLS]`` (position 0).

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder` (its weights are fine-tuned).
        sequence_length: int or None. Static length of the inputs.
        name: str. The model's name.

    Returns:
        A functional `keras.Model`: inputs ``{"token_ids", "segment_ids",
        "padding_mask"}`` (batch, sequence_length); outputs ``{"start_logits",
        "end_logits"}``, each (batch, sequence_length) float32. Train it with
        `span_losses` (the mean of the start and end cross-entropies).

    Example:

    >>> encoder, tokenizer = tfpretrain.models.bert.load_bert("runs/bert")
    >>> model = build_question_answerer(encoder)
    >>> model.compile(optimizer=bert_optimizer(5e-5, total_steps), **span_losses())

    References:
        Devlin et al. (2019). BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding, section 4.2.
    """
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler.trainable = False  # unused here: freezing it spares the optimizer gradient-less variables
    inputs = encoder_inputs(encoder, sequence_length)
    sequence_output = encoder(inputs)["sequence_output"]  # (batch, seq, hidden)
    logits = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="span_logits",
    )(sequence_output)  # (batch, seq, 2)
    logits = ops.cast(logits, "float32")
    padding = ops.logical_not(ops.cast(inputs["padding_mask"], "bool"))  # (batch, seq)
    start_logits = ops.where(padding, -1e9, logits[..., 0])  # (batch, seq)
    end_logits = ops.where(padding, -1e9, logits[..., 1])
    outputs = {"start_logits": start_logits, "end_logits": end_logits}
    return keras.Model(inputs, outputs, name=name)


def span_losses():
    """``compile`` arguments for `build_question_answerer`: the mean of start and end sparse cross-entropies."""
    return {
        "loss": {key: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for key in SPAN_OUTPUTS},
        "loss_weights": {key: 0.5 for key in SPAN_OUTPUTS},
    }
