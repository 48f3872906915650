"""AWD-LSTM's layers: the shared harness, and each dropout's mask shape checked on its own statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_layer_test
from tfpretrain.layers.concat_pooling import ConcatPooling
from tfpretrain.layers.locked_dropout import LockedDropout
from tfpretrain.layers.weight_drop_lstm import WeightDropLSTM
from tfpretrain.layers.word_dropout_embedding import WordDropoutEmbedding

RNG = np.random.default_rng(0)
MASK = np.array([[True] * 6, [True] * 3 + [False] * 3])


# --- The shared harness --------------------------------------------------------------------------


def test_locked_dropout_harness():
    run_layer_test(LockedDropout, {"rate": 0.3, "seed": 1}, RNG.normal(size=(2, 6, 4)).astype("float32"),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   expected_output_shape=(2, 6, 4), mask=MASK)


def test_weight_drop_lstm_harness():
    run_layer_test(
        WeightDropLSTM, {"units": 5, "weight_dropout": 0.4, "seed": 2, "return_sequences": True},
        RNG.normal(size=(2, 6, 3)).astype("float32"),
        expected_num_trainable_weights=3, expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 5), mask=MASK,
    )


def test_word_dropout_embedding_harness():
    # Its mask comes from the ids (mask_zero), not from a mask argument: checked below.
    run_layer_test(
        WordDropoutEmbedding, {"input_dim": 20, "output_dim": 4, "dropout": 0.3, "seed": 3, "mask_zero": True},
        RNG.integers(1, 20, size=(2, 6)).astype("int32"),
        expected_num_trainable_weights=1, expected_num_non_trainable_weights=0, expected_output_shape=(2, 6, 4),
    )


def test_concat_pooling_harness():
    # Its output has no time axis, so the harness' masking check does not apply: see the oracle tests below.
    run_layer_test(ConcatPooling, {}, RNG.normal(size=(2, 6, 4)).astype("float32"),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   expected_output_shape=(2, 12))


# --- Locked dropout -------------------------------------------------------------------------------


def test_locked_dropout_mask_is_constant_over_time_and_fresh_per_sequence_and_call():
    rate = 0.5
    dropout = LockedDropout(rate, seed=0)
    x = np.ones((64, 30, 32), "float32")  # (batch, time, features)
    y = np.asarray(dropout(x, training=True))
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))  # one mask per sequence, every step
    assert set(np.unique(y)) == {0.0, 1.0 / (1.0 - rate)}
    dropped = y[:, 0] == 0  # (batch, features)
    n = dropped.size
    assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    assert (dropped[0] != dropped[1]).mean() > 0.3  # sequences draw different masks
    again = np.asarray(dropout(x, training=True))[:, 0] == 0
    assert 0.4 < (again != dropped).mean() < 0.6  # and every call draws new ones


def test_locked_dropout_inference_and_rate_zero_are_the_identity():
    x = RNG.normal(size=(3, 5, 4)).astype("float32")
    np.testing.assert_array_equal(LockedDropout(0.5)(x, training=False), x)
    np.testing.assert_array_equal(LockedDropout(0.0)(x, training=True), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        LockedDropout(1.0)


# --- Weight dropping ------------------------------------------------------------------------------


def _plain_lstm(layer, recurrent_kernel):
    """A keras.layers.LSTM with ``layer``'s kernel and bias and the given recurrent kernel."""
    plain = keras.layers.LSTM(layer.units, return_sequences=True)
    plain.build((None, None, layer.cell.kernel.shape[0]))
    plain.set_weights([np.asarray(layer.cell.kernel), np.asarray(recurrent_kernel), np.asarray(layer.cell.bias)])
    return plain


def test_weight_drop_uses_one_dropped_recurrent_kernel_per_batch_in_training():
    rate = 0.5
    lstm = WeightDropLSTM(8, weight_dropout=rate, seed=0, return_sequences=True)
    x = RNG.normal(size=(4, 7, 3)).astype("float32")
    lstm(x)  # build
    state = np.asarray(lstm.weight_seed_generator.state)
    trained = np.asarray(lstm(x, training=True))
    lstm.weight_seed_generator.state.assign(state)  # replay the same draw
    dropped = np.asarray(lstm.dropped_recurrent_kernel())
    kernel = np.asarray(lstm.cell.recurrent_kernel)
    zero = dropped == 0
    assert abs(zero.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / zero.size)
    np.testing.assert_allclose(dropped[~zero], kernel[~zero] / (1 - rate), rtol=1e-6)
    # The training output is a plain LSTM's with that one kernel, for every step and every sequence.
    np.testing.assert_allclose(trained, _plain_lstm(lstm, dropped)(x), atol=1e-5)
    # A second training call draws another mask; inference uses the undropped kernel, every time.
    assert not np.allclose(trained, lstm(x, training=True), atol=1e-4)
    inferred = np.asarray(lstm(x))
    np.testing.assert_allclose(inferred, _plain_lstm(lstm, kernel)(x), atol=1e-5)
    np.testing.assert_array_equal(inferred, lstm(x, training=False))
    assert isinstance(lstm.cell.recurrent_kernel, keras.Variable)  # the variable is back in place


def test_weight_drop_gradients_reach_only_kept_recurrent_weights_under_xla():
    lstm = WeightDropLSTM(6, weight_dropout=0.5, seed=1, return_sequences=True)
    x = RNG.normal(size=(3, 5, 4)).astype("float32")
    lstm(x)

    @tf.function(jit_compile=True)
    def gradients(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(lstm(inputs, training=True) ** 2)
        return tape.gradient(loss, [v.value for v in lstm.trainable_weights])

    state = np.asarray(lstm.weight_seed_generator.state)
    kernel_grad, recurrent_grad, bias_grad = [np.asarray(g) for g in gradients(x)]
    lstm.weight_seed_generator.state.assign(state)
    dropped = np.asarray(lstm.dropped_recurrent_kernel()) == 0
    assert np.all(recurrent_grad[dropped] == 0)
    assert np.mean(recurrent_grad[~dropped] != 0) > 0.9
    assert np.mean(kernel_grad != 0) > 0.9 and np.all(bias_grad != 0)  # the input kernel is not dropped


def test_weight_drop_zero_rate_and_bad_rate():
    lstm = WeightDropLSTM(4, weight_dropout=0.0, return_sequences=True)
    x = RNG.normal(size=(2, 3, 2)).astype("float32")
    np.testing.assert_array_equal(lstm(x, training=True), lstm(x))
    with pytest.raises(ValueError, match="weight_dropout"):
        WeightDropLSTM(4, weight_dropout=1.0)


# --- Embedding dropout ----------------------------------------------------------------------------


def test_embedding_dropout_zeros_whole_words():
    rate = 0.3
    vocabulary, dim = 400, 5
    embedding = WordDropoutEmbedding(vocabulary, dim, dropout=rate, seed=0, mask_zero=True)
    ids = RNG.integers(1, vocabulary, size=(16, 50)).astype("int32")  # every word occurs several times
    plain = np.asarray(embedding(ids))
    y = np.asarray(embedding(ids, training=True))
    zero_rows = np.all(y == 0, axis=-1)  # (batch, time)
    for word in np.unique(ids):
        at = ids == word
        assert zero_rows[at].all() or not zero_rows[at].any(), f"word {word} dropped at some places only"
    np.testing.assert_allclose(y[~zero_rows], plain[~zero_rows] / (1 - rate), rtol=1e-6)
    dropped_words = np.unique(ids[zero_rows])
    n = len(np.unique(ids))
    assert abs(len(dropped_words) / n - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    again = np.all(np.asarray(embedding(ids, training=True)) == 0, axis=-1)
    assert not np.array_equal(again, zero_rows)  # a fresh draw per call


def test_embedding_dropout_inference_reverse_and_mask():
    embedding = WordDropoutEmbedding(10, 3, dropout=0.5, mask_zero=True)
    ids = np.array([[4, 5, 0, 0]], "int32")
    vectors = embedding(ids)
    np.testing.assert_array_equal(vectors, embedding(ids, training=False))
    np.testing.assert_array_equal(embedding.compute_mask(ids), ids != 0)
    dropped = embedding(ids, training=True)  # the mask travels with the output to the next layer
    np.testing.assert_array_equal(ConcatPooling()(dropped), ConcatPooling()(dropped, mask=ids != 0))
    states = RNG.normal(size=(1, 4, 3)).astype("float32")
    logits = np.asarray(embedding(states, reverse=True, training=True))  # the tied projection is never dropped
    np.testing.assert_allclose(logits, states @ np.asarray(embedding.embeddings).T, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dropout"):
        WordDropoutEmbedding(10, 3, dropout=-0.1)


# --- Concat pooling -------------------------------------------------------------------------------


def _numpy_concat_pool(states, mask):
    rows = []
    for x, m in zip(states, mask):
        real = x[m]
        if len(real) == 0:
            rows.append(np.zeros(3 * x.shape[-1], "float32"))
        else:
            rows.append(np.concatenate([real[-1], real.max(axis=0), real.mean(axis=0)]))
    return np.stack(rows)


def test_concat_pooling_matches_numpy_and_ignores_padding():
    states = RNG.normal(size=(5, 7, 4)).astype("float32")
    mask = np.array([
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0],  # right padding
        [0, 0, 1, 1, 1, 1, 1],  # left padding
        [1, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],  # nothing real: zeros
    ], bool)
    pooling = ConcatPooling()
    pooled = np.asarray(pooling(states, mask=mask))
    np.testing.assert_allclose(pooled, _numpy_concat_pool(states, mask), rtol=1e-6, atol=1e-6)
    noisy = np.where(mask[..., None], states, RNG.normal(size=states.shape).astype("float32") * 100)
    np.testing.assert_array_equal(pooling(noisy, mask=mask), pooled)
    np.testing.assert_allclose(pooling(states), _numpy_concat_pool(states, np.ones((5, 7), bool)), rtol=1e-6)
