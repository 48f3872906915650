"""A trained tagger on disk: ``model.keras`` + ``preprocessor.json`` + ``tagger.json``."""

import json
import os

import keras

from tfpretrain.models.model_dir import (
    TAGGER_FILE,
    TAGGER_FILES,
    TAGGER_MODEL_FILE,
    TAGGER_PREPROCESSOR_FILE,
    read_json,
    write_json,
)


def save_tagger(directory, model, preprocessor, metadata=None):
    """Writes the model, its preprocessor (vocabularies included) and metadata."""
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, TAGGER_MODEL_FILE))
    with open(os.path.join(directory, TAGGER_PREPROCESSOR_FILE), "w", encoding="utf-8") as f:
        json.dump(keras.saving.serialize_keras_object(preprocessor), f)
    write_json(directory, TAGGER_FILE, {"task": "tagger", **(metadata or {})})


def load_tagger(directory):
    """Returns ``(model, preprocessor, metadata)`` saved by `save_tagger`.

    Raises:
        FileNotFoundError: a file of the directory is missing.
        ValueError: ``model.keras`` is damaged or incomplete (a copy cut short).
    """
    # The modules whose serialisable classes a tagger's .keras file names (importing them registers them).
    import tfpretrain.layers  # noqa: F401
    import tfpretrain.models.bert  # noqa: F401
    import tfpretrain.text.wordpiece  # noqa: F401
    import tfpretrain.models.bilm  # noqa: F401
    import tfpretrain.models.tagger  # noqa: F401
    import tfpretrain.training.metrics  # noqa: F401
    import tfpretrain.training.perplexity  # noqa: F401

    missing = [name for name in TAGGER_FILES if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a tagger directory: missing {', '.join(missing)} "
            "(train one with `tfpretrain train-tagger --out DIR`)."
        )
    from tfpretrain.models.bilm.saving import load_keras_file

    model = load_keras_file(os.path.join(directory, TAGGER_MODEL_FILE))
    preprocessor = keras.saving.deserialize_keras_object(read_json(directory, TAGGER_PREPROCESSOR_FILE))
    metadata = read_json(directory, TAGGER_FILE)
    return model, preprocessor, metadata
