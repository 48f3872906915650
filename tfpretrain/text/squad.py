"""SQuAD v1.1 extractive question answering: reading, windowed features, span decoding.

The flow is reader -> features -> model -> spans -> answer text:

- `read_squad` checks the official v1.1 JSON layout and returns `SquadQuestion`s;
  a malformed entry raises `SquadFormatError` naming the file and the JSON path
  (``data[3].paragraphs[1].qas[0]``).
- `build_squad_features` tokenises each context once (whitespace words, then
  ``tokenizer.tokenize_words``), keeps every piece's character span in the
  context, and cuts ``[CLS] question [SEP] context-window [SEP]`` windows with a
  document stride, so a context of any length is covered. Training labels are
  the answer's first and last piece in a window, or ``[CLS]`` (position 0) in a
  window that does not hold the whole answer, as in BERT's ``run_squad``.
- `decode_answers` finds, for each question, the best ``(start, end)`` over all
  its windows (``start <= end``, at most ``max_answer_length`` pieces, both in
  the window's context, the start in its "max context" window) and cuts the
  answer out of the original context through the pieces' character spans.

Feature building is Python over SQuAD-sized data (done once, before training);
the model is fed from the resulting arrays through `squad_dataset`.

Example:

>>> questions = read_squad("../shared/data/squad_v1.1_sample/dev.json")
>>> features = build_squad_features(questions, tokenizer, sequence_length=384)
>>> logits = model.predict(squad_dataset(features, batch_size=32))
>>> answers = decode_answers(features, logits["start_logits"], logits["end_logits"])
"""

import dataclasses
import json
import os

import numpy as np

#: Characters that separate words in a context (BERT's ``run_squad`` adds U+202F).
_WHITESPACE = frozenset(" \t\r\n\u202f")


class SquadFormatError(ValueError):
    """Malformed SQuAD JSON; the message reads ``path: json.path: what is wrong; what was expected``.

    Args:
        path: str. The file being read.
        location: str. Where in the file: a JSON path such as
            ``data[3].paragraphs[1].qas[0]``, or ``line L column C`` for invalid JSON.
        problem: str. What is wrong.
        expected: str. What the reader expected instead.
    """

    def __init__(self, path, location, problem, expected):
        self.path = os.fspath(path)
        self.location = location
        self.problem = problem
        self.expected = expected
        super().__init__(f"{self.path}: {location}: {problem}; expected {expected}")

    def __reduce__(self):
        return type(self), (self.path, self.location, self.problem, self.expected)


@dataclasses.dataclass(frozen=True)
class SquadAnswer:
    """One reference answer: its text and where it starts in the context (a character offset)."""

    text: str
    start_char: int


@dataclasses.dataclass(frozen=True)
class SquadQuestion:
    """A question about a context, with its reference answers (none when only predicting).

    Args:
        id: str. The question's id (unique in its file).
        question: str.
        context: str. The paragraph the answer is taken from.
        answers: tuple of `SquadAnswer`; the first one is the training target.
        source: str. ``"path: data[i].paragraphs[j].qas[k]"``, for messages.
    """

    id: str
    question: str
    context: str
    answers: tuple = ()
    source: str = ""


# ---------------------------------------------------------------------------------------------
# Reading


def _expect(condition, path, location, problem, expected):
    if not condition:
        raise SquadFormatError(path, location, problem, expected)


def _type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _field(entry, key, kind, path, location, expected_kind):
    _expect(key in entry, path, location, f"no {key!r} field (fields: {', '.join(map(repr, entry)) or 'none'})",
            f"{expected_kind} under {key!r}")
    value = entry[key]
    _expect(isinstance(value, kind) and not isinstance(value, bool), path, f"{location}.{key}",
            f"{_type_name(value)}", expected_kind)
    return value


def _check_answer(answer, context, path, location):
    _expect(isinstance(answer, dict), path, location, _type_name(answer),
            'an object {"text": ..., "answer_start": ...}')
    text = _field(answer, "text", str, path, location, "a string")
    start = _field(answer, "answer_start", int, path, location, "a character offset (an integer)")
    _expect(text.strip() != "", path, f"{location}.text", "an empty answer text", "the answer's words")
    if not (0 <= start and start + len(text) <= len(context)) or context[start:start + len(text)] != text:
        found = context.find(text)
        hint = (f"the text occurs at offset {found}" if found >= 0 else "the text does not occur in the context")
        actual = context[max(start, 0):max(start, 0) + len(text)]
        raise SquadFormatError(
            path, f"{location}.answer_start",
            f"answer_start {start} does not point at the answer text {text!r} (the context holds {actual!r} "
            f"there; {hint})",
            "context[answer_start:answer_start + len(text)] == text (fix the offset or the text)",
        )
    return SquadAnswer(text, start)


def read_squad(path, require_answers=True):
    """Reads a SQuAD v1.1 JSON file into a list of `SquadQuestion`s, in file order.

    An ``answer_start`` that does not point at its answer text is an error (not a
    warning): training on it would teach the wrong span, and the message says
    where the text does occur so the file can be fixed.

    Args:
        path: str. ``{"data": [{"paragraphs": [{"context": ..., "qas": [{"id", "question",
            "answers": [{"text", "answer_start"}]}]}]}]}``.
        require_answers: bool. Whether every question needs at least one answer
            (training and evaluation); False for files that are only predicted.

    Raises:
        SquadFormatError: invalid JSON (with its line and column), a missing or
            mistyped field, a duplicate id, a SQuAD v2.0 unanswerable question, an
            answer that is not where ``answer_start`` says; the message names the
            JSON path of the entry.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        raw = file.read()
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise SquadFormatError(path, f"byte {error.start}", f"bytes that are not valid UTF-8 ({error.reason})",
                               "a UTF-8 encoded JSON file") from None
    except json.JSONDecodeError as error:
        raise SquadFormatError(path, f"line {error.lineno} column {error.colno}", f"invalid JSON ({error.msg})",
                               "a SQuAD v1.1 JSON file") from None
    _expect(isinstance(document, dict), path, "(top level)", _type_name(document), 'an object {"data": [...]}')
    articles = _field(document, "data", list, path, "(top level)", "a list of articles")
    questions, seen = [], {}
    for i, article in enumerate(articles):
        where = f"data[{i}]"
        _expect(isinstance(article, dict), path, where, _type_name(article), 'an object {"paragraphs": [...]}')
        for j, paragraph in enumerate(_field(article, "paragraphs", list, path, where, "a list of paragraphs")):
            where = f"data[{i}].paragraphs[{j}]"
            _expect(isinstance(paragraph, dict), path, where, _type_name(paragraph),
                    'an object {"context": ..., "qas": [...]}')
            context = _field(paragraph, "context", str, path, where, "the paragraph text (a string)")
            for k, qa in enumerate(_field(paragraph, "qas", list, path, where, "a list of questions")):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                _expect(isinstance(qa, dict), path, where, _type_name(qa),
                        'an object {"id": ..., "question": ..., "answers": [...]}')
                _expect("id" in qa and isinstance(qa["id"], (str, int)) and not isinstance(qa["id"], bool), path,
                        where, f"id {qa.get('id')!r}", "a string id")
                question_id = str(qa["id"])
                _expect(question_id not in seen, path, where,
                        f"duplicate id {question_id!r} (first at {seen.get(question_id)})", "unique question ids")
                seen[question_id] = where
                question = _field(qa, "question", str, path, where, "the question text (a string)")
                _expect(not qa.get("is_impossible", False), path, f"{where}.is_impossible",
                        "an unanswerable SQuAD v2.0 question", "SQuAD v1.1 (every question answerable)")
                raw_answers = _field(qa, "answers", list, path, where, "a list of answers")
                _expect(raw_answers or not require_answers, path, f"{where}.answers", "no answers",
                        "at least one reference answer")
                answers = tuple(_check_answer(answer, context, path, f"{where}.answers[{n}]")
                                for n, answer in enumerate(raw_answers))
                questions.append(SquadQuestion(question_id, question, context, answers, f"{path}: {where}"))
    return questions


# ---------------------------------------------------------------------------------------------
# Words and pieces with character spans


def split_words(text):
    """Splits ``text`` on whitespace; returns ``(words, starts, ends)`` (character offsets, ends exclusive)."""
    words, starts, ends = [], [], []
    start = None
    for position, char in enumerate(text):
        if char in _WHITESPACE or char.isspace():
            if start is not None:
                words.append(text[start:position])
                starts.append(start)
                ends.append(position)
                start = None
        elif start is None:
            start = position
    if start is not None:
        words.append(text[start:])
        starts.append(start)
        ends.append(len(text))
    return words, starts, ends


@dataclasses.dataclass
class _Context:
    piece_ids: np.ndarray  # (pieces,) int32
    start_chars: np.ndarray  # (pieces,) int32, character span of each piece in the context
    end_chars: np.ndarray


def tokenize_contexts(contexts, tokenizer):
    """Tokenises each distinct context once; returns ``{context: _Context}``.

    Each piece's characters come from `WordPieceTokenizer.tokenize_words_with_offsets`,
    the graph op the exported question answerer (`tfpretrain.export.serving`) uses too.
    """
    import tensorflow as tf

    distinct = list(dict.fromkeys(contexts))
    split = [split_words(c) for c in distinct]
    word_lists = [words for words, _, _ in split]
    if any(word_lists):
        ragged = tf.ragged.constant(word_lists, dtype=tf.string, ragged_rank=1)
        nested, starts, ends = (t.to_list() for t in tokenizer.tokenize_words_with_offsets(ragged))
        spans = [[list(zip(s, e)) for s, e in zip(row_starts, row_ends)] for row_starts, row_ends in zip(starts, ends)]
    else:
        nested = spans = [[] for _ in distinct]
    result = {}
    for context, (_, starts, _), word_pieces, word_spans in zip(distinct, split, nested, spans):
        ids, start_chars, end_chars = [], [], []
        for word_start, pieces, spans_of_word in zip(starts, word_pieces, word_spans):
            ids.extend(pieces)
            start_chars.extend(word_start + s for s, _ in spans_of_word)
            end_chars.extend(word_start + e for _, e in spans_of_word)
        result[context] = _Context(np.asarray(ids, np.int32), np.asarray(start_chars, np.int32),
                                   np.asarray(end_chars, np.int32))
    return result


def answer_piece_span(context, answer):
    """``(first_piece, last_piece)`` of the context pieces covering ``answer``'s characters, or None.

    Whitespace at either end of the answer text is ignored; a piece counts when it
    overlaps the answer.
    """
    start, end = answer.start_char, answer.start_char + len(answer.text)
    text = answer.text
    start += len(text) - len(text.lstrip())
    end -= len(text) - len(text.rstrip())
    overlapping = np.flatnonzero((context.start_chars < end) & (context.end_chars > start))
    if overlapping.size == 0:
        return None
    return int(overlapping[0]), int(overlapping[-1])


# ---------------------------------------------------------------------------------------------
# Windows


@dataclasses.dataclass
class SquadFeatures:
    """Windows of questions over their contexts, as aligned numpy arrays (one row per window).

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


def window_starts(num_pieces, window_length, doc_stride):
    """Start offsets of windows of ``window_length`` pieces, ``doc_stride`` apart, covering every piece.

    The stride is capped at the window length so no piece falls between windows.
    """
    stride = max(1, min(doc_stride, window_length))
    starts = [0]
    while starts[-1] + window_length < num_pieces:
        starts.append(starts[-1] + stride)
    return starts


def max_context_windows(num_pieces, starts, window_length):
    """For each piece, the index of the window where it has the most context (first one on ties).

    BERT's score: ``min(pieces to the left, pieces to the right) + 0.01 * window length``.
    """
    positions = np.arange(num_pieces)[None, :]  # (1, pieces)
    starts = np.asarray(starts)[:, None]  # (windows, 1)
    lengths = np.minimum(window_length, num_pieces - starts)  # (windows, 1)
    inside = (positions >= starts) & (positions < starts + lengths)
    score = np.minimum(positions - starts, starts + lengths - 1 - positions) + 0.01 * lengths
    score = np.where(inside, score, -np.inf)  # (windows, pieces)
    return np.argmax(score, axis=0)


def _check_lengths(sequence_length, doc_stride, max_query_length):
    if max_query_length < 0 or sequence_length < max_query_length + 4:
        raise ValueError(f"sequence_length {sequence_length} leaves no room for the context after a question of "
                         f"up to max_query_length={max_query_length} pieces and [CLS], [SEP], [SEP]; expected "
                         f"sequence_length >= max_query_length + 4 (lower --max-query-length or raise "
                         f"--sequence-length)")
    if doc_stride < 1:
        raise ValueError(f"doc_stride must be at least 1; got {doc_stride}")


def build_squad_features(questions, tokenizer, sequence_length=384, doc_stride=128, max_query_length=64):
    """Windows ``[CLS] question [SEP] context-window [SEP]`` for every question.

    Args:
        questions: list of `SquadQuestion`.
        tokenizer: a `tfpretrain.text.wordpiece.WordPieceTokenizer` (``call``,
            ``tokenize_words``, special token ids, ``lowercase``/``strip_accents``).
        sequence_length: int. Pieces per window, special tokens included.
        doc_stride: int. Pieces between the starts of consecutive windows of a
            context longer than a window (capped at the window length).
        max_query_length: int. Questions longer than this many pieces are cut.

    Returns:
        `SquadFeatures`. A question with an empty context gets one window with no
        context pieces (its answer decodes to the empty string).
    """
    import tensorflow as tf

    _check_lengths(sequence_length, doc_stride, max_query_length)
    contexts = tokenize_contexts([q.context for q in questions], tokenizer)
    question_ids = tokenizer(tf.constant([q.question for q in questions], tf.string)).to_list() if questions else []
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows = {name: [] for name in ("token_ids", "segment_ids", "start_positions", "end_positions", "question_index",
                                  "start_chars", "end_chars", "max_context", "length")}
    truncated = 0
    for index, (question, query) in enumerate(zip(questions, question_ids)):
        truncated += len(query) > max_query_length
        query = query[:max_query_length]
        context = contexts[question.context]
        num_pieces = len(context.piece_ids)
        window_length = sequence_length - len(query) - 3
        starts = window_starts(num_pieces, window_length, doc_stride)
        best_window = max_context_windows(num_pieces, starts, window_length)
        answer = answer_piece_span(context, question.answers[0]) if question.answers else None
        offset = len(query) + 2  # position of the window's first context piece
        for window, start in enumerate(starts):
            end = min(start + window_length, num_pieces)
            ids = [cls_id, *query, sep_id, *context.piece_ids[start:end].tolist(), sep_id]
            segments = [0] * offset + [1] * (end - start + 1)
            start_chars = np.full(sequence_length, -1, np.int32)
            end_chars = np.full(sequence_length, -1, np.int32)
            max_context = np.zeros(sequence_length, bool)
            start_chars[offset:offset + end - start] = context.start_chars[start:end]
            end_chars[offset:offset + end - start] = context.end_chars[start:end]
            max_context[offset:offset + end - start] = best_window[start:end] == window
            if answer is not None and start <= answer[0] and answer[1] < end:
                positions = (answer[0] - start + offset, answer[1] - start + offset)
            else:
                positions = (0, 0)
            rows["token_ids"].append(ids + [pad_id] * (sequence_length - len(ids)))
            rows["segment_ids"].append(segments + [0] * (sequence_length - len(segments)))
            rows["length"].append(len(ids))
            rows["start_positions"].append(positions[0])
            rows["end_positions"].append(positions[1])
            rows["question_index"].append(index)
            rows["start_chars"].append(start_chars)
            rows["end_chars"].append(end_chars)
            rows["max_context"].append(max_context)
    lengths = np.asarray(rows["length"], np.int32).reshape(-1, 1)
    return SquadFeatures(
        questions=list(questions),
        token_ids=np.asarray(rows["token_ids"], np.int32).reshape(-1, sequence_length),
        segment_ids=np.asarray(rows["segment_ids"], np.int32).reshape(-1, sequence_length),
        padding_mask=np.arange(sequence_length)[None, :] < lengths,
        start_positions=np.asarray(rows["start_positions"], np.int32),
        end_positions=np.asarray(rows["end_positions"], np.int32),
        question_index=np.asarray(rows["question_index"], np.int32),
        start_chars=np.asarray(rows["start_chars"], np.int32).reshape(-1, sequence_length),
        end_chars=np.asarray(rows["end_chars"], np.int32).reshape(-1, sequence_length),
        max_context=np.asarray(rows["max_context"], bool).reshape(-1, sequence_length),
        num_truncated_questions=int(truncated),
    )


def squad_dataset(features, batch_size, labels=False, shuffle=False, seed=0, input_dtypes=None):
    """A batched ``tf.data.Dataset`` of the windows: ``x`` or ``(x, {"start_logits", "end_logits"})``.

    Args:
        input_dtypes: dict or None. Casts the inputs, e.g. ``padding_mask`` to the
            integer dtype an encoder takes (``{name: t.dtype for name, t in model.input.items()}``).
    """
    import tensorflow as tf

    inputs = features.inputs()
    if input_dtypes:
        inputs = {name: value.astype(input_dtypes.get(name, value.dtype)) for name, value in inputs.items()}
    data = (inputs, features.labels()) if labels else inputs
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if shuffle:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# Decoding


def best_spans(start_logits, end_logits, start_mask, end_mask, max_answer_length=30, n_best_size=20):
    """The ``n_best_size`` highest-scoring valid spans of one or more windows, exactly.

    A span ``(start, end)`` of a window is valid when ``start <= end``,
    ``end - start + 1 <= max_answer_length``, ``start_mask[start]`` and
    ``end_mask[end]``; its score is ``start_logits[start] + end_logits[end]``.
    Every valid pair is scored (a (windows, length, max_answer_length) array), so
    unlike BERT's reference, which only pairs the top-20 starts and ends, the
    best valid span is never missed.

    Args:
        start_logits, end_logits: (windows, length) float arrays.
        start_mask, end_mask: (windows, length) bool arrays.

    Returns:
        list of ``(score, window, start, end)``, best first; empty when no span is valid.
    """
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    windows, length = start_logits.shape
    width = max(1, min(int(max_answer_length), length))
    padded_end = np.full((windows, length + width), -np.inf)
    padded_end[:, :length] = np.where(end_mask, end_logits, -np.inf)
    ends = np.arange(length)[:, None] + np.arange(width)[None, :]  # (length, width)
    scores = np.where(np.asarray(start_mask)[:, :, None], start_logits[:, :, None], -np.inf) + padded_end[:, ends]
    flat = scores.reshape(-1)  # (windows * length * width,)
    valid = np.flatnonzero(np.isfinite(flat))
    if valid.size == 0:
        return []
    count = min(n_best_size, valid.size)
    top = valid[np.argpartition(-flat[valid], count - 1)[:count]]
    top = top[np.lexsort((top, -flat[top]))]  # best first; ties by position
    window, start, offset = np.unravel_index(top, scores.shape)
    return [(float(flat[t]), int(w), int(s), int(s + o)) for t, w, s, o in zip(top, window, start, offset)]


def decode_answers(features, start_logits, end_logits, max_answer_length=30, n_best_size=20):
    """The best answer of every question of ``features``, mapped back to its context text.

    Returns:
        list (one per question, in order) of dicts ``{"id", "answer", "start_char",
        "end_char", "score", "n_best"}``; ``score`` is the start plus end logit, and a
        question with no valid span (an empty context) gets the empty answer with
        score None.
    """
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    if start_logits.shape != features.token_ids.shape or end_logits.shape != features.token_ids.shape:
        raise ValueError(f"logits of shape {start_logits.shape} / {end_logits.shape} do not match the "
                         f"{features.token_ids.shape} windows")
    start_mask = features.context_mask & features.max_context
    end_mask = features.context_mask
    order = np.argsort(features.question_index, kind="stable")
    bounds = np.searchsorted(features.question_index[order], np.arange(len(features.questions) + 1))
    answers = []
    for index, question in enumerate(features.questions):
        rows = order[bounds[index]:bounds[index + 1]]
        spans = best_spans(start_logits[rows], end_logits[rows], start_mask[rows], end_mask[rows],
                           max_answer_length, n_best_size)
        n_best = []
        for score, window, start, end in spans:
            row = rows[window]
            start_char, end_char = int(features.start_chars[row, start]), int(features.end_chars[row, end])
            n_best.append({"answer": question.context[start_char:end_char], "start_char": start_char,
                           "end_char": end_char, "score": score})
        best = n_best[0] if n_best else {"answer": "", "start_char": 0, "end_char": 0, "score": None}
        answers.append({"id": question.id, **best, "n_best": n_best})
    return answers

