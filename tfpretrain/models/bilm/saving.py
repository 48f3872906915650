"""A pretrained BiLM on disk: ``language_model.keras`` (the whole `BiLMLanguageModel`) and ``bilm.json`` (its results).

Written by ``tfpretrain pretrain-bilm``; read by ``train-tagger --bilm``
(`load_language_model`). The file names are `tfpretrain.models.model_dir`'s
``BILM_MODEL_FILE`` and ``BILM_FILE``.

Example:

>>> save_language_model("runs/bilm", model, {"heldout_perplexity": 120.0})
>>> model = load_language_model("runs/bilm")
"""

import os

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
    return keras.saving.load_model(path)
