"""ULMFiT's preprocessor: raw strings -> word ids in the graph, for the language models and the classifier.

The one path from strings to ULMFiT inputs:

- `WordTokenizer`: `tfpretrain.text.tokenize` words (lower-cased) looked up
  in a vocabulary (`build_word_vocabulary` from files, `build_text_vocabulary`
  from texts); ids 0 padding, 1 ``[UNK]``, then the vocabulary, whose first
  word is ``</S>``;
- `word_lm_dataset` (stages 1 and 2): lines -> word ids, ``</S>`` after every
  line -> one continuous stream cut into next-word windows
  (`tfpretrain.text.streams.next_token_windows`, shared with GPT);
- `classifier_token_ids` (stage 3): a text's first ``sequence_length`` word ids
  and whether it was cut, used by `classification_dataset` (training,
  evaluation, prediction) and by the exported
  `tfpretrain.export.classifier_modules.UlmfitClassifierModule` alike.

Example:

>>> from tfpretrain.models.ulmfit import WordTokenizer, build_word_vocabulary, word_lm_dataset
>>> vocabulary = build_word_vocabulary(["ud_english_ewt/train.conllu"], min_count=2)
>>> dataset = word_lm_dataset(["ud_english_ewt/train.conllu"], vocabulary, sequence_length=70, split="train")
>>> token_ids, next_ids, weights = next(iter(dataset))  # (32, 70) each
"""

import collections
import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES, bucket_by_length, bucket_of, fill_batch, pad_to_bucket
from tfpretrain.text.streams import END_OF_SENTENCE, next_token_windows, text_lines
from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import OOV_TOKEN, PADDING_TOKEN, build_vocabulary, load_vocabulary

END_OF_LINE = END_OF_SENTENCE  # "</S>": ends every line of the word stream
WORD_LM_RESERVED = (END_OF_LINE,)


def word_tokens(texts, lowercase=True):
    """Raw strings ``(batch,)`` -> ragged words ``(batch, None)``: `tfpretrain.text.tokenize`, lower-cased first.

    Example:

    >>> word_tokens(tf.constant(["The CAT sat."])).to_list()
    [[b'the', b'cat', b'sat', b'.']]
    """
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return tokenize(texts)


@keras.saving.register_keras_serializable(package="tfpretrain")
class WordTokenizer(keras.layers.Layer):
    """Raw strings to word ids in the graph: `tfpretrain.text.tokenize` words looked up in a vocabulary.

    Ids: 0 is padding, 1 is ``[UNK]`` (words not in the vocabulary), and the
    vocabulary's words follow from id 2 in order. Runs inside `tf.data` and
    exported graphs.

    Args:
        vocabulary: list of str (as `build_word_vocabulary` returns: ``</S>``
            first, no padding or ``[UNK]``), or the path of a file written by
            `tfpretrain.text.save_vocabulary`.
        lowercase: bool, default True. Lower-case the text (Unicode-aware) before
            splitting it.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> tokenizer = tfpretrain.models.ulmfit.WordTokenizer(["</S>", "the", "cat"])
    >>> tokenizer(tf.constant(["The cat sat."])).to_list()
    [[3, 4, 1, 1]]
    >>> tokenizer.detokenize(tf.constant([[3, 4, 2, 0]])).numpy()
    array([b'the cat </S>'], dtype=object)
    """

    def __init__(self, vocabulary, lowercase=True, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = load_vocabulary(vocabulary)
        vocabulary = list(vocabulary)
        for special in (PADDING_TOKEN, OOV_TOKEN):
            if special in vocabulary:
                raise ValueError(
                    f"the word vocabulary contains {special!r} (at index {vocabulary.index(special)}); padding and "
                    f"{OOV_TOKEN} get ids 0 and 1 by themselves: remove it (build_word_vocabulary never adds it)"
                )
        if len(set(vocabulary)) != len(vocabulary):
            duplicates = sorted(w for w, c in collections.Counter(vocabulary).items() if c > 1)[:5]
            raise ValueError(f"the word vocabulary repeats words ({duplicates}); expected each word once")
        self.vocabulary = vocabulary
        self.lowercase = bool(lowercase)
        self.lookup = keras.layers.StringLookup(
            vocabulary=vocabulary, mask_token=PADDING_TOKEN, oov_token=OOV_TOKEN, output_mode="int",
        )
        self._words = tf.constant([PADDING_TOKEN, OOV_TOKEN] + vocabulary)
        self._ids = {word: i + 2 for i, word in enumerate(vocabulary)}

    @property
    def pad_token_id(self):
        return 0

    @property
    def unk_token_id(self):
        return 1

    @property
    def end_of_line_id(self):
        """Id of ``</S>``, the token after every line of the LM stream; None if the vocabulary lacks it."""
        return self.token_to_id(END_OF_LINE) if END_OF_LINE in self.vocabulary else None

    def vocabulary_size(self):
        """Number of ids: the vocabulary plus padding and ``[UNK]``."""
        return len(self.vocabulary) + 2

    def token_to_id(self, token):
        """The id of ``token`` (1 for a word outside the vocabulary)."""
        if token == PADDING_TOKEN:
            return 0
        return self._ids.get(token, 1)

    def id_to_token(self, i):
        """The word of id ``i`` ("" for padding, "[UNK]" for 1)."""
        if not 0 <= i < self.vocabulary_size():
            raise ValueError(f"word id {i} is outside the vocabulary's [0, {self.vocabulary_size()})")
        return ([PADDING_TOKEN, OOV_TOKEN] + self.vocabulary)[i]

    def call(self, strings):
        """Raw strings ``(batch,)`` -> ragged int32 word ids ``(batch, None)``."""
        words = word_tokens(strings, self.lowercase)  # (batch, None) strings
        return tf.ragged.map_flat_values(lambda w: tf.cast(self.lookup(w), tf.int32), words)

    def detokenize(self, ids):
        """Word ids ``(batch, time)`` (dense or ragged) -> strings, words joined by spaces, padding dropped."""
        ids = tf.convert_to_tensor(ids) if not isinstance(ids, tf.RaggedTensor) else ids
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, padding=0)
        words = tf.ragged.map_flat_values(lambda i: tf.gather(self._words, tf.cast(i, tf.int32)), ids)
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def compute_output_spec(self, strings):
        return keras.KerasTensor((strings.shape[0], None), dtype="int32", ragged=True)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, lowercase=self.lowercase)
        return config


def build_word_vocabulary(paths, min_count=2, max_size=60000, lowercase=True, batch_size=1024):
    """The words of text files by falling frequency, ``</S>`` first: a `WordTokenizer` vocabulary.

    Streams the files with `tfpretrain.text.streams.text_lines` (plain text, one
    line per text, or CoNLL-U ``# text =`` lines), splits them with
    `word_tokens` in the graph a batch of lines at a time, and counts in
    Python; only the counts are held in memory.

    Args:
        paths: list of text or CoNLL-U files.
        min_count: int, default 2 (ULMFiT's). Rarer words map to ``[UNK]``.
        max_size: int or None, default 60000 (ULMFiT's). Most words kept,
            ``</S>`` not counted.
        lowercase: bool, default True. Must match the `WordTokenizer`'s.
        batch_size: int. Lines tokenised per step.

    Returns:
        list of str: ``["</S>", most frequent word, ...]``.

    Raises:
        ValueError: if no word reaches ``min_count``.

    Example:

    >>> vocabulary = build_word_vocabulary(["ud_english_ewt/train.conllu"], min_count=2)
    >>> vocabulary[:4]
    ['</S>', '.', 'the', ',']
    """
    words = text_lines(paths).batch(batch_size).map(lambda lines: word_tokens(lines, lowercase).flat_values)

    def token_lists():
        for flat in words.as_numpy_iterator():
            yield [w.decode("utf-8") for w in flat]

    vocabulary = build_vocabulary(token_lists(), min_count=min_count, max_size=max_size, reserved=WORD_LM_RESERVED)
    if len(vocabulary) == len(WORD_LM_RESERVED):
        raise ValueError(
            f"no word occurs {min_count} or more times in {', '.join(map(str, paths))}; lower min_count "
            "or give more text"
        )
    return vocabulary


def build_text_vocabulary(texts, min_count=2, max_size=None, lowercase=True):
    """A `WordTokenizer` vocabulary of a list of texts (a classifier trained from scratch): ``</S>``, then by frequency.

    As `build_word_vocabulary`, for texts in memory rather than files.

    Example:

    >>> build_text_vocabulary(["a fine film", "a dull film"], min_count=2)
    ['</S>', 'a', 'film']
    """
    tokens = word_tokens(tf.constant(list(texts)), lowercase).to_list()
    words = ([w.decode("utf-8") for w in row] for row in tokens)
    vocabulary = build_vocabulary(words, min_count=min_count, max_size=max_size, reserved=WORD_LM_RESERVED)
    if len(vocabulary) == len(WORD_LM_RESERVED):
        raise ValueError(f"no word occurs {min_count} or more times in the training texts; lower min_count")
    return vocabulary


def word_lm_dataset(paths, vocabulary, sequence_length=70, batch_size=32, split="train", heldout_every=20,
                    lowercase=True, shuffle_buffer=1000, seed=0, repeat=None):
    """Batches of ``(token_ids, next_ids, weights)`` for a word-level LM, streamed from text files.

    The lines' word ids, each line followed by ``</S>``, form one continuous
    stream cut into windows of ``sequence_length + 1`` words
    (`tfpretrain.text.streams.next_token_windows`, as GPT's
    `tfpretrain.models.gpt.causal_lm_dataset`): ``token_ids`` are a
    window's first ``sequence_length`` words, ``next_ids`` the word after each
    of them. Windows do not overlap (the first word of a window is never a
    target) and start anywhere in a line; the tail that fills no window is
    dropped. A repeating dataset has static shapes (whole batches only); a
    single pass keeps its last, smaller batch, so that a small held-out set
    still yields its windows. Everything after the reader runs in the graph.

    Args:
        paths: list of plain-text files (one text per line) or CoNLL-U files
            (their ``# text =`` lines); bad input raises a `DataFormatError`
            naming path:line when the reader reaches it.
        vocabulary: list of str with ``</S>`` (`build_word_vocabulary`), or a
            `WordTokenizer`.
        sequence_length: int, default 70 (AWD-LSTM's BPTT length).
        batch_size: int, default 32.
        split: ``"train"`` (all lines but every ``heldout_every``-th),
            ``"heldout"`` (only those) or ``"all"``.
        heldout_every: int, default 20 (5% held out).
        lowercase: bool, default True (ignored when ``vocabulary`` is a
            `WordTokenizer`, which carries its own).
        shuffle_buffer: int, default 1000. Windows in the shuffle buffer (0: in
            corpus order; ``"heldout"`` is never shuffled).
        seed: int, default 0. Shuffle seed: the same arguments give the same batches.
        repeat: bool or None. Cycle over the files forever; None (default):
            True except for ``split="heldout"`` (one pass, for validation).

    Returns:
        a `tf.data.Dataset` of ``(token_ids, next_ids, weights)``: int32
        ``(batch, sequence_length)`` ids and float32 ones.

    Raises:
        ValueError: a vocabulary without ``</S>``, a bad ``split`` or ``sequence_length``.

    Example:

    >>> train = word_lm_dataset(paths, vocabulary, split="train")
    >>> heldout = word_lm_dataset(paths, vocabulary, split="heldout")
    >>> lm.fit(train, validation_data=heldout, steps_per_epoch=500, epochs=3)  # report val_perplexity

    References:
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models (word-level corpora as one stream of words, ``<eos>`` after each line).
    """
    tokenizer = vocabulary if isinstance(vocabulary, WordTokenizer) else WordTokenizer(vocabulary, lowercase)
    if tokenizer.end_of_line_id is None:
        raise ValueError(
            f"the vocabulary has no {END_OF_LINE!r}, the token that ends every line of the stream; build it with "
            "build_word_vocabulary (which puts it first)"
        )
    if repeat is None:
        repeat = split != "heldout"
    windows = next_token_windows(paths, tokenizer, sequence_length, batch_size, tokenizer.end_of_line_id, split,
                                 heldout_every, repeat, shuffle_buffer, seed, drop_remainder=repeat)

    def make_example(token_ids, next_ids):  # (batch, sequence_length) each
        return token_ids, next_ids, tf.ones_like(next_ids, tf.float32)

    return windows.map(make_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def classifier_token_ids(tokenizer, texts, sequence_length):
    """The classifier's input: each text's first ``sequence_length`` word ids, and whether words were cut.

    The one encoding of texts for ULMFiT's classifier: `classification_dataset`
    (training, evaluation, prediction) and the exported SavedModel
    (`tfpretrain.export.classifier_modules.UlmfitClassifierModule`) both call it.

    Args:
        tokenizer: a `WordTokenizer`.
        texts: string tensor ``(batch,)``.
        sequence_length: int. Words kept per text.

    Returns:
        ``(token_ids, truncated)``: ragged int32 ``(batch, None)`` with at most
        ``sequence_length`` ids a row, and bool ``(batch,)``, True where the
        text had more words.

    Example:

    >>> token_ids, truncated = classifier_token_ids(tokenizer, tf.constant(["a fine film", "film"]), 2)
    >>> token_ids.to_list(), truncated.numpy().tolist()
    ([[3, 4], [5]], [True, False])
    """
    token_ids = tokenizer(texts)  # (batch, None)
    truncated = token_ids.row_lengths() > sequence_length  # (batch,)
    return token_ids[:, :sequence_length], truncated


def classification_dataset(texts, label_ids, tokenizer, batch_size=32, sequence_length=128, shuffle=False,
                           seed=0, bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES, static_shapes=False):
    """Batches of ``(token_ids, label_ids)``: texts as word ids (0-padded, at most ``sequence_length``).

    With ``shuffle`` (training) the texts are shuffled every epoch and batched
    with texts of similar length (less padding); otherwise batches keep the
    input order. Tokenisation runs in the graph (`WordTokenizer`).

    Args:
        texts: list of str. label_ids: list of int, or None (no labels: the
            dataset yields token ids alone).
        tokenizer: a `WordTokenizer`.
        static_shapes: bool. Every batch ``(batch_size, length)`` with
            ``length`` a bucket boundary or ``sequence_length``, for XLA and
            TPUs (`tfpretrain.text.buckets`). Batches are then ``(token_ids,
            label_ids, sample_weights)``: the rows that fill a short batch
            have label -1 and weight 0 (compile the loss with
            ``ignore_class=-1``, as ``tfpretrain ulmfit`` does).

    Example:

    >>> data = classification_dataset(["a fine film", "dull"], [1, 0], tokenizer, batch_size=2)
    >>> token_ids, label_ids = next(iter(data))  # (2, 3) int32, (2,) int32
    """
    texts = tf.constant(list(texts), dtype=tf.string)
    labels = tf.constant(list(label_ids) if label_ids is not None else [0] * int(texts.shape[0]), tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    if not shuffle and not static_shapes:
        dataset = dataset.batch(batch_size).map(
            lambda text, label: (classifier_token_ids(tokenizer, text, sequence_length)[0].to_tensor(), label))
    elif not shuffle:  # input order, static shapes

        def encode_in_order(text, label):
            ids, _ = classifier_token_ids(tokenizer, text, sequence_length)
            real, ids = pad_to_bucket(ids, bucket_boundaries, sequence_length, batch_size)
            _, (label,) = fill_batch(batch_size, (label,))
            return real, ids, label

        dataset = dataset.batch(batch_size).map(encode_in_order)
    else:
        dataset = dataset.shuffle(int(texts.shape[0]), seed=seed, reshuffle_each_iteration=True)

        def encode(text, label):  # a batch of texts -> padded ids and lengths, for unbatching row by row
            ids, _ = classifier_token_ids(tokenizer, text, sequence_length)
            return ids.to_tensor(), ids.row_lengths(), label

        dataset = dataset.batch(1024).map(encode).unbatch().map(lambda ids, length, label: (ids[:length], label))
        dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, (0, 0), static_shapes, sequence_length)
    if static_shapes:
        dataset = dataset.map(lambda real, ids, label: (ids, tf.where(real, label, -1), tf.cast(real, "float32")))
    elif shuffle:  # every row of a dynamic batch is real
        dataset = dataset.map(lambda real, ids, label: (ids, label))
    if label_ids is None:
        dataset = dataset.map(lambda ids, *rest: ids)
    return dataset.prefetch(tf.data.AUTOTUNE)


def classification_batch_count(texts, tokenizer, batch_size, sequence_length,
                               bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES):
    """Batches per epoch of the shuffled `classification_dataset`: each bucket's texts / batch_size, rounded up."""
    token_ids, _ = classifier_token_ids(tokenizer, tf.constant(list(texts)), sequence_length)
    lengths = token_ids.row_lengths().numpy()
    counts = np.bincount(bucket_of(lengths, [b for b in bucket_boundaries if b > 0]))
    return int(sum(math.ceil(count / batch_size) for count in counts))
