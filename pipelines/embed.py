"""Contextual word and sentence vectors from a BERT directory (``tfpretrain embed``).

The embedding itself is `tfpretrain.models.bert.embedder` (`load_embedder`,
`embed_batch`); this job batches the texts and writes JSON lines or ``.npz``.
"""

import numpy as np
import tensorflow as tf

from tfpretrain.export.tflite import to_bytes
from tfpretrain.models.bert.embedder import SEQUENCE_LENGTH, embed_batch, load_embedder

BATCH_SIZE = 32


def embed_texts(model_dir, texts, combination="last", sentence_pooling="mean", sequence_length=SEQUENCE_LENGTH):
    """Embeds raw texts; returns one dict per text.

    Each dict has ``words`` (the text split into words and punctuation),
    ``word_vectors`` (float32 array, one row per word), ``sentence_vector``
    and ``num_words_truncated`` (words beyond ``sequence_length`` word
    pieces, which get no vector: the count says so rather than dropping them
    silently). An empty text gives no words and the sentence vector of an
    empty input. A text may be `bytes` (not valid UTF-8, as ``tfpretrain
    embed`` reads stdin): the graph gets them as they are, and ``text`` and
    ``words`` are decoded with ``errors="replace"``.
    """
    embedder, tokenizer = load_embedder(model_dir, combination, sentence_pooling, sequence_length)
    embed = tf.function(lambda batch: embed_batch(embedder, tokenizer, batch, sequence_length))

    results = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = texts[start : start + BATCH_SIZE]
        outputs = embed(tf.constant([to_bytes(text) for text in batch], dtype=tf.string, shape=[len(batch)]))
        truncated = outputs["num_words_truncated"]
        for i, text_words in enumerate(outputs["words"].to_list()):
            text_words = [w.decode("utf-8", "replace") for w in text_words]
            kept = len(text_words) - int(truncated[i])
            results.append({
                "text": _display(batch[i]),
                "words": text_words,
                "word_vectors": np.asarray(outputs["word_vectors"][i, :kept], dtype=np.float32),
                "sentence_vector": np.asarray(outputs["sentence_vector"][i], dtype=np.float32),
                "num_words_truncated": int(truncated[i]),
            })
    return results


def _display(text):
    return to_bytes(text).decode("utf-8", "replace")


def to_json(result, decimals=6):
    """A JSON-ready copy of one `embed_texts` result (vectors as rounded lists).

    Raises:
        ValueError: a vector holds NaN or Inf (bare ``NaN`` is not JSON): the
            model directory's weights are damaged.
    """
    for key in ("word_vectors", "sentence_vector"):
        if not np.isfinite(result[key]).all():
            raise ValueError(f"the {key.replace('_', ' ')} of {result['text'][:60]!r} holds NaN or Inf: the model's "
                             "weights are damaged (import or train it again)")
    return {
        "text": result["text"],
        "words": result["words"],
        "word_vectors": np.round(result["word_vectors"], decimals).tolist(),
        "sentence_vector": np.round(result["sentence_vector"], decimals).tolist(),
        "num_words_truncated": result["num_words_truncated"],
    }


def save_npz(path, results):
    """Writes ``sentence_vectors`` (texts, dim) and ``word_vectors_<i>`` (words, dim) arrays to ``path``."""
    arrays = {"sentence_vectors": np.stack([r["sentence_vector"] for r in results]) if results else np.zeros((0, 0))}
    for i, result in enumerate(results):
        arrays[f"word_vectors_{i}"] = result["word_vectors"]
    np.savez(path, texts=np.array([r["text"] for r in results], dtype=object).astype(str), **arrays)
