"""A pretrained encoder's layers as a tagger's word features (the feature-based approach), and their cache.

BERT's paper (section 5.4) and flair tag with a frozen encoder: each word's
vector is read from a combination of the encoder's layers and feeds a
BiLSTM-CRF tagger. Frozen features need computing only once, so training
runs on the tagger alone.

- `EncoderFeatures`: the frozen part. Packed word pieces in, a stack of the
  layers that ``combination`` needs out, one row per word (its first piece, or
  the mean of its pieces), aligned with the tagger's words.
- `combine_layers`: the trained part that turns that stack into one vector per
  word (a reshape, or a learned `tfpretrain.layers.ScalarMix`). It lives in the
  tagger, after the cache.
- `FeatureCache`: every sentence's stack computed once, in memory or in a
  ``.npy`` file on disk, read back by `tfpretrain.models.tagger.tagging_dataset`.

Example:

>>> features = EncoderFeatures(encoder, combination="concat_last_four")
>>> cache = FeatureCache.compute(features, preprocessor, train_sentences)
>>> dataset = tagging_dataset(train_sentences, preprocessor, features=cache)
"""

import glob
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfpretrain.models.bert.embedder import LAYER_COMBINATIONS, from_encoder_config

SUBWORD_POOLINGS = ("first", "mean")
CACHE_STORAGES = ("auto", "memory", "disk")
CACHE_DTYPES = ("float32", "float16")
#: With storage "auto", a cache larger than this share of the available memory goes to disk.
MEMORY_SHARE = 0.5


def stacked_layers(combination, num_layers):
    """How many layers `EncoderFeatures` stacks for ``combination`` on an encoder of ``num_layers`` layers.

    >>> stacked_layers("concat_last_four", 6), stacked_layers("sum_last_four", 6), stacked_layers("scalar_mix", 6)
    (4, 1, 7)
    """
    if combination not in LAYER_COMBINATIONS:
        raise ValueError(f"unknown layer combination {combination!r}; choose one of {', '.join(LAYER_COMBINATIONS)}")
    if combination in ("sum_last_four", "concat_last_four") and num_layers < 4:
        raise ValueError(f"{combination!r} needs an encoder with at least 4 layers; this one has {num_layers}")
    if combination == "second_to_last" and num_layers < 1:
        raise ValueError("'second_to_last' needs an encoder with at least 1 layer")
    return {"concat_last_four": 4, "scalar_mix": num_layers + 1}.get(combination, 1)


def select_layers(hidden_states, combination):
    """The layers ``combination`` reads, stacked on a new axis 2: list of (batch, seq, dim) -> (batch, seq, K, dim).

    "sum_last_four" sums before stacking (K = 1); "scalar_mix" keeps every
    layer, the embeddings included, for a learned mix after the cache.
    """
    if combination == "last":
        chosen = [hidden_states[-1]]
    elif combination == "second_to_last":
        chosen = [hidden_states[-2]]
    elif combination == "sum_last_four":
        chosen = [ops.sum(ops.stack(hidden_states[-4:], axis=0), axis=0)]
    elif combination == "concat_last_four":
        chosen = hidden_states[-4:]
    else:
        chosen = hidden_states
    return ops.stack(chosen, axis=2)


def pool_word_pieces(sequence, word_positions, word_mask, padding_mask, pooling="first"):
    """One vector per word from its pieces' vectors: its first piece, or the mean of its pieces.

    Dense ops only (a one-hot matrix of words by pieces), so the graph
    converts to TFLite. A word's pieces run from its position up to the next
    kept word's, the last kept word's up to ``[SEP]``.

    Args:
        sequence: (batch, seq, dim) piece vectors (``[CLS]`` first).
        word_positions: int (batch, words), as `tfpretrain.text.pack_words` gives them.
        word_mask: bool or int (batch, words): the word is in the sequence.
        padding_mask: bool or int (batch, seq): 1 at real pieces.
        pooling: "first" or "mean".

    Returns:
        (batch, words, dim), zero where ``word_mask`` is False.

    Example:

    >>> sequence = tf.constant([[[0.], [1.], [2.], [4.], [9.]]])  # [CLS] a b1 b2 [SEP]
    >>> pool_word_pieces(sequence, tf.constant([[1, 2]]), tf.constant([[1, 1]]), tf.ones([1, 5]), "mean")[..., 0]
    <tf.Tensor: shape=(1, 2), dtype=float32, numpy=array([[1., 3.]], dtype=float32)>
    """
    if pooling not in SUBWORD_POOLINGS:
        raise ValueError(f"unknown sub-word pooling {pooling!r}; choose one of {', '.join(SUBWORD_POOLINGS)}")
    positions = ops.cast(word_positions, "int32")
    kept = ops.cast(word_mask, "int32")  # (batch, words)
    if pooling == "first":
        vectors = ops.take_along_axis(sequence, ops.expand_dims(positions, -1), axis=1)
        return vectors * ops.cast(ops.expand_dims(kept, -1), sequence.dtype)
    sep = ops.sum(ops.cast(padding_mask, "int32"), axis=1, keepdims=True) - 1  # (batch, 1): [SEP]'s position
    following = ops.concatenate([positions[:, 1:], ops.zeros_like(positions[:, :1])], axis=1)
    following_kept = ops.concatenate([kept[:, 1:], ops.zeros_like(kept[:, :1])], axis=1)
    ends = ops.where(following_kept > 0, following, sep)  # (batch, words): one past the word's last piece
    piece = ops.arange(ops.shape(sequence)[1], dtype="int32")[None, None, :]  # (1, 1, seq)
    member = (piece >= positions[..., None]) & (piece < ends[..., None]) & (kept[..., None] > 0)
    weights = ops.cast(member, sequence.dtype)  # (batch, words, seq)
    counts = ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)
    return ops.matmul(weights / counts, sequence)


def align_words(vectors, num_words):
    """Pads or cuts axis 1 of ``vectors`` to ``num_words`` (the tagger's words; slots beyond the packed ones are zero)."""
    vectors = vectors[:, :num_words]
    missing = num_words - ops.shape(vectors)[1]
    return ops.pad(vectors, [[0, 0], [0, missing]] + [[0, 0]] * (len(vectors.shape) - 2))


@keras.saving.register_keras_serializable(package="tfpretrain")
class EncoderFeatures(keras.layers.Layer):
    """The frozen half of a feature-based tagger: a BERT encoder's chosen layers, one row per word.

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder`.
        combination: str, default "last". One of "last", "second_to_last",
            "sum_last_four", "concat_last_four", "scalar_mix" (see
            `tfpretrain.models.bert.BertEmbedder`); `stacked_layers` says how
            many layers the output stacks.
        subword_pooling: "first" (BERT's NER setup, flair's default) or "mean".
        train_encoder: bool, default False. Fine-tune the encoder with the tagger
            (then no cache applies).

    Inputs: a dict with ``token_ids``, ``segment_ids``, ``padding_mask``
    (batch, pieces), ``word_positions``, ``word_mask`` (batch, slots), as
    `tfpretrain.models.bert.preprocessor.encode_words` packs them, and
    ``word_ids`` (batch, words): the tagger's words, whose count the output follows.

    Output: (batch, words, K, hidden_dim), zero at words that truncation cut
    from the pieces and at padding.

    Example:

    >>> features = EncoderFeatures(encoder, "concat_last_four")
    >>> features(preprocessor(tokens))  # an `EncoderTaggingPreprocessor`'s output
    """

    def __init__(self, encoder, combination="last", subword_pooling="first", train_encoder=False, **kwargs):
        super().__init__(**kwargs)
        self.num_stacked = stacked_layers(combination, encoder.num_layers)
        if subword_pooling not in SUBWORD_POOLINGS:
            raise ValueError(f"unknown sub-word pooling {subword_pooling!r}; choose one of {', '.join(SUBWORD_POOLINGS)}")
        self.encoder = encoder
        self.combination = combination
        self.subword_pooling = subword_pooling
        self.train_encoder = bool(train_encoder)
        encoder.trainable = self.train_encoder
        if self.train_encoder and getattr(encoder, "pooler", None) is not None:
            encoder.pooler.trainable = False  # the [CLS] pooler feeds no word: no gradient-less variables
        self.hidden_dim = encoder.hidden_dim

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")},
                               training=training if self.train_encoder else False)
        stack = select_layers(list(outputs["hidden_states"]), self.combination)  # (batch, seq, K, hidden)
        batch, seq = ops.shape(stack)[0], ops.shape(stack)[1]
        flat = ops.reshape(stack, (batch, seq, self.num_stacked * self.hidden_dim))
        words = pool_word_pieces(flat, inputs["word_positions"], inputs["word_mask"], inputs["padding_mask"],
                                 self.subword_pooling)  # (batch, slots, K * hidden)
        words = align_words(words, ops.shape(inputs["word_ids"])[1])
        return ops.reshape(words, (batch, -1, self.num_stacked, self.hidden_dim))

    def compute_output_spec(self, inputs, training=None):
        batch, words = inputs["word_ids"].shape
        return keras.KerasTensor((batch, words, self.num_stacked, self.hidden_dim), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"encoder": keras.saving.serialize_keras_object(self.encoder), "combination": self.combination,
                       "subword_pooling": self.subword_pooling, "train_encoder": self.train_encoder})
        return config

    @classmethod
    def from_config(cls, config):
        return from_encoder_config(cls, config)


def combine_layers(stack, combination, name="encoder_layers"):
    """The trained half: (batch, words, K, dim) -> (batch, words, K * dim), or a learned `ScalarMix` of the K layers."""
    num_stacked, dim = stack.shape[2], stack.shape[3]
    if combination == "scalar_mix":
        from tfpretrain.layers import ScalarMix

        by_layer = keras.layers.Permute((2, 1, 3), name=f"{name}_by_layer")(stack)  # (batch, K, words, dim)
        return ScalarMix(num_stacked, name="scalar_mix")(by_layer)
    return keras.layers.Reshape((-1, num_stacked * dim), name=name)(stack)


# ---------------------------------------------------------------------------
# The cache


def available_memory_bytes():
    """The memory the kernel says is available (MemAvailable), or None where /proc/meminfo is missing."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class FeatureCache:
    """Every sentence's `EncoderFeatures` output, computed once and read back by sentence index.

    The rows are one flat array ``(words in all sentences, K, dim)`` with
    ``offsets`` (sentences + 1,): sentence ``i`` is ``array[offsets[i]:offsets[i + 1]]``.
    The array is in memory or a ``.npy`` file opened as a memory map
    (``storage``); pages the training does not touch stay on disk.

    Args:
        array: numpy array or memory map ``(words, K, dim)``.
        offsets: int64 numpy array ``(sentences + 1,)``.
        path: the ``.npy`` file behind a disk cache (None in memory).
    """

    def __init__(self, array, offsets, path=None):
        self.array = array
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.path = path

    @property
    def num_sentences(self):
        return len(self.offsets) - 1

    @property
    def nbytes(self):
        return int(self.array.nbytes)

    @property
    def storage(self):
        return "memory" if self.path is None else "disk"

    def rows(self, index):
        """The features of sentence ``index`` as a float32 numpy array ``(words, K, dim)``."""
        index = int(index)
        return np.asarray(self.array[self.offsets[index] : self.offsets[index + 1]], dtype=np.float32)

    def lookup(self, index):
        """In a tf.data graph: sentence ``index`` (scalar int64) -> float32 (words, K, dim)."""
        rows = tf.numpy_function(self.rows, [index], tf.float32, stateful=False)
        return tf.ensure_shape(rows, [None] + list(self.array.shape[1:]))

    @classmethod
    def compute(cls, features, preprocessor, sentences, batch_size=32, dtype="float32", storage="auto",
                directory=None, log=print, progress="lines"):
        """Runs ``features`` (an `EncoderFeatures`) once over ``sentences``' tokens and keeps the rows.

        Args:
            features: an `EncoderFeatures` (frozen).
            preprocessor: the tagger's `EncoderTaggingPreprocessor`.
            sentences: list of objects with ``tokens``.
            batch_size: int. Sentences per encoder call (length-sorted, so little padding).
            dtype: "float32" or "float16". float16 halves the memory; the
                tagger reads the rows back as float32.
            storage: "memory", "disk" or "auto": memory when the cache takes at
                most half the available memory (`MEMORY_SHARE`), else disk.
            directory: where a disk cache's ``.npy`` file goes (required for
                "disk"; the ``features-*.npy`` files a killed run left there are
                removed first).
            log: callable for the line that says where the cache goes (and
                the progress lines).
            progress: "bar" (a Keras progress bar on stderr, for a terminal),
                "lines" (a line through ``log`` at every tenth of the
                sentences, for logs), or None.

        Returns:
            A `FeatureCache`.
        """
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"unknown cache dtype {dtype!r}; choose one of {', '.join(CACHE_DTYPES)}")
        if storage not in CACHE_STORAGES:
            raise ValueError(f"unknown cache storage {storage!r}; choose one of {', '.join(CACHE_STORAGES)}")
        lengths = np.array([len(s.tokens) for s in sentences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        shape = (int(offsets[-1]), features.num_stacked, features.hidden_dim)
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if storage == "auto":
            available = available_memory_bytes()
            storage = "memory" if available is None or nbytes <= MEMORY_SHARE * available else "disk"
        path = None
        if storage == "disk":
            if directory is None:
                raise ValueError("a disk cache needs a directory")
            os.makedirs(directory, exist_ok=True)
            for stale in glob.glob(os.path.join(directory, "features-*.npy")):  # left by a killed run
                os.remove(stale)
            path = os.path.join(directory, f"features-{os.getpid()}-{time.monotonic_ns()}.npy")
            array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        else:
            array = np.empty(shape, dtype=dtype)
        log(f"Computing the encoder's features of {len(sentences):,} sentences once "
            f"({shape[0]:,} words x {shape[1]} layers x {shape[2]}, {dtype}, {nbytes / 2**20:,.0f} MiB "
            f"{'in memory' if path is None else 'in ' + path})")
        encode = tf.function(lambda tokens: features(preprocessor(tokens), training=False),
                             input_signature=[tf.TensorSpec([None, None], tf.string)])
        order = np.argsort(lengths, kind="stable")
        if progress not in ("bar", "lines", None):
            raise ValueError(f"progress must be 'bar', 'lines' or None, got {progress!r}")
        bar = keras.utils.Progbar(len(sentences), unit_name="sentence") if progress == "bar" else None
        done, started, next_line = 0, time.perf_counter(), 0.1
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            width = max(1, int(lengths[indices].max()))
            tokens = [list(sentences[i].tokens) + [""] * (width - len(sentences[i].tokens)) for i in indices]
            rows = encode(tf.constant(tokens, tf.string)).numpy()  # (batch, width, K, dim)
            for row, i in enumerate(indices):
                array[offsets[i] : offsets[i + 1]] = rows[row, : lengths[i]]
            done += len(indices)
            if bar is not None:
                with _stderr_as_stdout():
                    bar.update(done)
            elif progress == "lines" and done >= next_line * len(sentences):
                log(f"  features of {done:,} / {len(sentences):,} sentences "
                    f"({done / max(time.perf_counter() - started, 1e-9):,.0f} sentences/s)")
                next_line = min(1.0, done / len(sentences) + 0.1)
        if path is not None:
            array.flush()
        return cls(array, offsets, path)

    def close(self):
        """Deletes a disk cache's file (a memory cache is left to the garbage collector)."""
        if self.path is not None:
            self.array = None
            try:
                os.remove(self.path)
            except OSError:
                pass


class _stderr_as_stdout:
    """Keras' Progbar writes to stdout; the CLI keeps stdout for its JSON answer, so the bar goes to stderr."""

    def __enter__(self):
        self.stdout = sys.stdout
        sys.stdout = sys.stderr

    def __exit__(self, *exc):
        sys.stdout = self.stdout
