"""tfpretrain: transfer-learning recipes for NLP on TensorFlow 2.21 / Keras 3.

Sub-packages (imported on demand, so ``import tfpretrain`` stays cheap):

- ``tfpretrain.layers``: Keras layers, one per file (CharCNN, BiLM, ScalarMix, CRF, Transformer blocks, ...).
- ``tfpretrain.models``: one folder per architecture (``bert``, ``gpt``, ``ulmfit``, ``bilm``,
  ``tagger``), each with its model, sizes, preprocessors (strings -> model inputs, in the graph,
  used by fit, evaluate, predict and export alike) and saving; ``model_dir`` knows every model
  directory's layout (`tfpretrain.models.model_dir.model_kind`); ``task_model`` the fine-tuned
  BERT / GPT task models.
- ``tfpretrain.text``: what every architecture shares: readers, vocabularies, WordPiece,
  packing, masking, length buckets, line streams.
- ``tfpretrain.training``: metrics, schedules, discriminative rates, gradual unfreezing,
  resumable fit, precision and distribution.
- ``tfpretrain.export``: any model directory as a serving `tf.Module` (`serving_module`),
  SavedModels in TF Serving's layout, ``.tflite`` files.

The jobs the ``tfpretrain`` command runs, and the command line itself, are
``tfpretrain.pipelines`` (the repository's ``pipelines/`` folder): they
orchestrate the library, which never imports them.
"""

__version__ = "0.1.0"
