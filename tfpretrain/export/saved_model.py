"""SavedModel export in the layout TF Serving watches (``ROOT/NAME/VERSION/``), and what every serving module shares."""

import os
import re
import shutil
import tempfile

import tensorflow as tf

from tfpretrain.text.vocabulary import PADDING_TOKEN


def check_batch(texts, name="texts"):
    """``texts`` unchanged, after a run-time check that it is one string per example (rank 1).

    A signature called with another shape then fails with an
    ``InvalidArgumentError`` naming the input, instead of answering nonsense.
    """
    size, rows = tf.size(texts), tf.shape(texts)[0]
    with tf.control_dependencies([tf.debugging.assert_equal(
            size, rows, message=f"{name} must be a vector of strings, one per example (shape [batch])")]):
        return tf.identity(texts)



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


def padded_words(words, starts, ends):
    """Ragged (batch, words) words and byte offsets as the outputs ``words``, ``starts``, ``ends``, ``lengths``."""
    return {"words": words.to_tensor(PADDING_TOKEN), "starts": starts.to_tensor(0), "ends": ends.to_tensor(0),
            "lengths": tf.cast(words.row_lengths(), tf.int32)}


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
    half-written version. An existing version is never overwritten.

    Args:
        module: a `tf.Module` (e.g. `tfpretrain.export.TaggingModule`).
        root: str. Export root (``saved_models`` by default in the CLI).
        name: str. Model name (a folder name: letters, digits, ``-``, ``_``, ``.``).
        signatures: dict of signature name -> concrete or traced `tf.function`.
        version: int or None. Defaults to the next free version.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"export name {name!r} must use only letters, digits, '-', '_' and '.'")
    version = next_version(root, name) if version is None else int(version)
    target = os.path.join(root, name, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists; versions are never overwritten (omit --version).")
    os.makedirs(os.path.join(root, name), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=os.path.join(root, name))
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
