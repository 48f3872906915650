"""In-graph word tokenisation of raw text, the same in TensorFlow, SavedModel and TFLite.

Words are split as BERT's basic tokenizer splits them, without changing the
text: on whitespace (Unicode ``White_Space``), and around every punctuation
character (ASCII ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`` and Unicode category
P) and every CJK ideograph, each of which becomes a word of its own:

>>> tfpretrain.text.tokenize(tf.constant(["Hello, world! 東京"])).to_list()
[[b'Hello', b',', b'world', b'!', b'\xe6\x9d\xb1', b'\xe4\xba\xac']]

Other characters stay inside words: non-ASCII symbols and emoji (``"£5"``,
``"ok🙂"``), control characters, and invalid UTF-8 bytes, which are kept as
they are (a word's character ids are its bytes, so every string has ids).
Each word's byte offsets in the input come with `tokenize_with_offsets`.

The split is tensorflow-text's `FastWordpieceTokenizer` pre-tokenisation
(with a one-token vocabulary, every word is one ``[UNK]`` with its offsets)
and the words are cut out with `ByteSplitter.split_by_offsets`: both have
TFLite kernels, so the same function runs inside an on-device ``.tflite``
file (see `tfpretrain.export.tflite`).
"""

import functools

import tensorflow as tf
import tensorflow_text as tf_text

_UNKNOWN = "[UNK]"
@functools.lru_cache(maxsize=None)
def _splitter():
    """A vocabulary without continuation pieces (no entry starts with the suffix indicator): every
    pre-tokenised word becomes exactly one piece, [UNK] or the word itself, with the word's offsets.
    Made on first use, not at import (TensorFlow's devices must stay configurable until then), and
    eagerly even when first used inside a traced function, so that every graph can capture it."""
    with tf.init_scope():
        return tf_text.FastWordpieceTokenizer(
            vocab=[_UNKNOWN, "\x02"], suffix_indicator="\x03", unknown_token=_UNKNOWN, no_pretokenization=False,
            token_out_type=tf.int32, max_bytes_per_word=1 << 30,
        )


def word_offsets(texts):
    """The byte offsets of the words of raw strings ``(batch,)``: ragged int32 ``(starts, ends)``."""
    _, starts, ends = _splitter().tokenize_with_offsets(tf.convert_to_tensor(texts, dtype=tf.string))
    return tf.cast(starts, tf.int32), tf.cast(ends, tf.int32)


def dense_word_offsets(texts, max_words=None, offsets=None):
    """The words' byte offsets as dense int32 ``(batch, words)`` tensors, and each text's word count.

    Returns ``(starts, ends, num_words)``: offsets ``(0, 0)`` beyond a text's
    words (`words_at` gives ``''`` there), at least one column (no tensor is
    empty: TFLite's XNNPACK delegate rejects those), at most ``max_words``
    (``num_words`` still counts every word, so that callers can report the
    cut ones). Dense offsets first, then `words_at`: the ops TFLite has
    kernels for (a ragged string tensor made dense has none). ``offsets``:
    the ragged ``(starts, ends)`` of `word_offsets` when the caller has them
    already (the split is not run twice).
    """
    starts, ends = word_offsets(texts) if offsets is None else offsets
    num_words = tf.cast(starts.row_lengths(), tf.int32)

    def dense(offsets):
        offsets = offsets.to_tensor(default_value=0)
        if max_words is not None:
            offsets = offsets[:, :max_words]
        return tf.pad(offsets, [[0, 0], [0, tf.maximum(1 - tf.shape(offsets)[1], 0)]])

    return dense(starts), dense(ends), num_words


def words_at(texts, starts, ends):
    """The substrings ``texts[b][starts[b, i]:ends[b, i]]``; offsets ragged or dense (``0, 0`` gives ``''``).

    Returns a ragged tensor for ragged offsets and a dense one for dense offsets.
    """
    words = tf_text.ByteSplitter().split_by_offsets(tf.convert_to_tensor(texts, dtype=tf.string), starts, ends)
    if isinstance(starts, tf.RaggedTensor):
        return words
    return tf.reshape(words.flat_values, tf.shape(starts))  # the rows are uniform


def tokenize_with_offsets(texts):
    """Splits raw strings ``(batch,)`` into words with their byte offsets.

    Returns:
        ``(words, starts, ends)``: ragged ``(batch, None)`` tensors of the
        words (tf.string) and of each word's start and end byte offsets in its
        text (int32), so that ``text[start:end] == word``.

    Example:

    >>> words, starts, ends = tokenize_with_offsets(tf.constant(["Hi, you"]))
    >>> words.to_list(), starts.to_list(), ends.to_list()
    ([[b'Hi', b',', b'you']], [[0, 2, 4]], [[2, 3, 7]])
    """
    starts, ends = word_offsets(texts)
    return words_at(texts, starts, ends), starts, ends


def tokenize(texts):
    """Splits a batch of raw strings ``(batch,)`` into words, a ragged ``(batch, None)``."""
    return tokenize_with_offsets(texts)[0]
