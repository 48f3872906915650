"""Keras layers of tfpretrain (Keras 3, serialisable, masking-aware, float32 maths under mixed precision)."""

from tfpretrain.layers.bilm import BiLM
from tfpretrain.layers.char_cnn import CharCNN
from tfpretrain.layers.crf import CRF
from tfpretrain.layers.hash_dropout import HashDropout
from tfpretrain.layers.highway import Highway
from tfpretrain.layers.scalar_mix import ScalarMix
from tfpretrain.layers.transformer_encoder_block import TransformerEncoderBlock

__all__ = ["BiLM", "CRF", "CharCNN", "HashDropout", "Highway", "ScalarMix", "TransformerEncoderBlock"]
