"""Bad input at the ``.tflite`` boundary: one tiny tagger file and one tiny classifier file, odd texts and odd files.

Kinds: invalid UTF-8 bytes, a str with a lone surrogate (an undecodable
command-line byte), the empty string, whitespace only, NUL bytes, a
100,000-character text, only a BOM, Arabic, CJK, emoji with zero-width
joiners, combining marks (all answered, in `TfliteModel` and through
`predict.run`); several texts for a one-text model, a number instead of a
text, a missing file, a truncated file and a file that is not TFLite (all
refused with a clear error).
"""

import json
import os

import numpy as np
import pytest

from tests.conftest import make_bert_dir, make_tagger_dir, make_task_dir, write_head, write_sentences

pytestmark = pytest.mark.slow  # two TFLite conversions (in subprocesses)

ODD_TEXTS = [
    b"caf\xc3\xa9 \xff\xfe bad bytes \xc3", "bad \udcff byte", "", "   \t ", b"nul\x00 inside",
    "word " * 20000, "\ufeff", "مرحبا بالعالم", "東京は晴れ。", "family 👨\u200d👩\u200d👧 🙂", "cafe\u0301 n\u0303",
]
LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def tflite_files(shared_data, tmp_path_factory):
    import keras

    from tfpretrain.export.tflite import export_tflite

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("bad_tflite")
    data = {
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2.tsv", 100),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte.tsv", 30),
        "uner_train": write_sentences(shared_data / "uner_english_ewt" / "dev.iob2", root / "uner.iob2", 0, 50),
    }
    options = {"task": "classify", "labels": LABELS, "sequence_length": 32, "architecture": "bert"}
    classify = make_task_dir(make_bert_dir(data, root / "bert"), root / "classify", options)
    tagger = make_tagger_dir(root / "tagger")
    return {"tagger": export_tflite(tagger, root / "tagger.tflite"),
            "classify": export_tflite(classify, root / "classify.tflite")}


def test_tagger_file_answers_odd_texts(tflite_files):
    from tfpretrain.export.tflite import TfliteModel, to_bytes

    model = TfliteModel(tflite_files["tagger"])
    for text in ODD_TEXTS:
        answer = model.run_one(text)
        n = int(answer["lengths"][0])
        raw = to_bytes(text)
        words = [raw[s:e] for s, e in zip(answer["starts"][0, :n], answer["ends"][0, :n])]
        assert words == list(answer["words"][0, :n]), text[:40]
        assert set(answer["tags"][0, :n]) <= {b"O", b"B-LOC", b"I-LOC", b"B-PER", b"I-PER"}
        assert np.isfinite(answer["score"]).all()
    assert int(model.run_one("")["lengths"][0]) == 0 and int(model.run_one(" \t ")["lengths"][0]) == 0
    assert int(model.run_one("word " * 20000)["num_words_truncated"][0]) == 20000 - 512
    assert model.run_one("\ufeff")["tags"].shape == (1, 1) and int(model.run_one("Porto")["lengths"][0]) == 1
    assert model.uses_xnnpack  # one-word and empty texts too: XNNPACK never had to be turned off


def test_classifier_file_answers_odd_texts(tflite_files):
    from tfpretrain.export.tflite import TfliteModel

    model = TfliteModel(tflite_files["classify"])
    for text in ODD_TEXTS:
        answer = model.run_one(text)
        assert answer["label"][0].decode() in LABELS
        assert np.sum(answer["probabilities"][0]) == pytest.approx(1.0, abs=1e-5)
    assert bool(model.run_one("word " * 20000)["truncated"][0]) and not model.run_one("")["truncated"][0]


@pytest.mark.parametrize("name", ["tagger", "classify"])
def test_predict_on_the_file_answers_every_line(tflite_files, name):
    """Defect 5: the .tflite path said "PyUnicode_AsUTF8AndSize() failed" on text that was not UTF-8."""
    from tfpretrain.pipelines import predict

    answers = predict.run(tflite_files[name], ODD_TEXTS)
    assert len(answers) == len(ODD_TEXTS)
    assert answers[0]["text"].startswith("café ") and "\ufffd" in answers[0]["text"]
    assert answers[1]["text"] == "bad \ufffd byte"
    json.dumps(answers, ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_refusals(tflite_files, tmp_path):
    from tfpretrain.export.tflite import TfliteModel

    model = TfliteModel(tflite_files["classify"])
    with pytest.raises(ValueError, match=r"this model takes 1 texts per input \(text\); got 2"):
        model.run_one(("one", "two"))
    with pytest.raises(TypeError, match="expected a text"):
        model.run_one(42)
    with pytest.raises(FileNotFoundError, match="no such .tflite file"):
        TfliteModel(tmp_path / "missing.tflite")
    truncated = tmp_path / "truncated.tflite"
    with open(tflite_files["tagger"], "rb") as f:
        truncated.write_bytes(f.read(os.path.getsize(tflite_files["tagger"]) // 3))
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_text("not a flatbuffer")
    for path in (truncated, not_tflite):
        with pytest.raises(ValueError, match="is not a .tflite file written by tfpretrain export --tflite"):
            TfliteModel(path)
