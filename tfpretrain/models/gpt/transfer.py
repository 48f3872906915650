"""GPT transferred to a task: the decoder's ``[EXTRACT]`` state -> a linear head, LM loss kept as an auxiliary."""

import keras
import tensorflow as tf
from keras import ops

from tfpretrain.layers.transformer_encoder_block import bert_kernel_initializer
from tfpretrain.models.gpt.preprocessor import TRANSFER_TASKS


def causal_lm_loss(logits, token_ids, padding_mask):
    """Mean next-token cross-entropy of the real tokens of each sequence, averaged over sequences.

    Position t predicts token t + 1 wherever token t + 1 is real.

    Args:
        logits: (batch, sequence_length, vocabulary_size) float.
        token_ids: (batch, sequence_length) int.
        padding_mask: (batch, sequence_length), 1 at real tokens.

    Returns:
        A scalar float32.
    """
    targets = token_ids[:, 1:]  # (batch, sequence_length - 1)
    weights = ops.cast(padding_mask[:, 1:], "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        targets, ops.cast(logits[:, :-1], "float32"), from_logits=True)  # (batch, sequence_length - 1)
    return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)


@keras.saving.register_keras_serializable(package="tfpretrain")
class GptTransferModel(keras.Model):
    """A GPT decoder with a linear head on the ``[EXTRACT]`` token, for the four transfer tasks of GPT-1.

    Inputs are what `tfpretrain.models.gpt.encode_gpt_inputs` makes:
    ``token_ids`` and ``padding_mask`` of shape (batch, sequences,
    sequence_length), every sequence ending in ``[EXTRACT]`` (its last real
    token). The decoder runs on every sequence; the hidden state at
    ``[EXTRACT]`` is that sequence's representation. Then:

    - classify, pair: one sequence; ``Dense(num_labels)`` of its representation;
    - similarity: two sequences (both orders); their representations are
      added, then ``Dense(num_labels)``;
    - choice: K sequences (one per answer); ``Dense(1)`` scores each, and the
      logits (batch, K) go to a softmax over the answers.

    In training, the language-model loss of the decoder on the same
    sequences is added with weight ``lm_loss_weight`` (the paper's
    L3 = L2 + lambda * L1, lambda = 0.5), tied to the decoder's input
    embedding; validation and prediction skip it.

    Args:
        decoder: a `tfpretrain.models.gpt.GptDecoder`.
        task: "classify", "pair", "similarity" or "choice".
        num_labels: int, default 2. Labels (ignored for "choice": one score per answer).
        lm_loss_weight: float, default 0.5. 0 turns the auxiliary loss off.
        dropout: float, default 0.1. Dropout on the representation.

    Example:

    >>> model = GptTransferModel(decoder, "pair", num_labels=2)
    >>> packed, _ = encode_gpt_inputs(tokenizer, "pair", (premises, hypotheses), 128)
    >>> model(packed).shape
    TensorShape([8, 2])

    References:
        Radford et al. (2018). Improving Language Understanding by Generative
        Pre-Training.
    """

    def __init__(self, decoder, task, num_labels=2, lm_loss_weight=0.5, dropout=0.1, **kwargs):
        if task not in TRANSFER_TASKS:
            raise ValueError(f"unknown GPT transfer task {task!r}; choose one of {', '.join(TRANSFER_TASKS)}")
        super().__init__(**kwargs)
        self.decoder = decoder
        self.task = task
        self.num_labels = int(num_labels)
        self.lm_loss_weight = float(lm_loss_weight)
        self.dropout = float(dropout)
        self.representation_dropout = keras.layers.Dropout(self.dropout, name="representation_dropout")
        self.head = keras.layers.Dense(
            1 if task == "choice" else self.num_labels, kernel_initializer=bert_kernel_initializer(),
            dtype="float32", name="head")  # logits in float32 under mixed precision

    def build(self, input_shape=None):
        """Builds the head (the decoder is built already); the input shape does not matter."""
        self.head.build((None, self.decoder.hidden_dim))
        self.built = True

    def call(self, inputs, training=False):
        from tfpretrain.models.gpt import tied_logits

        token_ids = ops.cast(inputs["token_ids"], "int32")  # (batch, sequences, length)
        padding_mask = ops.cast(inputs["padding_mask"], "int32")
        batch, sequences, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1], ops.shape(token_ids)[2]
        flat_ids = ops.reshape(token_ids, (-1, length))  # (batch * sequences, length)
        flat_mask = ops.reshape(padding_mask, (-1, length))
        hidden = self.decoder({"token_ids": flat_ids, "padding_mask": flat_mask}, training=training)
        if training and self.lm_loss_weight:
            # Keras divides each replica's compiled loss by the number of replicas (their gradients are
            # summed), but not the losses added here: divide this one too, so that its weight holds.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            lm_loss = causal_lm_loss(tied_logits(self.decoder, hidden), flat_ids, flat_mask)
            self.add_loss(self.lm_loss_weight * lm_loss / replicas)
        last = ops.maximum(ops.sum(flat_mask, axis=1) - 1, 0)  # (batch * sequences,): the [EXTRACT] position
        extract = ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # (batch * sequences, hidden)
        extract = self.representation_dropout(extract, training=training)
        if self.task == "choice":
            return ops.reshape(self.head(extract), (batch, sequences))  # (batch, choices)
        summed = ops.sum(ops.reshape(extract, (batch, sequences, -1)), axis=1)  # (batch, hidden)
        return self.head(summed)  # (batch, num_labels)

    def get_config(self):
        config = super().get_config()
        config.update(decoder=keras.saving.serialize_keras_object(self.decoder), task=self.task,
                      num_labels=self.num_labels, lm_loss_weight=self.lm_loss_weight, dropout=self.dropout)
        return config

    @classmethod
    def from_config(cls, config):
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
