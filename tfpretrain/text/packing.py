"""BERT inputs from word pieces: ``[CLS] a [SEP] (b [SEP])`` with segment ids, truncation and word alignment.

Both functions run in the graph on a batch (ragged word pieces in, fixed
``sequence_length`` tensors out), inside `tf.data` or a served model.

Example:

>>> a = tf.ragged.constant([[7, 8, 9], [7]])
>>> b = tf.ragged.constant([[4, 5], [6, 6, 6, 6]])
>>> packed = pack_segments((a, b), 7, cls_token_id=1, sep_token_id=2)
>>> packed["token_ids"].numpy()
array([[1, 7, 8, 2, 4, 5, 2],
       [1, 7, 2, 6, 6, 6, 2]], dtype=int32)
>>> packed["segment_ids"].numpy()
array([[0, 0, 0, 0, 1, 1, 1],
       [0, 0, 0, 1, 1, 1, 1]], dtype=int32)
"""

import tensorflow as tf
import tensorflow_text as tf_text

TRUNCATIONS = ("round_robin", "waterfall")


def _as_batched_ragged(segment):
    """A (batch, pieces) RaggedTensor; a 1-D tensor is a batch of one. Returns (ragged, was_unbatched)."""
    if isinstance(segment, tf.RaggedTensor):
        return segment, False
    segment = tf.convert_to_tensor(segment)
    if segment.shape.rank == 1:
        return tf.RaggedTensor.from_tensor(segment[tf.newaxis]), True
    return tf.RaggedTensor.from_tensor(segment), False


def pack_segments(segments, sequence_length, cls_token_id, sep_token_id, pad_token_id=0, truncation="round_robin",
                  end_token_id=None):
    """Packs one or two segments of word-piece ids as ``[CLS] a [SEP] (b [SEP])``, padded to ``sequence_length``.

    With ``end_token_id`` the last segment ends with that id instead of
    ``sep_token_id``: GPT's transfer inputs ``[START] a [DELIM] b [EXTRACT]``
    are ``pack_segments((a, b), n, start_id, delim_id, end_token_id=extract_id)``.

    When the pieces do not fit, ``"round_robin"`` truncation (the default, as
    Hugging Face's ``longest_first`` and keras-hub's ``MultiSegmentPacker``)
    hands out the room one piece at a time to each segment in turn, so the
    longer segment is cut first and a short one is kept whole;
    ``"waterfall"`` fills segment a first, then gives b what is left.
    Pieces are cut from the end of a segment.

    Args:
        segments: tuple of 1 or 2 int tensors, ragged ``(batch, pieces)`` (or
            dense 2-D, or 1-D for a single example).
        sequence_length: int. Output length, the special tokens included.
        cls_token_id, sep_token_id: int. Ids of ``[CLS]`` and ``[SEP]``.
        pad_token_id: int, default 0.
        truncation: str, ``"round_robin"`` or ``"waterfall"``.
        end_token_id: int or None. Replaces the final ``sep_token_id``.

    Returns:
        dict of ``token_ids`` (batch, sequence_length) int32, ``segment_ids``
        int32 (0 for ``[CLS] a [SEP]``, 1 for ``b [SEP]``, 0 at padding) and
        ``padding_mask`` bool (True at real tokens).
    """
    if not isinstance(segments, (tuple, list)):
        segments = (segments,)
    if len(segments) not in (1, 2):
        raise ValueError(f"pack_segments packs 1 or 2 segments; got {len(segments)}")
    if truncation not in TRUNCATIONS:
        raise ValueError(f"unknown truncation {truncation!r}; choose one of {', '.join(TRUNCATIONS)}")
    budget = int(sequence_length) - len(segments) - 1
    if budget < 0:
        raise ValueError(f"sequence_length {sequence_length} cannot hold the {len(segments) + 1} special tokens "
                         f"of {len(segments)} segment(s)")
    converted = [_as_batched_ragged(s) for s in segments]
    unbatched = converted[0][1]
    segments = [tf.cast(s, tf.int32) for s, _ in converted]
    trimmer = tf_text.RoundRobinTrimmer if truncation == "round_robin" else tf_text.WaterfallTrimmer
    segments = trimmer(max_seq_length=budget).trim(segments)
    segments = [(s.to_tensor(0), tf.cast(s.row_lengths(), tf.int32)) for s in segments]
    packed = _combine(segments, int(sequence_length), cls_token_id, sep_token_id, pad_token_id,
                      sep_token_id if end_token_id is None else end_token_id)
    if unbatched:
        packed = {name: value[0] for name, value in packed.items()}
    return packed


def _combine(segments, sequence_length, cls_token_id, sep_token_id, pad_token_id, end_token_id):
    """Trimmed segments, each ``(pieces, lengths)`` (dense ids (batch, n), lengths (batch,)), packed by position.

    Dense ``where``/``gather`` on a position grid rather than ragged
    concatenation: the same graph then converts to TFLite builtins (ragged
    concatenation needs ``RaggedGather``, which TFLite has no kernel for).
    """
    position = tf.range(sequence_length, dtype=tf.int32)[tf.newaxis, :]  # (1, sequence_length)
    batch = tf.shape(segments[0][0])[0]
    token_ids = tf.fill(tf.stack([batch, sequence_length]), tf.constant(pad_token_id, tf.int32))
    token_ids = tf.where(position == 0, tf.constant(cls_token_id, tf.int32), token_ids)
    segment_ids = tf.zeros_like(token_ids)
    start = tf.ones([batch, 1], tf.int32)  # where the next segment begins: after [CLS]
    for index, (pieces, length) in enumerate(segments):
        length = length[:, tf.newaxis]  # (batch, 1)
        pieces = tf.pad(pieces, [[0, 0], [0, 1]])  # (batch, pieces + 1): never empty
        offset = tf.clip_by_value(position - start, 0, tf.shape(pieces)[1] - 1)
        inside = (position >= start) & (position < start + length)
        token_ids = tf.where(inside, tf.gather(pieces, offset, batch_dims=1), token_ids)
        last = index == len(segments) - 1
        separator = tf.constant(end_token_id if last else sep_token_id, tf.int32)
        token_ids = tf.where(position == start + length, separator, token_ids)
        if index:  # segment 0 covers [CLS] a [SEP]; segment 1 covers b [SEP]
            segment_ids = tf.where((position >= start) & (position <= start + length), index, segment_ids)
        start = start + length + 1
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": position < start}


def pack_words(word_pieces, sequence_length, cls_token_id, sep_token_id, pad_token_id=0, max_words=None):
    """Packs the pieces of each text's words as ``[CLS] pieces [SEP]`` and says where each word starts.

    For word-level tasks (tagging, word vectors): a word is represented by its
    first piece. Truncation keeps whole words only: the words whose pieces
    do not all fit in ``sequence_length - 2`` are dropped (with every word
    after them), get ``word_mask`` False, and are counted in
    ``num_words_truncated`` so callers can report them rather than lose them
    silently.

    Args:
        word_pieces: ragged int ``(batch, words, pieces)``, as
            `WordPieceTokenizer.tokenize_words` returns.
        sequence_length: int. Output length, ``[CLS]`` and ``[SEP]`` included.
        cls_token_id, sep_token_id: int. Ids of ``[CLS]`` and ``[SEP]``.
        pad_token_id: int, default 0.
        max_words: int or None. Pad (or cut, counting the cut words as
            truncated) the word axis to this length, for static shapes;
            None: the longest text of the batch.

    Returns:
        dict of ``token_ids``, ``segment_ids`` (all 0), ``padding_mask``
        (batch, sequence_length) as `pack_segments` gives them, plus
        ``word_positions`` (batch, words) int32: the position of each word's
        first piece in ``token_ids`` (0 where ``word_mask`` is False),
        ``word_mask`` (batch, words) bool: the word is in the sequence, and
        ``num_words_truncated`` (batch,) int32.

    Example:

    >>> pieces = tf.ragged.constant([[[10], [11, 12], [13]]])
    >>> packed = pack_words(pieces, 5, cls_token_id=1, sep_token_id=2)
    >>> packed["token_ids"].numpy(), packed["word_positions"].numpy(), packed["word_mask"].numpy()
    (array([[ 1, 10, 11, 12,  2]], dtype=int32), array([[1, 2, 0]], dtype=int32), array([[ True,  True, False]]))
    """
    budget = int(sequence_length) - 2
    if budget < 0:
        raise ValueError(f"sequence_length {sequence_length} cannot hold [CLS] and [SEP]")
    word_pieces = tf.cast(word_pieces, tf.int32)
    # Dense int32 tensors from here on (no bool or string ragged ops): the graph converts to TFLite builtins.
    word_lengths = tf.cast(word_pieces.row_lengths(axis=2), tf.int32)  # ragged (batch, words)
    num_words = tf.cast(word_lengths.row_lengths(), tf.int32)  # (batch,)
    word_lengths = word_lengths.to_tensor(0, shape=[None, max_words])  # (batch, words), cut; a word has >= 1 piece
    ends = tf.cumsum(word_lengths, axis=1)  # (batch, words)
    word_mask = (word_lengths > 0) & (ends <= budget)
    word_positions = tf.where(word_mask, ends - word_lengths + 1, 0)  # +1 for [CLS]
    kept_pieces = tf.reduce_sum(tf.where(word_mask, word_lengths, 0), axis=1)  # (batch,)
    pieces = word_pieces.merge_dims(1, 2).to_tensor(0)[:, :budget]  # (batch, pieces): the kept ones come first
    packed = _combine([(pieces, kept_pieces)], int(sequence_length), cls_token_id, sep_token_id, pad_token_id,
                      sep_token_id)
    packed["word_positions"] = tf.cast(word_positions, tf.int32)
    packed["word_mask"] = word_mask
    packed["num_words_truncated"] = num_words - tf.reduce_sum(tf.cast(word_mask, tf.int32), axis=1)
    return packed
