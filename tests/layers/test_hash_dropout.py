"""HashDropout through the shared layer harness, and the statistics of its masks."""

import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_layer_test
from tfpretrain.layers import HashDropout

RNG = np.random.default_rng(0)


def test_harness():
    run_layer_test(
        HashDropout, {"rate": 0.3, "seed": 1}, RNG.normal(size=(2, 6, 4)).astype("float32"),
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 4), mask=np.array([[True] * 6, [True] * 3 + [False] * 3]),
    )


def test_rates_pinned_to_zero_and_inference_are_the_identity():
    x = RNG.normal(size=(4, 50)).astype("float32")
    np.testing.assert_array_equal(HashDropout(0.0)(x, training=True), x)
    np.testing.assert_array_equal(HashDropout(0.5)(x, training=False), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        HashDropout(1.0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drop_rate_and_scale(rate):
    n = 200_000
    dropout = HashDropout(rate, seed=3)
    y = np.asarray(dropout(np.ones((n,), "float32"), training=True))
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(y[~dropped], 1.0 / (1.0 - rate), rtol=1e-6)
    # Neighbouring values are dropped independently.
    assert abs(np.corrcoef(dropped[:-1], dropped[1:])[0, 1]) < 0.01


def test_fresh_masks_per_call_and_under_xla():
    dropout = HashDropout(0.5, seed=0)
    x = np.ones((64, 64), "float32")
    step = tf.function(lambda v: dropout(v, training=True), jit_compile=True)
    masks = [np.asarray(step(x)) == 0 for _ in range(3)] + [np.asarray(dropout(x, training=True)) == 0]
    for a, b in zip(masks, masks[1:]):
        assert 0.4 < (a != b).mean() < 0.6  # independent masks differ at about half the values
