"""A pretrained BiLM on disk: ``language_model.keras`` (the whole `BiLMLanguageModel`) and ``bilm.json`` (its results).

Written by ``tfpretrain pretrain-bilm``; read by ``train-tagger --bilm``
(`load_language_model`). `load_keras_file` (also used for taggers) reports a
damaged ``.keras`` file as damaged. The file names are `tfpretrain.models.model_dir`'s
``BILM_MODEL_FILE`` and ``BILM_FILE``.

Example:

>>> save_language_model("runs/bilm", model, {"heldout_perplexity": 120.0})
>>> model = load_language_model("runs/bilm")
"""

import os
import zipfile
import zlib

import keras

from tfpretrain.models.model_dir import BILM_FILE, BILM_MODEL_FILE, write_json


def save_language_model(directory, model, results):
    """Writes ``model`` as ``language_model.keras``, then ``results`` (a JSON-serialisable dict) as ``bilm.json``.

    Args:
        directory: str. Created if missing.
        model: a `BiLMLanguageModel` (save a float32 copy of a mixed-precision
            one, `tfpretrain.training.precision.float32_copy`).
        results: dict. The run's settings and held-out scores.
    """
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, BILM_MODEL_FILE))
    write_json(directory, BILM_FILE, results)


def load_language_model(directory):
    """Loads the `BiLMLanguageModel` saved by `save_language_model` (``tfpretrain pretrain-bilm``)."""
    import tfpretrain.layers  # noqa: F401  (registers the serialisable classes)

    path = os.path.join(directory, BILM_MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{directory} holds no {BILM_MODEL_FILE}; pretrain one with `tfpretrain pretrain-bilm --out {directory}`."
        )
    return load_keras_file(path)


def load_keras_file(path):
    """``keras.saving.load_model(path)``, with a damaged or truncated file reported as such.

    Keras calls a ``.keras`` file that is not a complete zip "File not found";
    a damaged member gives a zip or HDF5 error.

    Raises:
        ValueError: naming ``path``: damaged or incomplete; train again or restore it.

    Example:

    >>> model = load_keras_file("runs/upos/model.keras")
    """
    def damaged(reason):
        return ValueError(f"{path} is damaged or incomplete ({reason}); train again or restore it from a copy")

    if not zipfile.is_zipfile(path):
        raise damaged("not a complete .keras zip archive")
    try:
        return keras.saving.load_model(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise damaged(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
