"""Character ids of tokens, ELMo style: UTF-8 bytes + 1 between word markers.

Id 0 is padding, ``byte + 1`` (1..256) a byte of the token, 257 begins and 258
ends a word. Every string has an encoding, whatever its script, so there is no
character vocabulary to build or save.

>>> tfpretrain.text.char_ids(tf.constant([["ab", ""]]), max_chars=5).numpy()
array([[[257,  98,  99, 258,   0],
        [  0,   0,   0,   0,   0]]], dtype=int32)
"""

import tensorflow as tf

PAD_CHAR = 0
BEGIN_OF_WORD = 257
END_OF_WORD = 258
NUM_CHARS = 259


def char_ids(tokens, max_chars=50):
    """Maps dense string tokens ``(batch, time)`` to int32 ids ``(batch, time, max_chars)``.

    Tokens longer than ``max_chars - 2`` bytes keep their first bytes. Empty
    strings (padding) map to all-zero rows.
    """
    if max_chars < 3:
        raise ValueError(f"max_chars must be at least 3 (two word markers and a byte), got {max_chars}")
    tokens = tf.convert_to_tensor(tokens, dtype=tf.string)
    shape = tf.shape(tokens)
    flat = tf.reshape(tokens, [-1])  # (batch * time,)
    flat = tf.strings.substr(flat, 0, max_chars - 2)  # byte-level truncation
    bytes_ = tf.strings.bytes_split(flat)  # ragged (batch * time, None) of 1-byte strings
    values = tf.reshape(tf.io.decode_raw(bytes_.flat_values, tf.uint8), [-1])
    ids = bytes_.with_flat_values(tf.cast(values, tf.int32) + 1)
    n = tf.shape(flat)[0]
    nonempty = bytes_.row_lengths() > 0
    begin = tf.where(nonempty, BEGIN_OF_WORD, PAD_CHAR)[:, None]
    end = tf.where(nonempty, END_OF_WORD, PAD_CHAR)[:, None]
    framed = tf.concat([tf.cast(begin, tf.int32), ids, tf.cast(end, tf.int32)], axis=1)
    dense = framed.to_tensor(default_value=PAD_CHAR, shape=[n, max_chars])  # (batch * time, max_chars)
    return tf.reshape(dense, tf.concat([shape, [max_chars]], axis=0))
