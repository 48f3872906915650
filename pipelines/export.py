"""Export a trained model: a SavedModel for TF Serving, or one ``.tflite`` file (``tfpretrain export``)."""

import keras
import tensorflow as tf

from tfpretrain.export import export_saved_model
from tfpretrain.export.serving import serving_module
from tfpretrain.export.tflite import export_tflite


def ids_only(module, signatures):
    """A module and signatures without any tensorflow-text op: the id signature as ``serving_default``.

    For TF Serving builds without tensorflow-text's ops: the SavedModel holds
    the module's Keras layers (their weights) and the token-id signature only,
    so it loads with plain TensorFlow.
    """
    names = [key for key in signatures if key != "serving_default"]
    if not names:
        raise ValueError("this model has no token-id signature: a tagger on an encoder's features reads word "
                         "pieces and words together, which only its raw-text signature packs; export it without "
                         "--ids-only")
    (name,) = names
    holder = tf.Module()
    holder.layers = [value for value in vars(module).values() if isinstance(value, keras.layers.Layer)]
    return holder, {"serving_default": signatures[name]}


def run(model_dir, name, root="saved_models", version=None, ids_only_signature=False):
    """Writes ``root/name/version`` (next free version by default) and returns its path.

    With ``ids_only_signature``, the SavedModel has only the token-id
    signature (see `ids_only`).
    """
    module, signatures = serving_module(model_dir)
    if ids_only_signature:
        module, signatures = ids_only(module, signatures)
    return export_saved_model(module, root, name, signatures, version)


def run_tflite(model_dir, path, quantize=None):
    """Writes one ``.tflite`` file (raw string in, tags or label out) and returns its path."""
    return export_tflite(model_dir, path, quantize=quantize)
