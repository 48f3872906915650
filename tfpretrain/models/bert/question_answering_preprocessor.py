"""SQuAD windows for BERT, in the graph: question and context strings in, packed windows and answer spans out.

The one path from a (question, context) pair to the model's inputs and back
from its logits to the answer, used by training, evaluation and prediction
(`tfpretrain.models.bert.question_answering`) and by the SavedModel
(`tfpretrain.export.QuestionAnsweringModule`):

- `QuestionAnsweringPreprocessor` splits each context into words (Python's
  ``str.isspace`` characters separate words), the words into word pieces with
  each piece's character span in the context
  (`WordPieceTokenizer.tokenize_words_with_offsets`), and cuts the pieces into
  windows ``[CLS] question [SEP] context-window [SEP]`` that start
  ``doc_stride`` pieces apart (`context_windows`), so a context of any length
  is read; the question is cut to ``max_query_length`` pieces. Each context
  piece is flagged in its "max context" window (where it has the most context
  on both sides). Given the answers' character spans it also gives the
  training labels: the answer's first and last piece in a window, or
  ``[CLS]`` (position 0) in a window that does not hold the whole answer, as
  in BERT's ``run_squad``.
- `best_spans` is the span decoder: the best valid ``(start, end)`` spans of
  each question over all its windows (``start <= end``, at most
  ``max_answer_length`` pieces, masks on both ends), scored by the start plus
  the end logit; `decode_answer_spans` applies it with the windows' context
  and max-context masks and maps the spans back to characters.
- `build_squad_features` runs the preprocessor over `SquadQuestion`s once
  (`SquadFeatures`: aligned NumPy arrays, one row per window), `squad_dataset`
  feeds them to Keras, `decode_answers` turns logits into answer texts.
- `single_context_byte_pieces`, `single_question_windows` and
  `best_single_span` do the same for one (question, context) pair in UTF-8
  bytes, with TFLite kernels only (dense tensors, no ragged, regex or Unicode
  ops): the ``.tflite`` graph of `QuestionAnsweringModule.tflite_function`.

Example:

>>> preprocessor = QuestionAnsweringPreprocessor(tokenizer, sequence_length=384, doc_stride=128)
>>> features = build_squad_features(read_squad("squad/dev.json"), preprocessor)
>>> logits = model.predict(squad_dataset(features, batch_size=32))
>>> answers = decode_answers(features, logits["start_logits"], logits["end_logits"])
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfpretrain.text.packing import pack_segments

# Python's str.isspace() characters (U+202F, which BERT's run_squad adds, is one): where contexts split into words.
_PYTHON_SPACE = (r"[\t\n\x{b}\x{c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
                 r"\x{205f}\x{3000}]")


def _characters(texts):
    """``(chars, char_bytes)``: ragged (batch, characters) of UTF-8 ``texts`` and each one's first byte.

    An invalid UTF-8 sequence is one character (U+FFFD).
    """
    return tf.strings.unicode_split_with_offsets(texts, "UTF-8", errors="replace", replacement_char=0xFFFD)


def split_context_words(contexts):
    """Splits each context on whitespace (Python's ``str.isspace``), keeping character offsets.

    Args:
        contexts: string tensor (batch,).

    Returns:
        ``(words, starts, ends)``: ragged (batch, words) string, and the int64
        character span of each word in its context (end exclusive), so that
        ``context[start:end] == word`` for Python strings.

    Example:

    >>> words, starts, ends = split_context_words(tf.constant(["  Super Bowl\\t50"]))
    >>> words.to_list(), starts.to_list(), ends.to_list()
    ([[b'Super', b'Bowl', b'50']], [[2, 8, 13]], [[7, 12, 15]])
    """
    chars, _ = _characters(tf.convert_to_tensor(contexts, tf.string))  # ragged (batch, chars)
    space = tf.strings.regex_full_match(chars.flat_values, _PYTHON_SPACE)  # (all chars,)
    rows = chars.value_rowids()
    index_in_row = tf.range(tf.size(space, out_type=tf.int64)) - tf.gather(chars.row_starts(), rows)
    after_space = tf.concat([[True], space[:-1]], axis=0) | (index_in_row == 0)
    begins = ~space & after_space  # (all chars,): the first character of a word
    word_of_char = tf.cumsum(tf.cast(begins, tf.int64)) - 1
    num_words = tf.reduce_sum(tf.cast(begins, tf.int64))
    word_chars = tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(chars.flat_values, ~space), tf.boolean_mask(word_of_char, ~space), nrows=num_words)
    word_rows = tf.boolean_mask(rows, begins)  # (words,): the context of each word
    words = tf.RaggedTensor.from_value_rowids(tf.strings.reduce_join(word_chars, axis=1), word_rows,
                                              nrows=chars.nrows())
    starts = tf.boolean_mask(index_in_row, begins)  # (words,)
    return words, words.with_flat_values(starts), words.with_flat_values(starts + word_chars.row_lengths())


def character_bytes(texts):
    """Ragged (batch, characters + 1) int64: the byte offset of each character of ``texts``, and of their end."""
    texts = tf.convert_to_tensor(texts, tf.string)
    chars, char_bytes = _characters(texts)
    text_ends = tf.RaggedTensor.from_row_lengths(tf.cast(tf.strings.length(texts), tf.int64),
                                                 tf.ones_like(chars.row_lengths()))
    return tf.concat([char_bytes, text_ends], axis=1)


def context_windows(num_pieces, window_length, doc_stride):
    """Windows of ``window_length`` pieces, ``doc_stride`` apart, over contexts of ``num_pieces`` pieces.

    The first window starts at piece 0 and windows are added until the last
    piece is in one (a context with no pieces still gets one, empty, window);
    the stride is capped at the window length so no piece falls between
    windows. Each piece's "max context" window is the one with the best score
    ``min(pieces to its left, pieces to its right) + 0.01 * window size``
    (the first window on ties), BERT's ``_check_is_max_context``.

    Args:
        num_pieces: int tensor (batch,): pieces in each context.
        window_length: int tensor (batch,) or scalar: most context pieces in a window.
        doc_stride: int tensor (batch,) or scalar: pieces between window starts.

    Returns:
        dict of ``example`` (windows,) int32 (the context of each window, in
        order), ``first``, ``end`` (windows,) int32 (the window's pieces are
        ``first .. end - 1`` of its context) and ragged (windows, pieces in
        the window) ``piece`` (int32, the piece's index in its context) and
        ``max_context`` (bool, the piece's max-context window is this one).

    Example:

    >>> windows = context_windows(tf.constant([5]), tf.constant([3]), 2)
    >>> windows["piece"].to_list(), windows["max_context"].to_list()
    ([[0, 1, 2], [2, 3, 4]], [[True, True, True], [False, True, True]])
    """
    num_pieces = tf.cast(num_pieces, tf.int32)
    window_length = tf.broadcast_to(tf.cast(window_length, tf.int32), tf.shape(num_pieces))
    stride = tf.maximum(1, tf.minimum(tf.cast(doc_stride, tf.int32), window_length))  # (batch,)
    num_windows = 1 + tf.maximum(0, -((window_length - num_pieces) // stride))  # 1 + ceil((n - length) / stride)
    window_index = tf.ragged.range(num_windows)  # (batch, windows)
    example = tf.cast(window_index.value_rowids(), tf.int32)  # (windows,)
    first = window_index.flat_values * tf.gather(stride, example)  # (windows,)
    end = tf.minimum(first + tf.gather(window_length, example), tf.gather(num_pieces, example))
    piece = tf.ragged.range(first, end)  # (windows, pieces in the window)
    window = tf.cast(piece.value_rowids(), tf.int32)  # (slots,): the window of each slot
    # The window where each piece has the most context on both sides (the first on ties).
    in_window = piece.flat_values - tf.gather(first, window)  # (slots,)
    size = tf.gather(end - first, window)
    score = tf.cast(tf.minimum(in_window, size - 1 - in_window), tf.float64) + 0.01 * tf.cast(size, tf.float64)
    context_start = tf.cumsum(num_pieces, exclusive=True)  # (batch,): index of each context's first piece
    global_piece = piece.flat_values + tf.gather(context_start, tf.gather(example, window))  # (slots,)
    total_pieces, total_windows = tf.reduce_sum(num_pieces), tf.shape(example)[0]
    best_score = tf.gather(tf.math.unsorted_segment_max(score, global_piece, total_pieces), global_piece)
    best_window = tf.math.unsorted_segment_min(tf.where(score == best_score, window, total_windows), global_piece,
                                               total_pieces)
    max_context = tf.equal(tf.gather(best_window, global_piece), window)
    return {"example": example, "first": first, "end": end, "piece": piece,
            "max_context": piece.with_flat_values(max_context)}


def check_window_options(sequence_length, doc_stride, max_query_length):
    """Raises a ValueError naming the fix when the window options leave no room for the context."""
    if max_query_length < 0 or sequence_length < max_query_length + 4:
        raise ValueError(f"sequence_length {sequence_length} leaves no room for the context after a question of "
                         f"up to max_query_length={max_query_length} pieces and [CLS], [SEP], [SEP]; expected "
                         f"sequence_length >= max_query_length + 4 (lower --max-query-length or raise "
                         f"--sequence-length)")
    if doc_stride < 1:
        raise ValueError(f"doc_stride must be at least 1; got {doc_stride}")


class QuestionAnsweringPreprocessor(tf.Module):
    """Questions and contexts -> BERT's SQuAD windows ``[CLS] question [SEP] context-window [SEP]``, in the graph.

    Runs eagerly, inside `tf.function` and in exported graphs; a batch of B
    pairs gives W >= B windows (every question at least one), ordered by
    question.

    Args:
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        sequence_length: int, default 384. Pieces per window, special tokens included.
        doc_stride: int, default 128. Pieces between the starts of
            consecutive windows of a long context (capped at the window length).
        max_query_length: int, default 64. Questions are cut to this many pieces.

    Example:

    >>> preprocessor = QuestionAnsweringPreprocessor(tokenizer, sequence_length=128, doc_stride=64)
    >>> windows = preprocessor(tf.constant(["Who won?"]), tf.constant(["The Broncos won."]))
    >>> windows["token_ids"].shape, windows["example"].numpy()
    (TensorShape([1, 128]), array([0], dtype=int32))
    """

    def __init__(self, tokenizer, sequence_length=384, doc_stride=128, max_query_length=64):
        super().__init__(name="question_answering_preprocessor")
        check_window_options(int(sequence_length), int(doc_stride), int(max_query_length))
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        self.doc_stride = int(doc_stride)
        self.max_query_length = int(max_query_length)

    def context_pieces(self, contexts):
        """The word pieces of each context and their characters in it.

        Args:
            contexts: string tensor (batch,).

        Returns:
            ``(pieces, start_chars, end_chars)``, each ragged (batch, pieces)
            int32: the piece ids (the same as tokenising the whole context)
            and each piece's character span in its context (end exclusive).
        """
        words, word_starts, _ = split_context_words(contexts)  # (batch, words)
        pieces, starts, ends = self.tokenizer.tokenize_words_with_offsets(words)  # (batch, words, pieces)
        shift = tf.cast(tf.gather(word_starts.flat_values, pieces.values.value_rowids()), tf.int32)  # (all pieces,)
        merged = pieces.merge_dims(1, 2)  # (batch, pieces)
        return (merged, merged.with_flat_values(starts.flat_values + shift),
                merged.with_flat_values(ends.flat_values + shift))

    def __call__(self, questions, contexts, answer_starts=None, answer_ends=None):
        """Packs the windows of a batch of questions about contexts.

        Args:
            questions, contexts: string tensors (batch,).
            answer_starts, answer_ends: optional int tensors (batch,): the
                character span of each answer in its context (end exclusive;
                -1, -1 for none). When given, the labels are returned too.

        Returns:
            dict of, per window (W windows, ordered by question):
            ``token_ids``, ``segment_ids`` int32 and ``padding_mask`` bool
            (W, sequence_length), the model's inputs; ``example`` int32 (W,),
            the question's row; ``start_chars``, ``end_chars`` int32 (W,
            sequence_length), each context piece's character span in the
            context and -1 elsewhere; ``max_context`` bool (W,
            sequence_length), the piece's max-context window is this one;
            with answers, ``start_positions``, ``end_positions`` int32 (W,):
            the answer's first and last piece in the window, 0 (``[CLS]``)
            when the window does not hold the whole answer. Per question:
            ``truncated`` bool (batch,), the question was cut to
            ``max_query_length`` pieces.
        """
        tokenizer, length = self.tokenizer, self.sequence_length
        query = tokenizer(tf.convert_to_tensor(questions, tf.string))  # (batch, pieces) ragged
        truncated = query.row_lengths() > self.max_query_length
        query = query[:, : self.max_query_length]
        query_length = tf.cast(query.row_lengths(), tf.int32)  # (batch,)
        pieces, start_chars, end_chars = self.context_pieces(contexts)
        num_pieces = tf.cast(pieces.row_lengths(), tf.int32)
        windows = context_windows(num_pieces, length - query_length - 3, self.doc_stride)
        example, slots = windows["example"], windows["piece"]
        window = tf.cast(slots.value_rowids(), tf.int32)  # (slots,): the window of each slot
        piece = slots.flat_values + tf.gather(tf.cast(pieces.row_starts(), tf.int32), tf.gather(example, window))
        window_query = tf.gather(query, example)  # (windows, pieces)
        packed = pack_segments((window_query, slots.with_flat_values(tf.gather(pieces.flat_values, piece))), length,
                               tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        offset = tf.gather(query_length, example) + 2  # (windows,): position of the window's first context piece
        position = slots.flat_values - tf.gather(windows["first"], window) + tf.gather(offset, window)  # (slots,)
        indices = tf.stack([window, position], axis=1)
        shape = tf.stack([tf.shape(example)[0], length])

        def per_position(values):  # (slots,) -> (windows, sequence_length), -1 outside the context
            return tf.reshape(tf.scatter_nd(indices, tf.cast(values, tf.int32) + 1, shape) - 1, [-1, length])

        outputs = {
            **packed,
            "example": example,
            "start_chars": per_position(tf.gather(start_chars.flat_values, piece)),
            "end_chars": per_position(tf.gather(end_chars.flat_values, piece)),
            "max_context": per_position(windows["max_context"].flat_values) > 0,
            "truncated": truncated,
        }
        if answer_starts is not None:
            outputs.update(self._labels(start_chars, end_chars, answer_starts, answer_ends, windows, offset))
        return outputs

    @staticmethod
    def _labels(start_chars, end_chars, answer_starts, answer_ends, windows, offset):
        """``start_positions``, ``end_positions`` (windows,): the answer's first and last piece, or 0 and 0."""
        rows = tf.cast(start_chars.value_rowids(), tf.int32)  # (all pieces,): the context of each piece
        index = tf.range(tf.shape(rows)[0]) - tf.gather(tf.cast(start_chars.row_starts(), tf.int32), rows)
        answer_starts = tf.cast(answer_starts, tf.int32)
        answer_ends = tf.cast(answer_ends, tf.int32)
        overlaps = ((start_chars.flat_values < tf.gather(answer_ends, rows))
                    & (end_chars.flat_values > tf.gather(answer_starts, rows)))  # the piece overlaps the answer
        batch = start_chars.nrows(out_type=tf.int32)
        first = tf.math.unsorted_segment_min(tf.where(overlaps, index, tf.int32.max), rows, batch)  # (batch,)
        last = tf.math.unsorted_segment_max(tf.where(overlaps, index, -1), rows, batch)
        first, last = tf.gather(first, windows["example"]), tf.gather(last, windows["example"])  # (windows,)
        inside = (last >= 0) & (first >= windows["first"]) & (last < windows["end"])
        return {"start_positions": tf.where(inside, first - windows["first"] + offset, 0),
                "end_positions": tf.where(inside, last - windows["first"] + offset, 0)}


# ---------------------------------------------------------------------------------------------
# Span decoding


def best_spans(start_logits, end_logits, start_mask, end_mask, max_answer_length=30, n_best_size=20, example=None,
               num_questions=None):
    """The ``n_best_size`` best valid spans of each question over its windows, exactly, in the graph.

    A span ``(start, end)`` of a window is valid when ``start <= end``,
    ``end - start + 1 <= max_answer_length``, ``start_mask[start]`` and
    ``end_mask[end]``; its score is ``start_logits[start] + end_logits[end]``,
    summed in float64. Every valid pair is scored, so unlike BERT's reference,
    which only pairs the top-20 starts and ends, the best valid span is never
    missed. Ties go to the first window, then the first start, then the
    shortest span.

    Args:
        start_logits, end_logits: float (windows, length).
        start_mask, end_mask: bool (windows, length).
        max_answer_length: int. The longest span, in pieces.
        n_best_size: int. Spans returned per question.
        example: int (windows,), nondecreasing: the question of each window;
            None: all windows belong to one question.
        num_questions: int. Questions (rows of the result); with ``example`` required.

    Returns:
        ``(score, window, start, end)``, each (num_questions, n_best_size),
        best first: float64 scores (-inf where a question has fewer valid
        spans, whose other entries are then meaningless), the window's row and
        the span's positions in it (int32).

    Example:

    >>> score, window, start, end = best_spans(start_logits, end_logits, mask, mask, n_best_size=1,
    ...                                        example=tf.range(windows), num_questions=windows)  # per window
    """
    start_logits = tf.cast(tf.convert_to_tensor(start_logits), tf.float64)
    end_logits = tf.cast(tf.convert_to_tensor(end_logits), tf.float64)
    length = start_logits.shape[1]
    if length is None:
        raise ValueError("best_spans needs logits with a static length (axis 1)")
    num_windows = tf.shape(start_logits)[0]
    if example is None:
        example, num_questions = tf.zeros([num_windows], tf.int32), 1
    width = max(1, min(int(max_answer_length), length))
    start_logits = tf.where(start_mask, start_logits, -np.inf)  # (windows, length)
    end_logits = tf.where(end_mask, end_logits, -np.inf)
    end_logits = tf.pad(end_logits, [[0, 0], [0, width]], constant_values=-np.inf)  # (windows, length + width)
    ends = tf.range(length)[:, None] + tf.range(width)[None, :]  # (length, width)
    scores = start_logits[:, :, None] + tf.gather(end_logits, ends, axis=1)  # (windows, length, width)
    scores = tf.reshape(scores, [-1, length * width])
    # The best spans of each window (top_k puts the lower index first on ties: the first start, the shortest span),
    per_window = min(int(n_best_size), length * width)
    window_scores, flat = tf.math.top_k(scores, per_window)  # (windows, per_window)
    # then the best of those over each question's windows (in window order: the first window on ties).
    candidates = tf.RaggedTensor.from_value_rowids(window_scores, tf.cast(example, tf.int64),
                                                   nrows=tf.cast(num_questions, tf.int64)).merge_dims(1, 2)
    padded = tf.pad(candidates.to_tensor(-np.inf), [[0, 0], [0, int(n_best_size)]], constant_values=-np.inf)
    score, column = tf.math.top_k(padded, int(n_best_size))  # (questions, n_best_size)
    last = tf.maximum(num_windows * per_window - 1, 0)
    candidate = tf.clip_by_value(tf.cast(candidates.row_starts(), tf.int32)[:, None] + column, 0, last)
    flat = tf.reshape(flat, [-1])
    flat = tf.gather(tf.concat([flat, tf.zeros([1], flat.dtype)], axis=0), candidate)  # safe when nothing is valid
    start = flat // width
    return score, candidate // per_window, start, start + flat % width


def decode_answer_spans(start_logits, end_logits, windows, num_questions, max_answer_length=30, n_best_size=1):
    """The best answers of each question as character spans of its context, from the windows' logits.

    Starts must be context pieces in their max-context window, ends context pieces (`best_spans`).

    Args:
        start_logits, end_logits: float (windows, sequence_length).
        windows: `QuestionAnsweringPreprocessor` outputs (``example``,
            ``start_chars``, ``end_chars``, ``max_context``), or a `SquadFeatures`'s.
        num_questions: int. The batch size of the questions.

    Returns:
        dict of (num_questions, n_best_size): ``score`` float64 (-inf: no
        such answer), ``window`` int32, ``start_char``, ``end_char`` int32 (0
        where there is no answer).
    """
    start_chars, end_chars = windows["start_chars"], windows["end_chars"]
    context = start_chars >= 0
    score, window, start, end = best_spans(start_logits, end_logits, context & windows["max_context"], context,
                                           max_answer_length, n_best_size, windows["example"], num_questions)
    found = tf.math.is_finite(score)

    def char(chars, position):
        chars = tf.concat([chars, tf.zeros_like(chars[:1])], axis=0)  # a row for "not found"
        row = tf.where(found, window, tf.shape(chars)[0] - 1)
        return tf.gather_nd(chars, tf.stack([row, tf.where(found, position, 0)], axis=-1))

    return {"score": score, "window": window, "start_char": char(start_chars, start),
            "end_char": char(end_chars, end)}


# ---------------------------------------------------------------------------------------------
# SQuAD questions through the preprocessor


@dataclasses.dataclass
class SquadFeatures:
    """The windows of `SquadQuestion`s, as aligned NumPy arrays (one row per window, grouped by question).

    Attributes:
        questions: the `SquadQuestion`s the windows were built from.
        token_ids, segment_ids: (windows, sequence_length) int32.
        padding_mask: (windows, sequence_length) bool.
        start_positions, end_positions: (windows,) int32. The first answer's first and
            last piece in the window; 0 ([CLS]) when the window does not hold it.
        question_index: (windows,) int32. Row of ``questions`` the window belongs to.
        start_chars, end_chars: (windows, sequence_length) int32. Character span in the
            context of each context piece; -1 outside the context.
        max_context: (windows, sequence_length) bool. The piece's best window is this one
            (the window where it has the most context on both sides).
        num_truncated_questions: int. Questions cut to ``max_query_length`` pieces.
    """

    questions: list
    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    question_index: np.ndarray
    start_chars: np.ndarray
    end_chars: np.ndarray
    max_context: np.ndarray
    num_truncated_questions: int = 0

    def __len__(self):
        return len(self.token_ids)

    def inputs(self):
        """The model inputs: ``{"token_ids", "segment_ids", "padding_mask"}``."""
        return {"token_ids": self.token_ids, "segment_ids": self.segment_ids, "padding_mask": self.padding_mask}

    def labels(self):
        return {"start_logits": self.start_positions, "end_logits": self.end_positions}

    @property
    def context_mask(self):
        """(windows, sequence_length) bool: the position holds a context piece."""
        return self.start_chars >= 0


_FEATURE_KEYS = {"token_ids": "token_ids", "segment_ids": "segment_ids", "padding_mask": "padding_mask",
                 "start_positions": "start_positions", "end_positions": "end_positions",
                 "question_index": "example", "start_chars": "start_chars", "end_chars": "end_chars",
                 "max_context": "max_context"}


def _answer_span(question):
    """The first answer's character span without surrounding whitespace, or (-1, -1)."""
    if not question.answers:
        return -1, -1
    text, start = question.answers[0].text, question.answers[0].start_char
    return start + len(text) - len(text.lstrip()), start + len(text.rstrip())


def build_squad_features(questions, preprocessor, batch_size=1024):
    """Runs ``preprocessor`` over `SquadQuestion`s, ``batch_size`` at a time, into `SquadFeatures`.

    Training labels come from each question's first answer (none: every
    window points at ``[CLS]``). A question with an empty context gets one
    window with no context pieces (its answer decodes to the empty string).

    Args:
        questions: list of `tfpretrain.text.squad.SquadQuestion`.
        preprocessor: a `QuestionAnsweringPreprocessor`.
        batch_size: int. Questions per preprocessor call.

    Example:

    >>> preprocessor = QuestionAnsweringPreprocessor(tokenizer, sequence_length=384)
    >>> features = build_squad_features(read_squad("squad/train.json"), preprocessor)
    >>> int(features.start_positions.astype(bool).sum())  # windows that hold their answer
    """
    length = preprocessor.sequence_length
    parts = {name: [] for name in _FEATURE_KEYS}
    truncated = 0
    for begin in range(0, len(questions), batch_size):
        chunk = questions[begin:begin + batch_size]
        spans = np.asarray([_answer_span(q) for q in chunk], np.int32).reshape(-1, 2)
        windows = preprocessor(tf.constant([q.question for q in chunk], tf.string),
                               tf.constant([q.context for q in chunk], tf.string), spans[:, 0], spans[:, 1])
        for name, key in _FEATURE_KEYS.items():
            parts[name].append(windows[key].numpy())
        parts["question_index"][-1] += begin
        truncated += int(np.sum(windows["truncated"].numpy()))
    dtypes = {"padding_mask": bool, "max_context": bool}
    arrays = {}
    for name, values in parts.items():
        shape = (0,) if name in ("start_positions", "end_positions", "question_index") else (0, length)
        arrays[name] = (np.concatenate(values) if values else np.zeros(shape)).astype(dtypes.get(name, np.int32))
    return SquadFeatures(questions=list(questions), num_truncated_questions=truncated, **arrays)


def squad_dataset(features, batch_size, labels=False, shuffle=False, seed=0, input_dtypes=None):
    """A batched ``tf.data.Dataset`` of the windows: ``x`` or ``(x, {"start_logits", "end_logits"})``.

    Args:
        features: `SquadFeatures`.
        batch_size: int. Windows per batch.
        labels: bool. Whether to add the start and end positions.
        shuffle, seed: shuffle all windows each epoch.
        input_dtypes: dict or None. Casts the inputs, e.g. ``padding_mask`` to the
            integer dtype an encoder takes (``{name: t.dtype for name, t in model.input.items()}``).

    With ``labels`` (training and validation) each batch is cut to its
    longest window (`tfpretrain.models.bert.preprocessor.cut_padding`): a
    short context's windows carry no padding. Prediction keeps the full
    ``sequence_length``, the width `decode_answers` reads.

    Example:

    >>> model.fit(squad_dataset(features, 32, labels=True, shuffle=True), epochs=2)
    """
    inputs = features.inputs()
    if input_dtypes:
        inputs = {name: value.astype(input_dtypes.get(name, value.dtype)) for name, value in inputs.items()}
    data = (inputs, features.labels()) if labels else inputs
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if labels:
        from tfpretrain.models.bert.preprocessor import cut_padding

        width = int(inputs["token_ids"].shape[-1])
        dataset = dataset.map(lambda x, y: (cut_padding(x, width), y))
    return dataset.prefetch(tf.data.AUTOTUNE)


def decode_answers(features, start_logits, end_logits, max_answer_length=30, n_best_size=20, batch_size=256):
    """The best answer of every question of ``features``, cut out of its context (`decode_answer_spans`).

    Args:
        features: `SquadFeatures`.
        start_logits, end_logits: (windows, sequence_length) float arrays.
        max_answer_length: int. The longest answer, in pieces.
        n_best_size: int. Answers listed per question under ``n_best``.
        batch_size: int. Questions decoded at a time.

    Returns:
        list (one per question, in order) of dicts ``{"id", "answer", "start_char",
        "end_char", "score", "n_best"}``; ``score`` is the start plus end logit, and a
        question with no valid span (an empty context) gets the empty answer with
        score None.

    Example:

    >>> logits = model.predict(squad_dataset(features, 32))
    >>> decode_answers(features, logits["start_logits"], logits["end_logits"])[0]["answer"]
    'Denver Broncos'
    """
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    if start_logits.shape != features.token_ids.shape or end_logits.shape != features.token_ids.shape:
        raise ValueError(f"logits of shape {start_logits.shape} / {end_logits.shape} do not match the "
                         f"{features.token_ids.shape} windows")
    bounds = np.searchsorted(features.question_index, np.arange(len(features.questions) + 1))
    answers = []
    for begin in range(0, len(features.questions), batch_size):
        stop = min(begin + batch_size, len(features.questions))
        rows = slice(bounds[begin], bounds[stop])
        windows = {"example": features.question_index[rows] - begin, "start_chars": features.start_chars[rows],
                   "end_chars": features.end_chars[rows], "max_context": features.max_context[rows]}
        spans = decode_answer_spans(start_logits[rows], end_logits[rows], windows, stop - begin, max_answer_length,
                                    n_best_size)
        score, start_char, end_char = (spans[key].numpy() for key in ("score", "start_char", "end_char"))
        for index, question in enumerate(features.questions[begin:stop]):
            n_best = [{"answer": question.context[int(s):int(e)], "start_char": int(s), "end_char": int(e),
                       "score": float(value)}
                      for value, s, e in zip(score[index], start_char[index], end_char[index]) if np.isfinite(value)]
            best = n_best[0] if n_best else {"answer": "", "start_char": 0, "end_char": 0, "score": None}
            answers.append({"id": question.id, **best, "n_best": n_best})
    return answers


# ---------------------------------------------------------------------------------------------
# One question at a time, in UTF-8 bytes, with TFLite kernels only
#
# The functions below compute what `QuestionAnsweringPreprocessor` and `decode_answer_spans` compute, for a
# batch of one (question, context) pair, with dense integer tensors on a "position grid" (as
# `tfpretrain.text.packing._combine`) instead of ragged, regex and Unicode ops, none of which has a TFLite
# kernel. Offsets are UTF-8 byte offsets into the input context. They are what
# `QuestionAnsweringModule.tflite_function` converts.


def _utf8_next_character(text_bytes, offsets):
    """The byte offset of the first character after the one that starts at each of ``offsets``.

    A byte starts a character unless it is a continuation byte (``0b10xxxxxx``),
    so a stray continuation byte of invalid UTF-8 is a character of its own.

    Args:
        text_bytes: int32 (bytes,): the bytes of one text (0..255).
        offsets: int32 tensor of byte offsets in ``[0, bytes)``.

    Returns:
        int32, the shape of ``offsets``: the next character's first byte (``bytes`` after the last one).
    """
    num_bytes = tf.shape(text_bytes)[0]
    starts = tf.not_equal(text_bytes // 64, 2)  # (bytes,): not 0b10xxxxxx
    start_positions = tf.cast(tf.reshape(tf.where(starts), [-1]), tf.int32)  # (characters,)
    start_positions = tf.concat([start_positions, tf.reshape(num_bytes, [1])], axis=0)
    count = tf.cumsum(tf.cast(starts, tf.int32))  # (bytes,): characters starting at or before each byte
    count = tf.concat([count, [0]], axis=0)  # never empty
    index = tf.gather(count, tf.clip_by_value(offsets, 0, num_bytes))
    return tf.gather(start_positions, tf.clip_by_value(index, 0, tf.shape(start_positions)[0] - 1))


def single_context_byte_pieces(normalizer, wordpiece, context):
    """The word pieces of one context and each piece's UTF-8 byte span in it, with TFLite kernels only.

    The whole context is normalised at once by ``normalizer`` (a
    `tf_text.FastBertNormalizer`, whose offsets map each normalised byte back
    to the input) and split into words and pieces by ``wordpiece`` (the
    `tf_text.FastWordpieceTokenizer` of a `tfpretrain.text.WordPieceTokenizer`,
    which splits on whitespace and punctuation itself). A piece spans the
    input characters its normalised bytes came from: from the first byte of
    the character that made its first byte to the end of the character that
    made its last byte, as `WordPieceTokenizer.tokenize_words_with_offsets`
    counts characters. The pieces and spans are those of
    `QuestionAnsweringPreprocessor.context_pieces` (in bytes) wherever
    FastBertNormalizer normalises as BERT does: every Python ``str.isspace``
    character separates words in both. They differ where FastBertNormalizer
    does (see `tfpretrain.text.wordpiece`): control characters such as NUL,
    DEL and U+0080-U+009F separate words here where BERT deletes them;
    compatibility characters ("…", "ß", full-width letters) are decomposed;
    U+FFFD and invalid UTF-8 are kept, their word becoming ``[UNK]``; and a
    word that normalises to nothing (only control or format characters) has
    no piece here where the exact path gives it an ``[UNK]``. The SQuAD v1.1
    dev sample has none of these: all its 54 contexts and 810 questions get
    the same pieces and spans.

    Args:
        normalizer: a `tf_text.FastBertNormalizer`.
        wordpiece: a `tf_text.FastWordpieceTokenizer` (int32 ids).
        context: string tensor (1,): one context (a batch of one).

    Returns:
        ``(pieces, start_bytes, end_bytes)``, each int32 (pieces,).
    """
    import tensorflow_text as tf_text

    normalized, offsets = normalizer.normalize_with_offsets(context)  # (1,), ragged (1, normalised bytes + 1)
    pieces, starts, ends = wordpiece.tokenize_with_offsets(normalized)  # ragged (1, pieces)
    # A batch of one: a ragged tensor's flat values are its one row (no RaggedTensorToTensor: no uint8 kernel).
    pieces = tf.cast(pieces.flat_values, tf.int32)  # (pieces,)
    starts = tf.cast(starts.flat_values, tf.int32)
    ends = tf.cast(ends.flat_values, tf.int32)
    offsets = tf.concat([tf.cast(offsets.flat_values, tf.int32), [0]], axis=0)  # never empty
    text_bytes = tf.cast(tf_text.ByteSplitter().split(context).flat_values, tf.int32)  # (bytes,)
    last = tf.shape(offsets)[0] - 1
    start_bytes = tf.gather(offsets, tf.clip_by_value(starts, 0, last))
    last_char = tf.gather(offsets, tf.clip_by_value(ends - 1, 0, last))
    end_bytes = tf.where(ends > starts, _utf8_next_character(text_bytes, last_char), start_bytes)
    return pieces, start_bytes, end_bytes


def single_question_windows(query, pieces, sequence_length, doc_stride, cls_token_id, sep_token_id,
                            pad_token_id=0):
    """The windows ``[CLS] query [SEP] context-window [SEP]`` of one question, on a dense position grid.

    The same windows as `QuestionAnsweringPreprocessor` (`context_windows`,
    `pack_segments`) for a batch of one, with dense int32 tensors only
    (TFLite has no kernel for ``RaggedRange`` or ``RaggedGather``), and cut
    to the longest window (the first) rather than padded to
    ``sequence_length``. A piece's max-context window is scored with the
    integer ``100 * min(left, right) + window size`` (exactly the order of
    BERT's ``min + 0.01 * size``).

    Args:
        query: int32 (query pieces,), already cut to ``max_query_length``.
        pieces: int32 (context pieces,).
        sequence_length: int. The model's sequence length.
        doc_stride: int. Pieces between window starts (capped at the window length).
        cls_token_id, sep_token_id, pad_token_id: int.

    Returns:
        dict of ``token_ids``, ``segment_ids`` int32, ``padding_mask`` bool
        (windows, length) with ``length <= sequence_length``; ``context``
        bool (windows, length): the position holds a context piece;
        ``piece`` int32 (windows, length): its index in ``pieces`` (0 elsewhere);
        ``max_context`` bool (windows, length): this window is its max-context window.
    """
    query = tf.cast(query, tf.int32)
    pieces = tf.cast(pieces, tf.int32)
    query_length = tf.shape(query)[0]
    num_pieces = tf.shape(pieces)[0]
    window_length = int(sequence_length) - query_length - 3
    stride = tf.maximum(1, tf.minimum(int(doc_stride), window_length))
    num_windows = 1 + tf.maximum(0, -((window_length - num_pieces) // stride))  # 1 + ceil((n - length) / stride)
    first = tf.range(num_windows)[:, None] * stride  # (windows, 1)
    size = tf.maximum(0, tf.minimum(window_length, num_pieces - first))  # (windows, 1)
    length = query_length + 3 + tf.reduce_max(size)  # the longest window
    position = tf.range(length)[None, :]  # (1, length)
    offset = query_length + 2  # the first context position
    slot = position - offset  # (1, length)
    context = (slot >= 0) & (slot < size)  # (windows, length)
    piece = tf.where(context, first + slot, 0)
    padded_pieces = tf.concat([pieces, [pad_token_id]], axis=0)  # never empty
    padded_query = tf.concat([query, [pad_token_id]], axis=0)
    query_token = tf.gather(padded_query, tf.clip_by_value(position - 1, 0, query_length))
    context_end = offset + size  # (windows, 1): the final [SEP]
    token_ids = tf.where(context, tf.gather(padded_pieces, piece), pad_token_id)
    token_ids = tf.where((position >= 1) & (position <= query_length), query_token, token_ids)
    token_ids = tf.where((position == query_length + 1) | (position == context_end), sep_token_id, token_ids)
    token_ids = tf.where(position == 0, cls_token_id, token_ids)
    # where, not a cast of the condition: the converter folds the embedding's ``ids < 0`` check on a cast bool
    # into a bool zeros_like, which TFLite has no kernel for.
    segment_ids = tf.where((position >= offset) & (position <= context_end), 1, 0)
    padding_mask = position <= context_end
    # The window where each piece has the most context on both sides (the first on ties), BERT's _check_is_max_context.
    score = 100 * tf.minimum(slot, size - 1 - slot) + size  # (windows, length)
    segment = tf.reshape(tf.where(context, piece, num_pieces), [-1])  # other positions: segment num_pieces
    flat_score = tf.reshape(tf.where(context, score, -1), [-1])
    best_score = tf.math.unsorted_segment_max(flat_score, segment, num_pieces + 1)
    window = tf.broadcast_to(tf.range(num_windows)[:, None], tf.shape(score))
    is_best = tf.reshape(context & (score == tf.reshape(tf.gather(best_score, segment), tf.shape(score))), [-1])
    best_window = tf.math.unsorted_segment_min(tf.where(is_best, tf.reshape(window, [-1]), num_windows), segment,
                                               num_pieces + 1)
    max_context = context & (tf.reshape(tf.gather(best_window, segment), tf.shape(score)) == window)
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask, "context": context,
            "piece": piece, "max_context": max_context}


def best_single_span(start_logits, end_logits, start_mask, end_mask, max_answer_length=30):
    """The best valid span over the windows of one question, dense float32 (TFLite builtins only).

    `best_spans` with ``n_best_size=1`` and one question: valid spans are
    ``start <= end < start + max_answer_length`` with both masks set, scored
    by ``start_logits[start] + end_logits[end]`` (summed in float32 here);
    ties go to the first window, the first start, the shortest span.

    Args:
        start_logits, end_logits: float (windows, length), any length.
        start_mask, end_mask: bool (windows, length).
        max_answer_length: int.

    Returns:
        ``(score, window, start, end)``: scalar float32 score (-inf when no
        span is valid) and int32 window and positions (0 when none is).
    """
    start_logits = tf.where(start_mask, tf.cast(start_logits, tf.float32), -np.inf)
    end_logits = tf.where(end_mask, tf.cast(end_logits, tf.float32), -np.inf)
    length = tf.shape(start_logits)[1]
    width = max(1, int(max_answer_length))
    ends = tf.range(length)[:, None] + tf.range(width)[None, :]  # (length, width)
    end_scores = tf.gather(end_logits, tf.minimum(ends, length - 1), axis=1)  # (windows, length, width)
    end_scores = tf.where(tf.expand_dims(ends < length, 0), end_scores, -np.inf)
    # expand_dims, not [:, :, None]: TFLite's strided slice has no new-axis mask
    scores = tf.reshape(tf.expand_dims(start_logits, 2) + end_scores, [-1])  # (windows * length * width,)
    scores = tf.concat([scores, [-np.inf]], axis=0)  # never empty
    best = tf.cast(tf.argmax(scores, output_type=tf.int32), tf.int32)
    score = tf.gather(scores, best)
    found = score > -np.inf
    best = tf.where(found, best, 0)
    window, rest = best // (length * width), best % (length * width)
    start = rest // width
    return score, window, start, start + rest % width
