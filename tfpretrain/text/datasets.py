"""tf.data pipelines: tagged sentences and raw text, tokenised and mapped to ids in the graph."""

import os

import numpy as np
import tensorflow as tf

from tfpretrain.text.buckets import bucket_by_length
from tfpretrain.text.char_ids import char_ids
from tfpretrain.text.readers import read_text
from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import PADDING_TOKEN

DEFAULT_BUCKET_BOUNDARIES = (8, 16, 24, 32, 48, 64, 96)

# Language-model word ids: 0 padding, 1 OOV, then the sentence markers.
BEGIN_OF_SENTENCE = "<S>"
END_OF_SENTENCE = "</S>"
LANGUAGE_MODEL_RESERVED = (BEGIN_OF_SENTENCE, END_OF_SENTENCE)


def _sentence_slicer(*sequence_lists):
    """index -> a tuple of 1-D string tensors, sliced in the graph from flat constants."""
    lengths = np.array([len(s) for s in sequence_lists[0]], dtype=np.int64)
    splits = tf.constant(np.concatenate([[0], np.cumsum(lengths)]), dtype=tf.int64)
    flats = [tf.constant([t for s in sequences for t in s] or [""], dtype=tf.string) for sequences in sequence_lists]

    def element(i):
        return tuple(flat[splits[i] : splits[i + 1]] for flat in flats)

    return element


def tagging_dataset(
    sentences,
    preprocessor,
    batch_size=32,
    shuffle=False,
    seed=None,
    bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES,
    static_shapes=False,
):
    """Batches of ``({"word_ids", "char_ids"}, tag_ids)`` from tagged sentences.

    Sentences are grouped by length (bucketing keeps padding small), padded,
    and turned into ids by ``preprocessor`` inside the graph. Tag ids are -1 at
    padded steps.

    Args:
        sentences: list of `tfpretrain.text.TaggedSentence` (or objects with
            ``tokens`` and ``tags``).
        preprocessor: a `tfpretrain.text.TaggingPreprocessor`.
        batch_size: int. Sentences per batch.
        shuffle: bool. Shuffle sentences each epoch (before bucketing).
        seed: int or None. Shuffle seed.
        bucket_boundaries: sequence of ints, the length buckets.
        static_shapes: bool. Every batch ``(batch_size, length)`` with
            ``length`` a bucket boundary or the longest sentence, for XLA and
            TPUs (`tfpretrain.text.buckets`); the rows that fill a bucket's
            last batch have tag ids -1 throughout, so that the loss and the
            metrics ignore them.

    Example:

    >>> ds = tagging_dataset(read_conllu("dev.conllu"), preprocessor, batch_size=16)
    >>> features, tag_ids = next(iter(ds))
    """
    dataset = tf.data.Dataset.range(len(sentences))
    if shuffle:
        dataset = dataset.shuffle(max(1, len(sentences)), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(_sentence_slicer([s.tokens for s in sentences], [s.tags for s in sentences]))
    longest = max((len(s.tokens) for s in sentences), default=1)
    dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, (PADDING_TOKEN, PADDING_TOKEN),
                               static_shapes, max_length=longest)
    dataset = dataset.map(
        lambda real, t, g: (preprocessor(t), tf.where(real[:, None], preprocessor.tag_ids(g), -1)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def text_dataset(texts, preprocessor, batch_size=32):
    """Batches of ``(tokens, {"word_ids", "char_ids"})`` for raw strings, in input order."""
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
    dataset = dataset.batch(batch_size)

    def prepare(batch):
        tokens = tokenize(batch).to_tensor(default_value=PADDING_TOKEN)
        return tokens, preprocessor(tokens)

    return dataset.map(prepare).prefetch(tf.data.AUTOTUNE)


def text_lines(paths):
    """Streams the texts of plain-text or CoNLL-U files, as `tfpretrain.text.readers.read_text` reads them.

    One string per non-blank line (the ``# text =`` values of CoNLL-U files),
    read lazily, so corpora larger than memory stream through.
    """
    paths = [os.fspath(p) for p in paths]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file not found: {path}")

    def generate():
        for path in paths:
            yield from read_text(path)

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([], tf.string))


def tokenized_lines(paths, max_length=None, batch_size=256, heldout_every=None, heldout=False):
    """Streams one 1-D string tensor of tokens per non-empty line (at most ``max_length``).

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
    if max_length:
        tokens = tokens.map(lambda t: t[:max_length])
    return tokens.filter(lambda t: tf.size(t) > 0)


def language_model_dataset(
    paths,
    word_lookup,
    batch_size=32,
    max_length=64,
    max_chars_per_token=50,
    shuffle_buffer=10000,
    seed=None,
    bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES,
    heldout_every=None,
    heldout=False,
    static_shapes=False,
):
    """Batches of ``(char_ids, {"next_ids", "previous_ids"})`` for a bidirectional LM.

    Each line is one sequence of at most ``max_length`` tokens. At step ``t``
    the forward target is word ``t + 1`` (``</S>`` after the last word) and the
    backward target word ``t - 1`` (``<S>`` before the first). Targets are -1
    at padded steps.

    Args:
        paths: text or CoNLL-U files (streamed).
        word_lookup: a `keras.layers.StringLookup` over the LM vocabulary, with
            ``<S>`` and ``</S>`` as its first two words.
        heldout_every, heldout: hold out every k-th line (see `tokenized_lines`).
        static_shapes: bool. Every batch ``(batch_size, length, max_chars)``
            with ``length`` a bucket boundary or ``max_length``
            (`tfpretrain.text.buckets`), for XLA and TPUs; the rows that fill
            a bucket's last batch have targets -1 throughout.
    """
    if static_shapes and not max_length:
        raise ValueError("static_shapes needs max_length (the longest line, in tokens)")
    begin_id = int(word_lookup(tf.constant(BEGIN_OF_SENTENCE)))
    end_id = int(word_lookup(tf.constant(END_OF_SENTENCE)))
    dataset = tokenized_lines(paths, max_length, heldout_every=heldout_every, heldout=heldout)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, PADDING_TOKEN, static_shapes, max_length)

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
