"""tfpretrain: transfer-learning recipes for NLP on TensorFlow 2.21 / Keras 3.

Sub-packages (imported on demand, so ``import tfpretrain`` stays cheap):

- ``tfpretrain.layers``: Keras layers (CharCNN, BiLM, ScalarMix, CRF, ...).
- ``tfpretrain.models``: functional models and task heads.
- ``tfpretrain.text``: readers, vocabularies and in-graph tf.data pipelines.
- ``tfpretrain.training``: metrics and callbacks.
- ``tfpretrain.export``: SavedModel export.
- ``tfpretrain.pipelines``: the end-to-end jobs the ``tfpretrain`` CLI runs.
"""

__version__ = "0.1.0"
