"""A sampled softmax that XLA can compile: log-uniform negatives drawn with replacement, static shapes."""

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
