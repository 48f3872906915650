"""The embedding serving module of a BERT directory: raw text in, contextual word and sentence vectors out."""

import tensorflow as tf

from tfpretrain.export.saved_model import check_batch, fast_normalizing, serve_any_batch, spec
from tfpretrain.models.bert.embedder import embed_batch
from tfpretrain.text.tokenizer import dense_word_offsets, words_at


class EmbeddingModule(tf.Module):
    """Contextual word and sentence vectors of a BERT directory, by `tfpretrain.models.bert.embed_batch` (as ``embed``).

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``sentence_vector``
      float32 (batch, hidden_dim), ``word_vectors`` float32 (batch, words,
      dim) (zero for padding and for words cut by truncation), ``words``
      string (batch, words) (padded with ``""``; at least one column), ``starts``, ``ends`` int32
      (batch, words) (byte offsets), ``lengths`` int32 (batch,),
      ``num_words_truncated`` int32 (batch,).
    - ``embed_ids``: ``token_ids``, ``segment_ids``, ``padding_mask`` int32
      (batch, sequence_length), ``word_positions``, ``word_mask`` int32
      (batch, words) -> ``sentence_vector``, ``word_vectors``.

    Args:
        embedder: a `tfpretrain.models.bert.BertEmbedder`.
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        sequence_length: int. Word pieces per text, ``[CLS]`` and ``[SEP]`` included.
    """

    def __init__(self, embedder, tokenizer, sequence_length):
        super().__init__(name="bert_embeddings")
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        pieces = [spec(name, [None, self.sequence_length], tf.int32)
                  for name in ("token_ids", "segment_ids", "padding_mask")]
        words = [spec(name, [None, None], tf.int32) for name in ("word_positions", "word_mask")]
        self.embed = tf.function(lambda texts: serve_any_batch(self._embed_texts, check_batch(texts)),
                                 input_signature=[spec("texts", [None])])
        self.embed_ids = tf.function(self._embed_ids, input_signature=pieces + words)

    def signatures(self):
        """``{"serving_default": raw strings, "embed_ids": packed ids}`` concrete functions."""
        return {"serving_default": self.embed.get_concrete_function(),
                "embed_ids": self.embed_ids.get_concrete_function()}

    def _embed_ids(self, token_ids, segment_ids, padding_mask, word_positions, word_mask):
        outputs = self.embedder({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
                                 "word_positions": word_positions, "word_mask": word_mask})
        return {name: tf.cast(outputs[name], tf.float32) for name in ("sentence_vector", "word_vectors")}

    def tflite_function(self):
        """The raw-text graph at batch size 1 (input ``text``: string ``[1]``), for `tfpretrain.export.tflite`.

        As ``serving_default``, with the text normalised by tensorflow-text's
        `FastBertNormalizer` (see `tfpretrain.export.saved_model.fast_normalizing`).
        """
        tokenizer = fast_normalizing(self.tokenizer)
        return tf.function(lambda texts: self._embed_texts(texts, tokenizer), input_signature=[spec("text", [1])])

    def _embed_texts(self, texts, tokenizer=None):
        texts = check_batch(texts)
        outputs = embed_batch(self.embedder, tokenizer or self.tokenizer, texts, self.sequence_length)
        starts, ends, lengths = dense_word_offsets(texts, offsets=(outputs["starts"], outputs["ends"]))
        width = tf.shape(starts)[1]
        vectors = tf.cast(outputs["word_vectors"], tf.float32)[:, :width]  # (batch, kept words, dim)
        return {
            "sentence_vector": tf.cast(outputs["sentence_vector"], tf.float32),
            "word_vectors": tf.pad(vectors, [[0, 0], [0, width - tf.shape(vectors)[1]], [0, 0]]),
            "words": words_at(texts, starts, ends), "starts": starts, "ends": ends, "lengths": lengths,
            "num_words_truncated": tf.cast(outputs["num_words_truncated"], tf.int32),
        }
