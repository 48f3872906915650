"""BertEncoder, BertMaskedLM and BERT directories: structure, saving, padding, mixed precision, training."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfpretrain.models.bert import BERT_PRESETS, BertEncoder, BertMaskedLM, load_bert, save_bert
from tfpretrain.models.bert.saving import BERT_FILES

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)]
SMALL = {"vocabulary_size": len(VOCABULARY), "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
         "intermediate_dim": 32, "max_sequence_length": 32}
RNG = np.random.default_rng(0)


def _batch(batch=3, length=10, real=(10, 7, 4)):
    token_ids = RNG.integers(5, len(VOCABULARY), size=(batch, length)).astype("int32")
    token_ids[:, 0] = 2
    padding_mask = np.arange(length)[None, :] < np.array(real)[:, None]
    token_ids[~padding_mask] = 0
    segment_ids = (np.arange(length)[None, :] >= 3).astype("int32") * padding_mask
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask.astype("int32")}


def _assert_outputs_close(a, b, atol=1e-5):
    np.testing.assert_allclose(a["sequence_output"], b["sequence_output"], atol=atol)
    np.testing.assert_allclose(a["pooled_output"], b["pooled_output"], atol=atol)
    for x, y in zip(a["hidden_states"], b["hidden_states"]):
        np.testing.assert_allclose(x, y, atol=atol)


def test_presets():
    sizes = {name: (p["num_layers"], p["hidden_dim"], p["num_heads"], p["intermediate_dim"])
             for name, p in BERT_PRESETS.items()}
    assert sizes == {"tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
                     "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072), "large": (24, 1024, 16, 4096)}
    assert {p["max_sequence_length"] for p in BERT_PRESETS.values()} == {512}
    encoder = BertEncoder(vocabulary_size=50, **BERT_PRESETS["tiny"])
    assert encoder.hidden_dim == 128 and encoder.num_layers == 2 and encoder.max_sequence_length == 512


def test_outputs():
    encoder = BertEncoder(**SMALL)
    outputs = encoder(_batch())
    assert tuple(outputs["sequence_output"].shape) == (3, 10, 16)
    assert tuple(outputs["pooled_output"].shape) == (3, 16)
    assert len(outputs["hidden_states"]) == 3
    assert all(tuple(h.shape) == (3, 10, 16) for h in outputs["hidden_states"])
    np.testing.assert_array_equal(outputs["hidden_states"][-1], outputs["sequence_output"])
    # The pooler is tanh(dense([CLS])).
    pooler = encoder.pooler
    cls_vectors = np.asarray(outputs["sequence_output"])[:, 0]
    expected = np.tanh(cls_vectors @ np.asarray(pooler.kernel) + np.asarray(pooler.bias))
    np.testing.assert_allclose(outputs["pooled_output"], expected, atol=1e-5)
    # Bool padding masks work as well as int ones.
    bool_batch = {**_batch(), "padding_mask": _batch()["padding_mask"].astype(bool)}
    assert tuple(encoder(bool_batch)["sequence_output"].shape) == (3, 10, 16)


def test_padding_does_not_change_real_positions():
    encoder = BertEncoder(**SMALL)
    short = _batch(batch=2, length=6, real=(6, 4))
    long = {key: np.pad(value, [(0, 0), (0, 5)]) for key, value in short.items()}
    long["token_ids"][:, 6:] = 7  # whatever sits in the padding must not matter
    a, b = encoder(short), encoder(long)
    real = short["padding_mask"].astype(bool)
    for x, y in zip(a["hidden_states"], b["hidden_states"]):
        np.testing.assert_allclose(np.asarray(y)[:, :6][real], np.asarray(x)[real], atol=1e-5)
    np.testing.assert_allclose(a["pooled_output"], b["pooled_output"], atol=1e-5)


def test_pre_ln_differs_from_post_ln():
    post = BertEncoder(**SMALL)
    pre = BertEncoder(**SMALL, norm_first=True)
    batch = _batch()
    pre(batch)
    shared = {w.path: w for w in pre.weights}
    for w in post.weights:  # same, larger weights (BERT's 0.02 init barely moves the residual stream)
        w.assign(RNG.normal(scale=0.5, size=w.shape) + (1.0 if w.path.endswith("gamma") else 0.0))
        shared[w.path].assign(w)
    assert "final_layer_norm" in {layer.name for layer in pre.layers}
    assert not np.allclose(pre(batch)["sequence_output"], post(batch)["sequence_output"], atol=1e-3)


def test_config_and_keras_round_trip(tmp_path):
    encoder = BertEncoder(**SMALL, dropout=0.0, name="my_encoder")
    batch = _batch()
    expected = encoder(batch)
    revived = BertEncoder.from_config(encoder.get_config())
    assert revived.get_config() == encoder.get_config()
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, BertEncoder) and reloaded.name == "my_encoder"
    _assert_outputs_close(expected, reloaded(batch))


def test_inside_a_functional_model():
    encoder = BertEncoder(**SMALL)
    inputs = {name: keras.Input((None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    outputs = encoder(inputs)
    logits = keras.layers.Dense(2)(outputs["pooled_output"])
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = np.array(encoder.token_embedding.embeddings)
    history = model.fit(_batch(), np.array([0, 1, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, np.array(encoder.token_embedding.embeddings))


def test_mixed_float16():
    batch = _batch()
    reference = BertEncoder(**SMALL, dropout=0.0)
    encoder = BertEncoder(**SMALL, dropout=0.0, dtype="mixed_float16")
    encoder.set_weights(reference.get_weights())
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in encoder.weights)
    outputs = encoder(batch)
    assert keras.backend.standardize_dtype(outputs["sequence_output"].dtype) == "float16"
    for name in ("sequence_output", "pooled_output"):
        value = np.asarray(outputs[name], "float32")
        assert np.all(np.isfinite(value))
        np.testing.assert_allclose(value, reference(batch)[name], atol=2e-2)


def test_save_and_load_bert(tmp_path):
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    encoder = BertEncoder(**SMALL, dropout=0.0)
    tokenizer = WordPieceTokenizer(VOCABULARY, lowercase=False, strip_accents=True)
    save_bert(str(tmp_path), encoder, tokenizer)
    assert set(BERT_FILES) <= set(os.listdir(tmp_path))
    loaded, loaded_tokenizer = load_bert(str(tmp_path))
    assert loaded.get_config()["hidden_dim"] == 16
    batch = _batch()
    _assert_outputs_close(encoder(batch), loaded(batch))
    assert isinstance(loaded_tokenizer, WordPieceTokenizer)
    assert loaded_tokenizer.vocabulary == VOCABULARY
    assert (loaded_tokenizer.lowercase, loaded_tokenizer.strip_accents) == (False, True)


def test_load_bert_names_what_is_missing(tmp_path):
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    save_bert(str(tmp_path), BertEncoder(**SMALL), WordPieceTokenizer(VOCABULARY))
    os.remove(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError, match=r"not a BERT directory: missing vocab\.txt"):
        load_bert(str(tmp_path))


# --- masked LM ---------------------------------------------------------------------------------


def _mlm_batch(batch=4, length=12, selections=3):
    x = _batch(batch, length, real=[length] * batch)
    x["mask_positions"] = np.stack([RNG.choice(np.arange(1, length), selections, replace=False)
                                    for _ in range(batch)]).astype("int32")
    y = RNG.integers(5, len(VOCABULARY), size=(batch, selections)).astype("int32")
    weights = np.ones((batch, selections), "float32")
    weights[:, -1] = 0.0  # a padding selection
    return x, y, weights


def test_masked_lm_logits_and_gather_before_projection(monkeypatch):
    encoder = BertEncoder(**SMALL, dropout=0.0)
    model = BertMaskedLM(encoder)
    x, _, _ = _mlm_batch()
    seen = []
    original = type(encoder.token_embedding).call

    def recording_call(layer, inputs, reverse=False):
        if reverse:
            seen.append(tuple(inputs.shape))
        return original(layer, inputs, reverse=reverse)

    monkeypatch.setattr(type(encoder.token_embedding), "call", recording_call)
    logits = model(x)
    assert tuple(logits.shape) == (4, 3, len(VOCABULARY))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert seen == [(4, 3, 16)]  # the vocabulary projection saw only the gathered rows, not (4, 12, 16)
    # Same numbers as projecting every position and gathering afterwards.
    encoder_inputs = {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    sequence_output = np.asarray(encoder(encoder_inputs)["sequence_output"])
    every = np.asarray(model.masked_logits(sequence_output, np.tile(np.arange(12, dtype="int32"), (4, 1))))
    np.testing.assert_allclose(logits, np.take_along_axis(every, x["mask_positions"][..., None], axis=1), atol=1e-5)


def test_masked_lm_ties_the_embedding_matrix():
    encoder = BertEncoder(**SMALL)
    model = BertMaskedLM(encoder)
    x, y, w = _mlm_batch()
    model(x)
    matrices = [v for v in model.weights if tuple(v.shape) == (len(VOCABULARY), 16)]
    assert len(matrices) == 1 and matrices[0] is encoder.token_embedding.embeddings
    assert len({id(v) for v in model.weights}) == len(model.weights)


@pytest.mark.slow
def test_masked_lm_trains_with_xla_and_reports_metrics():
    encoder = BertEncoder(**SMALL, dropout=0.0)
    model = BertMaskedLM(encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))  # jit_compile=True by default
    assert model.jit_compile
    x, y, w = _mlm_batch()
    history = model.fit(x, y, sample_weight=w, validation_data=(x, y, w), epochs=25, batch_size=4, verbose=0)
    logs = history.history
    assert {"loss", "accuracy", "perplexity", "val_loss", "val_accuracy", "val_perplexity"} <= set(logs)
    assert logs["loss"][-1] < 0.5 * logs["loss"][0]
    assert logs["val_accuracy"][-1] > logs["val_accuracy"][0]
    # Perplexity is exp of the weighted mean NLL, i.e. of the loss.
    np.testing.assert_allclose(logs["val_perplexity"][-1], np.exp(logs["val_loss"][-1]), rtol=1e-4)
    # A padding selection (weight 0) counts for nothing.
    other = y.copy()
    other[:, -1] = (other[:, -1] + 1) % len(VOCABULARY)
    a = model.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0)
    b = model.evaluate(x, other, sample_weight=w, return_dict=True, verbose=0)
    for key in ("loss", "accuracy", "perplexity"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6)


@pytest.mark.slow
def test_masked_lm_mixed_float16_gives_float32_logits():
    encoder = BertEncoder(**SMALL, dtype="mixed_float16")
    model = BertMaskedLM(encoder)
    x, y, w = _mlm_batch()
    logits = model(x)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert np.isfinite(model.fit(x, y, sample_weight=w, epochs=1, verbose=0).history["loss"][0])


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np
    from tfpretrain.training.distribute import get_strategy
    strategy = get_strategy("mirrored", logical_cpus=2)
    import keras
    from tfpretrain.models.bert import BertEncoder, BertMaskedLM
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(5, 40, (8, 12)).astype("int32"), "segment_ids": np.zeros((8, 12), "int32"),
         "padding_mask": np.ones((8, 12), "int32"), "mask_positions": rng.integers(1, 12, (8, 3)).astype("int32")}
    y = rng.integers(5, 40, (8, 3)).astype("int32")
    with strategy.scope():
        encoder = BertEncoder(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)
        model = BertMaskedLM(encoder)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(x, y, sample_weight=np.ones((8, 3), "float32"), batch_size=8, epochs=3, verbose=0)
    print("REPLICAS", strategy.num_replicas_in_sync, "LOSS", history.history["loss"])
    assert strategy.num_replicas_in_sync == 2
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.isfinite(history.history["perplexity"][-1])
""")


@pytest.mark.slow
def test_masked_lm_trains_under_mirrored_strategy():
    """In a fresh process: the CPU must be split into logical devices before TensorFlow starts."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout
