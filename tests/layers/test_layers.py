"""CharCNN, Highway, BiLM and ScalarMix through the shared layer harness, plus their maths."""

import numpy as np
import tensorflow as tf

import tfpretrain.layers as layers
from tests.harness import run_layer_test

RNG = np.random.default_rng(0)
MASK = np.array([[True] * 6, [True] * 3 + [False] * 3])


def test_scalar_mix_harness():
    run_layer_test(
        layers.ScalarMix,
        {"num_layers": 3, "initial_scalar_parameters": [0.1, 0.2, 0.3], "initial_gamma": 1.5},
        RNG.normal(size=(2, 3, 6, 4)).astype("float32"),
        expected_num_trainable_weights=2,  # the scalars and gamma
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 4),
    )


def test_scalar_mix_matches_formula():
    states = RNG.normal(size=(2, 3, 5, 4)).astype("float32")
    s = np.array([0.5, -1.0, 2.0], "float32")
    mix = layers.ScalarMix(3, initial_scalar_parameters=s.tolist(), initial_gamma=0.7)
    weights = np.exp(s) / np.exp(s).sum()
    expected = 0.7 * np.einsum("l,bltd->btd", weights, states)
    np.testing.assert_allclose(mix(states), expected, rtol=1e-5, atol=1e-6)


def test_scalar_mix_rejects_wrong_layer_count():
    try:
        layers.ScalarMix(2)(np.zeros((1, 3, 2, 2), "float32"))
    except ValueError as error:
        assert "num_layers=2" in str(error) and "3 layers" in str(error)
    else:
        raise AssertionError("expected a ValueError")


def test_highway_harness():
    run_layer_test(
        layers.Highway, {"num_layers": 2, "gate_bias": -2.0},
        RNG.normal(size=(4, 8)).astype("float32"),
        expected_num_trainable_weights=8,  # per layer: transform and gate kernels and biases
        expected_num_non_trainable_weights=0, expected_output_shape=(4, 8),
    )


def test_char_cnn_harness():
    char_ids = RNG.integers(1, 259, size=(2, 6, 9)).astype("int32")
    char_ids[1, 3:] = 0  # padded tokens
    run_layer_test(
        layers.CharCNN,
        {"filters": [[1, 4], [2, 8], [3, 8]], "num_highway": 1, "output_dim": 10, "char_embedding_dim": 4},
        char_ids, expected_num_trainable_weights=13, expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 10), mask=MASK,
    )


def test_char_cnn_mask_and_short_words():
    cnn = layers.CharCNN(filters=[[1, 4], [5, 4]], output_dim=6)
    char_ids = np.zeros((1, 3, 2), "int32")  # tokens shorter than the widest filter
    char_ids[0, 0] = [257, 258]
    assert tuple(cnn(char_ids).shape) == (1, 3, 6)
    np.testing.assert_array_equal(cnn.compute_mask(char_ids), [[True, False, False]])


def test_char_cnn_is_position_independent():
    """A token's vector depends on its characters only, not on its neighbours."""
    cnn = layers.CharCNN(filters=[[2, 4], [3, 4]], output_dim=5)
    a = RNG.integers(1, 259, size=(1, 4, 7))
    b = a.copy()
    b[0, 1:] = RNG.integers(1, 259, size=(3, 7))
    np.testing.assert_allclose(cnn(a)[0, 0], cnn(b)[0, 0], atol=1e-6)


def test_bilm_harness():
    tokens = RNG.normal(size=(2, 6, 8)).astype("float32")
    run_layer_test(
        layers.BiLM, {"hidden_dim": 8, "num_layers": 2, "dropout": 0.0},
        tokens, expected_num_trainable_weights=12, expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 3, 6, 16), mask=MASK, output_mask_axes=(0, 2),
        atol=1e-5,
    )


def test_bilm_projects_other_input_sizes():
    bilm = layers.BiLM(hidden_dim=4, num_layers=1, dropout=0.0)
    assert tuple(bilm(np.ones((1, 3, 7), "float32")).shape) == (1, 2, 3, 8)


def test_bilm_directions_are_causal():
    """Forward states never see later tokens; backward states never see earlier ones."""
    bilm = layers.BiLM(hidden_dim=6, num_layers=2, dropout=0.0)
    x = RNG.normal(size=(1, 7, 6)).astype("float32")
    base = np.asarray(bilm(x))
    t = 3
    later = x.copy()
    later[0, t + 1:] += 5.0
    earlier = x.copy()
    earlier[0, :t] += 5.0
    out_later, out_earlier = np.asarray(bilm(later)), np.asarray(bilm(earlier))
    forward, backward = slice(0, 6), slice(6, 12)
    np.testing.assert_allclose(out_later[0, 1:, : t + 1, forward], base[0, 1:, : t + 1, forward], atol=1e-6)
    np.testing.assert_allclose(out_earlier[0, 1:, t:, backward], base[0, 1:, t:, backward], atol=1e-6)
    assert not np.allclose(out_later[0, 1:, t + 1:, forward], base[0, 1:, t + 1:, forward])
    assert not np.allclose(out_earlier[0, 1:, :t, backward], base[0, 1:, :t, backward])


def test_bilm_backward_starts_at_last_real_token():
    """A padded sequence gives the same states as the unpadded one."""
    bilm = layers.BiLM(hidden_dim=5, num_layers=2, dropout=0.0)
    x = RNG.normal(size=(1, 4, 5)).astype("float32")
    padded = np.concatenate([x, RNG.normal(size=(1, 3, 5)).astype("float32")], axis=1)
    mask = np.array([[True] * 4 + [False] * 3])
    short = np.asarray(bilm(x))
    long = np.asarray(bilm(padded, mask=tf.constant(mask)))
    np.testing.assert_allclose(long[:, :, :4], short, atol=1e-5)
