"""Fine-tuning a (tiny, untrained) BERT encoder on SST-2, RTE and UNER slices; evaluate, predict, resume, mirror."""

import json
import math
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ENV, make_bert_dir, write_head, write_sentences
from tfpretrain.pipelines.finetune import evaluate, load_task_model, predict, run
from tfpretrain.text.readers import DataFormatError, read_iob2

pytestmark = pytest.mark.slow  # fine-tunes BERT on every task

FAST = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3, "verbose": 0}


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_data")
    uner = shared_data / "uner_english_ewt" / "dev.iob2"
    return {
        "root": root,
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2_train.tsv", 400),
        "sst2_dev": write_head(shared_data / "sst2" / "dev.tsv", root / "sst2_dev.tsv", 200),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte_train.tsv", 200),
        "rte_dev": write_head(shared_data / "rte" / "dev.tsv", root / "rte_dev.tsv", 100),
        "uner_train": write_sentences(uner, root / "uner_train.iob2", 0, 400),
        "uner_dev": write_sentences(uner, root / "uner_dev.iob2", 400, 600),
    }


@pytest.fixture(scope="module")
def bert_dir(data):
    return make_bert_dir(data, data["root"] / "bert")


def test_classify_sst2_run_evaluate_predict(bert_dir, data, tmp_path):
    out = tmp_path / "sst2"
    logs = []
    scores = run("classify", bert_dir, data["sst2_train"], data["sst2_dev"], out, sequence_length=32,
                 log=logs.append, **FAST)
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["num_examples"] == 200
    assert math.isfinite(scores["train_loss"])
    for name in ("task.json", "head.weights.npz", "encoder.json", "vocab.txt"):
        assert (out / name).exists(), name
    task = json.loads((out / "task.json").read_text())
    assert task["task"] == "classify" and task["labels"] == ["0", "1"] and task["sequence_length"] == 32
    assert task["dev_scores"]["accuracy"] == scores["accuracy"]

    # A reloaded model scores the same.
    reloaded = evaluate(out, data["sst2_dev"])
    assert reloaded["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-9)
    assert reloaded["macro_f1"] == pytest.approx(scores["macro_f1"], abs=1e-9)

    # predict() agrees with evaluate(); macro F1 against scikit-learn.
    from sklearn.metrics import f1_score

    from tfpretrain.text.task_readers import read_classification_tsv

    dev = read_classification_tsv(data["sst2_dev"])
    predictions = predict(out, [e.texts[0] for e in dev])
    gold = [e.label for e in dev]
    predicted = [p["label"] for p in predictions]
    assert np.mean([g == p for g, p in zip(gold, predicted)]) == pytest.approx(scores["accuracy"])
    assert f1_score(gold, predicted, average="macro") == pytest.approx(scores["macro_f1"])
    for p in predictions[:5]:
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert p["score"] == max(p["probabilities"].values())

    # Bad input still gets a well-formed answer: empty text, text far beyond sequence_length.
    odd = predict(out, ["", "good " * 5000, "\x00\x01 ☃"])
    assert [p["label"] in ("0", "1") for p in odd] == [True] * 3


def test_pair_rte(bert_dir, data, tmp_path):
    out = tmp_path / "rte"
    scores = run("pair", bert_dir, data["rte_train"], data["rte_dev"], out, sequence_length=64, **FAST,
                 log=lambda *_: None)
    assert scores["num_examples"] == 100 and 0.0 <= scores["accuracy"] <= 1.0
    assert scores["num_truncated"] > 0  # RTE premises run past 64 pieces
    assert evaluate(out, data["rte_dev"])["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-9)
    answers = predict(out, [("A man is running.", "A person moves."), ("", "")])
    assert [a["label"] in ("0", "1") for a in answers] == [True, True]
    with pytest.raises(ValueError, match="pair of strings"):
        predict(out, ["not a pair"])


def _is_valid_iob2(tags):
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _scramble_head(model_dir, out_dir, seed):
    """A copy of a tagger whose head weights are random, so that it predicts many entities."""
    shutil.copytree(model_dir, out_dir)
    path = out_dir / "head.weights.npz"
    with np.load(path) as stored:
        weights = dict(stored)
    rng = np.random.default_rng(seed)
    for name, value in weights.items():
        weights[name] = rng.normal(size=value.shape).astype(value.dtype)
    np.savez(path, **weights)
    return out_dir


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_tag_uner_against_seqeval(bert_dir, data, tmp_path, crf):
    import seqeval.metrics

    out = tmp_path / "tagger"
    logs = []
    scores = run("tag", bert_dir, data["uner_train"], data["uner_dev"], out, format="iob2", crf=crf,
                 sequence_length=48, **FAST, log=logs.append)
    assert any("Truncation to 48 pieces cuts" in line for line in logs)
    assert scores["sentences"] == 200 and scores["num_words_truncated"] > 0  # some UNER sentences are long
    task = json.loads((out / "task.json").read_text())
    assert task["crf"] is crf and task["constraint"] == ("BIO" if crf else None) and task["tags"][0] == "O"
    reloaded = evaluate(out, data["uner_dev"])
    for name in ("precision", "recall", "f1", "accuracy", "num_words_truncated"):
        assert reloaded[name] == pytest.approx(scores[name], abs=1e-6), name

    # Scores against seqeval on the predictions of a model that predicts plenty of entities.
    scrambled = _scramble_head(out, tmp_path / "scrambled", seed=3)
    dev = read_iob2(data["uner_dev"])
    predicted = [r["tags"] for r in predict(scrambled, [list(s.tokens) for s in dev])]
    gold = [list(s.tags) for s in dev]
    assert [len(p) for p in predicted] == [len(g) for g in gold]  # one tag per word, cut words included
    assert sum(tag.startswith("B-") for seq in predicted for tag in seq) > 50
    if crf:
        assert all(_is_valid_iob2(seq) for seq in predicted)
    expected = {
        "precision": seqeval.metrics.precision_score(gold, predicted, zero_division=0),
        "recall": seqeval.metrics.recall_score(gold, predicted, zero_division=0),
        "f1": seqeval.metrics.f1_score(gold, predicted, zero_division=0),
        "accuracy": seqeval.metrics.accuracy_score(gold, predicted),
    }
    scrambled_scores = evaluate(scrambled, data["uner_dev"])
    assert scrambled_scores["precision"] > 0
    for name, value in expected.items():
        assert scrambled_scores[name] == pytest.approx(value, abs=1e-6), name

    # A sentence far longer than sequence_length still gets one tag per word; raw text is split into words.
    results = predict(scrambled, [["Paris"] * 300, "Obama visited Paris.", ""])
    assert len(results[0]["tags"]) == 300 and set(results[0]["tags"][46:]) == {"O"}
    assert results[1]["tokens"] == ["Obama", "visited", "Paris", "."] and len(results[1]["tags"]) == 4
    assert results[2]["tokens"] == [] and results[2]["tags"] == []


def _synthetic_tags(path, num_sentences, seed):
    """Filler words around one entity: a city (B-LOC) or a first and last name (B-PER I-PER)."""
    rng = random.Random(seed)
    filler = "the film story actors plot music scenes director was is and a an of with in to".split()
    places, first, last = ["paris", "london", "tokyo", "cairo"], ["alice", "bob", "carol"], ["smith", "jones"]
    blocks = []
    for _ in range(num_sentences):
        words = [(w, "O") for w in rng.sample(filler, rng.randint(4, 8))]
        at = rng.randrange(len(words) + 1)
        if rng.random() < 0.5:
            words[at:at] = [(rng.choice(places), "B-LOC")]
        else:
            words[at:at] = [(rng.choice(first), "B-PER"), (rng.choice(last), "I-PER")]
        blocks.append("\n".join(f"{k + 1}\t{w}\t{t}\t_\t_" for k, (w, t) in enumerate(words)))
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


def test_bert_crf_learns_to_tag(bert_dir, tmp_path):
    train = _synthetic_tags(tmp_path / "train.iob2", 240, seed=1)
    dev = _synthetic_tags(tmp_path / "dev.iob2", 100, seed=2)
    # The encoder is random, so the head and the CRF do the learning: give them a high rate of their own.
    scores = run("tag", bert_dir, train, dev, tmp_path / "out", crf=True, sequence_length=32,
                 **{**FAST, "epochs": 3, "batch_size": 16}, head_learning_rate=1e-2, crf_learning_rate=1e-2,
                 log=lambda *_: None)
    assert scores["num_words_truncated"] == 0
    assert scores["f1"] > 0.3 and scores["precision"] > 0.5, scores  # predicting all "O" scores 0


def test_unknown_dev_label_is_an_error(bert_dir, data, tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text("label\tsentence\n1\tfine\n2\tunknown label here\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"{dev}:3: label '2'.*'0', '1'"):
        run("classify", bert_dir, data["sst2_train"], dev, tmp_path / "out", **FAST)


def test_option_errors(bert_dir, data, tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        run("summarize", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path)
    with pytest.raises(ValueError, match="--crf applies to --task tag"):
        run("classify", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path, crf=True)
    with pytest.raises(ValueError, match="--format 'iob2' does not apply"):
        run("classify", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path, format="iob2")
    with pytest.raises(ValueError, match="max_sequence_length"):
        run("classify", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path, sequence_length=4096, **FAST)
    with pytest.raises(FileNotFoundError, match="task.json"):
        evaluate(bert_dir, data["sst2_dev"])


def _synthetic(path, num_examples, seed):
    """Label 'pos' when the text holds 'great' or 'superb', else 'neg': learnable from one word."""
    rng = random.Random(seed)
    filler = "the film story actors plot music scenes director was is and a an of with".split()
    lines = ["label\tsentence"]
    for _ in range(num_examples):
        words = rng.sample(filler, 6)
        positive = rng.random() < 0.5
        if positive:
            words.insert(rng.randrange(len(words) + 1), rng.choice(["great", "superb"]))
        lines.append(f"{'pos' if positive else 'neg'}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fine_tuning_learns(bert_dir, tmp_path):
    train = _synthetic(tmp_path / "train.tsv", 480, seed=1)
    dev = _synthetic(tmp_path / "dev.tsv", 200, seed=2)
    scores = run("classify", bert_dir, train, dev, tmp_path / "out", sequence_length=16,
                 **{**FAST, "epochs": 3, "batch_size": 16}, log=lambda *_: None)
    labels = [line.split("\t")[0] for line in dev.read_text().splitlines()[1:]]
    majority = max(labels.count("pos"), labels.count("neg")) / len(labels)
    assert scores["accuracy"] >= majority + 0.25, (scores, majority)


def test_resume_after_interruption(bert_dir, data, tmp_path, monkeypatch):
    from tfpretrain.training import callbacks

    out = tmp_path / "resumed"
    original = callbacks.ResumableBackup.on_epoch_end  # the last callback of an epoch: the checkpoint is written

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("killed after the first epoch")

    args = ("classify", bert_dir, data["sst2_train"], data["sst2_dev"], out)
    options = {**FAST, "epochs": 2, "sequence_length": 16, "max_train_examples": 96}
    monkeypatch.setattr(callbacks.ResumableBackup, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(*args, **options, log=lambda *_: None)
    assert (out / "checkpoint").is_dir() and not (out / "task.json").exists()
    monkeypatch.setattr(callbacks.ResumableBackup, "on_epoch_end", original)

    logs = []
    scores = run(*args, **options, log=logs.append)
    assert any("Resuming" in line for line in logs)
    epochs = [int(line.split(",")[0]) for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1]  # the second call ran only the second epoch
    assert math.isfinite(scores["train_loss"]) and (out / "task.json").exists()
    _, _, options_read = load_task_model(out)
    assert options_read["epochs"] == 2 and options_read["dev_scores"] == scores


def test_ulmfit_recipe_resumes_exactly_and_saves_the_best_epoch(bert_dir, data, tmp_path, monkeypatch):
    """--discriminative --schedule slanted --gradual-unfreezing, killed after epoch 1 and resumed, ends as an
    uninterrupted run; the saved model is the epoch with the best dev accuracy in history.csv."""
    from tfpretrain.training import callbacks

    args = ("classify", bert_dir, data["sst2_train"], data["sst2_dev"])
    options = {**FAST, "epochs": 3, "sequence_length": 24, "max_train_examples": 96, "learning_rate": 1e-4,
               "head_learning_rate": 3e-3, "discriminative": True, "schedule": "slanted", "gradual_unfreezing": True,
               "log": lambda *_: None}
    whole = run(*args, tmp_path / "whole", **options)

    original = callbacks.ResumableBackup.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("killed after the first epoch")

    monkeypatch.setattr(callbacks.ResumableBackup, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(*args, tmp_path / "resumed", **options)
    monkeypatch.setattr(callbacks.ResumableBackup, "on_epoch_end", original)
    resumed = run(*args, tmp_path / "resumed", **options)

    for key in ("accuracy", "macro_f1", "best_epoch", "train_loss"):
        assert resumed[key] == whole[key], key
    with np.load(tmp_path / "whole" / "head.weights.npz") as a, np.load(tmp_path / "resumed" / "head.weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    history = (tmp_path / "whole" / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("val_accuracy")
    dev_accuracy = [float(line.split(",")[column]) for line in history[1:]]
    assert whole["best_epoch"] == 1 + int(np.argmax(dev_accuracy))
    assert whole["accuracy"] == pytest.approx(max(dev_accuracy), abs=1e-6)
    task = json.loads((tmp_path / "whole" / "task.json").read_text())
    assert (task["schedule"], task["decay"], task["gradual_unfreezing"], task["keep_best"]) == ("slanted", 2.6, True,
                                                                                               True)
    with pytest.raises(ValueError, match="--discriminative: not for --task qa"):
        run("qa", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path / "qa", discriminative=True)


MIRRORED_SCRIPT = """
import json, sys
from tfpretrain.pipelines.finetune import run
logs = []
scores = run("tag", sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], crf=True, strategy="mirrored", logical_cpus=2,
             sequence_length=32, epochs=1, batch_size=32, learning_rate=1e-3, max_train_examples=96, verbose=0,
             log=logs.append)
print(json.dumps({"logs": logs, "scores": scores}))
"""


def test_mirrored_strategy_on_two_logical_cpus(bert_dir, data, tmp_path):
    # BERT-CRF: the custom loss (scaled per replica), the CRF and int word masks across two replicas.
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(bert_dir), str(data["uner_train"]), str(data["uner_dev"]),
         str(tmp_path / "mirrored")], capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert any("mirrored (2 replica(s))" in line for line in report["logs"])
    assert math.isfinite(report["scores"]["train_loss"]) and 0.0 <= report["scores"]["accuracy"] <= 1.0
    assert (tmp_path / "mirrored" / "task.json").exists()
