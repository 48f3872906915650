"""SQuAD v1.1 reading: the official JSON layout checked, questions with their contexts and answers.

`read_squad` returns `SquadQuestion`s (with their `SquadAnswer`s, text and
character offset in the context); a malformed entry raises `SquadFormatError`
naming the file and the JSON path (``data[3].paragraphs[1].qas[0]``). Nothing
here depends on a model: BERT's windows over the contexts and its span
decoding are `tfpretrain.models.bert.question_answering_preprocessor`.

Example:

>>> questions = read_squad("../shared/data/squad_v1.1_sample/dev.json")
>>> questions[0].question, questions[0].answers[0]
('Which NFL team represented the AFC at Super Bowl 50?', SquadAnswer(text='Denver Broncos', start_char=177))
"""

import dataclasses
import json
import os


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


def _expect(condition, path, location, problem, expected):
    if not condition:
        raise SquadFormatError(path, location, problem, expected)


def _type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            float: "a float", int: "an integer"}.get(
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
            mistyped field, an empty question, a duplicate id, a SQuAD v2.0
            unanswerable question, an answer that is not where ``answer_start`` says,
            JSON nested too deeply; the message names the
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
    except RecursionError:
        raise SquadFormatError(path, "(top level)", "JSON nested too deeply to read",
                               'a SQuAD v1.1 JSON file {"data": [{"paragraphs": [...]}]}') from None
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
                _expect(question.strip() != "", path, f"{where}.question", "an empty question", "the question's words")
                _expect(not qa.get("is_impossible", False), path, f"{where}.is_impossible",
                        "an unanswerable SQuAD v2.0 question", "SQuAD v1.1 (every question answerable)")
                raw_answers = _field(qa, "answers", list, path, where, "a list of answers")
                _expect(raw_answers or not require_answers, path, f"{where}.answers", "no answers",
                        "at least one reference answer")
                answers = tuple(_check_answer(answer, context, path, f"{where}.answers[{n}]")
                                for n, answer in enumerate(raw_answers))
                questions.append(SquadQuestion(question_id, question, context, answers, f"{path}: {where}"))
    return questions
