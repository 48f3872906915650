"""ULMFiT's three stages end to end on tiny slices of EWT and SST-2 (tiny AWD-LSTM), resume and switches."""

import os

import keras
import numpy as np
import pytest

from tfpretrain.models.ulmfit import WordTokenizer, classification_batch_count, classification_dataset, read_config
from tfpretrain.pipelines import ulmfit, ulmfit_classifier
from tfpretrain.pipelines.ulmfit_classifier import evaluate, predict, train_classifier
from tfpretrain.pipelines.ulmfit_language_model import pretrain_lm
from tfpretrain.text.readers import DataFormatError
from tfpretrain.text.vocabulary import load_vocabulary
from tfpretrain.training.discriminative import DiscriminativeOptimizer
from tfpretrain.training.schedules import SlantedTriangularLR

pytestmark = pytest.mark.slow  # runs ULMFiT's three stages

LM = {"preset": "tiny", "general_epochs": 1, "domain_epochs": 1, "sequence_length": 20, "lm_batch_size": 8,
      "verbose": 0}
CLASSIFIER = {"epochs": 4, "batch_size": 16}  # tiny: 2 LSTM layers, 4 groups -> all unfrozen


def _head(source, target, num_lines):
    """The header and first data lines of a TSV file, copied into tmp (never into the repo)."""
    with open(source, encoding="utf-8") as f:
        target.write_text("".join(next(f) for _ in range(num_lines + 1)), encoding="utf-8")
    return str(target)


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ulmfit_data")
    with open(shared_data / "ud_english_ewt" / "train.conllu", encoding="utf-8") as f:
        texts = [line[len("# text = "):] for line in f if line.startswith("# text = ")][:500]
    (root / "ewt.txt").write_text("".join(texts), encoding="utf-8")
    return {
        "root": root,
        "general": [str(root / "ewt.txt")],
        "train": _head(shared_data / "sst2" / "train.tsv", root / "train.tsv", 240),
        "dev": _head(shared_data / "sst2" / "dev.tsv", root / "dev.tsv", 80),
    }


@pytest.fixture(scope="module")
def finished_run(data):
    """All three stages once; later tests reuse the language models."""
    out = data["root"] / "run"
    messages = []
    results = ulmfit.run(data["general"], None, data["train"], data["dev"], str(out), log=messages.append,
                         **LM, **CLASSIFIER)
    return out, results, messages


def test_three_stages_end_to_end(finished_run, data):
    out, results, _ = finished_run
    assert set(results) == set(ulmfit.STAGES)
    for stage, name in ulmfit.STAGE_DIRS.items():
        assert ulmfit.is_finished(str(out / name)), stage
    general, domain, classifier = results["general"], results["domain"], results["classifier"]
    assert general["val_perplexity"] > 1 and general["train_tokens_per_second"] > 0
    # Stage 2 carried the vocabulary: it is the domain text's, and new_words counts those the general one lacks.
    general_words = set(load_vocabulary(out / "general_lm" / "vocab.txt"))
    domain_words = load_vocabulary(out / "domain_lm" / "vocab.txt")
    assert domain["new_words"] == len(set(domain_words) - general_words) > 0
    assert domain["vocabulary_size"] == len(domain_words) + 2
    assert "good" in domain_words or "film" in domain_words  # SST-2 words, not only EWT ones
    assert 0.0 <= classifier["accuracy"] <= 1.0 and classifier["num_examples"] == 80
    assert classifier["num_train_examples"] == 240 and classifier["steps"] > 0
    # evaluate() on the saved directory reproduces the training run's dev score; predict() answers per text.
    scores = evaluate(str(out / "classifier"), data["dev"])
    assert scores["accuracy"] == pytest.approx(classifier["accuracy"])
    predictions = predict(str(out / "classifier"), ["a gorgeous , witty film", "dull and tedious", ""])
    assert [p["text"] for p in predictions] == ["a gorgeous , witty film", "dull and tedious", ""]
    for p in predictions:
        assert p["label"] in ("0", "1") and sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert predict(str(out / "classifier"), []) == []


def test_finished_stages_are_skipped(finished_run, data):
    out, results, _ = finished_run
    messages = []
    again = ulmfit.run(data["general"], None, data["train"], data["dev"], str(out), log=messages.append,
                       **LM, **CLASSIFIER)
    assert again == results
    assert sum("already finished" in m for m in messages) == 3


class _Recorder(keras.callbacks.Callback):
    """Records, per epoch begin, which layer groups are trainable, and the optimizer in use."""

    def __init__(self, record):
        super().__init__()
        self.record = record

    def on_epoch_begin(self, epoch, logs=None):
        from tfpretrain.models.ulmfit import layer_groups

        groups = layer_groups(self.model)
        self.record["flags"][epoch] = [all(layer.trainable for layer in group) for group in groups]
        self.record["optimizer"] = self.model.optimizer


class _Crash(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt("simulated interruption")


def _instrument(monkeypatch, record, crash_after=None):
    """Wraps the pipeline's fit_resumable to add a recorder (and a crash after an epoch's checkpoint)."""
    real = ulmfit_classifier.fit_resumable

    def fit(*args, callbacks=(), **kwargs):
        extra = [_Recorder(record)] + ([_Crash(crash_after)] if crash_after is not None else [])
        return real(*args, callbacks=list(callbacks) + extra, **kwargs)

    monkeypatch.setattr(ulmfit_classifier, "fit_resumable", fit)


def test_classifier_resumes_with_the_flags_of_its_epoch(finished_run, data, tmp_path, monkeypatch):
    out, _, _ = finished_run
    lm_dir, target = str(out / "domain_lm"), str(tmp_path / "classifier")
    record = {"flags": {}}
    _instrument(monkeypatch, record, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(lm_dir, data["train"], data["dev"], target, verbose=0, **CLASSIFIER)
    assert sorted(record["flags"]) == [0, 1]
    assert record["flags"][0] == [False, False, False, True]  # the head only
    assert record["flags"][1] == [False, False, True, True]
    assert not ulmfit.is_finished(target) and os.path.isdir(os.path.join(target, "checkpoint"))

    record = {"flags": {}}
    _instrument(monkeypatch, record)
    messages = []
    scores = train_classifier(lm_dir, data["train"], data["dev"], target, log=messages.append, verbose=0,
                              **CLASSIFIER)
    assert any("Resuming" in m for m in messages)
    assert sorted(record["flags"]) == [2, 3]  # resumed at epoch 2 ...
    assert record["flags"][2] == [False, True, True, True]  # ... with epoch 2's groups
    assert record["flags"][3] == [True, True, True, True]
    optimizer = record["optimizer"]
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    assert isinstance(optimizer, DiscriminativeOptimizer)
    assert ulmfit.is_finished(target) and scores["epochs"] == 4


def test_ablation_switches_and_from_scratch(data, tmp_path, monkeypatch, finished_run):
    out, _, _ = finished_run
    record = {"flags": {}}
    _instrument(monkeypatch, record)
    scores = train_classifier(str(out / "domain_lm"), data["train"], data["dev"], str(tmp_path / "plain"),
                              gradual_unfreezing=False, discriminative=False, schedule="constant",
                              static_shapes=True, verbose=0, **{**CLASSIFIER, "epochs": 2})
    assert record["flags"] == {0: [True] * 4, 1: [True] * 4}  # nothing frozen
    assert read_config(str(tmp_path / "plain"))["static_shapes"] is True  # trained on static batches
    optimizer = record["optimizer"]
    assert isinstance(optimizer, keras.optimizers.Adam) and not isinstance(optimizer, DiscriminativeOptimizer)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.01)
    assert 0.0 <= scores["accuracy"] <= 1.0

    record = {"flags": {}}
    _instrument(monkeypatch, record)
    results = ulmfit.run(None, None, data["train"], data["dev"], str(tmp_path / "scratch"), from_scratch=True,
                         **{**LM, **CLASSIFIER, "epochs": 2})
    assert list(results) == ["classifier"]  # no language model stages
    assert record["flags"] == {0: [True] * 4, 1: [True] * 4}  # from scratch: switches default to off
    saved = read_config(str(tmp_path / "scratch" / "classifier"))
    assert saved["from_scratch"] and saved["init"] is None and saved["schedule"] == "slanted"
    assert not saved["gradual_unfreezing"] and not saved["discriminative"]
    schedule = keras.optimizers.schedules.deserialize(record["optimizer"].get_config()["learning_rate"])
    assert isinstance(schedule, SlantedTriangularLR)  # a plain Adam under the slanted schedule


def test_bad_input_errors(finished_run, data, tmp_path):
    out, _, _ = finished_run
    with pytest.raises(ValueError, match="unknown stage"):
        ulmfit.run(None, None, data["train"], data["dev"], str(tmp_path), stages=["lm"])
    with pytest.raises(FileNotFoundError, match="run --stage general first"):
        ulmfit.run(None, None, data["train"], data["dev"], str(tmp_path / "new"), stages=["domain"])
    with pytest.raises(ValueError, match="needs lm_dir"):
        train_classifier(None, data["train"], data["dev"], str(tmp_path / "c"))
    with pytest.raises(ValueError, match="schedule must be one of"):
        train_classifier(str(out / "domain_lm"), data["train"], data["dev"], str(tmp_path / "c"),
                         schedule="cosine")
    bad_dev = tmp_path / "bad_dev.tsv"
    bad_dev.write_text("label\tsentence\n1\tfine\n7\tan unknown label\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="bad_dev.tsv:3"):
        evaluate(str(out / "classifier"), str(bad_dev))
    with pytest.raises(FileNotFoundError, match="not a ULMFiT classifier directory"):
        predict(str(out / "domain_lm"), ["text"])
    with pytest.raises(FileNotFoundError, match="not found"):
        pretrain_lm([str(tmp_path / "missing.txt")], str(tmp_path / "lm"))
    with pytest.raises(ValueError, match="holds an encoder"):
        pretrain_lm(data["general"], str(tmp_path / "lm2"), init_dir=str(out / "classifier"))


def test_classification_dataset_keeps_order_and_pads(finished_run):
    tokenizer = WordTokenizer(["</S>", "a", "fine", "film"])
    data = classification_dataset(["a fine film", "film", "a b c d e f"], [1, 0, 1], tokenizer,
                                  batch_size=2, sequence_length=4)
    batches = [(x.numpy(), y.numpy()) for x, y in data]
    np.testing.assert_array_equal(batches[0][0], [[3, 4, 5], [5, 0, 0]])
    np.testing.assert_array_equal(batches[1][0], [[3, 1, 1, 1]])  # truncated to 4 words; unknown words -> 1
    assert [list(y) for _, y in batches] == [[1, 0], [1]]
    shuffled = classification_dataset(["a fine film", "film", "a b c d e f"] * 5, [1, 0, 1] * 5, tokenizer,
                                      batch_size=4, sequence_length=4, shuffle=True, bucket_boundaries=(2,))
    rows = [row for x, _ in shuffled for row in x.numpy().tolist()]
    assert len(rows) == 15
    count = classification_batch_count(["a fine film", "film", "a b c d e f"] * 5, tokenizer, 4, 4, (2,))
    assert count == sum(1 for _ in shuffled) == 2 + 3  # 5 one-word texts -> 2 batches; 10 longer -> 3
