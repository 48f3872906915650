"""Export a trained tagger as a SavedModel for TF Serving (``tfpretrain export``)."""

from tfpretrain.export import TaggingModule, export_saved_model
from tfpretrain.models.tagger.saving import load_tagger


def run(model_dir, name, root="saved_models", version=None):
    """Writes ``root/name/version`` with a ``serving_default`` signature (raw strings -> tags)."""
    model, preprocessor, _ = load_tagger(model_dir)
    module = TaggingModule(model, preprocessor)
    signatures = {
        "serving_default": module.tag_texts.get_concrete_function(),
        "tag_tokens": module.tag_tokens.get_concrete_function(),
    }
    return export_saved_model(module, root, name, signatures, version)
