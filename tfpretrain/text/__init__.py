"""Readers, vocabularies and in-graph tf.data text pipelines."""

from tfpretrain.text.char_ids import BEGIN_OF_WORD, END_OF_WORD, NUM_CHARS, char_ids
from tfpretrain.text.datasets import (
    language_model_dataset,
    tagging_dataset,
    text_dataset,
    text_lines,
    tokenized_lines,
)
from tfpretrain.text.tagging_preprocessor import TaggingPreprocessor
from tfpretrain.text.tokenizer import tokenize, tokenize_with_offsets
from tfpretrain.text.vocabulary import build_vocabulary, load_vocabulary, save_vocabulary
from tfpretrain.text.bert_datasets import masked_lm_dataset, piece_sequences
from tfpretrain.text.lm_datasets import causal_lm_dataset
from tfpretrain.text.masking import MaskedLMMasker
from tfpretrain.text.packing import pack_segments, pack_words
from tfpretrain.text.wordpiece import RESERVED_TOKENS, WordPieceTokenizer, learn_wordpiece_vocabulary
from tfpretrain.text.word_lm_datasets import WordTokenizer, build_word_vocabulary, word_lm_dataset, word_tokens
from tfpretrain.text.gpt_transforms import TRANSFER_TOKENS, encode_gpt_inputs
