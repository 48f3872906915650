"""GPT transfer through `tfpretrain finetune`: classify, pair, similarity and choice on real SST-2 / RTE slices."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CHOICES, ENV, write_choice_files, write_head
from tfpretrain.pipelines.finetune import evaluate, load_task_model, predict, run
from tfpretrain.text.task_readers import read_classification_tsv, read_pair_tsv

pytestmark = pytest.mark.slow  # fine-tunes GPT on every task

DECODER = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128, "max_sequence_length": 64}
FAST = {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "sequence_length": 48, "verbose": 0}


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt_finetune_data")
    files = {
        "root": root,
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2_train.tsv", 200),
        "sst2_dev": write_head(shared_data / "sst2" / "dev.tsv", root / "sst2_dev.tsv", 60),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte_train.tsv", 96),
        "rte_dev": write_head(shared_data / "rte" / "dev.tsv", root / "rte_dev.tsv", 40),
    }
    write_choice_files(files)  # which of two endings fits the review
    return files


@pytest.fixture(scope="module")
def gpt_dir(data):
    """A GPT directory: a random tiny decoder and a WordPiece vocabulary (with the transfer tokens) from the slices."""
    from tfpretrain.models.gpt import GPT_RESERVED_TOKENS, GptDecoder, save_gpt
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    texts = [e.texts[0] for e in read_classification_tsv(data["sst2_train"])]
    texts += [t for e in read_pair_tsv(data["rte_train"]) for t in e.texts]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 1200, reserved_tokens=GPT_RESERVED_TOKENS))
    decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **DECODER)
    out = data["root"] / "gpt"
    save_gpt(str(out), decoder, tokenizer)
    return out


@pytest.mark.parametrize("task,train,dev", [("classify", "sst2_train", "sst2_dev"), ("pair", "rte_train", "rte_dev"),
                                            ("similarity", "rte_train", "rte_dev"),
                                            ("choice", "choice_train", "choice_dev")])
def test_run_evaluate_predict(gpt_dir, data, tmp_path, task, train, dev):
    out = tmp_path / task
    scores = run(task, gpt_dir, data[train], data[dev], out, **FAST)
    assert 0.0 <= scores["accuracy"] <= 1.0 and math.isfinite(scores["train_loss"])
    options = json.loads((out / "task.json").read_text())
    assert options["architecture"] == "gpt" and options["lm_loss_weight"] == 0.5
    assert options["labels"] == ["0", "1"]
    for name in ("decoder.json", "decoder.weights.h5", "vocab.txt", "head.weights.npz"):
        assert (out / name).exists(), name
    # The reloaded model scores exactly what the run reported.
    reloaded = evaluate(out, data[dev])
    assert reloaded["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-9)
    examples = (read_pair_tsv if task in ("pair", "similarity") else read_classification_tsv)(data[dev]) \
        if task != "choice" else None
    texts = [e.texts if task != "classify" else e.texts[0] for e in examples] if examples else \
        [("a gorgeous film", *CHOICES), ("dull and lifeless", *CHOICES)]
    predictions = predict(out, texts[:5])
    assert [p["label"] for p in predictions] == [max(p["probabilities"], key=p["probabilities"].get)
                                                  for p in predictions]
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in predictions)


def test_similarity_model_ignores_the_order_of_the_pair(gpt_dir, data, tmp_path):
    run("similarity", gpt_dir, data["rte_train"], data["rte_dev"], tmp_path / "sim", **FAST)
    pairs = [e.texts for e in read_pair_tsv(data["rte_dev"])][:8]
    forward = predict(tmp_path / "sim", pairs)
    backward = predict(tmp_path / "sim", [(b, a) for a, b in pairs])
    np.testing.assert_allclose([p["score"] for p in forward], [p["score"] for p in backward], atol=1e-5)


def test_choice_probabilities_follow_the_choices(gpt_dir, data, tmp_path):
    run("choice", gpt_dir, data["choice_train"], data["choice_dev"], tmp_path / "mc", **FAST)
    forward = predict(tmp_path / "mc", [("a gorgeous film", *CHOICES)])[0]["probabilities"]
    swapped = predict(tmp_path / "mc", [("a gorgeous film", *reversed(CHOICES))])[0]["probabilities"]
    assert forward["0"] == pytest.approx(swapped["1"], abs=1e-5)
    model, _, options = load_task_model(tmp_path / "mc")
    assert options["task"] == "choice" and model.task == "choice"
    with pytest.raises(ValueError, match=r"expects a \(context, 2 choices\)"):
        predict(tmp_path / "mc", [("context only",)])


def test_wrong_architecture_and_options_are_clear_errors(gpt_dir, data, tmp_path):
    with pytest.raises(ValueError, match="--task tag needs a BERT directory"):
        run("tag", gpt_dir, data["rte_train"], data["rte_dev"], tmp_path / "x", **FAST)
    bert_dir = make_bert_dir_for_errors(data)
    with pytest.raises(ValueError, match="--task choice needs a GPT directory"):
        run("choice", bert_dir, data["choice_train"], data["choice_dev"], tmp_path / "y", **FAST)
    with pytest.raises(ValueError, match="--lm-loss-weight is for GPT"):
        run("classify", bert_dir, data["sst2_train"], data["sst2_dev"], tmp_path / "z", lm_loss_weight=0.1, **FAST)
    with pytest.raises(ValueError, match="different numbers of choices"):
        three = data["root"] / "three.tsv"
        three.write_text("ctx\ta\tb\tc\t2\n", encoding="utf-8")
        run("choice", gpt_dir, data["choice_train"], three, tmp_path / "w", **FAST)


def make_bert_dir_for_errors(data):
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    out = data["root"] / "bert"
    if not out.exists():
        texts = [e.texts[0] for e in read_classification_tsv(data["sst2_train"])]
        tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 800))
        save_bert(str(out), BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2,
                                        hidden_dim=32, intermediate_dim=64, max_sequence_length=64), tokenizer)
    return out


def test_cli_finetune_from_a_gpt_directory(gpt_dir, data, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "tfpretrain", "finetune", "--task", "pair", "--init", str(gpt_dir),
         "--train", str(data["rte_train"]), "--dev", str(data["rte_dev"]), "--out", str(out), "--epochs", "1",
         "--sequence-length", "48", "--batch-size", "16", "--lm-loss-weight", "0.25"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= scores["accuracy"] <= 1.0
    assert json.loads((out / "task.json").read_text())["lm_loss_weight"] == 0.25
