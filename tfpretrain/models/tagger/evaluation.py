"""Scoring a CharCNN / BiLM / CRF tagger on gold sentences, through the same graph that serves it.

The sentences' tokens go through the tagger's `TaggingPreprocessor` and
`TaggingModule.tag_features` (the CRF decoded in the graph), so the scores are
those of what ``tfpretrain tag``, the SavedModel and the ``.tflite`` file answer.

Example:

>>> model, preprocessor, _ = load_tagger("runs/upos")
>>> evaluate_sentences(model, preprocessor, read_conllu("dev.conllu", column="upos"))["accuracy"]
0.93
"""

import numpy as np
import tensorflow as tf

from tfpretrain.training.metrics import score_tags


def predict_tags(module, sentences, batch_size=64):
    """Tags pre-tokenised sentences with a `TaggingModule`; returns lists of tag strings."""
    predictions = [None] * len(sentences)
    order = np.argsort([len(s.tokens) for s in sentences], kind="stable")  # similar lengths together
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        width = max(1, max(len(sentences[i].tokens) for i in indices))
        tokens = [list(sentences[i].tokens) + [""] * (width - len(sentences[i].tokens)) for i in indices]
        features = module.preprocessor(tf.constant(tokens, dtype=tf.string))
        tags = module.tag_features(features)["tags"].numpy()
        for row, i in enumerate(indices):
            predictions[i] = [t.decode("utf-8") for t in tags[row, : len(sentences[i].tokens)]]
    return predictions


def evaluate_sentences(model, preprocessor, sentences, batch_size=64):
    """Scores a tagger on gold sentences through its serving graph: `score_tags` plus ``sentences`` and ``tokens``.

    Entity scores apply when the tagger's own tag set (``preprocessor.tags``)
    has chunk prefixes, whatever tags the gold file happens to hold.
    """
    from tfpretrain.export.tagging_module import TaggingModule

    predicted = predict_tags(TaggingModule(model, preprocessor), sentences, batch_size)
    scores = score_tags([list(s.tags) for s in sentences], predicted, tags=preprocessor.tags)  # the model's scheme
    scores["sentences"] = len(sentences)
    scores["tokens"] = sum(len(s.tokens) for s in sentences)
    return scores
