"""Raw strings in, words, offsets and tags out: one graph for tagging, serving and on-device export."""

import tensorflow as tf

from tfpretrain.export.saved_model import check_batch, fast_normalizing, serve_any_batch
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
        self.with_encoder = hasattr(preprocessor, "encoder_inputs")
        if not self.with_encoder:
            self.tag_ids = tf.function(self._tag_any_ids, input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="word_ids"),
                tf.TensorSpec([None, None, preprocessor.max_chars_per_token], tf.int32, name="char_ids"),
            ])
        #: The preprocessor's output dict -> ``tags``, ``lengths``, ``score`` (what evaluation runs).
        self.tag_features = tf.function(self._tag_features, reduce_retracing=True)

    def signatures(self):
        """The SavedModel signatures: ``serving_default`` (raw texts) and, without an encoder, ``tag_ids``."""
        signatures = {"serving_default": self.tag_texts.get_concrete_function()}
        if not self.with_encoder:
            signatures["tag_ids"] = self.tag_ids.get_concrete_function()
        return signatures

    def tflite_function(self):
        """The raw-text graph at batch size 1 (input ``text``: string ``[1]``), for `tfpretrain.export.tflite`.

        A tagger on an encoder's features packs its word pieces with
        tensorflow-text's `FastBertNormalizer`, as the BERT tagger's file does
        (`tfpretrain.export.saved_model.fast_normalizing`).
        """
        preprocessor = self.preprocessor
        if self.with_encoder:
            preprocessor = preprocessor.with_tokenizer(fast_normalizing(preprocessor.tokenizer))
        return tf.function(lambda texts: self._tag_texts(texts, preprocessor),
                           input_signature=[tf.TensorSpec([1], tf.string, name="text")])

    def _tag_any_texts(self, texts):
        """`_tag_texts` on any batch, an empty one included (answered with empty outputs)."""
        return serve_any_batch(self._tag_texts, check_batch(texts))

    def _tag_any_ids(self, word_ids, char_ids):
        """`_tag_features` on any batch, an empty one included."""
        return serve_any_batch(lambda w, c: self._tag_features({"word_ids": w, "char_ids": c}), word_ids, char_ids)

    def _tag_features(self, features):
        # At least two steps (the second masked when there is one word): a batch of empty texts still runs the
        # model, and the CRF's transitions between steps never form an empty tensor, which TFLite's XNNPACK
        # delegate cannot plan (a one-word text failed there). An encoder's packed pieces keep their shapes.
        features = dict(features)
        missing = tf.maximum(2 - tf.shape(features["word_ids"])[1], 0)
        word_ids = features["word_ids"] = tf.pad(features["word_ids"], [[0, 0], [0, missing]])
        features["char_ids"] = tf.pad(features["char_ids"], [[0, 0], [0, missing], [0, 0]])
        mask = word_ids > 0  # (batch, time)
        outputs = self.model(features, training=False)
        tag_ids = tf.where(mask, outputs["tag_ids"], -1)
        log_probability = self.model.crf.log_likelihood(outputs["potentials"], tag_ids, mask)
        return {
            "tags": self.preprocessor.tag_strings(tag_ids),
            "lengths": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            "score": tf.exp(log_probability),
        }

    def _tag_texts(self, texts, preprocessor=None):
        texts = check_batch(texts)
        starts, ends, num_words = dense_word_offsets(texts, self.max_words)  # (batch, words)
        words = words_at(texts, starts, ends)  # padding: (0, 0) -> ''
        outputs = self._tag_features((preprocessor or self.preprocessor)(words))
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

