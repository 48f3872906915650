"""Resume is exact: a training command killed (SIGKILL) after a checkpoint and started again ends with the weights
of the same command run without interruption, for every training command.

Each case runs the command through the CLI three times in subprocesses, on tiny presets and slices of the
real corpora written to tmp: once to the end, once killed as soon as its first epoch's checkpoint is on
disk, and once more to finish the killed run. Then every array the two finished runs saved is compared.

Tolerance: ``atol=1e-6``, ``rtol=0``. Both runs execute the same float32 ops on the same batches in the same
order on the CPU, so they agree bit for bit in practice (the maximum difference is printed, 0.0 when run
here); 1e-6 is a thousand times below one optimizer step at these learning rates, so a missed optimizer
slot, a replayed batch, a restarted schedule or a redrawn dropout mask (each a difference of about 1e-3)
cannot pass.

A fast test checks `data_at_epoch` against ``fit`` itself: Keras starts a different number of iterators per
epoch over a dataset of known and of unknown length, and each one reshuffles.
"""

import glob
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest

from tests.conftest import ENV, cli, make_bert_dir, write_ewt_text, write_head, write_sentences

ATOL = 1e-6


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_data")
    paths = {
        "text": write_ewt_text(shared_data, root / "ewt.txt", 400),
        "uner_train": write_sentences(shared_data / "uner_english_ewt" / "dev.iob2", root / "uner_train.iob2", 0, 120),
        "uner_dev": write_sentences(shared_data / "uner_english_ewt" / "dev.iob2", root / "uner_dev.iob2", 120, 160),
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2_train.tsv", 160),
        "sst2_dev": write_head(shared_data / "sst2" / "dev.tsv", root / "sst2_dev.tsv", 40),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte_train.tsv", 40),
    }
    paths["bert"] = make_bert_dir(paths, root / "bert")
    return paths


def _pretraining(command):
    return lambda d, out: [command, "--text", d["text"], "--out", out, "--preset", "tiny", "--steps", "9",
                           "--steps-per-epoch", "3", "--vocabulary-size", "300", "--sequence-length", "32",
                           "--batch-size", "8", "--xla", "off"]


def _ulmfit(d, out):
    return ["ulmfit", "--general-text", d["text"], "--train", d["sst2_train"], "--dev", d["sst2_dev"], "--out", out,
            "--preset", "tiny", "--general-epochs", "3", "--general-steps-per-epoch", "4", "--domain-epochs", "2",
            "--domain-steps-per-epoch", "3", "--sequence-length", "20", "--lm-batch-size", "8", "--epochs", "3",
            "--batch-size", "16", "--min-count", "1", "--xla", "off"]


#: command -> (its arguments for the data and an --out, the checkpoint whose first epoch triggers the kill)
CASES = {
    "pretrain-bilm": (lambda d, out: ["pretrain-bilm", "--text", d["text"], "--out", out, "--epochs", "3",
                                      "--preset", "tiny", "--batch-size", "16", "--max-length", "20",
                                      "--min-count", "1", "--xla", "off"], "checkpoint"),
    "train-tagger": (lambda d, out: ["train-tagger", "--train", d["uner_train"], "--dev", d["uner_dev"],
                                     "--format", "iob2", "--epochs", "3", "--preset", "tiny", "--batch-size", "8",
                                     "--xla", "off", "--out", out], "checkpoint"),
    "pretrain-bert": (_pretraining("pretrain-bert"), "checkpoint"),
    "pretrain-gpt": (_pretraining("pretrain-gpt"), "checkpoint"),
    "finetune-classify": (lambda d, out: ["finetune", "--task", "classify", "--init", d["bert"], "--train",
                                          d["sst2_train"], "--dev", d["sst2_dev"], "--out", out, "--epochs", "3",
                                          "--batch-size", "8", "--sequence-length", "32", "--xla", "off"],
                          "checkpoint"),
    "ulmfit-general-stage": (_ulmfit, os.path.join("general_lm", "checkpoint")),
    "ulmfit-classifier-stage": (_ulmfit, os.path.join("classifier", "checkpoint")),
}


def saved_arrays(out_dir):
    """Every array a finished run saved under ``out_dir`` (``*.weights.h5``, ``*.keras``, ``*.npz``), by file and name."""
    arrays = {}

    def add(prefix, h5):
        h5.visititems(lambda name, item: arrays.__setitem__(f"{prefix}:{name}", item[()])
                      if isinstance(item, h5py.Dataset) else None)

    for path in sorted(glob.glob(os.path.join(out_dir, "**", "*"), recursive=True)):
        relative = os.path.relpath(path, out_dir)
        if "checkpoint" in relative.split(os.sep):
            continue
        if path.endswith(".weights.h5"):
            with h5py.File(path, "r") as h5:
                add(relative, h5)
        elif path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
                add(relative, h5)
        elif path.endswith(".npz"):
            with np.load(path) as saved:
                arrays.update({f"{relative}:{name}": saved[name] for name in saved.files})
    return arrays


def run_and_kill(args, checkpoint):
    """Runs ``tfpretrain ARGS`` and kills it with SIGKILL as soon as ``checkpoint`` holds its first epoch."""
    process = subprocess.Popen([sys.executable, "-m", "tfpretrain", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=ENV)
    metadata = os.path.join(checkpoint, "training_metadata.json")
    deadline = time.time() + 600
    while not os.path.exists(metadata):
        assert process.poll() is None, f"ended before its first checkpoint:\n{process.stdout.read()[-3000:]}"
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(case, data, tmp_path):
    arguments, checkpoint = CASES[case]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cli(*arguments(data, whole))
    run_and_kill(arguments(data, killed), killed / checkpoint)
    resumed = cli(*arguments(data, killed))
    assert "Resuming from the checkpoint" in resumed.stdout + resumed.stderr
    expected, actual = saved_arrays(str(whole)), saved_arrays(str(killed))
    assert expected and sorted(expected) == sorted(actual)
    differences = {name: float(np.max(np.abs(expected[name].astype("float64") - actual[name].astype("float64")),
                                      initial=0.0)) for name in expected}
    print(f"{case}: {len(expected)} arrays, max abs difference {max(differences.values())}")
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=ATOL, err_msg=name)
    if (whole / "pretraining.json").exists():  # the first epoch's score is the first epoch's, not the restart's
        first = {key: value for key, value in json.loads((whole / "pretraining.json").read_text())["result"].items()
                 if key.startswith("first_epoch")}
        resumed_result = json.loads((killed / "pretraining.json").read_text())["result"]
        assert first and all(resumed_result[key] == value for key, value in first.items()), (first, resumed_result)


@pytest.mark.parametrize("known_length", [True, False])
def test_data_at_epoch_gives_the_orders_fit_reads_in_the_epochs_after_it(known_length):
    """``fit`` over a reshuffling dataset, resumed after 2 epochs, reads the orders of epochs 3 and 4."""
    import keras
    import tensorflow as tf

    from tfpretrain.training.callbacks import data_at_epoch

    def orders_read_by_fit(skipped_epochs, epochs):
        seen = []

        def spy(x):
            seen.append(x.numpy().ravel().tolist())
            return x

        def record(x, y):
            z = tf.py_function(spy, [x], x.dtype)
            z.set_shape(x.shape)
            return z, y

        data = tf.data.Dataset.range(12).shuffle(12, seed=3, reshuffle_each_iteration=True)
        if not known_length:
            data = data.filter(lambda x: True)
        data = data.batch(12).map(lambda x: (tf.cast(x[:, None], "float32"),) * 2).map(record)
        assert (int(data.cardinality()) >= 0) == known_length
        data = data_at_epoch(data, skipped_epochs)
        seen.clear()
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(data, epochs=epochs, verbose=0)
        return seen

    uninterrupted = orders_read_by_fit(0, 4)
    assert len({tuple(order) for order in uninterrupted}) == 4  # reshuffled every epoch
    assert orders_read_by_fit(2, 2) == uninterrupted[2:]
