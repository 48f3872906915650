"""BERT: the encoder, its sizes, masked-LM pretraining, task heads, word vectors, BERT directories and HF import."""

from tfpretrain.models.bert.classifier import build_sequence_classifier
from tfpretrain.models.bert.embedder import BertEmbedder
from tfpretrain.models.bert.encoder import BertEncoder
from tfpretrain.models.bert.hf_import import import_hf
from tfpretrain.models.bert.masked_lm import BertMaskedLM
from tfpretrain.models.bert.presets import BERT_PRESETS
from tfpretrain.models.bert.question_answering import build_question_answerer
from tfpretrain.models.bert.saving import load_bert, save_bert
from tfpretrain.models.bert.token_tagger import BertTokenTagger, build_token_tagger

__all__ = [
    "BERT_PRESETS", "BertEmbedder", "BertEncoder", "BertMaskedLM", "BertTokenTagger", "build_question_answerer",
    "build_sequence_classifier", "build_token_tagger", "import_hf", "load_bert", "save_bert",
]
