"""The tagger's preprocessor: raw text or tokens -> the word and character ids a `CRFTagger` reads, in the graph.

`TaggingPreprocessor` is the one path from tokens to model inputs (and from
tags to tag ids) for training (`tagging_dataset`), evaluation, prediction
(`text_dataset`) and the exported `tfpretrain.export.TaggingModule`.

Example:

>>> from tfpretrain.models.tagger import TaggingPreprocessor, tagging_dataset
>>> pre = TaggingPreprocessor(words, tags)
>>> model.fit(tagging_dataset(train, pre, shuffle=True), epochs=5)
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES, bucket_by_length
from tfpretrain.text.characters import BEGIN_OF_WORD, char_ids
from tfpretrain.text.tokenizer import tokenize
from tfpretrain.text.vocabulary import OOV_TOKEN, PADDING_TOKEN

# Whole-word lookup with FastWordpieceTokenizer: no vocabulary entry starts with this
# continuation prefix, so a word is either found whole or is [UNK] (one piece either way).
_NO_CONTINUATION = "\x03"


@functools.lru_cache(maxsize=None)
def _lowercase():  # made on first use (devices stay configurable until then), eagerly even inside a trace
    with tf.init_scope():
        return tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=True)


def word_keys(words, lowercase=True):
    """The form under which a tagger looks words up: with ``lowercase``, case-folded without accents.

    Lower-casing is tensorflow-text's `FastBertNormalizer` (NFD, accents
    removed, case-folded: "Café" and "CAFE" are both "cafe"), which has a
    TFLite kernel; vocabularies are built from the same keys.

    >>> word_keys(tf.constant(["Café", "ÉCOLE", "naïve"])).numpy()
    array([b'cafe', b'ecole', b'naive'], dtype=object)
    """
    words = tf.convert_to_tensor(words, dtype=tf.string)
    return _lowercase().normalize(words) if lowercase else words


def keys_of(token_lists, lowercase=True):
    """The `word_keys` of every token in ``token_lists``, one flat list of str (to build a vocabulary from)."""
    tokens = [token for tokens in token_lists for token in tokens]
    if not tokens:
        return []
    return [key.decode("utf-8", "replace") for key in word_keys(tf.constant(tokens), lowercase).numpy()]


@keras.saving.register_keras_serializable(package="tfpretrain")
class TaggingPreprocessor(keras.layers.Layer):
    """Turns tokens into ``{"word_ids", "char_ids"}`` and tags into tag ids.

    Word id 0 is padding (the empty string), 1 is out-of-vocabulary, and
    ``word_vocabulary[i]`` is ``i + 2``. Words are looked up by their
    `word_keys` (case-folded, accents removed, when ``lowercase``; characters
    keep their case). Every op converts to TFLite (the lookup is a whole-word
    `tf_text.FastWordpieceTokenizer`, not a hash table). Tag ids index ``tags``;
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

    >>> pre = tfpretrain.models.tagger.TaggingPreprocessor(["the", "cat"], ["O", "B-ANIMAL"])
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
        starts_like_piece = [w for w in self.word_vocabulary if w.startswith(_NO_CONTINUATION)]
        if starts_like_piece or len(set(self.word_vocabulary)) != len(self.word_vocabulary):
            raise ValueError("word_vocabulary must hold distinct words, none starting with \\x03; got "
                             f"{starts_like_piece[:3] or 'repeated words'}")
        if len(set(self.tags)) != len(self.tags) or PADDING_TOKEN in self.tags:
            raise ValueError(f"tags must be distinct and non-empty, got {self.tags}")
        self.max_chars_per_token = int(max_chars_per_token)
        self.lowercase = bool(lowercase)
        self._word_pieces = tf_text.FastWordpieceTokenizer(
            vocab=[OOV_TOKEN] + self.word_vocabulary, suffix_indicator=_NO_CONTINUATION, unknown_token=OOV_TOKEN,
            no_pretokenization=True, token_out_type=tf.int32, max_bytes_per_word=1 << 30,
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
        chars = char_ids(tokens, self.max_chars_per_token)  # (batch, time, chars)
        return {"word_ids": self.word_ids(tokens, chars[..., 0] == BEGIN_OF_WORD), "char_ids": chars}

    def word_ids(self, tokens, nonempty):
        """Dense tokens -> int32 word ids; ``nonempty`` (bool, same shape) marks the non-padding tokens."""
        flat = tf.reshape(word_keys(tokens, self.lowercase), [-1])
        # One piece per non-empty key: 0 ([UNK]) or 1 + the word's index.
        pieces = self._word_pieces.tokenize(flat).to_tensor(default_value=0, shape=[None, 1])
        ids = tf.reshape(pieces + 1, tf.shape(tokens))  # 1 = OOV, i + 2 = word_vocabulary[i]
        return tf.where(nonempty, ids, 0)

    def tag_ids(self, tags):
        """Tag strings (dense or ragged) -> int32 ids, -1 for padding and unknown tags."""
        if isinstance(tags, tf.RaggedTensor):
            tags = tags.to_tensor(default_value=PADDING_TOKEN)
        tags = tf.convert_to_tensor(tags, dtype=tf.string)
        matches = tf.equal(tags[..., None], tf.constant(self.tags))  # (..., num_tags); no hash table to export
        return tf.where(tf.reduce_any(matches, axis=-1), tf.argmax(matches, axis=-1, output_type=tf.int32), -1)

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


@keras.saving.register_keras_serializable(package="tfpretrain")
class EncoderTaggingPreprocessor(TaggingPreprocessor):
    """A `TaggingPreprocessor` that also packs each sentence's words into a BERT encoder's word pieces.

    Its outputs are the tagger's ``word_ids`` and ``char_ids`` plus
    ``token_ids``, ``segment_ids``, ``padding_mask`` (batch, pieces) and
    ``word_positions``, ``word_mask`` (batch, slots), int32, packed by
    `tfpretrain.models.bert.preprocessor.encode_words` (one slot per word,
    read at its pieces) and cut to the batch's longest sentence
    (`tfpretrain.models.bert.preprocessor.cut_padding`): what
    `tfpretrain.models.tagger.features.EncoderFeatures` reads. Words beyond
    ``sequence_length`` pieces get no slot; their encoder features are zero
    and the tagger still tags them from its other features.

    Args:
        word_vocabulary, tags, max_chars_per_token, lowercase: as `TaggingPreprocessor`.
        tokenizer: the encoder's `tfpretrain.text.WordPieceTokenizer`.
        sequence_length: int. Pieces per sentence, ``[CLS]`` and ``[SEP]`` included.

    Example:

    >>> encoder, tokenizer = tfpretrain.models.bert.load_bert("runs/minilm")
    >>> pre = EncoderTaggingPreprocessor(["the"], ["O", "B-PER"], tokenizer, 128)
    >>> sorted(pre(tf.constant([["The", "cat"]])))
    ['char_ids', 'padding_mask', 'segment_ids', 'token_ids', 'word_ids', 'word_mask', 'word_positions']
    """

    def __init__(self, word_vocabulary, tags, tokenizer, sequence_length, **kwargs):
        super().__init__(word_vocabulary, tags, **kwargs)
        if isinstance(tokenizer, dict):  # from a config
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        if self.sequence_length < 3:
            raise ValueError(f"sequence_length must be at least 3 ([CLS], a piece, [SEP]); got {sequence_length}")

    def call(self, tokens):
        features = super().call(tokens)
        features.update(self.encoder_inputs(tokens))
        return features

    def with_tokenizer(self, tokenizer):
        """The same preprocessor with another tokenizer (e.g. one with a TFLite-convertible normaliser)."""
        config = self.get_config()
        config["tokenizer"] = tokenizer
        return EncoderTaggingPreprocessor.from_config(config)

    def encoder_inputs(self, tokens):
        """Dense tokens (batch, time), padded with "" -> the encoder's packed int32 inputs."""
        from tfpretrain.models.bert.preprocessor import cut_padding, encode_words

        if isinstance(tokens, tf.RaggedTensor):
            tokens = tokens.to_tensor(default_value=PADDING_TOKEN)
        tokens = tf.convert_to_tensor(tokens, dtype=tf.string)
        words = tf.RaggedTensor.from_tensor(tokens, padding=PADDING_TOKEN)
        packed, _ = encode_words(self.tokenizer, words, self.sequence_length)
        return {name: tf.cast(value, tf.int32) for name, value in cut_padding(packed, self.sequence_length).items()}

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.saving.serialize_keras_object(self.tokenizer),
                      sequence_length=self.sequence_length)
        return config


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
    features=None,
):
    """Batches of ``({"word_ids", "char_ids"}, tag_ids)`` from tagged sentences.

    Sentences are grouped by length (bucketing keeps padding small), padded,
    and turned into ids by ``preprocessor`` inside the graph. Tag ids are -1 at
    padded steps.

    Args:
        sentences: list of `tfpretrain.text.TaggedSentence` (or objects with
            ``tokens`` and ``tags``).
        preprocessor: a `TaggingPreprocessor`.
        batch_size: int. Sentences per batch.
        shuffle: bool. Shuffle sentences each epoch (before bucketing).
        seed: int or None. Shuffle seed.
        bucket_boundaries: sequence of ints, the length buckets.
        static_shapes: bool. Every batch ``(batch_size, length)`` with
            ``length`` a bucket boundary or the longest sentence, for XLA and
            TPUs (`tfpretrain.text.buckets`); the rows that fill a bucket's
            last batch have tag ids -1 throughout, so that the loss and the
            metrics ignore them.
        features: a `tfpretrain.models.tagger.features.FeatureCache` of
            ``sentences`` or None. With a cache, each batch carries its rows as
            ``"features"`` (batch, time, K, dim) float32 (0 at padding) in place of
            the encoder's packed inputs: the input of a feature tagger's head
            (`tfpretrain.models.tagger.build_tagger` with ``features``).

    Example:

    >>> ds = tagging_dataset(read_conllu("dev.conllu"), preprocessor, batch_size=16)
    >>> features, tag_ids = next(iter(ds))
    """
    dataset = tf.data.Dataset.range(len(sentences))
    if shuffle:
        dataset = dataset.shuffle(max(1, len(sentences)), seed=seed, reshuffle_each_iteration=True)
    slicer = _sentence_slicer([s.tokens for s in sentences], [s.tags for s in sentences])
    padding = (PADDING_TOKEN, PADDING_TOKEN)
    if features is None:
        dataset = dataset.map(slicer)
    else:
        if features.num_sentences != len(sentences):
            raise ValueError(f"the feature cache holds {features.num_sentences} sentences, not {len(sentences)}")
        dataset = dataset.map(lambda i: slicer(i) + (features.lookup(i),))
        padding += (0.0,)
    longest = max((len(s.tokens) for s in sentences), default=1)
    dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, padding, static_shapes, sequence_length=longest)

    def prepare(real, tokens, tags, *cached):
        inputs = TaggingPreprocessor.call(preprocessor, tokens) if cached else preprocessor(tokens)
        if cached:
            inputs["features"] = cached[0]
        return inputs, tf.where(real[:, None], preprocessor.tag_ids(tags), -1)

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def text_dataset(texts, preprocessor, batch_size=32):
    """Batches of ``(tokens, {"word_ids", "char_ids"})`` for raw strings, in input order.

    Example:

    >>> tokens, features = next(iter(text_dataset(["The cat sat ."], preprocessor)))
    """
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
    dataset = dataset.batch(batch_size)

    def prepare(batch):
        tokens = tokenize(batch).to_tensor(default_value=PADDING_TOKEN)
        return tokens, preprocessor(tokens)

    return dataset.map(prepare).prefetch(tf.data.AUTOTUNE)
