"""Metrics: sequence labelling in the graph (entity-level P/R/F1, token accuracy); classification scores in NumPy.

`entity_report` and `score_tags` score whole tagged sentences (any tagger);
`macro_f1` and `label_predictions` score and label a classifier's predicted
probabilities (BERT, GPT and ULMFiT classifiers alike).

`EntityF1` reproduces seqeval 1.2.2's default (conlleval-compatible, non-strict)
``precision_score``/``recall_score``/``f1_score`` exactly, including its handling of
invalid transitions (``O I-PER``, ``B-PER I-LOC``), IOBES tags and tags without a
prefix, without leaving the graph: no ``py_function``, static shapes, so it also
runs under ``tf.function(jit_compile=True)`` (Keras turns XLA on by default on GPUs).

Inputs follow the tagger's convention: ``y_true`` int tag ids ``(batch, time)``
with -1 at positions to ignore (padding, or sub-word pieces after the first),
``y_pred`` tag ids ``(batch, time)`` or scores ``(batch, time, num_tags)`` (argmax
taken). Ignored positions are dropped, not replaced: the valid positions of a row,
in order, are the sentence.
"""

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.text.readers import detect_scheme

# seqeval flattens a list of sentences by appending 'O' to each one; this state
# stands for that 'O', for the 'O' before the first sentence and for padding.
# (seqeval starts from prev_type '' rather than '_', which can only make the first
# token start a chunk at 0, where begin_offset already points.)
_BOUNDARY = ("O", "_")


def _split_tag(tag):
    """``(chunk letter, type)`` exactly as seqeval's ``get_entities`` (prefix mode)."""
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag, tag, prev_type, type_):
    """seqeval 1.2.2 ``end_of_chunk``: a chunk ended between the previous and this token."""
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag not in ("O", ".") and prev_type != type_)
    )


def _start_of_chunk(prev_tag, tag, prev_type, type_):
    """seqeval 1.2.2 ``start_of_chunk``: a chunk starts at this token."""
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != type_)
    )


class _ChunkTables:
    """Per-(previous state, state) start/end tables and per-state chunk types.

    States are the tag ids, then the boundary 'O'.
    """

    def __init__(self, tags):
        states = [_split_tag(tag) for tag in tags] + [_BOUNDARY]
        self.boundary_id = len(tags)
        self.num_states = len(states)
        self.type_names = sorted({kind for _, kind in states})
        self.type_ids = np.array([self.type_names.index(kind) for _, kind in states], "int32")
        self.starts = np.array(
            [[_start_of_chunk(p, t, pk, tk) for t, tk in states] for p, pk in states], bool
        ).reshape(-1)  # (num_states * num_states,), index prev * num_states + current
        self.ends = np.array(
            [[_end_of_chunk(p, t, pk, tk) for t, tk in states] for p, pk in states], bool
        ).reshape(-1)


def _prepare(y_true, y_pred, sample_weight):
    """Int ids, validity mask and float weights, all ``(batch, time)``."""
    y_true = tf.convert_to_tensor(y_true)
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank == y_true.shape.rank + 1:
        y_pred = tf.argmax(y_pred, axis=-1)  # (batch, time)
    y_true = tf.cast(y_true, "int32")
    y_pred = tf.cast(y_pred, "int32")
    valid = y_true >= 0
    weights = tf.cast(valid, "float32")
    if sample_weight is not None:
        sample_weight = tf.cast(tf.convert_to_tensor(sample_weight), "float32")
        while sample_weight.shape.rank < 2:
            sample_weight = sample_weight[..., None]  # (batch, 1) per sentence
        weights = weights * tf.broadcast_to(sample_weight, tf.shape(y_true))
    return y_true, y_pred, valid, weights


def _sentence_streams(valid, tensors, pad_values):
    """Lays out each ``(batch, time)`` tensor as one stream of sentences.

    Moves each row's valid positions to its front in order, fills the rest with
    the pad value and appends one more: ``(batch * (time + 1),)``, the sentences
    one after the other, each followed by at least one pad. With the boundary 'O'
    as pad this is seqeval's flattened list plus extra 'O's, which change no
    chunk. Static shapes (a sort, not boolean_mask), so XLA compiles it.
    """
    time = tf.shape(valid)[1]
    positions = tf.range(time)[None, :]  # (1, time)
    order = tf.argsort(tf.where(valid, positions, positions + time), axis=1, stable=True)
    lengths = tf.reduce_sum(tf.cast(valid, "int32"), axis=1, keepdims=True)  # (batch, 1)
    streams = []
    for values, pad in zip(tensors, pad_values):
        values = tf.where(positions < lengths, tf.gather(values, order, batch_dims=1), pad)
        values = tf.pad(values, [[0, 0], [0, 1]], constant_values=pad)  # (batch, time + 1)
        streams.append(tf.reshape(values, [-1]))
    return streams


def _chunk_ends(tables, stream, carry):
    """seqeval's chunk scan, vectorised over one stream of state ids.

    Returns ``(ends, types, begins, last_start)``: at position ``i``, whether a
    chunk ends at ``i - 1``, its type id and its begin (the last chunk start
    before ``i``, like seqeval's ``begin_offset``; ``carry`` if none in this
    stream), and the stream's last start position (or ``carry``).
    """
    length = tf.shape(stream)[0]
    prev = tf.concat([[tables.boundary_id], stream], axis=0)[:-1]  # (length,)
    pairs = prev * tables.num_states + stream
    starts = tf.gather(tf.constant(tables.starts), pairs)
    ends = tf.gather(tf.constant(tables.ends), pairs)
    types = tf.gather(tf.constant(tables.type_ids), prev)
    positions = tf.range(length)
    # Start positions in increasing order, then `length` fillers: entry k-1 is the k-th start.
    sorted_starts = tf.sort(tf.where(starts, positions, length))
    start_table = tf.concat([[carry], sorted_starts], axis=0)  # (length + 1,)
    num_starts_before = tf.cumsum(tf.cast(starts, "int32"), exclusive=True)
    begins = tf.gather(start_table, num_starts_before)
    last_start = tf.gather(start_table, tf.reduce_sum(tf.cast(starts, "int32")))
    return ends, types, begins, last_start


@keras.saving.register_keras_serializable(package="tfpretrain")
class EntityF1(keras.metrics.Metric):
    """Entity-level precision, recall and F1 with seqeval's default semantics.

    Accumulates, per entity type, true positives, predicted and gold entities
    over batches. A chunk is ``(type, first token, last token)`` found by
    seqeval 1.2.2's ``get_entities`` rules (conlleval-compatible: an ``I-X``
    after ``O`` starts a chunk, a type change ends one), and a predicted chunk
    counts when a gold chunk has the same type and span. Each sentence is
    followed by 'O' and the sentences of successive batches form one sequence,
    exactly like seqeval on the list of all sentences: the scores equal
    ``seqeval.metrics.precision_score/recall_score/f1_score(y_true, y_pred)``,
    0.0 where seqeval divides by zero.

    `result()` is a dict ``{"<name>_precision", "<name>_recall", "<name>_f1"}``;
    Keras flattens dict results into the logs under these keys (``entity_f1``,
    ``val_entity_f1``), so callbacks can monitor them.

    Args:
        tags: list of str. The tag of each id (``tags[i]`` is tag id ``i``), any
            scheme: IOB1/IOB2, IOBES, IO, or tags without prefix.
        name: str. Metric name and log-key prefix. Defaults to "entity".
        **kwargs: standard `keras.metrics.Metric` arguments.

    update_state(y_true, y_pred, sample_weight=None):
        y_true: int ``(batch, time)`` tag ids, -1 where ignored.
        y_pred: int ``(batch, time)`` tag ids in ``[0, len(tags))`` (any value
            where ``y_true`` is -1), or float ``(batch, time, len(tags))`` scores.
        sample_weight: optional ``(batch,)`` or ``(batch, time)``; an entity
            counts with the weight of its last token (seqeval has no weights).

    Example:

    >>> metric = tfpretrain.training.EntityF1(["O", "B-PER", "I-PER", "B-LOC"])
    >>> metric.update_state([[1, 2, 0, 3, -1]], [[1, 2, 0, 1, 0]])
    >>> {k: float(v) for k, v in metric.result().items()}
    {'entity_precision': 0.5, 'entity_recall': 0.5, 'entity_f1': 0.5}
    >>> model.compile(optimizer="adam", metrics=[tfpretrain.training.EntityF1(tags)])

    References:
        Nakayama (2018). seqeval: A Python framework for sequence labeling evaluation.
        Tjong Kim Sang & De Meulder (2003). CoNLL-2003 shared task (conlleval).
    """

    def __init__(self, tags, name="entity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tags = [str(tag) for tag in tags]
        if not self.tags or not all(self.tags):
            raise ValueError(f"EntityF1 needs a non-empty list of non-empty tag strings, got {tags!r}.")
        self._tables = _ChunkTables(self.tags)
        num_types = len(self._tables.type_names)
        self.true_positives = self.add_variable(
            shape=(num_types,), initializer="zeros", dtype="float32", name="true_positives"
        )
        self.predicted = self.add_variable(
            shape=(num_types,), initializer="zeros", dtype="float32", name="predicted"
        )
        self.actual = self.add_variable(
            shape=(num_types,), initializer="zeros", dtype="float32", name="actual"
        )
        # Scan state carried between batches; all 0 after reset_state():
        # whether any token was seen, and whether gold and prediction's last
        # chunk starts (seqeval's begin_offset) differ.
        self.started = self.add_variable(shape=(), initializer="zeros", dtype="int32", name="started")
        self.begins_differ = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", name="begins_differ"
        )

    @property
    def type_names(self):
        """Entity type of each slot of the per-type count variables."""
        return list(self._tables.type_names)

    def update_state(self, y_true, y_pred, sample_weight=None):
        tables = self._tables
        y_true, y_pred, valid, weights = _prepare(y_true, y_pred, sample_weight)
        true_stream, pred_stream, weight_stream = _sentence_streams(
            valid, [y_true, y_pred, weights], [tables.boundary_id, tables.boundary_id, 0.0]
        )
        # A chunk ending at stream position i closes at token i - 1 and counts with its weight.
        prev_weights = tf.concat([[0.0], weight_stream], axis=0)[:-1]

        started = self.started > 0
        # Earlier batches' last chunk starts sit before this stream (at -1, -2);
        # seqeval's begin_offset starts at 0, the first token.
        true_carry = tf.where(started, -1, 0)
        pred_carry = tf.where(started, -1 - self.begins_differ, 0)
        true_ends, true_types, true_begins, true_last = _chunk_ends(
            tables, true_stream, true_carry
        )
        pred_ends, pred_types, pred_begins, pred_last = _chunk_ends(
            tables, pred_stream, pred_carry
        )
        matches = (
            true_ends & pred_ends & (true_types == pred_types) & (true_begins == pred_begins)
        )
        num_types = len(tables.type_names)

        def per_type(mask, types):
            return tf.math.unsorted_segment_sum(
                tf.where(mask, prev_weights, 0.0), types, num_types
            )  # (num_types,)

        self.true_positives.assign_add(per_type(matches, true_types))
        self.predicted.assign_add(per_type(pred_ends, pred_types))
        self.actual.assign_add(per_type(true_ends, true_types))
        self.begins_differ.assign(tf.cast(true_last != pred_last, "int32"))
        self.started.assign(tf.maximum(self.started, tf.cast(tf.size(true_stream) > 0, "int32")))

    def result(self):
        precision, recall, f1 = _scores(
            tf.reduce_sum(self.true_positives),
            tf.reduce_sum(self.predicted),
            tf.reduce_sum(self.actual),
        )
        return {
            f"{self.name}_precision": precision,
            f"{self.name}_recall": recall,
            f"{self.name}_f1": f1,
        }

    def result_by_type(self):
        """``{type: {"precision", "recall", "f1", "support"}}`` for types seen in gold or predictions."""
        true_positives, predicted, actual = (
            keras.ops.convert_to_numpy(v) for v in (self.true_positives, self.predicted, self.actual)
        )
        report = {}
        for i, kind in enumerate(self._tables.type_names):
            if predicted[i] or actual[i]:
                precision, recall, f1 = (
                    float(x) for x in _scores(true_positives[i], predicted[i], actual[i])
                )
                report[kind] = {
                    "precision": precision, "recall": recall, "f1": f1, "support": float(actual[i])
                }
        return report

    def get_config(self):
        return {**super().get_config(), "tags": list(self.tags)}


def _scores(true_positives, predicted, actual):
    """Precision, recall, F1; 0 where a denominator is 0 (seqeval's ``zero_division='warn'``)."""
    precision = tf.math.divide_no_nan(true_positives, predicted)
    recall = tf.math.divide_no_nan(true_positives, actual)
    f1 = tf.math.divide_no_nan(2.0 * precision * recall, precision + recall)
    return precision, recall, f1


@keras.saving.register_keras_serializable(package="tfpretrain")
class TokenAccuracy(keras.metrics.Metric):
    """Fraction of valid tokens (``y_true >= 0``) whose predicted tag id is the gold one.

    Equals ``seqeval.metrics.accuracy_score`` on the unpadded sequences.

    Args:
        name: str. Defaults to "token_accuracy".
        **kwargs: standard `keras.metrics.Metric` arguments.

    update_state(y_true, y_pred, sample_weight=None): as `EntityF1`; the weight
    is per sentence ``(batch,)`` or per token ``(batch, time)``.

    Example:

    >>> metric = tfpretrain.training.TokenAccuracy()
    >>> metric.update_state([[1, 2, 0, -1]], [[1, 0, 0, 5]])
    >>> float(metric.result())
    0.666...
    """

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, _, weights = _prepare(y_true, y_pred, sample_weight)
        self.correct.assign_add(tf.reduce_sum(tf.where(y_true == y_pred, weights, 0.0)))
        self.total.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)


def entity_report(true_tag_seqs, pred_tag_seqs, batch_size=256):
    """Scores predicted tag sequences against gold ones, like seqeval, via `EntityF1`.

    Args:
        true_tag_seqs: list of sentences, each a list of tag strings.
        pred_tag_seqs: list of sentences, each as long as the gold one.
        batch_size: int. Sentences per `update_state` call. Defaults to 256.

    Returns:
        dict: ``precision``, ``recall``, ``f1`` (micro over entities, as seqeval's
        defaults), ``accuracy`` (tokens) and ``per_type``: ``{type: {precision,
        recall, f1, support}}``.

    Example:

    >>> entity_report([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"]
    0.0
    """
    true_tag_seqs = [list(seq) for seq in true_tag_seqs]
    pred_tag_seqs = [list(seq) for seq in pred_tag_seqs]
    if len(true_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(
            f"{len(true_tag_seqs)} gold sentences but {len(pred_tag_seqs)} predicted ones; "
            "expected one prediction per sentence."
        )
    for index, (gold, pred) in enumerate(zip(true_tag_seqs, pred_tag_seqs)):
        if len(gold) != len(pred):
            raise ValueError(
                f"Sentence {index} has {len(gold)} gold tags but {len(pred)} predicted ones; "
                "expected one predicted tag per token."
            )
    tags = sorted({tag for seqs in (true_tag_seqs, pred_tag_seqs) for seq in seqs for tag in seq})
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    entities = EntityF1(tags or ["O"])
    accuracy = TokenAccuracy()
    for start in range(0, len(true_tag_seqs), batch_size):
        gold = true_tag_seqs[start:start + batch_size]
        pred = pred_tag_seqs[start:start + batch_size]
        time = max(1, max(len(seq) for seq in gold))
        y_true = np.full((len(gold), time), -1, "int32")
        y_pred = np.zeros((len(gold), time), "int32")
        for row, (gold_seq, pred_seq) in enumerate(zip(gold, pred)):
            y_true[row, :len(gold_seq)] = [tag_ids[tag] for tag in gold_seq]
            y_pred[row, :len(pred_seq)] = [tag_ids[tag] for tag in pred_seq]
        entities.update_state(y_true, y_pred)
        accuracy.update_state(y_true, y_pred)
    scores = {key[len(entities.name) + 1:]: float(value) for key, value in entities.result().items()}
    per_type = {
        kind: {**values, "support": int(values["support"])}
        for kind, values in entities.result_by_type().items()
    }
    return {**scores, "accuracy": float(accuracy.result()), "per_type": per_type}


def score_tags(gold, predicted, tags=None):
    """Entity P/R/F1 (seqeval semantics) and token accuracy of predicted tag sequences.

    Whether entity scores apply is decided by the MODEL's tag set (``tags``),
    not by the gold file: an IOB2 model scored on a file without entities gets
    seqeval's answer (0.0 where precision or recall is undefined), not its
    token accuracy. For tag sets without chunk prefixes (e.g. UPOS) every
    token is its own unit, so micro precision, recall and F1 all equal token
    accuracy.

    Args:
        gold: list of sentences, each a list of tag strings.
        predicted: list of sentences, each as long as the gold one.
        tags: list of str, optional. The model's tag set (what it can
            predict). Defaults to the tags found in ``gold`` and ``predicted``.

    Returns:
        dict of floats: ``precision``, ``recall``, ``f1``, ``accuracy``.

    Example:

    >>> score_tags([["NOUN", "VERB"]], [["NOUN", "NOUN"]])["f1"]
    0.5
    >>> score_tags([["O", "O"]], [["B-PER", "O"]], tags=["O", "B-PER", "I-PER"])["f1"]
    0.0
    """
    if tags is None:
        tags = {t for seqs in (gold, predicted) for seq in seqs for t in seq}
    if detect_scheme(set(tags)) in ("IOB2", "IOBES", "IO"):
        report = entity_report(gold, predicted)
        return {k: float(report[k]) for k in ("precision", "recall", "f1", "accuracy")}
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    accuracy = sum(g == p for g, p in pairs) / max(1, len(pairs))
    return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy}


# ---------------------------------------------------------------------------
# Classification scores (NumPy, after prediction)


def label_predictions(texts, probabilities, labels):
    """One ``{"text", "label", "score", "probabilities": {label: p}}`` per text, the label the most probable."""
    results = []
    for text, row in zip(texts, probabilities):
        best = int(np.argmax(row))
        results.append({"text": text, "label": labels[best], "score": float(row[best]),
                        "probabilities": {label: float(p) for label, p in zip(labels, row)}})
    return results


def macro_f1(gold, predicted):
    """Unweighted mean of per-class F1 over the classes in gold or predictions (as scikit-learn)."""
    scores = []
    for label in np.union1d(gold, predicted):
        true_positives = np.sum((gold == label) & (predicted == label))
        denominator = np.sum(gold == label) + np.sum(predicted == label)
        scores.append(2.0 * true_positives / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else 0.0
