"""Length buckets for tf.data: batches of similar-length sequences, padded to the batch's longest or to fixed lengths.

Bucketing keeps padding small. By default a batch is padded to its longest
sequence, so batch shapes vary from batch to batch. That suits CPUs and
cuDNN, but XLA compiles the training step once per distinct shape (a tiny
tagger spent 308 s compiling on a CPU instead of training for 23 s) and
TPUs need static shapes. With ``static_shapes=True`` every batch is instead
``(batch_size, length)`` with ``length`` one of `bucket_lengths`: the bucket
boundaries below ``sequence_length``, then ``sequence_length`` itself. A bucket's last,
short batch is filled up to ``batch_size`` with copies of its first row,
flagged ``real=False`` so that the caller can mask them out of the loss and
the metrics (tag ids -1, zero sample weights): no example is dropped and
none counts twice.

A bucket boundary ``b`` holds the sequences of length at most ``b`` (and
above the previous boundary).

Example:

>>> tokens = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([["a"], ["b", "c", "d"]]))
>>> batches = bucket_by_length(tokens.map(lambda t: t), batch_size=4, bucket_boundaries=(2,),
...                            padding_values="", static_shapes=True, sequence_length=3)
>>> [(real.numpy().tolist(), t.shape.as_list()) for real, t in batches]
[([True, False, False, False], [4, 2]), ([True, False, False, False], [4, 3])]
"""

import numpy as np
import tensorflow as tf

DEFAULT_BUCKET_BOUNDARIES = (8, 16, 24, 32, 48, 64, 96)


def bucket_lengths(bucket_boundaries, sequence_length):
    """The lengths static-shape batches are padded to: the boundaries below ``sequence_length``, then itself.

    >>> bucket_lengths((8, 16, 32), sequence_length=20)
    [8, 16, 20]
    """
    if sequence_length is None or int(sequence_length) < 1:
        raise ValueError(f"static shapes need a maximum length of at least 1, got {sequence_length!r}")
    return sorted({int(b) for b in bucket_boundaries if 0 < int(b) < int(sequence_length)}) + [int(sequence_length)]


def bucket_length(longest, bucket_boundaries, sequence_length):
    """The shortest `bucket_lengths` entry that holds ``longest`` (a scalar tensor), as a tensor of its dtype."""
    lengths = tf.constant(bucket_lengths(bucket_boundaries, sequence_length), longest.dtype)
    return tf.gather(lengths, tf.searchsorted(lengths, longest[None], side="left"))[0]


def bucket_of(lengths, bucket_boundaries):
    """The bucket index of each length (numpy or int): boundaries hold lengths up to and including themselves."""
    return np.searchsorted(sorted(int(b) for b in bucket_boundaries), lengths, side="left")


def fill_batch(batch_size, components):
    """Fills a batch's leading dimension up to ``batch_size`` with copies of its first row.

    Args:
        batch_size: int.
        components: tuple of tensors with the same leading dimension (at most
            ``batch_size``).

    Returns:
        ``(real, components)``: ``real`` bool ``(batch_size,)``, False at the
        copied rows; every component with leading dimension ``batch_size``.
    """
    count = tf.shape(components[0])[0]
    rows = tf.range(batch_size)
    real = rows < count
    source = tf.where(real, rows, 0)
    filled = tuple(tf.ensure_shape(tf.gather(c, source), [batch_size] + c.shape.as_list()[1:]) for c in components)
    return real, filled


def bucket_by_length(dataset, batch_size, bucket_boundaries, padding_values, static_shapes=False, sequence_length=None):
    """Groups a dataset's elements into batches of similar length; yields ``(real, *components)``.

    Args:
        dataset: elements are a tensor or a tuple of tensors, each with a
            leading length dimension (the first component's sets the length).
        batch_size: int. Sequences per batch.
        bucket_boundaries: ints. Bucket ``i`` holds lengths up to boundary ``i``.
        padding_values: the padding value of each component (one value for
            one component).
        static_shapes: bool. Pad to `bucket_lengths` and fill short batches
            (see the module docstring); otherwise pad to the batch's longest.
        sequence_length: int. The longest sequence (needed with ``static_shapes``;
            longer elements are an error there: cut them first).

    Returns:
        a dataset of ``(real, *components)``: ``real`` bool ``(batch,)`` is
        True on every row unless ``static_shapes`` filled the batch.
    """
    if static_shapes:
        lengths = bucket_lengths(bucket_boundaries, sequence_length)
    else:
        lengths = sorted({int(b) for b in bucket_boundaries if int(b) > 0})

    def element_length(*parts):
        length = tf.shape(parts[0])[0]
        if not static_shapes:
            return length
        check = tf.debugging.assert_less_equal(
            length, int(sequence_length),
            message=f"bucket_by_length: a sequence longer than sequence_length={sequence_length}; "
                    "cut the sequences to sequence_length first")
        with tf.control_dependencies([check]):
            return tf.identity(length)

    batches = dataset.bucket_by_sequence_length(
        element_length_func=element_length,
        # tf.data's bucket i holds lengths below boundary i and pads to boundary - 1.
        bucket_boundaries=[length + 1 for length in lengths],
        bucket_batch_sizes=[batch_size] * (len(lengths) + 1),
        padding_values=padding_values,
        pad_to_bucket_boundary=bool(static_shapes),
    )

    def flag(*components):
        if static_shapes:
            real, components = fill_batch(batch_size, components)
        else:
            real = tf.ones([tf.shape(components[0])[0]], tf.bool)
        return (real,) + tuple(components)

    return batches.map(flag)  # one component or several: flag takes them as arguments


def pad_to_bucket(batch, bucket_boundaries, sequence_length, batch_size):
    """A ragged ``(rows, None)`` batch as ``(real, dense)``: padded to the shortest `bucket_lengths` entry that fits, filled to ``batch_size`` rows.

    For batches that keep their input order (evaluation, prediction) but
    need static shapes. Rows longer than ``sequence_length`` are cut.
    """
    batch = batch[:, :sequence_length]
    longest = tf.reduce_max(tf.concat([batch.row_lengths(), [0]], axis=0))
    target = bucket_length(longest, bucket_boundaries, sequence_length)
    dense = batch.to_tensor(shape=tf.stack([tf.cast(batch.nrows(), tf.int64), target]))
    real, (dense,) = fill_batch(batch_size, (dense,))
    return real, dense
