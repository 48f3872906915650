"""SQuAD reading, and BERT's windows and span decoding of it, on the real sample and on broken files.

The windows and the decoder are `tfpretrain.models.bert.question_answering_preprocessor`
(the one in-graph path of training, evaluation and export); they are checked against
plain-Python references: BERT's window starts and ``_check_is_max_context`` by brute
force, the best spans by exhaustive search.
"""

import dataclasses
import itertools
import json
import os
import re
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_preprocessing_test
from tfpretrain.models.bert.question_answering_preprocessor import (
    QuestionAnsweringPreprocessor,
    best_spans,
    build_squad_features,
    context_windows,
    decode_answers,
    split_context_words,
    squad_dataset,
)
from tfpretrain.text.squad import SquadAnswer, SquadFormatError, SquadQuestion, read_squad
from tfpretrain.training.squad_metrics import normalize_answer, squad_scores


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    """The uncased BERT vocabulary of the MiniLM checkpoint (30,522 pieces)."""
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    return WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"))


def _features(questions, tokenizer, **options):
    return build_squad_features(questions, QuestionAnsweringPreprocessor(tokenizer, **options))


def split_words(text):
    """`split_context_words` of one text, as Python lists."""
    words, starts, ends = split_context_words(tf.constant([text]))
    return [w.decode() for w in words.to_list()[0]], starts.to_list()[0], ends.to_list()[0]


@pytest.fixture(scope="module")
def dev(shared_data):
    return read_squad(shared_data / "squad_v1.1_sample" / "dev.json")


# --- reading ------------------------------------------------------------------------------

def test_reads_the_sample_files(shared_data, dev):
    train = read_squad(shared_data / "squad_v1.1_sample" / "train.json")
    assert len(train) == 269 and len(dev) == 810
    assert all(len(q.answers) == 1 for q in train) and sum(len(q.answers) for q in dev) == 2438
    first = dev[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers[0] == SquadAnswer("Denver Broncos", 177)
    assert first.source.endswith("dev.json: data[0].paragraphs[0].qas[0]")
    assert all(q.context[a.start_char:a.start_char + len(a.text)] == a.text for q in dev for a in q.answers)
    assert len({q.id for q in dev}) == 810


def _squad(qas=None, context="The Denver Broncos won.", **paragraph):
    qas = qas if qas is not None else [{"id": "q1", "question": "Who won?",
                                        "answers": [{"text": "Denver Broncos", "answer_start": 4}]}]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas, **paragraph}]}]}


def _answer(text, start):
    return [{"id": "q1", "question": "Who won?", "answers": [{"text": text, "answer_start": start}]}]


@pytest.mark.parametrize("document, location, words", [
    ('{"data": [', "line 1 column 11", ["invalid JSON"]),
    ([], "(top level)", ["a list", 'an object {"data"']),
    ({"version": "1.1"}, "(top level)", ["no 'data' field"]),
    ({"data": [{"paragraphs": {}}]}, "data[0].paragraphs", ["an object", "a list of paragraphs"]),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0]", ["no 'context' field"]),
    (_squad(context=None), "data[0].paragraphs[0].context", ["null", "paragraph text"]),
    (_squad([{"id": "q1", "answers": []}]), "data[0].paragraphs[0].qas[0]", ["no 'question' field"]),
    (_squad([{"question": "?", "answers": []}]), "data[0].paragraphs[0].qas[0]", ["id None"]),
    (_squad(_answer("Denver Broncos", 4) * 2), "data[0].paragraphs[0].qas[1]",
     ["duplicate id 'q1'", "first at data[0].paragraphs[0].qas[0]"]),
    (_squad(_answer("Denver Broncos", 3)), "data[0].paragraphs[0].qas[0].answers[0].answer_start",
     ["answer_start 3 does not point at the answer text 'Denver Broncos'", "' Denver Bronco'", "occurs at offset 4"]),
    (_squad(_answer("Denver Broncos", 40)), "data[0].paragraphs[0].qas[0].answers[0].answer_start",
     ["answer_start 40"]),
    (_squad(_answer("Patriots", 4)), "data[0].paragraphs[0].qas[0].answers[0].answer_start",
     ["does not occur in the context"]),
    (_squad(_answer("Denver", "4")), "data[0].paragraphs[0].qas[0].answers[0].answer_start",
     ["a string", "an integer"]),
    (_squad(_answer(" ", 3)), "data[0].paragraphs[0].qas[0].answers[0].text", ["an empty answer text"]),
    (_squad([{"id": "q1", "question": "?", "answers": []}]), "data[0].paragraphs[0].qas[0].answers", ["no answers"]),
    (_squad([{"id": "q1", "question": "?", "answers": [], "is_impossible": True}]),
     "data[0].paragraphs[0].qas[0].is_impossible", ["SQuAD v2.0"]),
    (_squad(_answer("x", 0), context=""), "data[0].paragraphs[0].qas[0].answers[0].answer_start",
     ["does not occur in the context"]),  # a question with no context cannot have a reference answer
])
def test_malformed_files_name_the_json_path(tmp_path, document, location, words):
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    pattern = re.escape(f"{path}: {location}: ") + "".join(".*" + re.escape(w) for w in words)
    with pytest.raises(SquadFormatError, match=pattern):
        read_squad(path)


def test_questions_without_answers_are_read_for_prediction(tmp_path):
    path = tmp_path / "unanswered.json"
    path.write_text(json.dumps(_squad([{"id": 7, "question": "Who?", "answers": []}], context="")), encoding="utf-8")
    [question] = read_squad(path, require_answers=False)
    assert question == SquadQuestion("7", "Who?", "", (), f"{path}: data[0].paragraphs[0].qas[0]")


def test_error_pickles_with_its_fields():
    import pickle

    error = pickle.loads(pickle.dumps(SquadFormatError("f.json", "data[0]", "bad", "good")))
    assert (error.path, error.location, str(error)) == ("f.json", "data[0]", "f.json: data[0]: bad; expected good")


# --- words and pieces ---------------------------------------------------------------------

def test_split_words_keeps_character_offsets():
    text = "  Super\u00a0Bowl\t50\n(1895-1943)  was\u202fhere "
    words, starts, ends = split_words(text)
    assert words == text.split() == ["Super", "Bowl", "50", "(1895-1943)", "was", "here"]
    assert [text[s:e] for s, e in zip(starts, ends)] == words
    assert split_words("") == ([], [], []) and split_words(" \n ") == ([], [], [])


def test_piece_spans_split_words_below_the_word_level(tokenizer):
    def spans(word):
        _, starts, ends = tokenizer.tokenize_words_with_offsets(tf.ragged.constant([[word]]))
        return [word[s:e] for s, e in zip(starts.flat_values.numpy(), ends.flat_values.numpy())]

    assert spans("(1895-1943),") == ["(", "1895", "-", "1943", ")", ","]
    assert spans("Naïve") == ["Naïve"]
    assert spans("Jürgenson's") == ["Jürgen", "son", "'", "s"]
    assert spans("\u200b") == [""]  # only a format character: [UNK] over nothing, still well-formed
    assert spans("x☃y") == ["x☃y"]  # the whole word is [UNK]
    assert spans("(☃)") == ["(", "☃", ")"]  # [UNK] between two aligned pieces


def _strip(text):
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text.lower()


def test_every_piece_of_the_dev_contexts_spans_its_own_text(tokenizer, dev):
    distinct = list(dict.fromkeys(q.context for q in dev))
    assert len(distinct) == 54
    piece_ids, start_chars, end_chars = (t.to_list() for t in
                                         QuestionAnsweringPreprocessor(tokenizer).context_pieces(tf.constant(distinct)))
    checked = 0
    for context, ids, starts, ends in zip(distinct, piece_ids, start_chars, end_chars):
        assert np.all(np.array(starts) <= np.array(ends)) and np.all(np.diff(starts) >= 0)
        for piece_id, start, end in zip(ids, starts, ends):
            token = tokenizer.vocabulary[piece_id]
            if token != "[UNK]":
                assert _strip(context[start:end]) == token.removeprefix("##"), (token, context[start:end])
                checked += 1
        # word-by-word tokenisation equals tokenising the whole context at once
        assert ids == tokenizer([context]).to_list()[0]
    assert checked > 7000


def test_context_pieces_are_the_same_in_tf_data_and_a_saved_model(tokenizer, dev):
    preprocessor = QuestionAnsweringPreprocessor(tokenizer)
    contexts = [dev[0].context[:300], "", " \n ", "caf\u00e9 \u200b x\u2603y (\u2603) na\u00efve\u202fhere", "Broncos won"]

    def one(context):
        return tuple(t[0] for t in preprocessor.context_pieces(context[None]))

    pieces, starts, _ = run_preprocessing_test(preprocessor.context_pieces, contexts, example_fn=one)
    assert pieces.row_lengths().numpy().tolist()[1:3] == [0, 0] and starts.to_list()[4] == [0, 8]


# --- windows ------------------------------------------------------------------------------

def _window_starts(num_pieces, window_length, doc_stride):
    """BERT's window starts in plain Python: ``doc_stride`` apart (at most the window) until every piece is in one."""
    stride = max(1, min(doc_stride, window_length))
    starts = [0]
    while starts[-1] + window_length < num_pieces:
        starts.append(starts[-1] + stride)
    return starts


def test_windows_cover_every_piece_and_max_context_is_bert_s():
    rng = np.random.default_rng(0)
    trials = [(int(rng.integers(0, 60)), int(rng.integers(1, 12)), int(rng.integers(1, 15))) for _ in range(200)]
    windows = context_windows(*(tf.constant(column) for column in zip(*trials)))  # all trials in one batch
    example = windows["example"].numpy()
    first, end = windows["first"].numpy(), windows["end"].numpy()
    pieces, max_context = windows["piece"].to_list(), windows["max_context"].to_list()
    assert example.tolist() == sorted(example.tolist())
    for trial, (num_pieces, length, stride) in enumerate(trials):
        rows = np.flatnonzero(example == trial)
        starts = first[rows].tolist()
        assert starts == _window_starts(num_pieces, length, stride)
        assert end[rows].tolist() == [min(s + length, num_pieces) for s in starts]
        assert [pieces[row] for row in rows] == [list(range(s, min(s + length, num_pieces))) for s in starts]
        covered = np.zeros(num_pieces, int)
        for start in starts:
            covered[start:start + length] += 1
        assert np.all(covered >= 1) and starts[-1] + length >= num_pieces
        assert len(starts) == 1 or starts[-2] + length < num_pieces  # no window more than needed
        best = np.full(num_pieces, -1)
        for window, row in enumerate(rows):
            for piece, owned in zip(pieces[row], max_context[row]):
                if owned:
                    assert best[piece] == -1  # each piece has one max-context window
                    best[piece] = window
        for piece in range(num_pieces):  # BERT's _check_is_max_context, by brute force
            scores = [min(piece - s, s + min(length, num_pieces - s) - 1 - piece) + 0.01 * min(length, num_pieces - s)
                      if s <= piece < s + length else -np.inf for s in starts]
            assert best[piece] == int(np.argmax(scores))


def _long_question(word_count=700):
    words = [f"w{i}" for i in range(word_count)]
    where = word_count * 13 // 14
    words[where] = "Gutenberg"
    return SquadQuestion("long", "Who printed the book? " * 12, " ".join(words),
                         (SquadAnswer("Gutenberg", len(" ".join(words[:where])) + 1),))


def test_a_context_far_longer_than_the_sequence_is_read_through_windows(tokenizer):
    question = _long_question()
    features = _features([question], tokenizer, sequence_length=128, doc_stride=64, max_query_length=16)
    assert features.num_truncated_questions == 1
    assert np.all(features.token_ids[:, 1:17] == features.token_ids[0, 1:17])  # the cut question in every window
    context_ids = tokenizer([question.context]).to_list()[0]
    assert len(context_ids) > 5 * 128 and len(features) > 10
    # the pieces each window owns (max context), in order, are the whole context, each piece once
    owned = np.concatenate([row[mask] for row, mask in zip(features.token_ids, features.max_context)])
    assert owned.tolist() == context_ids
    for row in range(len(features)):
        segment = features.segment_ids[row][features.padding_mask[row]]
        assert features.token_ids[row, 0] == tokenizer.cls_token_id
        assert features.token_ids[row][features.padding_mask[row]][-1] == tokenizer.sep_token_id
        assert segment.tolist() == [0] * 18 + [1] * (len(segment) - 18)
    holding = np.flatnonzero(features.start_positions > 0)
    assert len(holding) >= 1 and np.all(features.start_positions[features.start_positions == 0] == 0)
    for row in holding:
        start, end = features.start_chars[row, features.start_positions[row]], features.end_chars[
            row, features.end_positions[row]]
        assert question.context[start:end] == "Gutenberg"
    assert np.all(features.end_positions[features.start_positions == 0] == 0)  # others point at [CLS]


def test_gold_positions_decode_to_the_answers_of_the_dev_sample(tokenizer, dev):
    """Every reference answer of the sample that lies in a window comes back from its piece positions."""
    expanded = [dataclasses.replace(q, answers=(a,)) for q in dev for a in q.answers]
    features = _features(expanded, tokenizer, sequence_length=128, doc_stride=64, max_query_length=64)
    matched, mismatched = 0, []
    for row in np.flatnonzero(features.start_positions > 0):
        question = features.questions[features.question_index[row]]
        start_char = features.start_chars[row, features.start_positions[row]]
        end_char = features.end_chars[row, features.end_positions[row]]
        if normalize_answer(question.context[start_char:end_char]) == normalize_answer(question.answers[0].text):
            matched += 1
        else:
            mismatched.append((question, start_char, end_char))
    fraction = matched / (matched + len(mismatched))
    print(f"gold positions decode to the answer in {matched} of {matched + len(mismatched)} windows ({fraction:.2%})")
    assert fraction > 0.98
    for question, start_char, end_char in mismatched:  # only answers that begin or end inside a word piece
        answer = question.answers[0]
        assert start_char < answer.start_char or end_char > answer.start_char + len(answer.text)
    assert {len(q.answers) for q in expanded} == {1}
    # every answer lies in at least one window
    assert set(features.question_index[features.start_positions > 0]) == set(range(len(expanded)))


def test_empty_context_and_tiny_windows(tokenizer):
    questions = [SquadQuestion("empty", "Who won?", "   "), SquadQuestion("short", "", "Broncos won")]
    features = _features(questions, tokenizer, sequence_length=8, doc_stride=1, max_query_length=4)
    assert features.question_index.tolist() == [0, 1]
    assert not features.context_mask[0].any()
    answers = decode_answers(features, np.zeros((2, 8)), np.zeros((2, 8)))
    assert answers[0] == {"id": "empty", "answer": "", "start_char": 0, "end_char": 0, "score": None, "n_best": []}
    assert answers[1]["answer"] in ("Broncos won", "Broncos", "won")
    with pytest.raises(ValueError, match="max_query_length \\+ 4"):
        _features(questions, tokenizer, sequence_length=8, doc_stride=1, max_query_length=5)


# --- decoding -----------------------------------------------------------------------------

def _brute_force(start_logits, end_logits, start_mask, end_mask, max_answer_length):
    spans = []
    for window, start, end in itertools.product(*map(range, start_logits.shape), range(start_logits.shape[1])):
        if start <= end < start + max_answer_length and start_mask[window, start] and end_mask[window, end]:
            spans.append((start_logits[window, start] + end_logits[window, end], window, start, end))
    return sorted(spans, key=lambda s: -s[0])


def _best_span_list(*args, **kwargs):
    """`best_spans` of the windows of one question, as a list of ``(score, window, start, end)``, best first."""
    score, window, start, end = (t.numpy()[0] for t in best_spans(*args, **kwargs))
    return [(float(s), int(w), int(a), int(b)) for s, w, a, b in zip(score, window, start, end) if np.isfinite(s)]


def test_best_spans_equal_exhaustive_search_on_random_logits():
    rng = np.random.default_rng(1)
    for trial in range(60):
        windows, length = int(rng.integers(1, 4)), int(rng.integers(1, 24))
        max_answer_length = int(rng.integers(1, 8))
        start_logits, end_logits = rng.normal(size=(2, windows, length)) * 3
        start_mask = rng.random((windows, length)) < (0.3 if trial % 3 == 0 else 0.8)
        end_mask = rng.random((windows, length)) < 0.8
        expected = _brute_force(start_logits, end_logits, start_mask, end_mask, max_answer_length)
        found = _best_span_list(start_logits, end_logits, start_mask, end_mask, max_answer_length, n_best_size=20)
        assert [s[1:] for s in found] == [s[1:] for s in expected[:20]]
        np.testing.assert_allclose([s[0] for s in found], [s[0] for s in expected[:20]])
    nothing = np.zeros((1, 5), bool)
    assert _best_span_list(np.zeros((1, 5)), np.zeros((1, 5)), nothing, nothing) == []


def test_decoding_gold_logits_scores_as_the_references(tokenizer, dev):
    features = _features(dev, tokenizer, sequence_length=128, doc_stride=64)
    rows = np.arange(len(features))
    start_logits = np.where(features.context_mask, 0.0, -5.0)
    end_logits = start_logits.copy()
    holding = features.start_positions > 0
    start_logits[rows[holding], features.start_positions[holding]] = 10.0
    end_logits[rows[holding], features.end_positions[holding]] = 10.0
    answers = decode_answers(features, start_logits, end_logits, max_answer_length=30)
    for answer, question in zip(answers, dev):
        assert answer["answer"] == question.context[answer["start_char"]:answer["end_char"]]
        assert answer["id"] == question.id and len(answer["n_best"]) == 20
        assert answer["n_best"][0]["score"] == answer["score"]
    scores = squad_scores(dev, {a["id"]: a["answer"] for a in answers})
    assert scores["exact_match"] > 97 and scores["f1"] > 98


def test_dataset_batches_the_windows(tokenizer):
    features = _features([_long_question(200)], tokenizer, sequence_length=64, doc_stride=32, max_query_length=16)
    data = squad_dataset(features, 4, labels=True, shuffle=True, input_dtypes={"padding_mask": "int32"})
    x, y = next(iter(data))
    assert x["token_ids"].shape == (4, 64) and x["padding_mask"].dtype.name == "int32"
    assert y["start_logits"].shape == (4,) and x["segment_ids"].dtype.name == "int32"
    assert sum(int(x["token_ids"].shape[0]) for x, _ in data) == len(features)
