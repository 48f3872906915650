"""`tfpretrain.models.model_dir`: what each directory layout is taken for, and head weights with shape checks."""

import json

import keras
import numpy as np
import pytest

from tfpretrain.models import model_dir
from tfpretrain.models.model_dir import ModelKind, load_head_weights, model_kind, save_head_weights


def _directory(root, name, files):
    directory = root / name
    directory.mkdir()
    for file_name, content in files.items():
        (directory / file_name).write_text(json.dumps(content) if content is not None else "")
    return directory


LAYOUTS = {  # directory name -> (files, expected kind)
    "tagger": ({"model.keras": None, "preprocessor.json": {}, "tagger.json": {"task": "tagger"}},
               ModelKind("tagger", "tag")),
    "bert": ({"encoder.json": {}, "encoder.weights.h5": None, "vocab.txt": None, "tokenizer.json": {}},
             ModelKind("bert")),
    "bert_qa": ({"encoder.json": {}, "task.json": {"task": "qa"}, "head.weights.npz": None}, ModelKind("bert", "qa")),
    "gpt": ({"decoder.json": {}, "decoder.weights.h5": None}, ModelKind("gpt")),
    "gpt_choice": ({"decoder.json": {}, "task.json": {"task": "choice"}}, ModelKind("gpt", "choice")),
    "awd_lstm": ({"awd_lstm.json": {}, "config.json": {"lowercase": True}}, ModelKind("ulmfit")),
    "ulmfit_classifier": ({"awd_lstm.json": {}, "config.json": {"labels": ["0", "1"]}, "head.weights.npz": None},
                          ModelKind("ulmfit", "classify")),
    # labels but no head weights: a classifier stage that never finished is still a language model
    "ulmfit_unfinished": ({"awd_lstm.json": {}, "config.json": {"labels": ["0", "1"]}}, ModelKind("ulmfit")),
    "bilm": ({"language_model.keras": None, "bilm.json": {}}, ModelKind("bilm")),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_model_kind_of_each_layout(tmp_path, name):
    files, expected = LAYOUTS[name]
    kind = model_kind(_directory(tmp_path, name, files))
    assert kind == expected
    assert kind.describe()  # every kind has words for messages


def test_model_kind_errors_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory .* does not exist"):
        model_kind(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        model_kind(tmp_path / "file.txt")
    with pytest.raises(ValueError, match=r"not a model directory.*task\.json \(finetune\)"):
        model_kind(_directory(tmp_path, "empty", {}))
    broken = _directory(tmp_path, "broken", {"encoder.json": {}})
    (broken / "task.json").write_text('{"task": "classify",\n')
    with pytest.raises(ValueError, match=r"task\.json:2: not valid JSON"):
        model_kind(broken)


def test_file_names_are_spelled_once():
    """Every file-name constant is distinct: two layouts cannot be told apart by a shared name by accident."""
    names = [value for key, value in vars(model_dir).items() if key.endswith("_FILE") or key.endswith("_RECORD")]
    assert len(names) >= 15
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)


def _head():
    layers = [keras.layers.Dense(3, name="pooler"), keras.layers.Dense(2, name="logits")]
    layers[0].build((None, 4))
    layers[1].build((None, 3))
    return layers


def test_head_weights_round_trip(tmp_path):
    saved = _head()
    save_head_weights(tmp_path, saved)
    restored = _head()
    load_head_weights(tmp_path, restored)
    for a, b in zip(saved, restored):
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(x, y)


def test_head_weights_of_another_shape_or_layer_are_refused(tmp_path):
    save_head_weights(tmp_path, _head())
    wider = keras.layers.Dense(5, name="logits")
    wider.build((None, 3))
    with pytest.raises(ValueError, match=r"weight logits/0 should have shape \(3, 5\), found \(3, 2\); config\.json"):
        load_head_weights(tmp_path, [_head()[0], wider], described_by="config.json")
    other = keras.layers.Dense(2, name="classifier")
    other.build((None, 3))
    with pytest.raises(ValueError, match="task.json and the weights do not match"):
        load_head_weights(tmp_path, [_head()[0], other])
    with pytest.raises(FileNotFoundError, match="head.weights.npz is missing"):
        load_head_weights(tmp_path / "elsewhere", _head())
