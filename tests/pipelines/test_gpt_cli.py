"""The GPT pipelines the CLI runs: pretrain-gpt on an EWT slice (learns, resumes), generate, bad input."""

import csv
import json
import os
import subprocess
import sys

import keras
import pytest

from tests.conftest import write_ewt_text

from tfpretrain.pipelines import generate, lm_pretraining, pretrain_gpt

pytestmark = pytest.mark.slow  # pretrains GPT through the CLI


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """The raw text of the first 1,500 EWT train sentences, one per line (outside the repo)."""
    return write_ewt_text(shared_data, tmp_path_factory.mktemp("gpt_corpus") / "ewt.txt", 1500)


@pytest.fixture(scope="module")
def small_corpus(corpus, tmp_path_factory):
    """The first 300 of those lines: the vocabulary is learned in a second."""
    path = tmp_path_factory.mktemp("gpt_small_corpus") / "ewt300.txt"
    path.write_text("\n".join(corpus.read_text(encoding="utf-8").splitlines()[:300]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt") / "tiny"
    result = pretrain_gpt.run([corpus], out, preset="tiny", steps=200, steps_per_epoch=100, vocabulary_size=1000,
                              sequence_length=48, batch_size=16, learning_rate=3e-3, verbose=0, log=lambda _: None)
    return out, result


def test_pretrain_gpt_lowers_perplexity_and_writes_a_gpt_directory(pretrained):
    from tfpretrain.models.gpt import GPT_RESERVED_TOKENS, is_gpt_dir

    out, result = pretrained
    assert result["last_epoch_perplexity"] < 0.8 * result["first_epoch_perplexity"], result
    assert 1 < result["val_perplexity"] < 1000, result  # below uniform over the 1,000-piece vocabulary
    assert 0 < result["val_accuracy"] < 1 and result["train_tokens_per_second"] > 0
    assert result["steps"] == 200 and isinstance(result["sample"], str)
    assert is_gpt_dir(out)
    for name in ("decoder.json", "decoder.weights.h5", "vocab.txt", "tokenizer.json", "pretraining.json",
                 "history.csv", "training_curves.png"):
        assert (out / name).exists(), name
    vocabulary = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocabulary[: len(GPT_RESERVED_TOKENS)] == GPT_RESERVED_TOKENS
    record = json.loads((out / "pretraining.json").read_text())
    assert record["preset"] == "tiny" and record["result"]["val_perplexity"] == result["val_perplexity"]


def test_generate_continues_prompts(pretrained):
    out, _ = pretrained
    prompts = ["the", "i would like", ""]
    greedy = generate.run(out, prompts, max_new_tokens=12)
    assert len(greedy) == 3 and all(text.startswith(prompt) for text, prompt in zip(greedy, prompts))
    assert greedy == generate.run(out, prompts, max_new_tokens=12, use_cache=False)
    sampled = generate.run(out, prompts, max_new_tokens=12, sampler="top_k", k=20, seed=1)
    assert any(len(text.split()) > len(prompt.split()) for text, prompt in zip(sampled, prompts))  # new words
    assert sampled == generate.run(out, prompts, max_new_tokens=12, sampler="top_k", k=20, seed=1)
    nucleus = generate.run(out, ["the"] * 3, max_new_tokens=12, sampler="top_p", p=0.9, temperature=1.2, seed=1)
    assert len(set(nucleus)) > 1


def test_generate_rejects_bad_requests_clearly(pretrained, tmp_path):
    out, _ = pretrained
    with pytest.raises(ValueError, match="max_sequence_length"):
        generate.run(out, [" ".join(["the"] * 200)])
    with pytest.raises(ValueError, match="unknown sampler"):
        generate.run(out, ["the"], sampler="beam")
    with pytest.raises(ValueError, match="not a GPT directory"):
        generate.run(tmp_path, ["the"])
    with pytest.raises(ValueError, match="no prompts"):
        generate.run(out, [])


def test_interrupted_pretraining_resumes_with_the_same_vocabulary(small_corpus, tmp_path, monkeypatch):
    out = tmp_path / "gpt"
    logs = []
    arguments = dict(preset="tiny", steps=6, steps_per_epoch=2, vocabulary_size=300, sequence_length=32,
                     batch_size=8, verbose=0, log=logs.append)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after the checkpoint of the second epoch is written
                raise KeyboardInterrupt

    fit_resumable = lm_pretraining.fit_resumable
    monkeypatch.setattr(lm_pretraining, "fit_resumable",
                        lambda *args, **kwargs: fit_resumable(*args, **kwargs, callbacks=[Interrupt()]))
    with pytest.raises(KeyboardInterrupt):
        pretrain_gpt.run([small_corpus], out, **arguments)
    vocabulary = (out / "vocab.txt").read_text(encoding="utf-8")
    monkeypatch.setattr(lm_pretraining, "fit_resumable", fit_resumable)
    result = pretrain_gpt.run([small_corpus], out, **arguments)
    assert any("Resuming from the checkpoint" in line for line in logs), logs
    assert any("reusing" in line for line in logs), logs
    assert (out / "vocab.txt").read_text(encoding="utf-8") == vocabulary
    with open(out / "history.csv", newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2], epochs  # the third epoch ran after the restart; none ran twice
    assert result["steps"] == 6


def test_pretrain_gpt_bad_input(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text found"):
        pretrain_gpt.run([empty], tmp_path / "out", steps=2, log=lambda _: None)
    with pytest.raises(ValueError, match="unknown preset"):
        pretrain_gpt.run([empty], tmp_path / "out", preset="huge", steps=2)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        pretrain_gpt.run([tmp_path / "missing.txt"], tmp_path / "out2", steps=2, log=lambda _: None)


def test_perplexity_is_right_under_a_mirrored_strategy(small_corpus, tmp_path):
    """Two replicas each see half the loss (Keras scales it for the gradient sum); the metric must not."""
    script = (
        "import json; from tfpretrain.pipelines import pretrain_gpt; "
        f"r = pretrain_gpt.run([{str(small_corpus)!r}], {str(tmp_path / 'gpt')!r}, steps=2, steps_per_epoch=1, "
        "vocabulary_size=500, sequence_length=16, batch_size=4, strategy='mirrored', logical_cpus=2, verbose=0); "
        "print(json.dumps(r))"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "on 2 replica(s)" in completed.stdout
    # Two steps from a random start: close to uniform over the vocabulary, not its square root.
    vocabulary_size = len((tmp_path / "gpt" / "vocab.txt").read_text(encoding="utf-8").split("\n"))
    assert 0.4 * vocabulary_size < result["first_epoch_perplexity"] < 1.5 * vocabulary_size, result
    assert 0.4 * vocabulary_size < result["val_perplexity"] < 1.5 * vocabulary_size, result
