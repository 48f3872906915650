"""Score a tagger on a labelled file (``tfpretrain evaluate``)."""

import numpy as np
import tensorflow as tf

from tfpretrain.export import TaggingModule
from tfpretrain.models.tagger.saving import load_tagger
from tfpretrain.text.readers import detect_scheme, read_tagged
from tfpretrain.training.metrics import entity_report


def predict_tags(module, sentences, batch_size=64):
    """Tags pre-tokenised sentences with a `TaggingModule`; returns lists of tag strings."""
    predictions = [None] * len(sentences)
    order = np.argsort([len(s.tokens) for s in sentences], kind="stable")  # similar lengths together
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        width = max(1, max(len(sentences[i].tokens) for i in indices))
        tokens = [list(sentences[i].tokens) + [""] * (width - len(sentences[i].tokens)) for i in indices]
        features = module.preprocessor(tf.constant(tokens, dtype=tf.string))
        tags = module.tag_ids(features["word_ids"], features["char_ids"])["tags"].numpy()
        for row, i in enumerate(indices):
            predictions[i] = [t.decode("utf-8") for t in tags[row, : len(sentences[i].tokens)]]
    return predictions


def score(gold, predicted):
    """Entity P/R/F1 (seqeval semantics) and token accuracy.

    For tag sets without chunk prefixes (e.g. UPOS) every token is its own
    unit, so micro precision, recall and F1 all equal token accuracy.
    """
    if detect_scheme({t for seq in gold for t in seq}) in ("IOB2", "IOBES", "IO"):
        report = entity_report(gold, predicted)
        return {k: float(report[k]) for k in ("precision", "recall", "f1", "accuracy")}
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    accuracy = sum(g == p for g, p in pairs) / max(1, len(pairs))
    return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy}


def evaluate_sentences(model, preprocessor, sentences, batch_size=64):
    predicted = predict_tags(TaggingModule(model, preprocessor), sentences, batch_size)
    scores = score([list(s.tags) for s in sentences], predicted)
    scores["sentences"] = len(sentences)
    scores["tokens"] = sum(len(s.tokens) for s in sentences)
    return scores


def run(model_dir, data_path, format=None, column=None, batch_size=64):
    """Returns the scores of the tagger in ``model_dir`` on ``data_path``."""
    model, preprocessor, metadata = load_tagger(model_dir)
    format = format or metadata.get("format")
    column = column if column is not None else metadata.get("column")
    sentences = read_tagged(data_path, format, column)
    if not sentences:
        raise ValueError(f"{data_path}: no sentences found (is --format {format} right?)")
    return evaluate_sentences(model, preprocessor, sentences, batch_size)
