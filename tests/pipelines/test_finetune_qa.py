"""Fine-tuning a tiny, untrained BERT encoder on a SQuAD slice: run, evaluate, predict, bad input, mirrored."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import cli, run_litert
from tfpretrain.models.bert.question_answering import load_qa_model
from tfpretrain.pipelines.finetune_qa import evaluate, predict, run
from tfpretrain.text.squad import SquadFormatError

pytestmark = pytest.mark.slow  # fine-tunes BERT for QA

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
ENCODER = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128, "max_sequence_length": 128}
FAST = {"sequence_length": 128, "doc_stride": 64, "max_query_length": 32, "epochs": 1, "batch_size": 16,
        "learning_rate": 1e-3, "max_train_examples": 64, "verbose": 0}


def _slice(source, target, num_paragraphs):
    """The first paragraphs of a SQuAD file, written to tmp (never into the repo)."""
    with open(source, encoding="utf-8") as f:
        document = json.load(f)
    article = document["data"][0]
    document["data"] = [{**article, "paragraphs": article["paragraphs"][:num_paragraphs]}]
    target.write_text(json.dumps(document), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_qa")
    squad = shared_data / "squad_v1.1_sample"
    return {"root": root, "train": squad / "train.json", "dev": _slice(squad / "dev.json", root / "dev.json", 2)}


@pytest.fixture(scope="module")
def bert_dir(data):
    """A BERT directory with a random tiny encoder and a WordPiece vocabulary learned from the SQuAD texts."""
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.text.squad import read_squad
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    questions = read_squad(data["train"])
    texts = sorted({q.context for q in questions}) + [q.question for q in questions]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 1000))
    encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **ENCODER)
    out = data["root"] / "bert"
    save_bert(str(out), encoder, tokenizer)
    return out


@pytest.fixture(scope="module")
def qa_model(bert_dir, data):
    out = data["root"] / "qa"
    logs = []
    scores = run(bert_dir, data["train"], data["dev"], out, log=logs.append, **FAST)
    return out, scores, logs


def test_run_saves_a_model_that_evaluate_scores_the_same(qa_model, data):
    out, scores, logs = qa_model
    assert 0.0 <= scores["exact_match"] <= scores["f1"] <= 100.0
    assert scores["num_questions"] == 55 and scores["num_unanswered"] == 0
    assert scores["train_questions"] == 64 and scores["train_windows"] >= 64
    assert math.isfinite(scores["train_loss"]) and scores["train_windows_per_second"] > 0
    assert any("64 training and 55 dev questions" in line for line in logs)
    for name in ("task.json", "head.weights.npz", "encoder.json", "encoder.weights.h5", "vocab.txt"):
        assert (out / name).exists(), name
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "qa" and task["sequence_length"] == 128 and task["doc_stride"] == 64
    assert task["max_query_length"] == 32 and task["max_answer_length"] == 30
    assert task["dev_scores"]["f1"] == scores["f1"] and task["encoder"]["hidden_dim"] == 64
    assert "lowercase" in task["tokenizer"]
    evaluated = evaluate(out, data["dev"])
    for key in ("exact_match", "f1", "num_questions", "num_windows"):
        assert evaluated[key] == pytest.approx(scores[key], abs=1e-9), key


def test_predict_answers_from_the_context(qa_model):
    out, _, _ = qa_model
    long_context = " ".join(f"word{i}" for i in range(600)) + " The printing press was built by Gutenberg."
    pairs = [("Who won Super Bowl 50?", "The Denver Broncos defeated the Carolina Panthers 24-10."),
             ("Who built the press?", long_context),
             ("Who won?", ""),
             ("Who won?", " \n "),
             ("", "A context without a question.")]
    answers = predict(out, pairs)
    assert len(answers) == 5
    for answer, (_, context) in zip(answers[:2] + answers[4:], pairs[:2] + pairs[4:]):
        assert set(answer) == {"answer", "start_char", "end_char", "score"}
        assert answer["answer"] and context[answer["start_char"]:answer["end_char"]] == answer["answer"]
        assert math.isfinite(answer["score"])
    assert len(answers[1]["answer"].split()) <= 30
    assert answers[2] == answers[3] == {"answer": "", "start_char": 0, "end_char": 0, "score": None}
    assert predict(out, []) == []
    with pytest.raises(ValueError, match="pair 0: .*expected a \\(question, context\\) tuple"):
        predict(out, [("only a question",)])


def test_tflite_file_answers_as_predict_on_a_phone(qa_model, data, tmp_path):
    """``export --tflite`` of the fine-tuned model, run where only ai_edge_litert and tensorflow_text are imported:
    the answers (text and byte span) of `predict` on the model directory, windows cut inside the file."""
    from tfpretrain.text.squad import read_squad

    out, _, _ = qa_model
    pairs = [(q.question, q.context) for q in read_squad(data["dev"])] + [("Who won?", ""), ("", "No question.")]
    cli("export", "--model", out, "--tflite", tmp_path / "qa.tflite")
    on_device = run_litert(tmp_path / "qa.tflite", [{"question": q, "context": c} for q, c in pairs], tmp_path)
    for answer, expected, (_, context) in zip(on_device, predict(out, pairs), pairs):
        assert answer["answer"] == expected["answer"]
        assert answer["start"] == len(context[:expected["start_char"]].encode("utf-8"))
        assert answer["end"] == len(context[:expected["end_char"]].encode("utf-8"))
        if expected["score"] is not None:
            assert answer["score"] == pytest.approx(expected["score"], abs=1e-3)


def test_bad_input_gives_clear_errors(qa_model, bert_dir, data, tmp_path):
    out, _, _ = qa_model
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [
        {"id": "x", "question": "?", "answers": [{"text": "abd", "answer_start": 0}]}]}]}]}), encoding="utf-8")
    with pytest.raises(SquadFormatError, match=f"{bad}: data\\[0\\].paragraphs\\[0\\].qas\\[0\\].answers\\[0\\]"):
        evaluate(out, bad)
    empty = tmp_path / "empty.json"
    empty.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="no questions found"):
        evaluate(out, empty)
    with pytest.raises(ValueError, match="exceeds the encoder's max_sequence_length 128"):
        run(bert_dir, data["train"], data["dev"], tmp_path / "never", **{**FAST, "sequence_length": 256})
    with pytest.raises(FileNotFoundError, match="task.json is missing"):
        load_qa_model(bert_dir)
    task = json.loads((out / "task.json").read_text())
    not_qa = tmp_path / "not_qa"
    not_qa.mkdir()
    (not_qa / "task.json").write_text(json.dumps({**task, "task": "classify"}), encoding="utf-8")
    with pytest.raises(ValueError, match="task 'classify'; expected 'qa'"):
        load_qa_model(not_qa)


def test_mirrored_strategy_on_two_logical_cpus(bert_dir, data, tmp_path):
    out = tmp_path / "mirrored"
    options = {**FAST, "max_train_examples": 32, "strategy": "mirrored", "logical_cpus": 2}
    script = (
        "import json, sys\n"
        "from tfpretrain.pipelines.finetune_qa import run\n"
        "logs = []\n"
        f"scores = run({str(bert_dir)!r}, {str(data['train'])!r}, {str(data['dev'])!r}, {str(out)!r}, "
        f"log=logs.append, **{options!r})\n"
        "print(json.dumps({'scores': scores, 'logs': logs}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert any("strategy mirrored (2 replica(s))" in line for line in reported["logs"])
    assert np.isfinite(reported["scores"]["train_loss"]) and reported["scores"]["num_questions"] == 55
    assert (out / "head.weights.npz").exists()
