"""TransformerDecoderBlock: the shared harness, causal attention against numpy, and the key/value cache."""

import keras
import numpy as np
import pytest

from tests.harness import run_layer_test
from tests.layers.conftest import layer_norm
from tfpretrain.layers import TransformerDecoderBlock, TransformerEncoderBlock
from tfpretrain.layers.transformer_decoder_block import causal_attention_mask

RNG = np.random.default_rng(0)
MASK = np.array([[True] * 6, [True] * 4 + [False] * 2])


def make_block(**kwargs):
    kwargs = {"num_heads": 2, "intermediate_dim": 16, "dropout": 0.0, **kwargs}
    return TransformerDecoderBlock(**kwargs)


@pytest.mark.parametrize("norm_first", [True, False])
def test_harness(norm_first):
    run_layer_test(
        TransformerDecoderBlock,
        {"num_heads": 2, "intermediate_dim": 16, "dropout": 0.0, "norm_first": norm_first},
        RNG.normal(size=(2, 6, 8)).astype("float32"),
        expected_num_trainable_weights=16,  # 4 attention and 2 feed-forward kernels and biases, 2 norms' gamma and beta
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 6, 8), mask=MASK,
    )


def _reference(block, x):
    """GPT-2's pre-LN causal block in numpy (float64), from the layer's weights."""
    def dense(layer, h):
        kernel, bias = (np.asarray(w, "float64") for w in layer.weights)
        return h @ kernel + bias

    def norm(layer, h):
        gamma, beta = (np.asarray(w, "float64") for w in layer.weights)
        return layer_norm(h, gamma, beta, block.layer_norm_epsilon)

    batch, length, hidden = x.shape
    heads, size = block.num_heads, hidden // block.num_heads
    split = lambda h: h.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)  # noqa: E731
    h = norm(block.attention_layer_norm, x)
    q, k, v = (split(dense(layer, h)) for layer in (block.query_dense, block.key_dense, block.value_dense))
    future = np.triu(np.ones((length, length), bool), k=1)  # key after query
    scores = np.where(future, -np.inf, q @ k.transpose(0, 1, 3, 2) / np.sqrt(size))
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
    x = x + dense(block.attention_output_dense, context)
    inner = dense(block.intermediate_dense, norm(block.output_layer_norm, x))
    inner = 0.5 * inner * (1 + np.tanh(np.sqrt(2 / np.pi) * (inner + 0.044715 * inner**3)))  # GPT's gelu
    return x + dense(block.output_dense, inner)


def test_matches_numpy_causal_pre_ln_block():
    block = make_block(intermediate_dim=12)
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(block(x)), _reference(block, x.astype("float64")), atol=1e-5)


def test_changing_a_later_token_never_changes_an_earlier_output():
    block = make_block()
    x = RNG.normal(size=(1, 7, 8)).astype("float32")
    base = np.asarray(block(x))
    for t in range(7):
        changed = x.copy()
        changed[:, t] += RNG.normal(size=8).astype("float32") * 3
        out = np.asarray(block(changed))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6, err_msg=f"position {t} leaks backwards")
        assert not np.allclose(out[:, t], base[:, t], atol=1e-3)  # the changed position itself does change


def test_an_encoder_block_with_the_same_weights_is_not_causal():
    """The causal mask is what makes the difference: with equal weights the last position agrees."""
    decoder, encoder = make_block(), TransformerEncoderBlock(2, 16, dropout=0.0, norm_first=True,
                                                             layer_norm_epsilon=1e-5, activation="gelu")
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    decoder(x), encoder(x)
    encoder.set_weights(decoder.get_weights())
    decoder_out, encoder_out = np.asarray(decoder(x)), np.asarray(encoder(x))
    assert not np.allclose(decoder_out[:, 0], encoder_out[:, 0], atol=1e-3)  # the first sees only itself
    # The last position sees everything in both (activations differ slightly: tanh gelu vs erf gelu).
    np.testing.assert_allclose(decoder_out[:, -1], encoder_out[:, -1], atol=5e-3)


def test_cached_decoding_one_token_at_a_time_equals_the_full_pass():
    block = make_block()
    x = RNG.normal(size=(2, 6, 8)).astype("float32")
    full = np.asarray(block(x))
    cache = np.asarray(RNG.normal(size=(2, 2, 9, 2, 4)), "float32") * 100  # unwritten positions hold garbage
    outputs = []
    first, cache = block(x[:, :3], cache=cache, cache_update_index=0)  # a prompt of 3 at once
    outputs.append(np.asarray(first))
    for t in range(3, 6):
        out, cache = block(x[:, t:t + 1], cache=cache, cache_update_index=t)
        outputs.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)
    assert cache.shape == (2, 2, 9, 2, 4)
    keys = np.asarray(block.key_dense(block.attention_layer_norm(x))).reshape(2, 6, 2, 4)
    np.testing.assert_allclose(np.asarray(cache)[:, 0, :6], keys, atol=1e-5)  # keys written where they belong


def test_cache_works_inside_a_compiled_function_with_a_tensor_index():
    import tensorflow as tf

    block = make_block()
    x = RNG.normal(size=(1, 4, 8)).astype("float32")
    full = np.asarray(block(x))

    @tf.function
    def step(token, cache, index):
        return block(token, cache=cache, cache_update_index=index)

    cache = np.zeros((1, 2, 4, 2, 4), "float32")
    for t in range(4):
        out, cache = step(x[:, t:t + 1], cache, tf.constant(t))
        np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, t], atol=1e-5)


def test_padding_mask_hides_left_padding():
    block = make_block()
    x = RNG.normal(size=(1, 3, 8)).astype("float32")
    padded = np.concatenate([RNG.normal(size=(1, 2, 8)).astype("float32"), x], axis=1)  # 2 pads on the left
    out = np.asarray(block(padded, padding_mask=np.array([[0, 0, 1, 1, 1]])))
    np.testing.assert_allclose(out[:, 2:], np.asarray(block(x)), atol=1e-5)


def test_float16_cache_stays_finite():
    block = make_block(dtype="mixed_float16")
    x = RNG.normal(size=(2, 3, 8)).astype("float32")
    out, cache = block(x, cache=np.zeros((2, 2, 5, 2, 4), "float16"), cache_update_index=0)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert keras.backend.standardize_dtype(cache.dtype) == "float16"
    assert np.all(np.isfinite(np.asarray(out, "float32")))


def test_causal_attention_mask():
    np.testing.assert_array_equal(np.asarray(causal_attention_mask(2, 4, query_start=1)),
                                  [[True, True, False, False], [True, True, True, False]])
    np.testing.assert_array_equal(np.asarray(causal_attention_mask(3, 3)), np.tril(np.ones((3, 3), bool)))


def test_cache_and_index_go_together():
    block = make_block()
    x = np.zeros((1, 2, 8), "float32")
    with pytest.raises(ValueError, match="cache_update_index"):
        block(x, cache=np.zeros((1, 2, 4, 2, 4), "float32"))
    with pytest.raises(ValueError, match="without a cache"):
        block(x, cache_update_index=0)
