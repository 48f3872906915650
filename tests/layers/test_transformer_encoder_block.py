"""TransformerEncoderBlock through the shared layer harness, plus attention maths against numpy."""

import math

import keras
import numpy as np
import pytest

from tests.harness import run_layer_test
from tests.layers.conftest import layer_norm
from tfpretrain.layers import TransformerEncoderBlock

RNG = np.random.default_rng(0)
erf = np.vectorize(math.erf)
MASK = np.array([[True] * 6, [True] * 4 + [False] * 2])


@pytest.mark.parametrize("norm_first", [False, True])
def test_harness(norm_first):
    run_layer_test(
        TransformerEncoderBlock,
        {"num_heads": 2, "intermediate_dim": 16, "dropout": 0.0, "norm_first": norm_first},
        RNG.normal(size=(2, 6, 8)).astype("float32"),
        expected_num_trainable_weights=16,  # 4 attention and 2 feed-forward kernels and biases, 2 norms' gamma and beta
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 8), mask=MASK,
    )


def _reference(block, x, mask):
    """BERT's post-LN block in numpy, from the layer's weights."""
    def dense(layer, h):
        kernel, bias = (np.asarray(w) for w in layer.weights)
        return h @ kernel + bias

    def norm(layer, h):
        gamma, beta = (np.asarray(w) for w in layer.weights)
        return layer_norm(h, gamma, beta, block.layer_norm_epsilon)

    batch, length, hidden = x.shape
    heads, size = block.num_heads, hidden // block.num_heads
    split = lambda h: h.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = (split(dense(layer, x)) for layer in (block.query_dense, block.key_dense, block.value_dense))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + np.where(mask[:, None, None, :], 0.0, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
    h = norm(block.attention_layer_norm, x + dense(block.attention_output_dense, context))
    inner = dense(block.intermediate_dense, h)
    inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))  # exact gelu
    return norm(block.output_layer_norm, h + dense(block.output_dense, inner))


def test_matches_numpy_bert_layer():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=12, dropout=0.0)
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    out = np.asarray(block(x, padding_mask=mask))
    np.testing.assert_allclose(out, _reference(block, x.astype("float64"), mask), atol=1e-5)


def test_padding_does_not_change_real_positions():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0)
    x = RNG.normal(size=(1, 4, 8)).astype("float32")
    padded = np.concatenate([x, RNG.normal(size=(1, 3, 8)).astype("float32")], axis=1)
    short = np.asarray(block(x))
    long = np.asarray(block(padded, padding_mask=np.array([[True] * 4 + [False] * 3])))
    np.testing.assert_allclose(long[:, :4], short, atol=1e-5)
    assert not np.allclose(np.asarray(block(padded))[:, :4], short, atol=1e-3)  # without the mask it would leak


def test_pre_ln_differs_from_post_ln():
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    post = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0)
    pre = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0, norm_first=True)
    post_out = np.asarray(post(x))
    pre(x)
    pre.set_weights(post.get_weights())
    pre_out = np.asarray(pre(x))
    assert not np.allclose(pre_out, post_out, atol=1e-3)
    # Post-LN ends in a layer norm (zero mean per position); pre-LN keeps the residual stream.
    np.testing.assert_allclose(post_out.mean(-1), 0.0, atol=1e-5)
    assert np.abs(pre_out.mean(-1)).max() > 1e-3


def test_fully_masked_float16_rows_stay_finite():
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dtype="mixed_float16")
    x = RNG.normal(size=(2, 4, 8)).astype("float32")
    out = block(x, padding_mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert np.all(np.isfinite(np.asarray(out, "float32")))


def test_rejects_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="num_heads=3"):
        TransformerEncoderBlock(num_heads=3, intermediate_dim=8)(np.zeros((1, 2, 8), "float32"))
