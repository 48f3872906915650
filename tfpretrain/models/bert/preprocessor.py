"""BERT's preprocessor for fine-tuning: strings -> packed word pieces, in the graph, for classify, pair and tag.

The one path from strings to the inputs of `build_sequence_classifier` and
`build_token_tagger`: fine-tuning's tf.data pipelines (`text_dataset`,
`word_dataset`), prediction (`tfpretrain.models.task_model.predict_texts` /
``predict_words``) and the exported modules (`tfpretrain.export.BertClassifierModule`,
`tfpretrain.export.BertTaggerModule`) all call `encode_texts` / `encode_words`,
and `word_tags` is the one rule for the words that truncation cuts off.

- classify / pair: ``[CLS] a [SEP] (b [SEP])`` (`tfpretrain.text.pack_segments`),
  with a per-example flag saying whether the texts lost pieces.
- tag: one slot per word, read at its first word piece
  (`tfpretrain.text.pack_words`); words beyond ``sequence_length`` pieces get
  no slot, are counted, and are predicted "O".

Example:

>>> from tfpretrain.models.bert.preprocessor import encode_texts
>>> packed, truncated = encode_texts(tokenizer, (tf.constant(["a fine film"]),), 128)
>>> sorted(packed), truncated.numpy()
(['padding_mask', 'segment_ids', 'token_ids'], array([False]))
"""

import tensorflow as tf

from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES, bucket_length
from tfpretrain.text.packing import pack_segments, pack_words
from tfpretrain.text.vocabulary import PADDING_TOKEN

PIECE_INPUTS = ("token_ids", "segment_ids", "padding_mask")  # (batch, pieces): cut to the batch's longest
WORD_INPUTS = ("word_positions", "word_mask")  # (batch, words): cut to the most words of a sentence
SORTING_CHUNK = 50  # training batches sorted by length together (see _batches)


def encode_texts(tokenizer, texts, sequence_length):
    """Packs a batch of 1 or 2 string columns as ``[CLS] a [SEP] (b [SEP])``.

    Args:
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        texts: tuple of 1 or 2 string tensors (batch,).
        sequence_length: int. Pieces per example, ``[CLS]`` and ``[SEP]`` included.

    Returns:
        ``(packed, truncated)``: the dict of `pack_segments` (``token_ids``,
        ``segment_ids``, ``padding_mask`` (batch, sequence_length)) and
        ``truncated`` (batch,) bool: whether the texts lost pieces to ``sequence_length``.
    """
    segments = tuple(tokenizer(column) for column in texts)  # each (batch, pieces), ragged
    packed = pack_segments(segments, sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                           tokenizer.pad_token_id)
    num_pieces = tf.add_n([tf.cast(s.row_lengths(), "int32") for s in segments]) + len(segments) + 1
    return packed, num_pieces > sequence_length


def encode_words(tokenizer, words, sequence_length):
    """Packs a batch of word lists (ragged (batch, words) strings) with one slot per word.

    Args:
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        words: ragged string tensor (batch, words).
        sequence_length: int. Pieces per sentence, ``[CLS]`` and ``[SEP]`` included.

    Returns:
        ``(packed, num_words_truncated)``: ``token_ids``, ``segment_ids``,
        ``padding_mask`` (batch, sequence_length) and ``word_positions`` /
        ``word_mask`` (batch, sequence_length - 2) (no more words can fit);
        ``num_words_truncated`` (batch,): per sentence, how many words
        truncation cut off (see `word_tags`).
    """
    num_words = sequence_length - 2
    pieces = tokenizer.tokenize_words(words)  # (batch, words, pieces)
    packed = dict(pack_words(pieces, sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                             tokenizer.pad_token_id, max_words=num_words))
    for name in ("word_positions", "word_mask"):
        packed[name] = tf.ensure_shape(packed[name], [None, num_words])
    return packed, packed.pop("num_words_truncated")


def word_tags(tag_ids, tags, lengths, num_words_truncated, width, padding=PADDING_TOKEN):
    """One tag per word: the predicted tag of each kept word, "O" for words cut by truncation, ``padding`` after.

    The rule for words that `encode_words` could not fit: they are tagged
    "O" (and counted), never dropped, so that every word of the input gets
    a tag. Integer ops and one string lookup: the graph converts to TFLite
    builtins (on-device taggers run it).

    Args:
        tag_ids: int tensor (batch, slots): the tag id predicted at each word slot.
        tags: list of str. ``tags[i]`` is tag id ``i``.
        lengths: int tensor (batch,): words per sentence.
        num_words_truncated: int tensor (batch,): words cut by truncation (from `encode_words`).
        width: int scalar: columns of the result (at least ``max(lengths)``).
        padding: str, default "". The tag beyond each sentence's last word.

    Returns:
        A string tensor (batch, width).

    Example:

    >>> word_tags(tf.constant([[1, 0]]), ["O", "B-PER"], tf.constant([3]), tf.constant([1]), 4).numpy()
    array([[b'B-PER', b'O', b'O', b'']], dtype=object)
    """
    tags = [str(tag) for tag in tags]
    table = tf.constant(tags + ["O", padding], tf.string)
    tag_ids = tf.cast(tag_ids, tf.int32)[:, :width]
    tag_ids = tf.pad(tag_ids, [[0, 0], [0, width - tf.shape(tag_ids)[1]]])  # (batch, width)
    lengths = tf.cast(lengths, tf.int32)
    position = tf.range(width)[None, :]
    kept = (lengths - tf.cast(num_words_truncated, tf.int32))[:, None]
    ids = tf.where(position < kept, tag_ids, tf.where(position < lengths[:, None], len(tags), len(tags) + 1))
    return tf.gather(table, ids)


def _cast(packed, input_dtypes):
    """The inputs named in ``input_dtypes``, cast to those dtypes (a model's input dtypes)."""
    return {name: tf.cast(packed[name], input_dtypes.get(name, packed[name].dtype)) for name in input_dtypes}


def padded_length(padding_mask, sequence_length, static_shapes=False):
    """The length a batch is cut to: its longest sequence, or with ``static_shapes`` the shortest bucket length that holds it.

    Args:
        padding_mask: (..., sequence_length) int or bool, 1 at real pieces.
        sequence_length: int. The length the batch was packed to (the longest allowed).
        static_shapes: bool. Round up to `tfpretrain.text.buckets.bucket_lengths`
            (``DEFAULT_BUCKET_BOUNDARIES`` below ``sequence_length``, then
            ``sequence_length``), so that XLA sees a few shapes only.

    Example:

    >>> padded_length(tf.constant([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]), 5).numpy()
    3
    """
    # At least 1: an empty batch (a served signature's) still gets a well-formed, non-empty width.
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=-1)), 1)
    if not static_shapes:
        return longest
    return bucket_length(longest, DEFAULT_BUCKET_BOUNDARIES, sequence_length)


def _first_columns(value, n):
    """``value[..., :n]``; a bool tensor is sliced as int32 (TFLite's strided slice has no bool kernel)."""
    if value.dtype != tf.bool:
        return value[..., :n]
    return tf.cast(tf.cast(value, tf.int32)[..., :n], tf.bool)


def cut_padding(packed, sequence_length, static_shapes=False, gold=None):
    """Drops the padding columns that no example of the batch uses (see `padded_length`).

    Every piece-level input (``token_ids``, ``segment_ids``, ``padding_mask``,
    last axis) is cut to the batch's padded length; word-level inputs
    (``word_positions``, ``word_mask``) and ``gold`` (batch, words) to the
    most words of a sentence (with ``static_shapes``: the padded length
    minus 2, so that their shapes are fixed too). Masked attention makes the
    encoder's outputs at real pieces the same as at full length (to float
    rounding).

    Returns:
        ``packed`` cut, or ``(packed, gold)`` when ``gold`` is given.
    """
    length = padded_length(packed["padding_mask"], sequence_length, static_shapes)
    cut = {name: _first_columns(value, length) if name in PIECE_INPUTS else value for name, value in packed.items()}
    if "word_mask" in packed:
        words = length - 2 if static_shapes else tf.maximum(tf.reduce_max(  # at least one: no empty tensors
            tf.reduce_sum(tf.cast(packed["word_mask"], tf.int32), axis=-1)), 1)
        for name in WORD_INPUTS:
            cut[name] = _first_columns(packed[name], words)
        if gold is not None:
            gold = gold[:, :words]
    return cut if gold is None else (cut, gold)


def _batches(data, encode, batch_size, shuffle, seed, sequence_length, static_shapes, full_length=False):
    """Encoded, padding-cut batches of ``data`` (elements ``(features, labels)``), length-sorted when shuffling.

    Without ``shuffle``: the input order, batch by batch. With it: each epoch
    reshuffles the examples, encodes them ``SORTING_CHUNK`` batches at a time,
    sorts each chunk by length, cuts it into batches of similar length and
    shuffles those batches (within ``SORTING_CHUNK``), so that little padding
    is left to cut (`cut_padding`) while the batches still come in random
    order. ``encode(features, labels) -> (packed, gold, info)``.
    ``full_length``: keep every batch at ``sequence_length``.
    """
    def finish(packed, gold, info):
        if not full_length:
            packed, gold = cut_padding(packed, sequence_length, static_shapes, gold)
        return packed, gold, info

    if not shuffle:
        return data.ragged_batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).map(finish).prefetch(
            tf.data.AUTOTUNE)

    def sort_and_split(packed, gold, info):
        mask = tf.cast(packed["padding_mask"], tf.int32)  # (chunk, ..., pieces): GPT's choices have a middle axis
        order = tf.argsort(tf.reduce_sum(tf.reshape(mask, [tf.shape(mask)[0], -1]), axis=1), stable=True)
        chunk = tf.nest.map_structure(lambda t: tf.gather(t, order), (packed, gold, info))
        return tf.data.Dataset.from_tensor_slices(chunk).batch(batch_size)

    data = data.shuffle(data.cardinality(), seed=seed, reshuffle_each_iteration=True)
    data = data.ragged_batch(batch_size * SORTING_CHUNK).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.flat_map(sort_and_split).map(finish)
    return data.shuffle(SORTING_CHUNK, seed=seed + 1, reshuffle_each_iteration=True).prefetch(tf.data.AUTOTUNE)


def text_dataset(examples, tokenizer, sequence_length, batch_size, input_dtypes, labels=None,
                 shuffle=False, seed=0, encode=encode_texts, static_shapes=False, full_length=False):
    """``(x, label_id, truncated)`` batches of text examples (label_id -1 if unknown), encoded in the graph.

    Each batch is as long as its longest example (`cut_padding`); training
    batches (``shuffle``) hold examples of similar length (see `_batches`).

    Args:
        examples: `TextExample`s, or tuples of strings.
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        sequence_length, batch_size: int. ``sequence_length`` is the most
            pieces an example keeps (longer ones are truncated).
        input_dtypes: dict of the model's input names and dtypes (`tfpretrain.models.task_model.input_dtypes`).
        labels: the label strings, in the order of the model's outputs.
        shuffle, seed: shuffle the examples each epoch (and sort them by length in chunks).
        encode: ``(tokenizer, texts, sequence_length) -> (packed, truncated)``;
            default `encode_texts` (BERT). GPT's
            `tfpretrain.models.task_model.task_dataset` passes its transfer encoding.
        static_shapes: bool. Pad to a fixed set of lengths (`padded_length`) for XLA / TPUs.
        full_length: bool. Keep every batch ``sequence_length`` long (GPT's
            transfer head reads a fixed-length sequence).
    """
    columns = list(zip(*[getattr(e, "texts", e) for e in examples]))
    index = {label: i for i, label in enumerate(labels or [])}
    label_ids = [index.get(getattr(e, "label", None), -1) for e in examples]
    data = tf.data.Dataset.from_tensor_slices(
        (tuple(tf.constant(list(c), tf.string) for c in columns), tf.constant(label_ids, tf.int32))
    )

    def encode_batch(texts, label_ids):
        packed, truncated = encode(tokenizer, texts, sequence_length)
        return _cast(packed, input_dtypes), label_ids, truncated

    return _batches(data, encode_batch, batch_size, shuffle, seed, sequence_length, static_shapes, full_length)


def word_dataset(sentences, tokenizer, sequence_length, batch_size, input_dtypes, tags=None,
                 shuffle=False, seed=0, static_shapes=False):
    """``(x, tag_ids, num_words_truncated)`` batches for tagging; tag_ids -1 at padding, cut words, unknown tags.

    Args:
        sentences: `TaggedSentence`s, or lists of words.
        tokenizer, sequence_length, batch_size, input_dtypes, shuffle, seed, static_shapes: as `text_dataset`.
        tags: the tag strings, in the order of the model's outputs.
    """
    words = [list(getattr(s, "tokens", s)) for s in sentences]
    lengths = [len(w) for w in words]
    index = {tag: i for i, tag in enumerate(tags or [])}
    tag_ids = [index.get(t, -1) for s, ws in zip(sentences, words) for t in getattr(s, "tags", [None] * len(ws))]
    data = tf.data.Dataset.from_tensor_slices((
        tf.RaggedTensor.from_row_lengths(tf.constant([w for ws in words for w in ws], tf.string), lengths),
        tf.RaggedTensor.from_row_lengths(tf.constant(tag_ids, tf.int32), lengths),
    ))
    num_words = sequence_length - 2

    def encode(words, tag_ids):
        packed, num_words_truncated = encode_words(tokenizer, words, sequence_length)
        gold = tag_ids.to_tensor(default_value=-1, shape=[None, num_words])  # (batch, words)
        gold = tf.where(packed["word_mask"], gold, -1)
        return _cast(packed, input_dtypes), gold, num_words_truncated

    return _batches(data, encode, batch_size, shuffle, seed,
                    sequence_length, static_shapes)
