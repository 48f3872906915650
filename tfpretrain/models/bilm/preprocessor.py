"""The BiLM's data: word vocabularies from text files and ``(char_ids, {next_ids, previous_ids})`` batches.

text files -> tokenised lines (`tokenized_lines`) -> length buckets
(`tfpretrain.text.buckets`) -> character ids in (`tfpretrain.text.characters`)
and word-id targets out in both directions (`language_model_dataset`), all in
the graph. Word ids (`word_lookup`): 0 padding, 1 OOV, then ``<S>``, ``</S>``
and the vocabulary (`LANGUAGE_MODEL_RESERVED` first, as `count_tokens` and
`tfpretrain.text.build_vocabulary` build it).

Example:

>>> from tfpretrain.models.bilm import count_tokens, language_model_dataset, word_lookup
>>> vocabulary = build_vocabulary(count_tokens(["corpus.txt"]), min_count=2, reserved=LANGUAGE_MODEL_RESERVED)
>>> dataset = language_model_dataset(["corpus.txt"], word_lookup(vocabulary))
"""

import keras
import tensorflow as tf

from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES, bucket_by_length
from tfpretrain.text.characters import char_ids
from tfpretrain.text.streams import END_OF_SENTENCE, line_chunks, text_lines
from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import OOV_TOKEN, PADDING_TOKEN

# Language-model word ids: 0 padding, 1 OOV, then the sentence markers.
BEGIN_OF_SENTENCE = "<S>"
LANGUAGE_MODEL_RESERVED = (BEGIN_OF_SENTENCE, END_OF_SENTENCE)


def word_lookup(vocabulary):
    """The StringLookup of LM word ids: 0 padding, 1 OOV, then ``vocabulary``."""
    return keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PADDING_TOKEN, oov_token=OOV_TOKEN)


def count_tokens(text_paths, sequence_length=None, batch_size=1024):
    """Yields the token list of each text line, reading files in Python so bad input names its line.

    For `tfpretrain.text.build_vocabulary`: ``sequence_length`` keeps the first
    tokens of a line, as `language_model_dataset` does.
    """
    for batch in line_chunks(text_paths, batch_size):  # raises DataFormatError naming path:line
        for tokens in tokenize(tf.constant(batch)).to_list():
            yield [t.decode("utf-8") for t in tokens[:sequence_length]]


def tokenized_lines(paths, sequence_length=None, batch_size=256, heldout_every=None, heldout=False):
    """Streams one 1-D string tensor of tokens per non-empty line (at most ``sequence_length``).

    With ``heldout_every=k``, every k-th line is held out: ``heldout=False``
    streams the other lines, ``heldout=True`` only those.
    """
    lines = text_lines(paths)
    if heldout_every:

        def keep(index, line):
            return tf.equal(index % heldout_every == 0, heldout)

        lines = lines.enumerate().filter(keep).map(lambda index, line: line)
    lines = lines.batch(batch_size)
    tokens = lines.map(lambda batch: tokenize(batch)).unbatch()
    if sequence_length:
        tokens = tokens.map(lambda t: t[:sequence_length])
    return tokens.filter(lambda t: tf.size(t) > 0)


def language_model_dataset(
    paths,
    word_lookup,
    batch_size=32,
    sequence_length=64,
    max_chars_per_token=50,
    shuffle_buffer=10000,
    seed=None,
    bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES,
    heldout_every=None,
    heldout=False,
    static_shapes=False,
):
    """Batches of ``(char_ids, {"next_ids", "previous_ids"})`` for a bidirectional LM (`BiLMLanguageModel`).

    Each line is one sequence of at most ``sequence_length`` tokens. At step ``t``
    the forward target is word ``t + 1`` (``</S>`` after the last word) and the
    backward target word ``t - 1`` (``<S>`` before the first). Targets are -1
    at padded steps.

    Args:
        paths: text or CoNLL-U files (streamed).
        word_lookup: a `keras.layers.StringLookup` over the LM vocabulary, with
            ``<S>`` and ``</S>`` as its first two words.
        heldout_every, heldout: hold out every k-th line (see `tokenized_lines`).
        static_shapes: bool. Every batch ``(batch_size, length, max_chars)``
            with ``length`` a bucket boundary or ``sequence_length``
            (`tfpretrain.text.buckets`), for XLA and TPUs; the rows that fill
            a bucket's last batch have targets -1 throughout.

    Example:

    >>> from tfpretrain.models.bilm import language_model_dataset, word_lookup
    >>> lm.fit(language_model_dataset(["corpus.txt"], word_lookup(vocabulary)), epochs=1)
    """
    if static_shapes and not sequence_length:
        raise ValueError("static_shapes needs sequence_length (the longest line, in tokens)")
    begin_id = int(word_lookup(tf.constant(BEGIN_OF_SENTENCE)))
    end_id = int(word_lookup(tf.constant(END_OF_SENTENCE)))
    dataset = tokenized_lines(paths, sequence_length, heldout_every=heldout_every, heldout=heldout)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, PADDING_TOKEN, static_shapes, sequence_length)

    def prepare(real, tokens):  # (batch,) bool and (batch, time) strings, '' padded
        word_ids = tf.cast(word_lookup(tokens), tf.int32)  # (batch, time), 0 = padding
        valid = tf.not_equal(tokens, PADDING_TOKEN) & real[:, None]
        lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        positions = tf.range(tf.shape(tokens)[1])[None, :]
        shifted_left = tf.pad(word_ids[:, 1:], [[0, 0], [0, 1]])
        shifted_right = tf.pad(word_ids[:, :-1], [[0, 0], [1, 0]])
        next_ids = tf.where(positions == lengths[:, None] - 1, end_id, shifted_left)
        previous_ids = tf.where(positions == 0, begin_id, shifted_right)
        targets = {
            "next_ids": tf.where(valid, next_ids, -1),
            "previous_ids": tf.where(valid, previous_ids, -1),
        }
        return char_ids(tokens, max_chars_per_token), targets

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
