"""Exact match and F1 of extractive answers, as defined by the official SQuAD v1.1 evaluation.

Both compare answers after the official normalisation (`normalize_answer`): lower
case, punctuation removed, the articles "a", "an" and "the" removed, whitespace
collapsed. F1 counts shared words with multiplicity. A prediction is scored
against each reference answer of its question and keeps the best score; the
corpus scores are averages over the questions, times 100.

Example:

>>> exact_match("The Cat", "cat"), round(f1_score("the big cat sat", "a cat"), 3)
(1.0, 0.667)
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text):
    """Lower-cases, removes punctuation, then the articles a/an/the, then collapses whitespace."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction, reference):
    """1.0 when both normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1_score(prediction, reference):
    """Harmonic mean of word precision and recall of the normalised answers (0.0 with no shared word)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    shared = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(predicted)
    recall = shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(questions, predictions):
    """Corpus exact match and F1 (0-100) of ``predictions`` on ``questions``.

    Args:
        questions: list of `tfpretrain.text.squad.SquadQuestion` (with answers).
        predictions: dict ``{question id: answer text}``; a question without a
            prediction scores 0, as in the official script.

    Returns:
        dict ``{"exact_match", "f1", "num_questions", "num_unanswered"}``.
    """
    if not questions:
        raise ValueError("no questions to score")
    exact, f1, unanswered = 0.0, 0.0, 0
    for question in questions:
        if question.id not in predictions:
            unanswered += 1
            continue
        references = [answer.text for answer in question.answers]
        if not references:
            raise ValueError(f"{question.source}: question {question.id!r} has no reference answer to score against")
        prediction = predictions[question.id]
        exact += max(exact_match(prediction, reference) for reference in references)
        f1 += max(f1_score(prediction, reference) for reference in references)
    return {"exact_match": 100.0 * exact / len(questions), "f1": 100.0 * f1 / len(questions),
            "num_questions": len(questions), "num_unanswered": unanswered}
