"""Keras layers of tfpretrain (Keras 3, serialisable, masking-aware)."""

from tfpretrain.layers.bilm import BiLM
from tfpretrain.layers.char_cnn import CharCNN
from tfpretrain.layers.highway import Highway
from tfpretrain.layers.scalar_mix import ScalarMix

__all__ = ["BiLM", "CharCNN", "Highway", "ScalarMix"]

try:  # the CRF lands in its own module
    from tfpretrain.layers.crf import CRF  # noqa: F401

    __all__.append("CRF")
except ImportError:  # pragma: no cover
    pass
