"""Bad input for the SQuAD reader: a clear error naming the file and where in it, or a well-formed answer. Kinds
already in test_squad.py (truncated JSON, a list at the top, missing or mistyped fields, null context, duplicate
ids, answer offsets that miss, an empty answer, no answers, SQuAD v2.0, an empty context) are not repeated here.

Kinds here: an empty file; a folder as the path; a missing file; invalid UTF-8; a BOM; UTF-16; binary garbage; JSON
lines; the flat Hugging Face layout (JSON that is not SQuAD); Hugging Face answers inside SQuAD; JSON nested too
deeply; an empty question; odd scripts and zero-width characters; null at the top; no articles; a negative or
fractional answer_start.
"""

import json
import re

import pytest

from tfpretrain.text.squad import SquadFormatError, read_squad

CONTEXT = "The Denver Broncos won Super Bowl 50."


def _document(question="Who won?", answers=None, context=CONTEXT):
    answers = [{"text": "Denver Broncos", "answer_start": 4}] if answers is None else answers
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": "q1", "question": question, "answers": answers}]}]}]}


def _write(tmp_path, content, name="squad.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _raises_at(path, location, *words):
    pattern = re.escape(f"{path}: {location}: ") + "".join(".*" + re.escape(w) for w in words)
    return pytest.raises(SquadFormatError, match=pattern)


def test_an_empty_file_is_invalid_json_at_line_1(tmp_path):
    path = _write(tmp_path, "")
    with _raises_at(path, "line 1 column 1", "invalid JSON", "SQuAD v1.1 JSON"):
        read_squad(path)


def test_a_folder_or_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(IsADirectoryError) as error:
        read_squad(tmp_path)
    assert error.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        read_squad(tmp_path / "missing.json")
    assert error.value.filename == str(tmp_path / "missing.json")


def test_invalid_utf8_names_the_byte(tmp_path):
    raw = json.dumps(_document(question="Caf\u00e9?"), ensure_ascii=False).encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    path = _write(tmp_path, raw)
    position = raw.index(b"\xe9")
    with _raises_at(path, f"byte {position}", "not valid UTF-8", "a UTF-8 encoded JSON file"):
        read_squad(path)


def test_a_bom_is_read(tmp_path):
    path = _write(tmp_path, b"\xef\xbb\xbf" + json.dumps(_document()).encode())
    assert read_squad(path)[0].answers[0].text == "Denver Broncos"


def test_utf16_and_binary_garbage_are_errors(tmp_path):
    path = _write(tmp_path, json.dumps(_document()).encode("utf-16"))
    with _raises_at(path, "byte 0", "not valid UTF-8"):
        read_squad(path)
    path = _write(tmp_path, bytes(range(256)), name="garbage.json")
    with pytest.raises(SquadFormatError, match=re.escape(f"{path}: ")):
        read_squad(path)


def test_json_lines_are_not_squad(tmp_path):
    lines = "\n".join(json.dumps({"id": str(i), "question": "Who?", "context": CONTEXT}) for i in range(2))
    path = _write(tmp_path, lines)
    with _raises_at(path, "line 2 column 1", "invalid JSON (Extra data)"):
        read_squad(path)


def test_the_flat_hugging_face_layout_is_not_squad(tmp_path):
    flat = {"data": [{"id": "q1", "title": "t", "context": CONTEXT, "question": "Who won?",
                      "answers": {"text": ["Denver Broncos"], "answer_start": [4]}}]}
    path = _write(tmp_path, flat)
    with _raises_at(path, "data[0]", "no 'paragraphs' field (fields: 'id', 'title', 'context'", "a list of paragraphs"):
        read_squad(path)
    path = _write(tmp_path, [flat["data"][0]], name="list.json")
    with _raises_at(path, "(top level)", "a list", 'an object {"data": [...]}'):
        read_squad(path)


def test_hugging_face_answers_inside_squad_are_an_error(tmp_path):
    path = _write(tmp_path, _document(answers={"text": ["Denver Broncos"], "answer_start": [4]}))
    with _raises_at(path, "data[0].paragraphs[0].qas[0].answers", "an object", "a list of answers"):
        read_squad(path)


def test_json_nested_too_deeply_is_an_error_not_a_recursion_error(tmp_path):
    """Was: RecursionError, a traceback."""
    path = _write(tmp_path, '{"data": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with _raises_at(path, "(top level)", "nested too deeply"):
        read_squad(path)


@pytest.mark.parametrize("question", ["", "   ", "\n"])
def test_an_empty_question_is_an_error(tmp_path, question):
    """Was: read, and trained on as a question of no words."""
    path = _write(tmp_path, _document(question=question))
    with _raises_at(path, "data[0].paragraphs[0].qas[0].question", "an empty question"):
        read_squad(path)


def test_odd_scripts_and_zero_width_characters_keep_their_offsets(tmp_path):
    context = "مرحبا e\u0301te\u0301 👩\u200d👩\u200d👧 in 東京\u200b, by the sea."
    answer = "東京\u200b"
    path = _write(tmp_path, _document(question="Wo\u200bher\u0301e?", context=context,
                                      answers=[{"text": answer, "answer_start": context.index(answer)}]))
    [question] = read_squad(path)
    start = question.answers[0].start_char
    assert question.context[start:start + len(answer)] == answer


def test_null_at_the_top_and_no_articles(tmp_path):
    path = _write(tmp_path, "null")
    with _raises_at(path, "(top level)", "null", 'an object {"data"'):
        read_squad(path)
    assert read_squad(_write(tmp_path, {"version": "1.1", "data": []}, name="empty.json")) == []


@pytest.mark.parametrize("start, words", [(-4, ["answer_start -4 does not point"]), (4.0, ["a float", "an integer"]),
                                          (True, ["a boolean", "an integer"])])
def test_a_negative_or_fractional_answer_start_is_an_error(tmp_path, start, words):
    path = _write(tmp_path, _document(answers=[{"text": "Denver Broncos", "answer_start": start}]))
    with _raises_at(path, "data[0].paragraphs[0].qas[0].answers[0].answer_start", *words):
        read_squad(path)
