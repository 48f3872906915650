"""Token labelling on a BERT encoder: one tag per word from its first word piece, softmax or CRF."""

import keras
import tensorflow as tf
from keras import ops

from tfpretrain.layers.crf import CRF
from tfpretrain.models.bert.classifier import encoder_inputs


@keras.saving.register_keras_serializable(package="tfpretrain")
class BertTokenTagger(keras.Model):
    """A functional word tagger whose outputs are ``{"tag_ids", "potentials"}``.

    ``potentials`` (batch, words, num_tags) are per-word tag scores and
    ``tag_ids`` (batch, words) the decoded tags (0 where ``word_mask`` is False).
    The loss depends on the head: with a `CRF` layer in the graph it is the
    CRF's negative log-likelihood per sentence (BERT-CRF); without one, the
    softmax cross-entropy averaged over real words. The gold ``y`` is int
    (batch, words) with -1 for padding and for words cut by truncation, which
    take no part in the loss. Compiled metrics see ``tag_ids``. Under a
    ``tf.distribute`` strategy the loss is scaled by the number of replicas as
    Keras does for compiled losses, so gradients sum to the global mean.

    `build_token_tagger` builds the standard one.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        crf_layers = [layer for layer in self.layers if isinstance(layer, CRF)]
        if len(crf_layers) > 1 or not isinstance(self.output, dict):
            raise ValueError(
                "BertTokenTagger needs at most one CRF layer and dict outputs {'tag_ids', 'potentials'}; "
                f"got {len(crf_layers)} CRF layers and outputs of type {type(self.output).__name__}."
            )
        self.crf = crf_layers[0] if crf_layers else None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        tag_ids = ops.cast(y, "int32")  # (batch, words)
        mask = ops.greater_equal(tag_ids, 0)
        potentials = ops.cast(y_pred["potentials"], "float32")  # (batch, words, num_tags)
        if self.crf is not None:
            per_sentence = -self.crf.log_likelihood(potentials, tag_ids, mask)  # (batch,)
            if sample_weight is not None:
                per_sentence = per_sentence * ops.cast(sample_weight, "float32")
            loss = ops.mean(per_sentence)
        else:
            per_word = keras.losses.sparse_categorical_crossentropy(
                ops.where(mask, tag_ids, 0), potentials, from_logits=True
            )  # (batch, words)
            weights = ops.cast(mask, "float32")
            if sample_weight is not None:
                weights = weights * ops.expand_dims(ops.cast(sample_weight, "float32"), -1)
            loss = ops.sum(per_word * weights) / ops.maximum(ops.sum(weights), 1.0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred["tag_ids"], sample_weight)


def gather_words(sequence, word_positions):
    """Each word's vector at its first word piece: (batch, seq, dim) -> (batch, words, dim)."""
    return ops.take_along_axis(sequence, ops.expand_dims(ops.cast(word_positions, "int32"), -1), axis=1)


def build_token_tagger(encoder, tags, crf=False, constraint=None, dropout=0.1, sequence_length=None,
                       name="token_tagger"):
    """BERT token labelling (NER, POS): first word piece of each word -> Dense -> softmax or CRF.

    Each word is represented by the encoder's last layer at its first piece,
    as in the BERT paper's NER setup; the other pieces of the word only feed
    the attention. With ``crf=True`` a linear-chain `CRF` decodes the per-word
    scores (BERT-CRF) under the tag scheme's ``constraint``.

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder` (fine-tuned with the head).
        tags: list of str. ``tags[i]`` is tag id ``i``.
        crf: bool. CRF head instead of an independent softmax per word.
        constraint: None, "BIO" or "IOBES". Forbidden CRF transitions (CRF only).
        dropout: float. Dropout on the word vectors. Defaults to 0.1.
        sequence_length: int or None. Static length of the packed pieces; words
            get ``sequence_length - 2`` slots (at most that many fit).
        name: str. The model's name.

    Inputs: ``token_ids``, ``segment_ids``, ``padding_mask`` (batch,
    sequence_length) and ``word_positions``, ``word_mask`` (int32, 1 at the
    words in the sequence) (batch, words), as `tfpretrain.text.pack_words`
    makes them (cast its bool ``word_mask``).

    Returns:
        A `BertTokenTagger`.

    Example:

    >>> model = build_token_tagger(encoder, ["O", "B-PER", "I-PER"], crf=True, constraint="BIO")
    >>> model.compile(optimizer=bert_optimizer(5e-5, total_steps),
    ...               metrics=[tfpretrain.training.TokenAccuracy()])

    References:
        Devlin et al. (2019). BERT, section 5.3 (feature and fine-tuning NER).
        Souza et al. (2019). Portuguese Named Entity Recognition using BERT-CRF.
    """
    tags = [str(tag) for tag in tags]
    if not tags:
        raise ValueError("build_token_tagger needs a non-empty tag list")
    if constraint is not None and not crf:
        raise ValueError(f"constraint={constraint!r} only applies to the CRF head; pass crf=True or constraint=None")
    inputs = encoder_inputs(encoder, sequence_length)
    num_words = None if sequence_length is None else sequence_length - 2
    inputs["word_positions"] = keras.Input((num_words,), dtype="int32", name="word_positions")
    # int32 rather than bool: under a MirroredStrategy, Keras' first (symbolic) build averages a batch of
    # every input across replicas, which fails on bool tensors.
    inputs["word_mask"] = keras.Input((num_words,), dtype="int32", name="word_mask")
    word_mask = ops.cast(inputs["word_mask"], "bool")  # (batch, words)
    sequence = encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"]
    words = gather_words(sequence, inputs["word_positions"])  # (batch, words, hidden)
    words = keras.layers.Dropout(dropout, name="tagger_dropout")(words)
    potentials = keras.layers.Dense(
        len(tags), kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="potentials",
    )(words)  # (batch, words, num_tags)
    if crf:
        tag_ids = CRF(len(tags), tags=tags, constraint=constraint, name="crf")(
            potentials, mask=word_mask
        )  # (batch, words)
    else:
        # top_k rather than argmax: Keras' argmax bitcasts floats (a flush-to-zero fix), which TFLite has no
        # kernel for; the index is the same (the first of equal scores).
        best = ops.top_k(potentials, k=1)[1][..., 0]
        tag_ids = ops.where(word_mask, best, 0)
        tag_ids = ops.cast(tag_ids, "int32")  # (batch, words)
    return BertTokenTagger(inputs, {"tag_ids": tag_ids, "potentials": potentials}, name=name)
