"""In-graph word tokenisation of raw text.

Text is first made safe (invalid UTF-8 replaced by U+FFFD; control characters
and Unicode separators become spaces), then split on whitespace, with every
character that is not a letter, digit or combining mark (punctuation, symbols,
emoji) split off as a token of its own:

>>> tfpretrain.text.tokenize(tf.constant(["Hello, world!"])).to_list()
[[b'Hello', b',', b'world', b'!']]

Scripts written without spaces (Chinese, Japanese, Thai) stay one token per
run of letters; that is the documented behaviour, not an error.
"""

import tensorflow as tf
import tensorflow_text as tf_text

# RE2 patterns. \p{Cc}: control characters; \p{Z}: space, line and paragraph separators.
_SPACE = r"[\p{Cc}\p{Z}]"
_PUNCTUATION = r"[^\p{L}\p{N}\p{M}\s]"


def normalize_text(texts):
    """Replaces invalid UTF-8 with U+FFFD and control/separator characters with spaces."""
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return tf.strings.regex_replace(texts, _SPACE, " ")


def tokenize(texts):
    """Splits a batch of raw strings ``(batch,)`` into words, a ragged ``(batch, None)``."""
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    return tf_text.regex_split(normalize_text(texts), r"\s+|" + _PUNCTUATION, _PUNCTUATION)
