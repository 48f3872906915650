"""Character ids of tokens, ELMo style: UTF-8 bytes + 1 between word markers.

Id 0 is padding, ``byte + 1`` (1..256) a byte of the token, 257 begins and 258
ends a word. Every string has an encoding, whatever its script, so there is no
character vocabulary to build or save.

>>> tfpretrain.text.characters(tf.constant([["ab", ""]]), max_chars=5).numpy()
array([[[257,  98,  99, 258,   0],
        [  0,   0,   0,   0,   0]]], dtype=int32)
"""

import tensorflow as tf
import tensorflow_text as tf_text

PAD_CHAR = 0
BEGIN_OF_WORD = 257
END_OF_WORD = 258
NUM_CHARS = 259


def char_ids(tokens, max_chars=50):
    """Maps string tokens (any shape, e.g. ``(batch, time)``) to int32 ids ``(..., max_chars)``.

    Tokens longer than ``max_chars - 2`` bytes keep their first bytes. Empty
    strings (padding) map to all-zero rows. Only TFLite-convertible ops are
    used (tensorflow-text's ``ByteSplitter`` and ``RaggedTensorToTensor``,
    then builtins).
    """
    if max_chars < 3:
        raise ValueError(f"max_chars must be at least 3 (two word markers and a byte), got {max_chars}")
    tokens = tf.convert_to_tensor(tokens, dtype=tf.string)
    flat = tf.reshape(tokens, [-1])  # (n,)
    bytes_ = tf.cast(tf_text.ByteSplitter().split(flat), tf.int32)  # ragged (n, None)
    kept = max_chars - 2
    lengths = tf.minimum(tf.cast(bytes_.row_lengths(), tf.int32), kept)[:, None]  # (n, 1)
    dense = bytes_.to_tensor(default_value=0, shape=[None, kept]) + 1  # (n, kept)
    # Position 0 begins the word, 1..length hold its bytes, length + 1 ends it.
    shifted = tf.concat([tf.zeros_like(dense[:, :1]), dense, tf.zeros_like(dense[:, :1])], axis=1)
    position = tf.range(max_chars, dtype=tf.int32)[None, :]  # (1, max_chars)
    ids = tf.where(position <= lengths, shifted, PAD_CHAR)
    ids = tf.where(position == 0, BEGIN_OF_WORD, ids)
    ids = tf.where(position == lengths + 1, END_OF_WORD, ids)
    ids = tf.where(lengths > 0, ids, PAD_CHAR)  # (n, max_chars)
    return tf.reshape(ids, tf.concat([tf.shape(tokens), [max_chars]], axis=0))
