"""Shared fixtures: quiet TensorFlow, fixed seeds, the real corpora in ../shared/data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("TFPRETRAIN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data (UD EWT, UNER, SST-2, RTE, SQuAD sample)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (set TFPRETRAIN_SHARED_DATA)")
    return SHARED_DATA


def write_ewt_text(shared_data, path, num_lines):
    """Writes the raw text of the first ``num_lines`` EWT train sentences to ``path``, one per line; returns it."""
    from tfpretrain.text.readers import read_text

    sentences = read_text(str(shared_data / "ud_english_ewt" / "train.conllu"))
    path.write_text("\n".join(line for _, line in zip(range(num_lines), sentences)) + "\n", encoding="utf-8")
    return path
