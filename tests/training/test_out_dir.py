"""The --out rule of the training commands: a finished run is not trained over without --overwrite, another run's
checkpoint is named as such, and the optimizer of a model that trains only some of its weights is restored."""

import csv
import os
import warnings

import keras
import numpy as np
import pytest

from tests.conftest import cli, write_sentences
from tfpretrain.models.model_dir import TAGGER_FILE
from tfpretrain.training.callbacks import fit_resumable, finished_run, prepare_out_dir


# ---------------------------------------------------------------------------
# prepare_out_dir, on folders laid out by hand


def test_a_finished_run_is_refused_and_removed_only_with_overwrite(tmp_path):
    out = tmp_path / "tagger"
    out.mkdir()
    (out / TAGGER_FILE).write_text("{}")
    (out / "history.csv").write_text("epoch,loss\n0,1.0\n")
    assert finished_run(out) is not None
    with pytest.raises(FileExistsError, match=f"{out}.*finished run.*--overwrite"):
        prepare_out_dir(out)
    assert (out / "history.csv").exists()
    prepare_out_dir(out, overwrite=True)
    assert not out.exists()


def test_an_interrupted_run_and_a_foreign_folder_are_kept(tmp_path):
    interrupted = tmp_path / "interrupted"
    (interrupted / "checkpoint").mkdir(parents=True)
    (interrupted / "vocab.txt").write_text("a\n")
    prepare_out_dir(interrupted)  # resumes: nothing to refuse, nothing removed
    assert (interrupted / "checkpoint").is_dir() and (interrupted / "vocab.txt").exists()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    prepare_out_dir(foreign, overwrite=True)  # not a run of ours: never deleted
    assert (foreign / "todo.txt").read_text() == "keep me"
    prepare_out_dir(tmp_path / "missing", overwrite=True)


# ---------------------------------------------------------------------------
# fit_resumable on a small model


class PartlyTrained(keras.Model):
    """Two dense layers of which only the first trains (like BertMaskedLM, which leaves out the pooler)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trained = keras.layers.Dense(4)
        self.dropout = keras.layers.Dropout(0.3)
        self.unused = keras.layers.Dense(4)

    @property
    def trainable_weights(self):
        unused = {id(v) for v in self.unused.weights}
        return [v for v in super().trainable_weights if id(v) not in unused]

    def call(self, x, training=None):
        self.unused(x)
        return self.dropout(self.trained(x), training=training)


def _fit(out_dir, epochs=3, stop_after=None):
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    # Not shuffled: tf.data keeps a seeded reshuffle's state per process, so runs in one process would not see
    # the same orders (tests/training/test_resume.py checks the data order, one process per run).
    data = tf.data.Dataset.from_tensor_slices((x, x[:, ::-1].copy())).batch(8)
    model = PartlyTrained()
    model(x[:1])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_after:
                raise KeyboardInterrupt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit_resumable(model, data, None, epochs, str(out_dir), verbose=0, log=lambda _: None,
                          callbacks=[Crash()])
        except KeyboardInterrupt:
            pass
    return model, [str(w.message) for w in caught]


def test_resumed_fit_restores_the_optimizer_of_a_partly_trained_model_exactly(tmp_path):
    whole, _ = _fit(tmp_path / "whole")
    _fit(tmp_path / "killed", stop_after=0)
    assert (tmp_path / "killed" / "checkpoint").is_dir()
    resumed, messages = _fit(tmp_path / "killed")
    assert not [m for m in messages if "Skipping variable loading" in m], messages
    assert resumed.optimizer.iterations.numpy() == whole.optimizer.iterations.numpy() == 24
    for expected, actual in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)  # same ops, same batches: bitwise in practice
    with open(tmp_path / "killed" / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]


@pytest.mark.parametrize("file", ["seed states", "weights", "metadata"])
def test_a_run_killed_while_writing_its_checkpoint_resumes_exactly(file, tmp_path, monkeypatch):
    """A kill half-way through a checkpoint file (CI saw ``bad object header`` on a truncated Keras one)."""
    from tfpretrain.training import callbacks

    whole, _ = _fit(tmp_path / "whole")
    real, calls = callbacks._replace_atomically, []

    def killed_midway(path, write):  # the second epoch's checkpoint dies with `file` half written
        calls.append(path)
        if len(calls) == 4 + ["seed states", "weights", "metadata"].index(file):
            directory, name = os.path.split(path)
            write(os.path.join(directory, f"partial.{name}"))
            with open(os.path.join(directory, f"partial.{name}"), "r+b") as f:
                f.truncate(os.path.getsize(f.name) // 2)
            raise KeyboardInterrupt
        real(path, write)

    monkeypatch.setattr(callbacks, "_replace_atomically", killed_midway)
    _fit(tmp_path / "killed")
    monkeypatch.setattr(callbacks, "_replace_atomically", real)
    assert len(calls) == 4 + ["seed states", "weights", "metadata"].index(file)
    assert callbacks.resumed_epoch(tmp_path / "killed") == 1
    resumed, _ = _fit(tmp_path / "killed")
    for expected, actual in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    with open(tmp_path / "killed" / "history.csv", newline="") as f:
        assert sorted({int(row["epoch"]) for row in csv.DictReader(f)}) == [0, 1, 2]


def test_a_checkpoint_that_does_not_fit_the_model_is_named_a_different_run(tmp_path):
    import tensorflow as tf

    _fit(tmp_path / "out", stop_after=0)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7), keras.layers.Dense(4)])
    other.compile(optimizer="adam", loss="mse")
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 4), "float32"), np.zeros((8, 4), "float32"))).batch(4)
    with pytest.raises(FileExistsError, match="checkpoint of a different run.*new --out.*--overwrite"):
        fit_resumable(other, data, None, 2, str(tmp_path / "out"), verbose=0, log=lambda _: None)


# ---------------------------------------------------------------------------
# train-tagger through the command line


@pytest.fixture(scope="module")
def tagged(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("out_dir_data")
    source = shared_data / "uner_english_ewt" / "dev.iob2"
    return write_sentences(source, root / "train.iob2", 0, 60), write_sentences(source, root / "dev.iob2", 60, 80)


def _tagger(tagged, out, *more):
    train, dev = tagged
    return cli("train-tagger", "--train", train, "--dev", dev, "--format", "iob2", "--epochs", "1", "--preset",
               "tiny", "--batch-size", "16", "--xla", "off", "--out", out, *more, check=False)


@pytest.mark.slow
def test_train_tagger_on_a_finished_run_needs_overwrite_and_then_starts_afresh(tagged, tmp_path):
    out = tmp_path / "tagger"
    assert _tagger(tagged, out).returncode == 0
    history = (out / "history.csv").read_text()
    refused = _tagger(tagged, out)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert str(out) in message and "finished run" in message and "--overwrite" in message, refused.stderr
    assert (out / "history.csv").read_text() == history  # untouched
    again = _tagger(tagged, out, "--overwrite")
    assert again.returncode == 0, again.stderr[-2000:]
    with open(out / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0]  # one run's epochs, not two


@pytest.mark.slow
def test_train_tagger_on_another_runs_checkpoint_says_so_in_one_line(tagged, tmp_path):
    from tfpretrain.pipelines import train_tagger

    out = tmp_path / "tagger"

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    real = train_tagger.fit_resumable
    train_tagger.fit_resumable = lambda *args, **kwargs: real(*args, **kwargs, callbacks=[Crash()])
    try:
        with pytest.raises(KeyboardInterrupt):
            train_tagger.run(*tagged, str(out), epochs=2, preset="small", batch_size=16, verbose=0,
                             log=lambda _: None)
    finally:
        train_tagger.fit_resumable = real
    assert (out / "checkpoint").is_dir()
    refused = _tagger(tagged, out)  # preset tiny: other shapes than the checkpoint's
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.strip().splitlines()
             if not line.startswith(("I0000", "W0000", "E0000", "WARNING: All log messages"))]  # TF's own (issue 14)
    assert "Traceback" not in refused.stderr and len(lines) == 1, refused.stderr
    assert "different run" in refused.stderr and "--overwrite" in refused.stderr and str(out) in refused.stderr
    again = _tagger(tagged, out, "--overwrite")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "model.keras").exists()
