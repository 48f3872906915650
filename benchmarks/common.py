"""What every benchmark shares: where the data is, where results go, and which machine ran it."""

import os
import pathlib
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("TFPRETRAIN_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"


def machine():
    """CPU model, usable cores, GPUs and library versions, for the results table."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import keras
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return (f"{cpu}, {cores} cores{', GPUs: ' + ', '.join(gpus) if gpus else ', no GPU'}; "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}")


def split_uner(work):
    """UNER English EWT dev.iob2 split into its first 1,500 sentences (train) and the other 501 (dev)."""
    with open(DATA / "uner_english_ewt" / "dev.iob2", encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()]
    (work / "uner_train.iob2").write_text("\n\n".join(blocks[:1500]) + "\n\n", encoding="utf-8")
    (work / "uner_dev.iob2").write_text("\n\n".join(blocks[1500:]) + "\n\n", encoding="utf-8")
    return work / "uner_train.iob2", work / "uner_dev.iob2"


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
