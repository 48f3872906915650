"""Functional models and task heads, one architecture per sub-package.

``bert``, ``gpt``, ``ulmfit``, ``bilm`` and ``tagger`` each hold their
backbone, task models, presets, saving and preprocessors side by side;
`tfpretrain.models.model_dir` knows every model directory's layout. The
names below are imported on first use (PEP 562), so that light modules such
as ``model_dir`` do not import TensorFlow.
"""

import importlib

_EXPORTS = {"BiLMLanguageModel": "tfpretrain.models.bilm", "CRFTagger": "tfpretrain.models.tagger",
            "build_tagger": "tfpretrain.models.tagger"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
