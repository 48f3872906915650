"""Contextual word and sentence vectors from a BERT directory (``tfpretrain embed``)."""

import numpy as np
import tensorflow as tf

BATCH_SIZE = 32
SEQUENCE_LENGTH = 128  # word pieces per text, [CLS] and [SEP] included


def load_embedder(model_dir, combination="last", sentence_pooling="mean", sequence_length=SEQUENCE_LENGTH):
    """The `BertEmbedder` and tokenizer of a BERT directory, checked against ``sequence_length``."""
    from tfpretrain.models.bert import BertEmbedder, load_bert

    encoder, tokenizer = load_bert(model_dir)
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds the encoder's maximum "
                         f"({encoder.max_sequence_length})")
    return BertEmbedder(encoder, combination=combination, sentence_pooling=sentence_pooling), tokenizer


def embed_batch(embedder, tokenizer, texts, sequence_length=SEQUENCE_LENGTH):
    """Embeds a batch of raw strings ``(batch,)`` in the graph (`embed_texts` and the exported embedder).

    Returns:
        dict of ``words``, ``starts``, ``ends`` (ragged ``(batch, words)``: the
        words of `tfpretrain.text.tokenize_with_offsets` and their byte
        offsets), ``word_vectors`` (batch, words, dim; zero for a word cut by
        truncation), ``sentence_vector`` (batch, hidden) and
        ``num_words_truncated`` (batch,).
    """
    from tfpretrain.text import tokenize_with_offsets
    from tfpretrain.text.packing import pack_words

    words, starts, ends = tokenize_with_offsets(texts)  # (batch, words)
    packed = pack_words(tokenizer.tokenize_words(words), sequence_length,
                        tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    outputs = embedder(packed)
    return {"words": words, "starts": starts, "ends": ends, "word_vectors": outputs["word_vectors"],
            "sentence_vector": outputs["sentence_vector"], "num_words_truncated": packed["num_words_truncated"]}


def embed_texts(model_dir, texts, combination="last", sentence_pooling="mean", sequence_length=SEQUENCE_LENGTH):
    """Embeds raw texts; returns one dict per text.

    Each dict has ``words`` (the text split into words and punctuation),
    ``word_vectors`` (float32 array, one row per word), ``sentence_vector``
    and ``num_words_truncated`` (words beyond ``sequence_length`` word
    pieces, which get no vector: the count says so rather than dropping them
    silently). An empty text gives no words and the sentence vector of an
    empty input.
    """
    embedder, tokenizer = load_embedder(model_dir, combination, sentence_pooling, sequence_length)
    embed = tf.function(lambda batch: embed_batch(embedder, tokenizer, batch, sequence_length))

    results = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = texts[start : start + BATCH_SIZE]
        outputs = embed(tf.constant(batch, dtype=tf.string))
        truncated = outputs["num_words_truncated"]
        for i, text_words in enumerate(outputs["words"].to_list()):
            text_words = [w.decode("utf-8") for w in text_words]
            kept = len(text_words) - int(truncated[i])
            results.append({
                "text": batch[i],
                "words": text_words,
                "word_vectors": np.asarray(outputs["word_vectors"][i, :kept], dtype=np.float32),
                "sentence_vector": np.asarray(outputs["sentence_vector"][i], dtype=np.float32),
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
