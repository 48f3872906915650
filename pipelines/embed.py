"""Contextual word and sentence vectors from a BERT directory (``tfpretrain embed``)."""

import numpy as np
import tensorflow as tf

BATCH_SIZE = 32


def embed_texts(model_dir, texts, combination="last", sentence_pooling="mean", sequence_length=128):
    """Embeds raw texts; returns one dict per text.

    Each dict has ``words`` (the text split into words and punctuation),
    ``word_vectors`` (float32 array, one row per word), ``sentence_vector``
    and ``num_words_truncated`` (words beyond ``sequence_length`` word
    pieces, which get no vector: the count says so rather than dropping them
    silently). An empty text gives no words and the sentence vector of an
    empty input.
    """
    from tfpretrain.models.bert import BertEmbedder, load_bert
    from tfpretrain.text import tokenize
    from tfpretrain.text.packing import pack_words

    encoder, tokenizer = load_bert(model_dir)
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds the encoder's maximum "
                         f"({encoder.max_sequence_length})")
    embedder = BertEmbedder(encoder, combination=combination, sentence_pooling=sentence_pooling)

    @tf.function
    def embed(batch):
        words = tokenize(batch)  # (batch, words) strings
        packed = pack_words(tokenizer.tokenize_words(words), sequence_length,
                            tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        outputs = embedder(packed)
        return words, outputs["word_vectors"], outputs["sentence_vector"], packed["num_words_truncated"]

    results = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = texts[start : start + BATCH_SIZE]
        words, word_vectors, sentence_vectors, truncated = embed(tf.constant(batch, dtype=tf.string))
        for i, text_words in enumerate(words.to_list()):
            text_words = [w.decode("utf-8") for w in text_words]
            kept = len(text_words) - int(truncated[i])
            results.append({
                "text": batch[i],
                "words": text_words,
                "word_vectors": np.asarray(word_vectors[i, :kept], dtype=np.float32),
                "sentence_vector": np.asarray(sentence_vectors[i], dtype=np.float32),
                "num_words_truncated": int(truncated[i]),
            })
    return results


def to_json(result, decimals=6):
    """A JSON-ready copy of one `embed_texts` result (vectors as rounded lists)."""
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
