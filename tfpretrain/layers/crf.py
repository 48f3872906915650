"""Linear-chain conditional random field: likelihood, Viterbi decoding, tag constraints."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

# Score added to a transition that the tagging scheme forbids. The CRF maths
# always runs in float32, where this is far below any reachable path score yet
# keeps logsumexp and its gradient finite (float16 could not hold it).
FORBIDDEN_SCORE = -1e4

# The tag prefixes of each scheme, and which of them may start or end a sentence.
_SCHEMES = {
    "BIO": {"prefixes": ("B", "I"), "first": ("O", "B"), "last": ("O", "B", "I")},
    "IOBES": {"prefixes": ("B", "I", "E", "S"), "first": ("O", "B", "S"), "last": ("O", "E", "S")},
}
_ALIASES = {"BIO": "BIO", "IOB2": "BIO", "IOBES": "IOBES", "BIOES": "IOBES"}


def _parse_tag(tag, index, scheme):
    """Splits ``"B-PER"`` into ``("B", "PER")`` and ``"O"`` into ``("O", "")``."""
    if tag == "O":
        return "O", ""
    prefix, _, entity = tag.partition("-")
    if prefix not in _SCHEMES[scheme]["prefixes"] or not entity:
        expected = ", ".join(f"'{p}-<type>'" for p in _SCHEMES[scheme]["prefixes"])
        raise ValueError(
            f"Tag {tag!r} (tags[{index}]) is not a {scheme} tag: expected 'O' or one of "
            f"{expected}. Fix the tag list, or build the CRF with constraint=None."
        )
    return prefix, entity


def _is_allowed(scheme, from_prefix, from_entity, to_prefix, to_entity):
    """Whether tag ``from`` may be followed by tag ``to`` (AllenNLP's rules)."""
    same_entity = from_entity == to_entity
    if scheme == "BIO":
        return to_prefix in ("O", "B") or (to_prefix == "I" and from_prefix in ("B", "I") and same_entity)
    return (from_prefix in ("O", "E", "S") and to_prefix in ("O", "B", "S")) or (
        from_prefix in ("B", "I") and to_prefix in ("I", "E") and same_entity
    )


def allowed_transitions(tags, constraint):
    """Which tag transitions a tagging scheme allows.

    Follows AllenNLP's ``allowed_transitions``: with ``"BIO"`` (IOB2) an
    ``I-X`` may only follow ``B-X`` or ``I-X``, and a sentence may not start
    with ``I-X``; with ``"IOBES"`` an entity is ``S-X`` or ``B-X I-X* E-X``.

    Args:
        tags: list of str. The tag of each tag id, e.g. ``["O", "B-PER", "I-PER"]``.
        constraint: str. ``"BIO"`` (alias ``"IOB2"``) or ``"IOBES"`` (alias ``"BIOES"``).

    Returns:
        A tuple of numpy bool arrays ``(transitions, start, end)``: ``transitions``
        ``(num_tags, num_tags)`` indexed ``[from, to]``, ``start`` ``(num_tags,)``
        for the first tag of a sentence and ``end`` ``(num_tags,)`` for the last.

    Example:

    >>> transitions, start, end = allowed_transitions(["O", "B-PER", "I-PER"], "BIO")
    >>> bool(transitions[0, 2]), bool(start[2])  # O -> I-PER; a sentence starting with I-PER
    (False, False)
    """
    scheme = _ALIASES.get(str(constraint).upper())
    if scheme is None:
        raise ValueError(
            f"Unknown CRF constraint {constraint!r}; use None, 'BIO' (IOB2) or 'IOBES'."
        )
    parsed = [_parse_tag(tag, i, scheme) for i, tag in enumerate(tags)]
    transitions = np.array([[_is_allowed(scheme, *a, *b) for b in parsed] for a in parsed], dtype=bool)
    start = np.array([prefix in _SCHEMES[scheme]["first"] for prefix, _ in parsed], dtype=bool)
    end = np.array([prefix in _SCHEMES[scheme]["last"] for prefix, _ in parsed], dtype=bool)
    return transitions, start, end


@keras.saving.register_keras_serializable(package="tfpretrain")
class CRF(keras.layers.Layer):
    """A linear-chain CRF over per-step tag potentials, decoding with Viterbi.

    The score of a tag path ``y`` for potentials ``x`` (batch, time, num_tags) is
    ``start[y_0] + sum_t x[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_T]``
    and ``p(y | x) = exp(score(y)) / sum_y' exp(score(y'))`` (Lafferty et al.,
    2001). Calling the layer returns the Viterbi path; training minimises
    ``-log_likelihood(potentials, tag_ids, mask)``, whose gradient reaches the
    potentials and the three transition weights.

    With a ``constraint`` the transitions that the tagging scheme forbids
    (``O -> I-PER``, ``B-PER -> I-LOC``, a sentence starting with ``I-PER``, ...)
    get a score of -1e4 in both the likelihood and decoding, as in AllenNLP, so
    decoded paths are always well-formed.

    All CRF maths runs in float32: the potentials are cast to float32, and the
    weights are float32 variables that are not autocast under ``mixed_float16``.
    The forward algorithm and Viterbi are `while_loop`s over time carrying
    ``(batch, num_tags)`` scores, so batch and time may be dynamic. Both compile
    with XLA: on CPU, ``jit_compile=True`` makes the likelihood and its gradient
    about 3x faster and decoding about 10x faster than a plain `tf.function`
    (Keras' ``jit_compile="auto"`` leaves XLA off on CPU; see
    ``benchmarks/crf_benchmark.py``). Both also convert to TFLite builtin ops.

    Args:
        num_tags: int. Number of tags (the last axis of the potentials).
        tags: list of str, or None. The tag of each tag id, e.g.
            ``["O", "B-PER", "I-PER"]``; needed only for ``constraint``.
        constraint: str or None. ``"BIO"`` (IOB2) or ``"IOBES"`` to forbid
            transitions that the scheme does not allow; see
            `allowed_transitions`. Defaults to None (every transition allowed).
        **kwargs: standard `keras.layers.Layer` arguments.

    Masking: a ``(batch, time)`` mask marks the real steps of each row, which
    must be a prefix (right padding). Masked steps take no part in the path
    score: their potentials and tag ids (-1 is fine) are ignored and they decode
    to tag id 0. A row with no real step decodes to zeros and has a
    log-likelihood of 0. The mask passes through unchanged.

    Example:

    >>> crf = tfpretrain.layers.CRF(3, tags=["O", "B-PER", "I-PER"], constraint="BIO")
    >>> potentials = np.random.rand(2, 4, 3).astype("float32")  # (batch, time, num_tags)
    >>> mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    >>> crf(potentials, mask=mask).shape  # Viterbi tag ids, int32
    TensorShape([2, 4])
    >>> tag_ids = np.array([[1, 2, 0, 0], [0, 1, -1, -1]])
    >>> loss = -keras.ops.mean(crf.log_likelihood(potentials, tag_ids, mask))

    References:
        Lafferty et al. (2001). Conditional Random Fields: Probabilistic Models
        for Segmenting and Labeling Sequence Data.
        Lample et al. (2016). Neural Architectures for Named Entity Recognition.
    """

    def __init__(self, num_tags, tags=None, constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = int(num_tags)
        self.tags = None if tags is None else [str(tag) for tag in tags]
        self.constraint = constraint
        self.supports_masking = True
        if self.tags is not None and len(self.tags) != self.num_tags:
            raise ValueError(
                f"CRF got {len(self.tags)} tags for num_tags={self.num_tags}; give one tag per tag id."
            )
        self._allowed = None
        if constraint is not None:
            if self.tags is None:
                raise ValueError(
                    f"CRF(constraint={constraint!r}) needs the tag strings to know which "
                    "transitions to forbid; pass tags=[...] (one per tag id) or constraint=None."
                )
            self._allowed = allowed_transitions(self.tags, constraint)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.num_tags:
            raise ValueError(
                f"CRF(num_tags={self.num_tags}) got potentials of shape {tuple(input_shape)}; "
                f"the last axis must hold one score per tag ({self.num_tags})."
            )
        self.transitions = self.add_weight(
            name="transitions", shape=(self.num_tags, self.num_tags),
            initializer="glorot_uniform", dtype="float32", autocast=False,
        )
        self.start_transitions = self.add_weight(
            name="start_transitions", shape=(self.num_tags,), initializer="zeros",
            dtype="float32", autocast=False,
        )
        self.end_transitions = self.add_weight(
            name="end_transitions", shape=(self.num_tags,), initializer="zeros",
            dtype="float32", autocast=False,
        )

    def call(self, potentials, mask=None):
        tag_ids, _ = self.decode(potentials, mask)
        return tag_ids

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, potentials, mask=None):
        return keras.KerasTensor(self.compute_output_shape(potentials.shape), dtype="int32")

    def log_likelihood(self, potentials, tag_ids, mask=None):
        """Log-probability of the gold tag paths.

        Args:
            potentials: float tensor (batch, time, num_tags), any float dtype.
            tag_ids: int tensor (batch, time); masked steps may hold -1.
            mask: bool tensor (batch, time) or None (every step is real).

        Returns:
            float32 tensor (batch,): ``log p(tag_ids | potentials)``, 0 for an
            empty row.
        """
        potentials, mask = self._prepare(potentials, mask)
        transitions, start, end = self._constrained_weights()
        tag_ids = ops.cast(tag_ids, "int32")
        tag_ids = ops.pad(tag_ids, [[0, 0], [0, ops.shape(mask)[1] - ops.shape(tag_ids)[1]]])
        step_mask = ops.expand_dims(ops.cast(mask, "float32"), -1)  # (batch, time, 1)

        # Score of the gold path, all steps at once; the one-hots are zero at masked steps.
        gold = ops.one_hot(ops.where(mask, tag_ids, 0), self.num_tags) * step_mask  # (batch, time, num_tags)
        is_first = ops.expand_dims(ops.cast(ops.arange(ops.shape(mask)[1]) == 0, "float32"), -1)  # (time, 1)
        is_last = step_mask - ops.pad(step_mask[:, 1:], [[0, 0], [0, 1], [0, 0]])  # (batch, time, 1)
        step_scores = potentials + is_first * start + is_last * end  # (batch, time, num_tags)
        # How often the gold path takes each transition: (batch, from, to).
        transition_counts = ops.matmul(ops.transpose(gold[:, :-1], (0, 2, 1)), gold[:, 1:])
        gold_score = (
            ops.sum(gold * step_scores, axis=(1, 2)) + ops.sum(transition_counts * transitions, axis=(1, 2))
        )  # (batch,)

        # Forward algorithm: scores[b, j] = log-sum of the scores of all paths ending in tag j.
        steps, step_mask = self._time_major(potentials, mask)
        time_steps = ops.shape(steps)[0]

        def forward(t, scores):
            candidates = scores[:, :, None] + transitions  # (batch, from, to)
            # logsumexp over `from`; written out, it takes fewer graph ops than tf.reduce_logsumexp.
            best = tf.stop_gradient(tf.reduce_max(candidates, axis=1, keepdims=True))  # (batch, 1, to)
            next_scores = tf.math.log(tf.reduce_sum(tf.exp(candidates - best), axis=1)) + best[:, 0]
            return t + 1, tf.where(tf.gather(step_mask, t), next_scores + tf.gather(steps, t), scores)

        _, scores = ops.while_loop(
            lambda t, _: t < time_steps, forward, (1, start + steps[0]), maximum_iterations=time_steps - 1
        )  # (batch, num_tags)
        log_partition = ops.logsumexp(scores + end, axis=-1)  # (batch,)
        return ops.where(mask[:, 0], gold_score - log_partition, 0.0)

    def decode(self, potentials, mask=None):
        """Viterbi decoding: the highest-scoring tag path of each row.

        Args:
            potentials: float tensor (batch, time, num_tags), any float dtype.
            mask: bool tensor (batch, time) or None (every step is real).

        Returns:
            A tuple ``(tag_ids, best_scores)``: int32 (batch, time) with 0 at
            masked steps, and float32 (batch,) path scores (0 for an empty row).
        """
        num_steps = ops.shape(potentials)[1]
        potentials, mask = self._prepare(potentials, mask)
        transitions, start, end = self._constrained_weights()
        steps, step_mask = self._time_major(potentials, mask)
        time_steps, batch_size = ops.shape(steps)[0], ops.shape(steps)[1]
        # A masked step points every tag back to itself, so the path stays on the last real tag.
        stay = ops.broadcast_to(ops.arange(self.num_tags, dtype="int32"), (batch_size, self.num_tags))

        # Max-product forward pass, keeping the best previous tag of every (step, tag).
        def forward(t, scores, backpointers):
            real = tf.gather(step_mask, t)  # (batch, 1)
            candidates = scores[:, :, None] + transitions  # (batch, from, to)
            best_previous = tf.where(real, tf.argmax(candidates, axis=1, output_type="int32"), stay)
            backpointers = tf.tensor_scatter_nd_update(
                backpointers, tf.reshape(t, (1, 1)), best_previous[None]
            )  # backpointers[t] = best_previous
            next_scores = tf.reduce_max(candidates, axis=1) + tf.gather(steps, t)  # (batch, to)
            return t + 1, tf.where(real, next_scores, scores), backpointers

        backpointers = ops.zeros((time_steps, batch_size, self.num_tags), "int32")
        _, scores, backpointers = ops.while_loop(
            lambda t, *_: t < time_steps, forward, (1, start + steps[0], backpointers),
            maximum_iterations=time_steps - 1,
        )  # scores: (batch, num_tags); backpointers: (time, batch, num_tags)
        scores = scores + end

        # Backtrack from the best last tag.
        def backward(t, tag, tag_ids):
            tag_ids = tf.tensor_scatter_nd_update(tag_ids, tf.reshape(t, (1, 1)), tag[None])
            previous = tf.gather(tf.gather(backpointers, t), tag, batch_dims=1)  # (batch,)
            return t - 1, previous, tag_ids

        last_tag = tf.argmax(scores, axis=-1, output_type="int32")  # (batch,)
        tag_ids = ops.zeros((time_steps, batch_size), "int32")
        _, _, tag_ids = ops.while_loop(
            lambda t, *_: t >= 0, backward, (time_steps - 1, last_tag, tag_ids), maximum_iterations=time_steps
        )  # (time, batch)
        tag_ids = ops.where(mask, ops.transpose(tag_ids), 0)[:, :num_steps]  # (batch, time)
        best_scores = ops.where(mask[:, 0], ops.max(scores, axis=-1), 0.0)  # (batch,)
        return tag_ids, best_scores

    def _prepare(self, potentials, mask):
        """float32 potentials zeroed at masked steps and a bool mask, with at least one step."""
        potentials = ops.cast(potentials, "float32")
        if not self.built:
            self.build(potentials.shape)
        shape = ops.shape(potentials)
        mask = ops.ones(shape[:2], "bool") if mask is None else ops.cast(mask, "bool")
        # An empty time axis gets one masked step, so that every loop has a first step.
        padding = ops.maximum(1 - shape[1], 0)
        potentials = ops.pad(potentials, [[0, 0], [0, padding], [0, 0]])  # (batch, time, num_tags)
        mask = ops.pad(mask, [[0, 0], [0, padding]], constant_values=False)  # (batch, time)
        return ops.where(ops.expand_dims(mask, -1), potentials, 0.0), mask

    @staticmethod
    def _time_major(potentials, mask):
        """Potentials (time, batch, num_tags) and mask (time, batch, 1) for loops over time.

        The loop bodies use `tf` ops directly: each is one graph op with a
        TFLite builtin kernel, where `keras.ops` adds index fix-ups per step.
        """
        return ops.transpose(potentials, (1, 0, 2)), ops.expand_dims(ops.transpose(mask), -1)

    def _constrained_weights(self):
        """The float32 ``(transitions, start, end)``, forbidden moves at `FORBIDDEN_SCORE`."""
        weights = (
            ops.convert_to_tensor(self.transitions),
            ops.convert_to_tensor(self.start_transitions),
            ops.convert_to_tensor(self.end_transitions),
        )
        if self._allowed is None:
            return weights
        return tuple(ops.where(allowed, w, FORBIDDEN_SCORE) for allowed, w in zip(self._allowed, weights))

    def get_config(self):
        config = super().get_config()
        config.update(num_tags=self.num_tags, tags=self.tags, constraint=self.constraint)
        return config
