"""SavedModel export in the layout TF Serving watches (``ROOT/NAME/VERSION/``), and what every serving module shares."""

import errno
import os
import re
import shutil
import tempfile

import tensorflow as tf



def check_batch(texts, name="texts"):
    """``texts`` unchanged, after a run-time check that it is one string per example (rank 1).

    A loaded signature does not check the rank of its inputs, so a signature
    called with a scalar (rank 0) or a matrix (rank 2) then fails with an
    ``InvalidArgumentError`` naming the input and the rank it needs (and
    showing the shape it got), instead of crashing or answering nonsense.
    An empty batch (shape ``[0]``) passes.
    """
    # The shape padded with -1 to two entries, computed at run time (the static shape [None] says rank 1
    # whatever was fed): [n, -1] for a vector of n strings; [-1, -1], [n, m], ... for any other rank.
    first_two = tf.concat([tf.shape(texts), [-1, -1]], axis=0)[:2]
    is_vector = tf.reduce_all(tf.equal(first_two, tf.stack([tf.size(texts), -1])))
    with tf.control_dependencies([tf.debugging.Assert(is_vector, [
            f"{name} must have rank 1: a vector of strings, one per example (shape [batch]); got shape",
            tf.shape(texts)])]):
        return tf.identity(texts)


def check_same_batch(inputs, names):
    """``inputs`` unchanged, after a run-time check that they all have the batch size of the first.

    Called before anything reads them: tensorflow-text's trimmers abort the
    whole process (a C++ ``std::length_error``) on segments of different
    batch sizes, where this raises an ``InvalidArgumentError`` naming the inputs.
    """
    inputs = list(inputs)
    if len(inputs) < 2:
        return inputs
    sizes = tf.stack([tf.shape(x)[0] for x in inputs])
    same = tf.reduce_all(tf.equal(sizes, sizes[0]))
    with tf.control_dependencies([tf.debugging.Assert(same, [
            f"{', '.join(names)} must hold one entry per example each (the same batch size); got sizes", sizes])]):
        return [tf.identity(x) for x in inputs]


def serve_any_batch(function, *inputs):
    """``function(*inputs)`` (a dict of batch-major outputs), an empty batch included.

    Several models cannot run on 0 rows (the CharCNN's matrix product, the
    BERT encoder's first-token slice, the CRF's scatter): an empty batch runs
    on one row of padding (``""`` / 0) instead, and every output is cut back
    to 0 rows. Inputs are checked first (`check_batch`) by ``function`` or the
    caller; they share the batch size of ``inputs[0]``.

    Example:

    >>> self.tag = tf.function(lambda texts: serve_any_batch(self._tag_texts, texts), input_signature=[...])
    """
    size = tf.shape(inputs[0])[0]

    def one_row(x):
        shape = tf.concat([[1], tf.maximum(tf.shape(x)[1:], 1)], axis=0)
        return tf.fill(shape, tf.constant("" if x.dtype == tf.string else 0, x.dtype))

    padded = [tf.ensure_shape(tf.cond(size > 0, lambda x=x: x, lambda x=x: one_row(x)), x.shape) for x in inputs]
    return {key: value[:size] for key, value in function(*padded).items()}


def spec(name, shape, dtype=tf.string):
    """A named `tf.TensorSpec` for a signature's input (strings by default)."""
    return tf.TensorSpec(shape, dtype, name=name)


def cast_inputs(model, inputs):
    """``inputs`` cast to the dtypes of the model's inputs (the id signatures take int32)."""
    from tfpretrain.models.task_model import input_dtypes

    return {name: tf.cast(inputs[name], dtype) for name, dtype in input_dtypes(model).items()}


def pad_width(tensor, width, value):
    """Pads (batch, n) ``tensor`` with ``value`` or cuts it to ``width`` columns."""
    tensor = tensor[:, :width]
    return tf.pad(tensor, [[0, 0], [0, width - tf.shape(tensor)[1]]], constant_values=value)


def fast_normalizing(tokenizer):
    """A copy of a `tfpretrain.text.WordPieceTokenizer` that normalises with tensorflow-text's `FastBertNormalizer`.

    BERT's exact normaliser has no TFLite kernels; the fast one does, and
    differs on a few characters (see `tfpretrain.text.wordpiece`), so on a
    few texts a ``.tflite`` file's word pieces differ from the SavedModel's.
    """
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    return WordPieceTokenizer(tokenizer.vocabulary, lowercase=tokenizer.lowercase,
                              strip_accents=tokenizer.strip_accents, use_fast_bert_normalizer=True)


def next_version(root, name):
    """1 + the largest numeric version under ``root/name`` (1 when there is none)."""
    directory = os.path.join(root, name)
    if not os.path.isdir(directory):
        return 1
    versions = [int(v) for v in os.listdir(directory) if re.fullmatch(r"\d+", v)]
    return max(versions, default=0) + 1


def export_saved_model(module, root, name, signatures, version=None):
    """Saves ``module`` to ``root/name/version`` atomically and returns that path.

    The SavedModel is written to a hidden temporary folder beside the versions
    and renamed into place only when complete, so TF Serving never sees a
    half-written version. An existing version is never overwritten: when
    another export takes the version first (two exports racing), this one
    takes the next free version, or, with an explicit ``version``, stops with
    a FileExistsError and leaves nothing behind.

    Args:
        module: a `tf.Module` (e.g. `tfpretrain.export.TaggingModule`).
        root: str. Export root (``saved_models`` by default in the CLI).
        name: str. Model name (a folder name: letters, digits, ``-``, ``_``, ``.``).
        signatures: dict of signature name -> concrete or traced `tf.function`.
        version: int or None. Defaults to the next free version.

    Example:

    >>> from tfpretrain.export.saved_model import export_saved_model
    >>> export_saved_model(module, "saved_models", "tagger", signatures)  # doctest: +SKIP
    'saved_models/tagger/1'
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"export name {name!r} must use only letters, digits, '-', '_' and '.'")
    explicit = version is not None
    version = int(version) if explicit else next_version(root, name)
    target = os.path.join(root, name, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists; versions are never overwritten (omit --version).")
    os.makedirs(os.path.join(root, name), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=os.path.join(root, name))
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        while True:
            taken = os.path.exists(target)  # os.rename would replace an empty folder: never rename onto one
            if not taken:
                try:
                    os.rename(staging, target)
                    return target
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            if explicit:
                raise FileExistsError(f"{target} was written by another export while this one ran; versions are "
                                      "never overwritten: give another --version, or omit it to take the next one")
            version = max(version + 1, next_version(root, name))  # another export took it: the next free one
            target = os.path.join(root, name, str(version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
