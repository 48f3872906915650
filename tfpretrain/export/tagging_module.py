"""Raw strings in, tokens and tags out: one graph for tagging, serving and export."""

import tensorflow as tf

from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import PADDING_TOKEN


class TaggingModule(tf.Module):
    """Wraps a trained tagger and its preprocessor as a `tf.Module`.

    ``module.tag_texts(texts)`` takes a batch of raw UTF-8 strings ``(batch,)``
    and returns ``{"tokens": (batch, time) str, "tags": (batch, time) str,
    "lengths": (batch,) int32}``, padded with empty strings. Tokenisation, the
    model, CRF decoding and the tag lookup all run in one graph, which is also
    the SavedModel's ``serving_default`` signature. ``module.tag_tokens(tokens)``
    does the same for pre-tokenised, ''-padded input. An empty or
    whitespace-only text gives length 0.

    Example:

    >>> module = TaggingModule(model, preprocessor)
    >>> module.tag_texts(tf.constant(["Ines flew to Porto ."]))["tags"]
    """

    def __init__(self, model, preprocessor):
        super().__init__(name="tagging_module")
        self.model = model
        self.preprocessor = preprocessor
        self.tag_texts = tf.function(
            self._tag_texts, input_signature=[tf.TensorSpec([None], tf.string, name="texts")]
        )
        self.tag_tokens = tf.function(
            self._tag_tokens, input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")]
        )

    def _tag_tokens(self, tokens):
        # At least one step, so that a batch of empty texts still runs the graph.
        width = tf.shape(tokens)[1]
        tokens = tf.pad(tokens, [[0, 0], [0, tf.maximum(1 - width, 0)]], constant_values=PADDING_TOKEN)
        valid = tf.not_equal(tokens, PADDING_TOKEN)  # (batch, time)
        outputs = self.model(self.preprocessor(tokens), training=False)
        tags = tf.where(valid, self.preprocessor.tag_strings(outputs["tag_ids"]), PADDING_TOKEN)
        return {
            "tokens": tokens,
            "tags": tags,
            "lengths": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
        }

    def _tag_texts(self, texts):
        return self._tag_tokens(tokenize(texts).to_tensor(default_value=PADDING_TOKEN))


def decode_tagging_outputs(outputs):
    """Turns a batch of module outputs into ``[{"tokens": [...], "tags": [...]}, ...]``."""
    tokens, tags, lengths = (outputs[k].numpy() for k in ("tokens", "tags", "lengths"))
    return [
        {
            "tokens": [t.decode("utf-8", "replace") for t in tokens[i, :n]],
            "tags": [t.decode("utf-8") for t in tags[i, :n]],
        }
        for i, n in enumerate(lengths)
    ]
