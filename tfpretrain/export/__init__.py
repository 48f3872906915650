"""Export to SavedModel (TF Serving layout) and to TFLite."""

from tfpretrain.export.saved_model import export_saved_model, next_version
from tfpretrain.export.tagging_module import TaggingModule
