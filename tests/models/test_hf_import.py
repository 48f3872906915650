"""import_hf on the real all-MiniLM-L6-v2 checkpoint against keras-hub's BertBackbone, and its errors."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from tests.conftest import MINILM_MISSING, find_minilm_dir
from tfpretrain.models.bert import BertEncoder, import_hf, load_bert

MINILM = find_minilm_dir()
if MINILM is None:
    pytest.skip(MINILM_MISSING, allow_module_level=True)
keras_hub = pytest.importorskip("keras_hub")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo, Wörld! Tokenizers split unaffordable words into pieces.",
    "BERT reads both directions at once.",
]
SEQUENCE_LENGTH = 24


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("minilm"))
    import_hf(MINILM, out_dir)
    return out_dir


@pytest.fixture(scope="module")
def reference():
    """keras-hub's BertBackbone on the same checkpoint: its outputs with its own gelu and with the exact one.

    keras-hub builds every BERT with the tanh approximation of gelu
    (``gelu_approximate``), which moves MiniLM's outputs by ~3e-3; Hugging
    Face's ``hidden_act="gelu"`` is the exact erf form, which `import_hf`
    gives. So the oracle is taken twice: as keras-hub ships it (to compare
    with our encoder built with ``activation="gelu_approximate"``), and with
    the exact gelu swapped into its feed-forward layers (to compare with the
    imported encoder as it is).
    """
    backbone = keras_hub.models.BertBackbone.from_preset(MINILM)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(MINILM)
    packer = keras_hub.layers.StartEndPacker(
        sequence_length=SEQUENCE_LENGTH, start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id,
    )
    token_ids = np.asarray(packer(tokenizer(SENTENCES)), "int32")
    padding_mask = (token_ids != tokenizer.pad_token_id).astype("int32")
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}
    # Every hidden state: the embeddings' output, then each block's.
    names = ["embeddings_dropout"] + [f"transformer_layer_{i}" for i in range(backbone.num_layers)]
    with_hidden_states = keras.Model(backbone.inputs, [backbone.output, [backbone.get_layer(n).output for n in names]])

    def run():
        outputs, hidden_states = with_hidden_states(inputs)
        return {
            "sequence_output": np.asarray(outputs["sequence_output"]),
            "pooled_output": np.asarray(outputs["pooled_output"]),
            "hidden_states": [np.asarray(h) for h in hidden_states],
        }

    approximate = run()
    for i in range(backbone.num_layers):
        layer = backbone.get_layer(f"transformer_layer_{i}")
        layer._feedforward_intermediate_dense.activation = keras.activations.gelu  # exact (erf) gelu
    return inputs, {"gelu": run(), "gelu_approximate": approximate}


def _assert_matches(encoder, inputs, expected):
    outputs = encoder(inputs)
    real = inputs["padding_mask"].astype(bool)
    assert real.sum() < real.size  # the batch has padding
    np.testing.assert_allclose(
        np.asarray(outputs["sequence_output"])[real], expected["sequence_output"][real], atol=1e-4)
    np.testing.assert_allclose(outputs["pooled_output"], expected["pooled_output"], atol=1e-4)
    assert len(outputs["hidden_states"]) == len(expected["hidden_states"]) == 7
    for i, (ours, theirs) in enumerate(zip(outputs["hidden_states"], expected["hidden_states"])):
        np.testing.assert_allclose(np.asarray(ours)[real], theirs[real], atol=1e-4, err_msg=f"hidden state {i}")


def test_matches_keras_hub_backbone(imported, reference):
    inputs, expected = reference
    encoder, tokenizer = load_bert(imported)
    assert encoder.num_layers == 6 and encoder.hidden_dim == 384 and encoder.vocabulary_size == 30522
    assert encoder.activation == "gelu"  # config.json: hidden_act="gelu"
    assert tokenizer.lowercase is True and tokenizer.vocabulary[101] == "[CLS]"
    _assert_matches(encoder, inputs, expected["gelu"])
    # The same weights with keras-hub's activation give keras-hub's own outputs.
    approximate = BertEncoder(**{**encoder.constructor_config(), "activation": "gelu_approximate"})
    approximate.set_weights(encoder.get_weights())
    _assert_matches(approximate, inputs, expected["gelu_approximate"])


def _copy_checkpoint(tmp_path, edit=None):
    """A copy of MiniLM's directory whose tensors went through ``edit(dict)`` (a link to them without ``edit``)."""
    target = tmp_path / "checkpoint"
    target.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(MINILM, name), target / name)
    if edit is None:
        os.symlink(os.path.join(MINILM, "model.safetensors"), target / "model.safetensors")
        return str(target)
    tensors = safetensors_numpy.load_file(os.path.join(MINILM, "model.safetensors"))
    edit(tensors)
    safetensors_numpy.save_file(tensors, str(target / "model.safetensors"))
    return str(target)


def test_missing_tensor_is_named(tmp_path):
    checkpoint = _copy_checkpoint(tmp_path, lambda t: t.pop("encoder.layer.3.attention.self.key.weight"))
    expected = r"model\.safetensors has no tensor 'encoder\.layer\.3\.attention\.self\.key\.weight'"
    with pytest.raises(ValueError, match=expected):
        import_hf(checkpoint, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "encoder.weights.h5")


def test_misshaped_tensor_is_named_with_both_shapes(tmp_path):
    def edit(tensors):
        tensors["encoder.layer.2.intermediate.dense.weight"] = np.zeros((1000, 384), "float32")

    checkpoint = _copy_checkpoint(tmp_path, edit)
    with pytest.raises(ValueError) as error:
        import_hf(checkpoint, str(tmp_path / "out"))
    message = str(error.value)
    assert "encoder.layer.2.intermediate.dense.weight" in message and "model.safetensors" in message
    assert "(1000, 384)" in message and "(1536, 384)" in message


def test_bert_prefix_and_pretraining_heads_are_accepted(tmp_path):
    def edit(tensors):
        for name in list(tensors):
            tensors["bert." + name] = tensors.pop(name)
        tensors["cls.predictions.bias"] = np.zeros(30522, "float32")

    checkpoint = _copy_checkpoint(tmp_path, edit)
    encoder = import_hf(checkpoint, str(tmp_path / "out"))
    original = safetensors_numpy.load_file(os.path.join(MINILM, "model.safetensors"))
    np.testing.assert_array_equal(encoder.pooler.kernel, original["pooler.dense.weight"].T)


def test_unsupported_config_is_refused(tmp_path):
    checkpoint = _copy_checkpoint(tmp_path)
    config_path = os.path.join(checkpoint, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    for key, value in (("position_embedding_type", "relative_key"), ("hidden_act", "relu")):
        with open(config_path, "w") as f:
            json.dump({**config, key: value}, f)
        with pytest.raises(ValueError, match=f"{key}={value!r} is not supported"):
            import_hf(checkpoint, str(tmp_path / "out"))


def test_config_mapping():
    from tfpretrain.models.bert.hf_import import encoder_config_from_hf

    with open(os.path.join(MINILM, "config.json")) as f:
        hf_config = json.load(f)
    config = encoder_config_from_hf(hf_config)
    assert config == {"vocabulary_size": 30522, "num_layers": 6, "num_heads": 12, "hidden_dim": 384,
                      "intermediate_dim": 1536, "max_sequence_length": 512, "num_segments": 2, "dropout": 0.1,
                      "layer_norm_epsilon": 1e-12, "activation": "gelu"}
    assert encoder_config_from_hf({**hf_config, "hidden_act": "gelu_new"})["activation"] == "gelu_approximate"
    with pytest.raises(ValueError, match="misses num_hidden_layers"):
        encoder_config_from_hf({k: v for k, v in hf_config.items() if k != "num_hidden_layers"})
