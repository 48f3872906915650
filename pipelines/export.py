"""Export a trained model: a SavedModel for TF Serving, or one ``.tflite`` file (``tfpretrain export``)."""

import os

import keras
import tensorflow as tf

from tfpretrain.export import export_saved_model
from tfpretrain.export.tflite import export_tflite


def is_tagger_dir(model_dir):
    """Whether ``model_dir`` holds a CharCNN / BiLM / CRF tagger (``train-tagger``)."""
    return os.path.exists(os.path.join(model_dir, "tagger.json"))


def serving_module(model_dir):
    """The serving `tf.Module` of any exportable model directory and its SavedModel signatures.

    A tagger directory gives a `tfpretrain.export.TaggingModule`; fine-tuned
    BERT / GPT / ULMFiT directories and BERT directories (embeddings) give the
    modules of `tfpretrain.export.serving`.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    if is_tagger_dir(model_dir):
        from tfpretrain.export import TaggingModule
        from tfpretrain.models.tagger.saving import load_tagger

        model, preprocessor, _ = load_tagger(model_dir)
        module = TaggingModule(model, preprocessor)
        return module, module.signatures()
    from tfpretrain.export.serving import build_serving_module

    return build_serving_module(model_dir)


def ids_only(module, signatures):
    """A module and signatures without any tensorflow-text op: the id signature as ``serving_default``.

    For TF Serving builds without tensorflow-text's ops: the SavedModel holds
    the module's Keras layers (their weights) and the token-id signature only,
    so it loads with plain TensorFlow.
    """
    (name,) = [key for key in signatures if key != "serving_default"]
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
