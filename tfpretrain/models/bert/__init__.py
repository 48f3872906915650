"""BERT: encoder, sizes, masked-LM pretraining, task heads and their preprocessor, word vectors, directories, HF import."""

from tfpretrain.models.bert.classifier import build_sequence_classifier
from tfpretrain.models.bert.embedder import BertEmbedder, embed_batch, load_embedder
from tfpretrain.models.bert.encoder import BertEncoder
from tfpretrain.models.bert.hf_import import import_hf
from tfpretrain.models.bert.masked_lm import BertMaskedLM
from tfpretrain.models.bert.masked_lm_preprocessor import masked_lm_dataset
from tfpretrain.models.bert.preprocessor import encode_texts, encode_words, word_tags
from tfpretrain.models.bert.presets import BERT_PRESETS
from tfpretrain.models.bert.question_answering import (
    answer_questions,
    build_question_answerer,
    load_qa_model,
    score_questions,
)
from tfpretrain.models.bert.question_answering_preprocessor import QuestionAnsweringPreprocessor
from tfpretrain.models.bert.saving import load_bert, save_bert
from tfpretrain.models.bert.token_tagger import BertTokenTagger, build_token_tagger

__all__ = [
    "BERT_PRESETS", "BertEmbedder", "BertEncoder", "BertMaskedLM", "BertTokenTagger", "QuestionAnsweringPreprocessor",
    "answer_questions", "build_question_answerer", "load_qa_model", "score_questions",
    "build_sequence_classifier", "build_token_tagger", "embed_batch", "encode_texts", "encode_words", "import_hf",
    "load_bert", "load_embedder", "masked_lm_dataset", "save_bert", "word_tags",
]
