"""Raw text or tokens -> the word and character ids a tagger reads, in the graph."""

import keras
import tensorflow as tf

from tfpretrain.text.char_ids import char_ids
from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import OOV_TOKEN, PADDING_TOKEN


@keras.saving.register_keras_serializable(package="tfpretrain")
class TaggingPreprocessor(keras.layers.Layer):
    """Turns tokens into ``{"word_ids", "char_ids"}`` and tags into tag ids.

    Word id 0 is padding (the empty string), 1 is out-of-vocabulary, and
    ``word_vocabulary[i]`` is ``i + 2``. Words are lower-cased before lookup
    when ``lowercase`` (characters keep their case). Tag ids index ``tags``;
    padding and tags outside ``tags`` become -1. Runs inside `tf.data` and
    inside exported graphs: no Python per example.

    Args:
        word_vocabulary: list of str. Known words (without padding/OOV).
        tags: list of str. The tag set, indexed by tag id.
        max_chars_per_token: int. Characters kept per token (with the two word
            markers). Defaults to 50.
        lowercase: bool. Lower-case words before lookup. Defaults to True.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> pre = tfpretrain.text.TaggingPreprocessor(["the", "cat"], ["O", "B-ANIMAL"])
    >>> features = pre(pre.tokenize(["The cat sat."]).to_tensor())
    >>> features["word_ids"].numpy()
    array([[2, 3, 1, 1]], dtype=int32)
    """

    def __init__(self, word_vocabulary, tags, max_chars_per_token=50, lowercase=True, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.word_vocabulary = [str(w) for w in word_vocabulary]
        self.tags = [str(t) for t in tags]
        if not self.tags:
            raise ValueError("TaggingPreprocessor needs at least one tag.")
        bad = {PADDING_TOKEN, OOV_TOKEN} & set(self.word_vocabulary)
        if bad:
            raise ValueError(f"word_vocabulary may not contain the reserved tokens {sorted(bad)}")
        if len(set(self.tags)) != len(self.tags) or PADDING_TOKEN in self.tags:
            raise ValueError(f"tags must be distinct and non-empty, got {self.tags}")
        self.max_chars_per_token = int(max_chars_per_token)
        self.lowercase = bool(lowercase)
        self.word_lookup = keras.layers.StringLookup(
            vocabulary=self.word_vocabulary, mask_token=PADDING_TOKEN, oov_token=OOV_TOKEN,
            num_oov_indices=1, output_mode="int", name="word_lookup",
        )
        self.tag_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.tags), tf.range(len(self.tags), dtype=tf.int32)
            ),
            default_value=-1,
        )
        self.built = True  # no weights; the lookup tables are made above

    @property
    def word_vocabulary_size(self):
        """Number of word ids, padding and OOV included."""
        return len(self.word_vocabulary) + 2

    def tokenize(self, texts):
        """Raw strings ``(batch,)`` -> ragged tokens ``(batch, None)``."""
        return tokenize(texts)

    def call(self, tokens):
        if isinstance(tokens, tf.RaggedTensor):
            tokens = tokens.to_tensor(default_value=PADDING_TOKEN)
        tokens = tf.convert_to_tensor(tokens, dtype=tf.string)  # (batch, time)
        words = tf.strings.lower(tokens, encoding="utf-8") if self.lowercase else tokens
        word_ids = tf.cast(self.word_lookup(words), tf.int32)  # (batch, time)
        return {
            "word_ids": word_ids,
            "char_ids": char_ids(tokens, self.max_chars_per_token),  # (batch, time, chars)
        }

    def tag_ids(self, tags):
        """Tag strings (dense or ragged) -> int32 ids, -1 for padding and unknown tags."""
        if isinstance(tags, tf.RaggedTensor):
            tags = tags.to_tensor(default_value=PADDING_TOKEN)
        return self.tag_table.lookup(tf.convert_to_tensor(tags, dtype=tf.string))

    def tag_strings(self, tag_ids):
        """Tag ids -> tag strings (ids outside the tag set give the empty string)."""
        table = tf.constant(self.tags + [PADDING_TOKEN])
        ids = tf.convert_to_tensor(tag_ids)
        safe = tf.where((ids >= 0) & (ids < len(self.tags)), ids, len(self.tags))
        return tf.gather(table, safe)

    def get_config(self):
        config = super().get_config()
        config.update(
            word_vocabulary=self.word_vocabulary,
            tags=self.tags,
            max_chars_per_token=self.max_chars_per_token,
            lowercase=self.lowercase,
        )
        return config
