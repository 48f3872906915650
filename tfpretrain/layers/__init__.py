"""Keras layers of tfpretrain (Keras 3, serialisable, masking-aware, float32 maths under mixed precision)."""

from tfpretrain.layers.bilm import BiLM
from tfpretrain.layers.char_cnn import CharCNN
from tfpretrain.layers.concat_pooling import ConcatPooling
from tfpretrain.layers.crf import CRF
from tfpretrain.layers.hash_dropout import HashDropout
from tfpretrain.layers.highway import Highway
from tfpretrain.layers.locked_dropout import LockedDropout
from tfpretrain.layers.scalar_mix import ScalarMix
from tfpretrain.layers.transformer_decoder_block import TransformerDecoderBlock
from tfpretrain.layers.transformer_encoder_block import TransformerEncoderBlock
from tfpretrain.layers.weight_drop_lstm import WeightDropLSTM
from tfpretrain.layers.word_dropout_embedding import WordDropoutEmbedding

__all__ = ["BiLM", "CRF", "CharCNN", "ConcatPooling", "HashDropout", "Highway", "LockedDropout", "ScalarMix",
           "TransformerDecoderBlock", "TransformerEncoderBlock", "WeightDropLSTM", "WordDropoutEmbedding"]
