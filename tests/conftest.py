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


def logged_losses(out_dir):
    """The training loss of each epoch, from the ``history.csv`` a pipeline's run wrote to ``out_dir``."""
    from tfpretrain.training.callbacks import read_history_csv

    return [loss for _, loss in read_history_csv(os.path.join(out_dir, "history.csv")).get("loss", [])]


CHOICES = ("it is bad .", "it is good .")


def write_choice_files(files):
    """Multiple-choice TSVs made from SST-2 (which of `CHOICES` fits the review): ``files["choice_train"]``,
    ``files["choice_dev"]`` written beside ``files["sst2_train"]`` / ``files["sst2_dev"]``."""
    from tfpretrain.text.task_readers import read_classification_tsv

    for split in ("train", "dev"):
        source = files[f"sst2_{split}"]
        lines = ["context\tchoice_0\tchoice_1\tlabel"]
        lines += [f"{e.texts[0]}\t{CHOICES[0]}\t{CHOICES[1]}\t{e.label}" for e in read_classification_tsv(source)]
        files[f"choice_{split}"] = source.parent / f"choice_{split}.tsv"
        files[f"choice_{split}"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files
