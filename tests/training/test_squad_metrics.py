"""SQuAD v1.1 exact match and F1 against hand-computed cases and the official evaluation script.

The oracle is ``official.nlp.tools.squad_evaluate_v1_1`` (the official SQuAD v1.1
script as shipped in the TensorFlow Model Garden, PyPI ``tf-models-no-deps``,
installed with ``pip install --no-deps``: its declared dependencies would
replace TensorFlow). Its scores are fractions; ours are percentages.
"""

import json
import random
import re

import pytest

from tfpretrain.text.squad import read_squad
from tfpretrain.training.squad_metrics import exact_match, f1_score, normalize_answer, squad_scores


@pytest.mark.parametrize("text, normalized", [
    ("The Cat", "cat"),
    ("  Denver   Broncos. ", "denver broncos"),
    ("an apple, a pear and the plum!", "apple pear and plum"),
    ("Theory of the Anthem", "theory of anthem"),  # articles only as whole words
    ("(1895-1943)", "18951943"),  # punctuation is removed, not replaced by a space
    ("a", ""),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_hand_computed_scores():
    assert exact_match("The Cat", "cat") == 1.0
    assert exact_match("cats", "cat") == 0.0
    # 1 shared word: precision 1/3 ("big cat sat"), recall 1/1 -> F1 = 2 * (1/3) / (4/3) = 0.5
    assert f1_score("the big cat sat", "a cat") == pytest.approx(0.5)
    # 2 shared of 3 predicted and 4 expected: P = 2/3, R = 1/2 -> F1 = 4/7
    assert f1_score("Denver Broncos team", "the Denver Broncos football club") == pytest.approx(4 / 7)
    # duplicates count with multiplicity: "cat cat dog" vs "cat dog dog": shared {cat: 1, dog: 1} = 2 -> P = R = 2/3
    assert f1_score("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    # "cat cat" vs "cat": 1 shared, P = 1/2, R = 1 -> 2/3
    assert f1_score("cat cat", "cat") == pytest.approx(2 / 3)
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("", "cat") == 0.0 and f1_score("the", "a") == 0.0  # v1.1: nothing shared scores 0


def test_corpus_scores_take_the_best_reference_and_count_unanswered_as_zero():
    from tfpretrain.text.squad import SquadAnswer, SquadQuestion

    questions = [
        SquadQuestion("1", "q", "c", (SquadAnswer("Denver Broncos", 0), SquadAnswer("the Broncos", 0))),
        SquadQuestion("2", "q", "c", (SquadAnswer("cat", 0),)),
        SquadQuestion("3", "q", "c", (SquadAnswer("dog", 0),)),
    ]
    scores = squad_scores(questions, {"1": "Broncos", "2": "the cat"})
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)  # "Broncos" == normalised "the Broncos"
    assert scores["f1"] == pytest.approx(100 * 2 / 3)
    assert scores["num_questions"] == 3 and scores["num_unanswered"] == 1


def split_words(text):
    """The whitespace-separated words of ``text`` with their character offsets: ``(words, starts, ends)``."""
    matches = list(re.finditer(r"\S+", text))  # \s: Python's str.isspace characters, where SQuAD splits words
    return [m.group() for m in matches], [m.start() for m in matches], [m.end() for m in matches]


def _perturbed_predictions(questions, rng):
    """Predictions that exercise every part of the metric: exact, partial, articles, punctuation, wrong."""
    predictions = {}
    for question in questions:
        answer = question.answers[rng.randrange(len(question.answers))]
        words, starts, ends = split_words(question.context)
        kind = rng.randrange(6)
        if kind == 0:
            text = answer.text
        elif kind == 1:
            text = f"The {answer.text.upper()}!"
        elif kind == 2:  # widen the span by a few words on either side
            i = max(0, next(k for k, e in enumerate(ends) if e > answer.start_char) - rng.randrange(3))
            j = min(len(words), i + len(answer.text.split()) + rng.randrange(4))
            text = question.context[starts[i]:ends[j - 1]]
        elif kind == 3:  # a random span of the context, repeated words included
            i = rng.randrange(len(words))
            text = " ".join(words[i:i + rng.randrange(1, 8)] * rng.randrange(1, 3))
        elif kind == 4:
            text = answer.text[: max(1, len(answer.text) // 2)]
        else:
            text = rng.choice(["", "a", "the the", "—", "None"])
        predictions[question.id] = text
    return predictions


def test_scores_equal_the_official_script_on_the_dev_sample(shared_data):
    oracle = pytest.importorskip(
        "official.nlp.tools.squad_evaluate_v1_1",
        reason="the oracle needs `pip install --no-deps tf-models-no-deps` (official SQuAD v1.1 script)",
    )
    path = shared_data / "squad_v1.1_sample" / "dev.json"
    questions = read_squad(path)
    with open(path, encoding="utf-8") as f:
        dataset = json.load(f)["data"]
    rng = random.Random(0)
    for trial in range(3):
        predictions = _perturbed_predictions(questions, rng)
        if trial == 2:  # some questions unanswered
            predictions = {k: v for k, v in predictions.items() if rng.random() < 0.8}
        expected = oracle.evaluate(dataset, predictions)
        ours = squad_scores(questions, predictions)
        assert ours["exact_match"] == pytest.approx(100 * expected["exact_match"], abs=1e-9)
        assert ours["f1"] == pytest.approx(100 * expected["final_f1"], abs=1e-9)
        assert 0 < ours["exact_match"] < 100 and ours["exact_match"] < ours["f1"] < 100
    per_question = {q.id: q for q in questions}
    for question_id, prediction in list(_perturbed_predictions(questions, rng).items())[:300]:
        references = [a.text for a in per_question[question_id].answers]
        for reference in references:
            assert f1_score(prediction, reference) == pytest.approx(oracle._f1_score(prediction, reference))
            assert exact_match(prediction, reference) == float(oracle._exact_match_score(prediction, reference))
