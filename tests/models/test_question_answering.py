"""The SQuAD span head: shapes, padding, the loss against numpy, learning a span, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.models.bert import BertEncoder
from tfpretrain.models.bert.question_answering import build_question_answerer, span_losses

SEQUENCE_LENGTH = 16


def _encoder(dtype=None):
    return BertEncoder(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                       max_sequence_length=32, dtype=dtype)


def _batch(batch_size=6, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, SEQUENCE_LENGTH + 1, size=batch_size)
    padding_mask = np.arange(SEQUENCE_LENGTH)[None, :] < lengths[:, None]
    token_ids = np.where(padding_mask, rng.integers(5, 50, size=(batch_size, SEQUENCE_LENGTH)), 0).astype("int32")
    segment_ids = (padding_mask & (np.arange(SEQUENCE_LENGTH)[None, :] >= 3)).astype("int32")
    starts = rng.integers(3, lengths - 1)
    ends = np.minimum(starts + rng.integers(0, 3, size=batch_size), lengths - 1)
    x = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask.astype("int32")}
    return x, {"start_logits": starts.astype("int32"), "end_logits": ends.astype("int32")}


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_outputs_and_padding():
    model = build_question_answerer(_encoder(), SEQUENCE_LENGTH)
    x, _ = _batch()
    outputs = model.predict(x, verbose=0)
    assert set(outputs) == {"start_logits", "end_logits"}
    for logits in outputs.values():
        assert logits.shape == (6, SEQUENCE_LENGTH) and logits.dtype == np.float32
        assert np.all(logits[x["padding_mask"] == 0] == -1e9) and np.all(np.abs(logits[x["padding_mask"] == 1]) < 100)
    assert [layer.name for layer in model.layers if layer.weights and not isinstance(layer, BertEncoder)] == [
        "span_logits"]


def test_loss_is_the_mean_of_start_and_end_cross_entropy():
    model = build_question_answerer(_encoder(), SEQUENCE_LENGTH)
    model.compile(optimizer="sgd", **span_losses())
    x, y = _batch()
    outputs = model.predict(x, verbose=0)
    rows = np.arange(6)
    start = -_log_softmax(outputs["start_logits"].astype("float64"))[rows, y["start_logits"]]
    end = -_log_softmax(outputs["end_logits"].astype("float64"))[rows, y["end_logits"]]
    loss = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(0.5 * (start.mean() + end.mean()), rel=1e-5)


def test_learns_the_spans_of_a_small_batch():
    model = build_question_answerer(_encoder(), SEQUENCE_LENGTH)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), **span_losses())
    x, y = _batch(8, seed=1)
    history = model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=20, epochs=5, verbose=0,
                        shuffle=False)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    outputs = model.predict(x, verbose=0)
    assert np.mean(np.argmax(outputs["start_logits"], axis=-1) == y["start_logits"]) >= 0.85
    assert np.mean(np.argmax(outputs["end_logits"], axis=-1) == y["end_logits"]) >= 0.85


def test_mixed_precision_keeps_float32_logits():
    keras.config.set_dtype_policy("mixed_float16")
    model = build_question_answerer(_encoder(), SEQUENCE_LENGTH)
    model.compile(optimizer="adam", **span_losses())
    x, y = _batch()
    outputs = model.predict(x, verbose=0)
    assert outputs["start_logits"].dtype == np.float32
    assert np.all(outputs["end_logits"][x["padding_mask"] == 0] == -1e9)
    assert np.all(np.isfinite(model.train_on_batch(x, y)))
