"""Bad input at the ``import-hf`` boundary: damaged copies of the real MiniLM checkpoint, each refused clearly.

Every case copies MiniLM's directory into tmp, damages the copy, and asserts
a `ValueError` / `FileNotFoundError` whose message names the file (and the
tensor or setting) and writes nothing to ``out``. Kinds counted with the
ones `tests/models/test_hf_import.py` already covers (missing tensor,
misshaped tensor, unsupported hidden_act / position embeddings): 24.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tests.conftest import MINILM_MISSING, find_minilm_dir
from tfpretrain.models.bert import import_hf

MINILM = find_minilm_dir()
if MINILM is None:
    pytest.skip(MINILM_MISSING, allow_module_level=True)
safetensors_numpy = pytest.importorskip("safetensors.numpy")

WEIGHTS = os.path.join(MINILM, "model.safetensors")


def _copy(tmp_path, tensors=None, link_weights=True):
    """MiniLM's config, vocabulary and tokenizer config copied to tmp; its weights linked, or ``tensors`` saved."""
    target = tmp_path / "checkpoint"
    target.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(MINILM, name), target / name)
    if tensors is not None:
        safetensors_numpy.save_file(tensors, str(target / "model.safetensors"))
    elif link_weights:
        os.symlink(WEIGHTS, target / "model.safetensors")
    return target


def _refused(checkpoint, out, error, *fragments):
    with pytest.raises(error) as raised:
        import_hf(str(checkpoint), str(out))
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not os.path.exists(out / "encoder.weights.h5")  # nothing half-written
    return message


def _edit_config(checkpoint, **changes):
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.fixture(scope="module")
def tensors():
    return safetensors_numpy.load_file(WEIGHTS)


# -- the directory and its files ------------------------------------------------------------------


def test_missing_directory(tmp_path):
    _refused(tmp_path / "nowhere", tmp_path / "out", FileNotFoundError, "nowhere", "no such directory")


def test_a_file_instead_of_a_directory(tmp_path):
    _refused(WEIGHTS, tmp_path / "out", ValueError, "model.safetensors is a file", "config.json")


@pytest.mark.parametrize("name", ["config.json", "vocab.txt", "model.safetensors"])
def test_missing_file(tmp_path, name):
    checkpoint = _copy(tmp_path)
    os.remove(checkpoint / name)
    _refused(checkpoint, tmp_path / "out", FileNotFoundError, f"{name} not found")


def test_pytorch_model_bin_only(tmp_path):
    checkpoint = _copy(tmp_path, link_weights=False)
    (checkpoint / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really")
    _refused(checkpoint, tmp_path / "out", FileNotFoundError, "only pytorch_model.bin", "safe_serialization=True")


# -- model.safetensors ----------------------------------------------------------------------------


def test_truncated_safetensors(tmp_path):
    """Defect 3: a download cut short was a SafetensorError traceback."""
    checkpoint = _copy(tmp_path, link_weights=False)
    with open(WEIGHTS, "rb") as f:
        (checkpoint / "model.safetensors").write_bytes(f.read(os.path.getsize(WEIGHTS) // 2))
    _refused(checkpoint, tmp_path / "out", ValueError, str(checkpoint / "model.safetensors"), "damaged")


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"<html>404 Not Found</html>" * 10],
                         ids=["empty", "shorter-than-a-header", "html"])
def test_garbage_safetensors(tmp_path, content):
    checkpoint = _copy(tmp_path, link_weights=False)
    (checkpoint / "model.safetensors").write_bytes(content)
    _refused(checkpoint, tmp_path / "out", ValueError, "model.safetensors", "damaged")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, tensors, bad):
    """Defect 4: NaN / Inf weights were imported (and `embed` then printed bare NaN)."""
    name = "encoder.layer.4.attention.output.dense.weight"
    damaged = dict(tensors)
    damaged[name] = tensors[name].copy()
    damaged[name][3, :10] = bad
    checkpoint = _copy(tmp_path, damaged)
    _refused(checkpoint, tmp_path / "out", ValueError, name, "model.safetensors", "10 non-finite values")


def test_extra_tensor_is_refused(tmp_path, tensors):
    checkpoint = _copy(tmp_path, {**tensors, "encoder.layer.6.output.dense.weight": np.zeros((384, 1536), "float32")})
    _refused(checkpoint, tmp_path / "out", ValueError, "no place for", "encoder.layer.6.output.dense.weight")


def test_checkpoint_with_fewer_layers_than_config(tmp_path):
    checkpoint = _copy(tmp_path)
    _edit_config(checkpoint, num_hidden_layers=7)
    _refused(checkpoint, tmp_path / "out", ValueError, "no tensor 'encoder.layer.6.", "7-layer encoder")


# -- vocab.txt ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["drop", "add"])
def test_vocabulary_size_disagreeing_with_config(tmp_path, change):
    """Defect 4: a vocab.txt with lines dropped was imported, shifting every later token id."""
    checkpoint = _copy(tmp_path)
    lines = (checkpoint / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines = lines[:2000] + lines[2003:] if change == "drop" else lines + ["[EXTRA1]", "[EXTRA2]", "[EXTRA3]"]
    (checkpoint / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = "30519 tokens" if change == "drop" else "30525 tokens"
    _refused(checkpoint, tmp_path / "out", ValueError, "vocab.txt", expected, "vocab_size=30522")


def test_vocabulary_with_an_empty_line(tmp_path):
    checkpoint = _copy(tmp_path)
    lines = (checkpoint / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (checkpoint / "vocab.txt").write_text("\n".join(lines[:500] + [""] + lines[500:]) + "\n", encoding="utf-8")
    _refused(checkpoint, tmp_path / "out", ValueError, "vocab.txt:501", "empty vocabulary line")


def test_vocabulary_not_utf8(tmp_path):
    checkpoint = _copy(tmp_path)
    with open(checkpoint / "vocab.txt", "ab") as f:
        f.write(b"caf\xe9\n")
    _refused(checkpoint, tmp_path / "out", ValueError, "vocab.txt is not UTF-8")


# -- config.json / tokenizer_config.json ----------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_json_file_that_is_not_json(tmp_path, name):
    checkpoint = _copy(tmp_path)
    (checkpoint / name).write_text('{"vocab_size": 30522,\n  "hidden_size": 384,,\n}')
    _refused(checkpoint, tmp_path / "out", ValueError, f"{name}:2: not valid JSON")


def test_config_that_is_a_list(tmp_path):
    checkpoint = _copy(tmp_path)
    (checkpoint / "config.json").write_text("[1, 2, 3]")
    _refused(checkpoint, tmp_path / "out", ValueError, "config.json holds a JSON list")


@pytest.mark.parametrize("key, value", [("num_hidden_layers", "six"), ("hidden_size", 384.5), ("vocab_size", 0),
                                        ("num_attention_heads", True), ("hidden_dropout_prob", "0.1"),
                                        ("num_attention_heads", 5)])
def test_config_setting_of_the_wrong_type_or_value(tmp_path, key, value):
    checkpoint = _copy(tmp_path)
    _edit_config(checkpoint, **{key: value})
    _refused(checkpoint, tmp_path / "out", ValueError, "config.json", f"{key}={value!r}")


def test_config_of_another_architecture(tmp_path):
    checkpoint = _copy(tmp_path)
    _edit_config(checkpoint, model_type="roberta")
    _refused(checkpoint, tmp_path / "out", ValueError, "model_type is 'roberta'", "only 'bert'")


def test_decoder_config(tmp_path):
    checkpoint = _copy(tmp_path)
    _edit_config(checkpoint, is_decoder=True)
    _refused(checkpoint, tmp_path / "out", ValueError, "decoder / cross-attention")
