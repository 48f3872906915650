"""``--strategy multiworker``: two worker processes on loopback pretrain one BERT in step.

Each worker is ``tfpretrain pretrain-bert`` with its own ``TF_CONFIG``, as on a
cluster; the chief (worker 0) writes ``--out``, worker 1 its own temporary
``--out/.worker-1`` (kept here, by stubbing its removal, so that the test can
compare the two copies of the weights).
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, logged_losses, write_ewt_text

TIMEOUT_SECONDS = 240

# The CLI, with the removal of the non-chief worker's directory stubbed out.
WORKER_SCRIPT = """
import sys
from tfpretrain.pipelines import pretrain_bert
pretrain_bert.remove_worker_dir = lambda out_dir, strategy: None
from tfpretrain.pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def h5_arrays(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays



@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    return write_ewt_text(shared_data, tmp_path_factory.mktemp("multiworker_corpus") / "ewt.txt", 600)


@pytest.mark.slow
def test_two_workers_on_loopback_train_identical_weights_and_the_loss_falls(corpus, tmp_path):
    out = tmp_path / "bert"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = [sys.executable, "-c", WORKER_SCRIPT, "pretrain-bert", "--text", str(corpus), "--out", str(out),
               "--preset", "tiny", "--steps", "24", "--steps-per-epoch", "8", "--vocabulary-size", "600",
               "--sequence-length", "32", "--batch-size", "8", "--learning-rate", "2e-3", "--xla", "off",
               "--strategy", "multiworker"]
    processes, logs = [], []
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "TF_CONFIG": json.dumps(tf_config)}
            log = open(tmp_path / f"worker{index}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    outputs = [(tmp_path / f"worker{index}.log").read_text()[-3000:] for index in range(2)]
    assert [p.returncode for p in processes] == [0, 0], "\n\n".join(outputs)

    worker_dir = out / ".worker-1"
    assert (out / "encoder.weights.h5").exists() and (worker_dir / "encoder.weights.h5").exists()
    assert (out / "vocab.txt").read_text() == (worker_dir / "vocab.txt").read_text()  # same pieces on both
    chief, worker = h5_arrays(out / "encoder.weights.h5"), h5_arrays(worker_dir / "encoder.weights.h5")
    assert chief.keys() == worker.keys() and len(chief) > 10
    for name in chief:
        np.testing.assert_allclose(chief[name], worker[name], rtol=0, atol=1e-6, err_msg=name)
    losses = logged_losses(out)
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert logged_losses(worker_dir) == pytest.approx(losses, rel=1e-5)
    assert "on 2 replica(s)" in outputs[0]
    assert json.loads((out / "pretraining.json").read_text())["strategy"] == "multiworker"


def test_multiworker_without_tf_config_names_the_variable(monkeypatch):
    from tfpretrain.training.distribute import read_tf_config

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", "{cluster: nope")
    with pytest.raises(ValueError, match="TF_CONFIG is malformed"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ValueError, match="not in the cluster"):
        read_tf_config()


def test_tpu_strategy_without_a_tpu_says_so(monkeypatch):
    from tfpretrain.training.distribute import get_strategy

    if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"):
        pytest.skip("this machine has a TPU device; the no-TPU error cannot be provoked here")
    for name in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="--strategy tpu found no TPU"):
        get_strategy("tpu")
