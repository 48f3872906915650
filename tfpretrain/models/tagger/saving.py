"""A trained tagger on disk: ``model.keras`` + ``preprocessor.json`` + ``tagger.json``."""

import json
import os

import keras

TAGGER_FILES = ("model.keras", "preprocessor.json", "tagger.json")


def save_tagger(directory, model, preprocessor, metadata=None):
    """Writes the model, its preprocessor (vocabularies included) and metadata."""
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, "model.keras"))
    with open(os.path.join(directory, "preprocessor.json"), "w", encoding="utf-8") as f:
        json.dump(keras.saving.serialize_keras_object(preprocessor), f)
    with open(os.path.join(directory, "tagger.json"), "w", encoding="utf-8") as f:
        json.dump({"task": "tagger", **(metadata or {})}, f, indent=2)


def load_tagger(directory):
    """Returns ``(model, preprocessor, metadata)`` saved by `save_tagger`."""
    import tfpretrain.layers  # noqa: F401  (registers the serialisable classes)
    import tfpretrain.models  # noqa: F401
    import tfpretrain.text  # noqa: F401
    import tfpretrain.training  # noqa: F401

    missing = [name for name in TAGGER_FILES if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a tagger directory: missing {', '.join(missing)} "
            "(train one with `tfpretrain train-tagger --out DIR`)."
        )
    model = keras.saving.load_model(os.path.join(directory, "model.keras"))
    with open(os.path.join(directory, "preprocessor.json"), encoding="utf-8") as f:
        preprocessor = keras.saving.deserialize_keras_object(json.load(f))
    with open(os.path.join(directory, "tagger.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    return model, preprocessor, metadata
