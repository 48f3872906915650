"""Raw strings in, words, offsets and tags out: one graph for tagging, serving and on-device export."""

import tensorflow as tf

from tfpretrain.export.saved_model import check_batch, serve_any_batch
from tfpretrain.text.tokenizer import dense_word_offsets, words_at

#: Words tagged per text; later words are cut and counted in ``num_words_truncated``.
MAX_WORDS = 512


class TaggingModule(tf.Module):
    """Wraps a trained `CRFTagger` and its `TaggingPreprocessor` as a `tf.Module`.

    ``module.tag_texts(texts)`` takes a batch of raw UTF-8 strings ``(batch,)``
    and returns, padded with ``''`` / 0:

    - ``words`` string ``(batch, words)``, split by `tfpretrain.text.tokenize`;
    - ``tags`` string ``(batch, words)``, the CRF's Viterbi path;
    - ``starts`` / ``ends`` int32 ``(batch, words)``: each word's byte offsets
      in its text (``text[start:end] == word``);
    - ``lengths`` int32 ``(batch,)``: words tagged;
    - ``score`` float32 ``(batch,)``: the CRF probability of the returned tag
      sequence, ``exp(score(path) - log Z)`` (1.0 for an empty text);
    - ``num_words_truncated`` int32 ``(batch,)``: words beyond ``max_words``,
      which are not tagged (reported, never dropped silently).

    Tokenisation, the model, CRF decoding and the tag lookup run in one graph:
    the SavedModel's ``serving_default`` signature, ``tfpretrain tag``, and
    (at batch size 1) the ``.tflite`` file. ``module.tag_ids(word_ids,
    char_ids)`` is the same model on ids (a server without tensorflow-text
    ops): ``tags``, ``lengths`` and ``score``, word id 0 marking padding.

    An empty or whitespace-only text gives length 0.

    Example:

    >>> module = TaggingModule(model, preprocessor)
    >>> module.tag_texts(tf.constant(["Ines flew to Porto ."]))["tags"]
    """

    def __init__(self, model, preprocessor, max_words=MAX_WORDS):
        super().__init__(name="tagging_module")
        self.model = model
        self.preprocessor = preprocessor
        self.max_words = int(max_words)
        self.tag_texts = tf.function(
            self._tag_any_texts, input_signature=[tf.TensorSpec([None], tf.string, name="texts")]
        )
        self.tag_ids = tf.function(self._tag_any_ids, input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="word_ids"),
            tf.TensorSpec([None, None, preprocessor.max_chars_per_token], tf.int32, name="char_ids"),
        ])

    def signatures(self):
        """The SavedModel signatures: ``serving_default`` (raw texts) and ``tag_ids``."""
        return {"serving_default": self.tag_texts.get_concrete_function(),
                "tag_ids": self.tag_ids.get_concrete_function()}

    def tflite_function(self):
        """The raw-text graph at batch size 1 (input ``text``: string ``[1]``), for `tfpretrain.export.tflite`."""
        return tf.function(self._tag_texts, input_signature=[tf.TensorSpec([1], tf.string, name="text")])

    def _tag_any_texts(self, texts):
        """`_tag_texts` on any batch, an empty one included (answered with empty outputs)."""
        return serve_any_batch(self._tag_texts, check_batch(texts))

    def _tag_any_ids(self, word_ids, char_ids):
        """`_tag_ids` on any batch, an empty one included."""
        return serve_any_batch(self._tag_ids, word_ids, char_ids)

    def _tag_ids(self, word_ids, char_ids):
        # At least two steps (the second masked when there is one word): a batch of empty texts still runs the
        # model, and the CRF's transitions between steps never form an empty tensor, which TFLite's XNNPACK
        # delegate cannot plan (a one-word text failed there).
        missing = tf.maximum(2 - tf.shape(word_ids)[1], 0)
        word_ids = tf.pad(word_ids, [[0, 0], [0, missing]])
        char_ids = tf.pad(char_ids, [[0, 0], [0, missing], [0, 0]])
        mask = word_ids > 0  # (batch, time)
        outputs = self.model({"word_ids": word_ids, "char_ids": char_ids}, training=False)
        tag_ids = tf.where(mask, outputs["tag_ids"], -1)
        log_probability = self.model.crf.log_likelihood(outputs["potentials"], tag_ids, mask)
        return {
            "tags": self.preprocessor.tag_strings(tag_ids),
            "lengths": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            "score": tf.exp(log_probability),
        }

    def _tag_texts(self, texts):
        texts = check_batch(texts)
        starts, ends, num_words = dense_word_offsets(texts, self.max_words)  # (batch, words)
        words = words_at(texts, starts, ends)  # padding: (0, 0) -> ''
        features = self.preprocessor(words)
        outputs = self._tag_ids(features["word_ids"], features["char_ids"])
        width = tf.shape(words)[1]
        return {
            "words": words,
            "tags": outputs["tags"][:, :width],
            "starts": starts,
            "ends": ends,
            "lengths": outputs["lengths"],
            "score": outputs["score"],
            "num_words_truncated": num_words - outputs["lengths"],
        }

