"""Log-uniform negatives for the BiLM's sampled softmax, drawn from a `keras.random.SeedGenerator`.

`sampled_softmax_loss` compiles under XLA (negatives drawn with
replacement, static shapes); `log_uniform_unique_candidates` is the unique
sampler of `tf.nn.sampled_softmax_loss` (no XLA kernel) with its randomness
taken from a seed generator, so that a checkpoint holds it and a resumed run
draws the negatives an uninterrupted one draws.
"""

import math

import keras
from keras import ops


def log_uniform_probability(ids, vocabulary_size):
    """P(id) of the log-uniform (Zipfian) distribution over ``[0, vocabulary_size)``, in float32.

    ``P(c) = log((c + 2) / (c + 1)) / log(vocabulary_size + 1)``: the
    distribution of `tf.random.log_uniform_candidate_sampler`, which suits
    word ids sorted by falling frequency.
    """
    ids = ops.cast(ids, "float32")
    return ops.log1p(1.0 / (ids + 1.0)) / math.log(vocabulary_size + 1.0)


def log_uniform_candidates(num_sampled, vocabulary_size, seed=None):
    """``num_sampled`` ids drawn with replacement from the log-uniform distribution.

    Inverse-CDF sampling: ``floor(exp(u * log(V + 1))) - 1`` with ``u ~
    U[0, 1)`` is ``c`` with probability `log_uniform_probability` — the draw of
    `tf.random.log_uniform_candidate_sampler(unique=False)`, but with
    `keras.random` ops, so it compiles under XLA.

    Args:
        num_sampled: int. Number of draws.
        vocabulary_size: int. Ids lie in ``[0, vocabulary_size)``.
        seed: int, `keras.random.SeedGenerator` or None.

    Returns:
        ``(num_sampled,)`` int32 ids.
    """
    uniform = keras.random.uniform((num_sampled,), dtype="float32", seed=seed)
    ids = ops.floor(ops.exp(uniform * math.log(vocabulary_size + 1.0))) - 1.0
    # float32 rounding can reach vocabulary_size when u is within 1 ulp of 1.
    return ops.cast(ops.clip(ids, 0.0, vocabulary_size - 1.0), "int32")


def _stateless_seed(seed):
    """A ``(2,)`` int64 seed for TensorFlow's stateless ops from an int, a `keras.random.SeedGenerator` or None."""
    import tensorflow as tf

    if isinstance(seed, keras.random.SeedGenerator):
        return tf.cast(seed.next(), "int64")
    if seed is None:
        return tf.random.uniform((2,), maxval=2**31 - 1, dtype="int64")
    return tf.constant([int(seed), 0], "int64")


def unique_expected_count(ids, vocabulary_size, num_sampled, num_tries):
    """Expected count of ``ids`` in a unique log-uniform draw of ``num_sampled`` ids that took ``num_tries`` draws.

    ``1 - (1 - P(id)) ** num_tries`` (the chance that ``num_tries`` draws
    with replacement hit ``id``), or ``num_sampled * P(id)`` when no draw was
    repeated: the formula of TensorFlow's ``RangeSampler`` with ``unique=True``.
    """
    import tensorflow as tf

    probability = log_uniform_probability(ids, vocabulary_size)
    num_tries = tf.cast(num_tries, "float32")
    return tf.where(tf.equal(num_tries, float(num_sampled)), probability * float(num_sampled),
                    -tf.math.expm1(num_tries * tf.math.log1p(-probability)))


def log_uniform_unique_candidates(labels, num_sampled, vocabulary_size, seed=None):
    """``num_sampled`` distinct log-uniform ids, as `tf.random.log_uniform_candidate_sampler(unique=True)` draws them.

    Ids are drawn with replacement (`log_uniform_candidates`' inverse CDF)
    until ``num_sampled`` distinct ones have come up; they are kept in the
    order they first came up, and the expected counts are those of
    TensorFlow's unique sampler for that number of draws
    (`unique_expected_count`). The draws are stateless ops on a seed taken
    from ``seed``: with a `keras.random.SeedGenerator` (whose state a
    checkpoint holds) the same state gives the same negatives. Not for XLA
    (the number of draws is not static); TensorFlow only.

    Args:
        labels: ``(n,)`` or ``(n, 1)`` int true ids (for their expected counts).
        num_sampled: int. Distinct ids to draw, at most ``vocabulary_size``.
        vocabulary_size: int. Ids lie in ``[0, vocabulary_size)``.
        seed: int, `keras.random.SeedGenerator` or None.

    Returns:
        ``(sampled_ids, true_expected_count, sampled_expected_count)``:
        ``(num_sampled,)`` int64, ``(n, 1)`` and ``(num_sampled,)`` float32 —
        the ``sampled_values`` of `tf.nn.sampled_softmax_loss`.

    Example:

    >>> from tfpretrain.models.bilm.sampled_softmax import log_uniform_unique_candidates
    >>> ids, _, _ = log_uniform_unique_candidates([3, 7], 64, 1000, seed=keras.random.SeedGenerator(0))
    >>> len(set(ids.numpy())) == 64
    True
    """
    import tensorflow as tf

    if not 0 < num_sampled <= vocabulary_size:
        raise ValueError(f"num_sampled must be in [1, {vocabulary_size}], got {num_sampled}")
    seed = _stateless_seed(seed)
    log_range = math.log(vocabulary_size + 1.0)

    def draw(round_index):
        uniform = tf.random.stateless_uniform(
            (num_sampled,), seed=tf.random.experimental.stateless_fold_in(seed, round_index), dtype="float32")
        ids = tf.floor(tf.exp(uniform * log_range)) - 1.0
        return tf.cast(tf.clip_by_value(ids, 0.0, vocabulary_size - 1.0), "int64")

    def not_enough(round_index, draws):
        return tf.size(tf.unique(draws)[0]) < num_sampled

    def more(round_index, draws):
        return round_index + 1, tf.concat([draws, draw(round_index)], axis=0)

    _, draws = tf.while_loop(not_enough, more, (tf.constant(1, "int64"), draw(tf.constant(0, "int64"))),
                             shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])))
    distinct, index = tf.unique(draws)  # in the order of first appearance
    # Positions as a cumulative sum: Grappler folds tf.size of a loop output to its first round's size.
    positions = tf.cumsum(tf.ones_like(index)) - 1
    first_draw = tf.math.unsorted_segment_min(positions, index, tf.size(distinct))
    sampled_ids = tf.ensure_shape(distinct[:num_sampled], (num_sampled,))
    num_tries = first_draw[num_sampled - 1] + 1  # the draws TensorFlow's sampler makes to get num_sampled ids
    labels = tf.reshape(tf.cast(labels, "int64"), (-1, 1))
    return (tf.stop_gradient(sampled_ids),
            tf.stop_gradient(unique_expected_count(labels, vocabulary_size, num_sampled, num_tries)),
            tf.stop_gradient(unique_expected_count(sampled_ids, vocabulary_size, num_sampled, num_tries)))


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, seed=None, sampled_ids=None):
    """Per-example sampled softmax loss (Jean et al., 2015) that compiles under XLA.

    The same loss as `tf.nn.sampled_softmax_loss` with one true class and
    ``remove_accidental_hits=True``, with the negatives of
    `log_uniform_candidates` (with replacement, shared by the batch): logits
    of the true class and of each sampled id have ``log(expected_count)``
    subtracted, ``expected_count = num_sampled * P(id)``, and a sampled id
    equal to an example's label gets a logit of -1e9 for that example.
    Every shape is static (no `tf.unique`, no boolean masks), so padded
    positions are computed and should be weighted out by the caller.

    Args:
        weights: ``(vocabulary_size, dim)`` output embeddings.
        biases: ``(vocabulary_size,)`` output biases.
        labels: ``(n,)`` int target ids in ``[0, vocabulary_size)``.
        inputs: ``(n, dim)`` hidden states.
        num_sampled: int. Negatives per step.
        seed: int, `keras.random.SeedGenerator` or None, for the draw.
        sampled_ids: optional ``(num_sampled,)`` ids to use instead of a draw
            (tests compare with TensorFlow's op through it).

    Returns:
        ``(n,)`` float32 losses.

    Example:

    >>> weights = np.random.randn(1000, 16).astype("float32")
    >>> loss = tfpretrain.models.bilm.sampled_softmax_loss(
    ...     weights, np.zeros(1000, "float32"), labels=np.array([3, 7]),
    ...     inputs=np.random.randn(2, 16).astype("float32"), num_sampled=64)
    >>> loss.shape
    TensorShape([2])
    """
    vocabulary_size = weights.shape[0]
    weights = ops.cast(weights, "float32")
    biases = ops.cast(biases, "float32")
    inputs = ops.cast(inputs, "float32")
    labels = ops.cast(labels, "int32")
    if sampled_ids is None:
        sampled_ids = log_uniform_candidates(num_sampled, vocabulary_size, seed=seed)
    sampled_ids = ops.cast(sampled_ids, "int32")
    log_num_sampled = math.log(float(num_sampled))

    true_logits = (ops.sum(inputs * ops.take(weights, labels, axis=0), axis=-1)
                   + ops.take(biases, labels, axis=0))  # (n,)
    true_logits -= ops.log(log_uniform_probability(labels, vocabulary_size)) + log_num_sampled
    sampled_logits = (ops.matmul(inputs, ops.transpose(ops.take(weights, sampled_ids, axis=0)))
                      + ops.take(biases, sampled_ids, axis=0))  # (n, num_sampled)
    sampled_logits -= ops.log(log_uniform_probability(sampled_ids, vocabulary_size)) + log_num_sampled
    accidental_hits = ops.equal(labels[:, None], sampled_ids[None, :])  # (n, num_sampled)
    sampled_logits = ops.where(accidental_hits, -1e9, sampled_logits)

    logits = ops.concatenate([true_logits[:, None], sampled_logits], axis=-1)  # (n, 1 + num_sampled)
    return ops.logsumexp(logits, axis=-1) - true_logits
