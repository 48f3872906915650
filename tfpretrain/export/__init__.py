"""Export: any model directory as a serving `tf.Module` (`tfpretrain.export.serving.serving_module`), saved as a
SavedModel in TF Serving's layout (`export_saved_model`) or converted to one ``.tflite`` file
(`tfpretrain.export.tflite`). The modules call each architecture's preprocessor, so a served model
answers exactly as ``predict`` on its directory does."""

from tfpretrain.export.saved_model import export_saved_model, next_version
from tfpretrain.export.tagging_module import TaggingModule
