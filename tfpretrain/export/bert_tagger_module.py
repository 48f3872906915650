"""The BERT tagger serving module (softmax or CRF): raw text in, words, byte offsets and one tag per word out."""

import tensorflow as tf

from tfpretrain.export.saved_model import cast_inputs, check_batch, fast_normalizing, serve_any_batch, spec
from tfpretrain.models.bert.preprocessor import cut_padding, encode_words, word_tags
from tfpretrain.text.tokenizer import dense_word_offsets, word_offsets, words_at
from tfpretrain.text.vocabulary import PADDING_TOKEN


class BertTaggerModule(tf.Module):
    """A fine-tuned BERT tagger (softmax or CRF) with its tokenizer and tags: raw text in, one tag per word out.

    The text is split into words by `tfpretrain.text.tokenize_with_offsets`
    (as `tfpretrain.pipelines.finetune.predict` splits it), packed by
    `tfpretrain.models.bert.preprocessor.encode_words`, cut to the batch's
    longest text (`tfpretrain.models.bert.preprocessor.cut_padding`) and
    tagged from each word's first word piece (a CRF model decodes inside);
    a word cut by truncation (beyond ``sequence_length`` pieces) gets "O"
    and is counted (`tfpretrain.models.bert.preprocessor.word_tags`, as in
    fine-tuning's scores). The same graph at batch size 1, with
    tensorflow-text's `FastBertNormalizer`, is the ``.tflite`` file
    (`tflite_function`).

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``words`` string
      (batch, words), ``tags`` string (batch, words), ``starts``, ``ends``
      int32 (batch, words) (byte offsets of each word in its text), ``lengths``
      int32 (batch,) (words per text), ``num_words_truncated`` int32
      (batch,); ``words`` is as wide as the longest text (at least 1),
      padded with ``""`` (``starts``/``ends`` 0).
    - ``tag_ids``: ``token_ids``, ``segment_ids``, ``padding_mask`` int32
      (batch, sequence_length), ``word_positions``, ``word_mask`` int32
      (batch, sequence_length - 2) (`tfpretrain.text.pack_words`) ->
      ``tags`` string (batch, sequence_length - 2) (``""`` where
      ``word_mask`` is 0), ``tag_ids`` int32 (the index into task.json's ``tags``).

    Args:
        model: the `BertTokenTagger` (`tfpretrain.models.task_model.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``tags``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, options):
        super().__init__(name="bert_tag")
        self.model = model
        self.tokenizer = tokenizer
        self.tags = [str(tag) for tag in options["tags"]]
        self._tag_strings = tf.constant(self.tags, tf.string)
        self.sequence_length = int(options["sequence_length"])
        pieces = [spec(name, [None, self.sequence_length], tf.int32)
                  for name in ("token_ids", "segment_ids", "padding_mask")]
        words = [spec(name, [None, self.sequence_length - 2], tf.int32) for name in ("word_positions", "word_mask")]
        self.tag = tf.function(lambda texts: serve_any_batch(self._tag_texts, check_batch(texts)),
                               input_signature=[spec("texts", [None])])
        self.tag_ids = tf.function(lambda *ids: serve_any_batch(self._tag_ids, *ids), input_signature=pieces + words)

    def signatures(self):
        """``{"serving_default": raw strings, "tag_ids": packed ids}`` concrete functions."""
        return {"serving_default": self.tag.get_concrete_function(), "tag_ids": self.tag_ids.get_concrete_function()}

    def _tag_ids_of(self, packed):
        return tf.cast(self.model(cast_inputs(self.model, packed), training=False)["tag_ids"], tf.int32)

    def _tag_ids(self, token_ids, segment_ids, padding_mask, word_positions, word_mask):
        tag_ids = self._tag_ids_of({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
                                    "word_positions": word_positions, "word_mask": word_mask})
        tags = tf.where(tf.cast(word_mask, tf.bool), tf.gather(self._tag_strings, tag_ids), PADDING_TOKEN)
        return {"tags": tags, "tag_ids": tag_ids}

    def tflite_function(self):
        """The raw-text graph at batch size 1 (input ``text``: string ``[1]``), for `tfpretrain.export.tflite`.

        As ``serving_default``, with the text normalised by tensorflow-text's
        `FastBertNormalizer` (see `tfpretrain.export.saved_model.fast_normalizing`).
        """
        tokenizer = fast_normalizing(self.tokenizer)
        return tf.function(lambda texts: self._tag_texts(texts, tokenizer), input_signature=[spec("text", [1])])

    def _tag_texts(self, texts, tokenizer=None):
        texts = check_batch(texts)
        offsets = word_offsets(texts)  # ragged (batch, words)
        packed, num_words_truncated = encode_words(tokenizer or self.tokenizer, words_at(texts, *offsets),
                                                   self.sequence_length)
        tag_ids = self._tag_ids_of(cut_padding(packed, self.sequence_length))  # (batch, kept words)
        starts, ends, lengths = dense_word_offsets(texts, offsets=offsets)  # (batch, words)
        return {"words": words_at(texts, starts, ends), "starts": starts, "ends": ends, "lengths": lengths,
                "tags": word_tags(tag_ids, self.tags, lengths, num_words_truncated, tf.shape(starts)[1]),
                "num_words_truncated": tf.cast(num_words_truncated, tf.int32)}
