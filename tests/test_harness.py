"""The shared harnesses fail when they should: each check is shown catching the fault it exists for."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_layer_test, run_preprocessing_test

IDS = np.arange(6, dtype=np.int32).reshape(3, 2)


def test_preprocessing_harness_passes_a_pure_batch_function_and_returns_its_result():
    out = run_preprocessing_test(lambda t: {"doubled": t * 2}, IDS, expected={"doubled": [[0, 2], [4, 6], [8, 10]]})
    np.testing.assert_array_equal(out["doubled"], IDS * 2)


def test_preprocessing_harness_catches_a_wrong_expected_value():
    with pytest.raises(AssertionError, match="direct call != expected"):
        run_preprocessing_test(lambda t: t * 2, IDS, expected=[[0, 2], [4, 6], [8, 11]])


def test_preprocessing_harness_catches_a_result_that_depends_on_the_batch():
    def plus_batch_size(t):
        return t + tf.shape(t)[0]

    def plus_three(t):
        return t + 3

    # Right on the whole batch and on each example, wrong on batches of 2.
    run_preprocessing_test(plus_batch_size, IDS, example_fn=plus_three, run_saved_model=False)
    with pytest.raises(AssertionError, match="batch 0"):
        run_preprocessing_test(plus_batch_size, IDS, example_fn=plus_three, batch_size=2)


def test_preprocessing_harness_pads_like_padded_batch_and_saves_lookup_tables():
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(["a", "b"], [1, 2]), 0)

    def ids(texts):
        return table.lookup(tf.strings.split(texts)).to_tensor()

    def one(text):
        return table.lookup(tf.strings.split(text))

    texts = ["a b", "b", "c a b"]
    out = run_preprocessing_test(ids, texts, expected=[[1, 2, 0], [2, 0, 0], [0, 1, 2]], example_fn=one,
                                 track=[table])
    assert out.shape == (3, 3)
    with pytest.raises(AssertionError, match="untracked"):
        run_preprocessing_test(ids, texts, example_fn=one)  # the table is not saved with the module


@keras.saving.register_keras_serializable("test_harness")
class _Float32Sublayer(keras.layers.Layer):
    """A layer whose Dense ignores the layer's dtype policy."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, dtype="float32", trainable=self.trainable)

    def call(self, x):
        return self.dense(x)


@keras.saving.register_keras_serializable("test_harness")
class _UnusedWeight(keras.layers.Layer):
    """A layer with a trainable weight that never reaches its output."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        self.unused = self.add_weight(name="unused", shape=(), initializer="ones")

    def call(self, x):
        return x * self.scale


def test_layer_harness_catches_a_sublayer_outside_the_dtype_policy():
    with pytest.raises(AssertionError, match="has dtype policy float32, not the layer's mixed_float16"):
        run_layer_test(_Float32Sublayer, {}, np.ones((2, 4), "float32"),
                       expected_num_trainable_weights=2, expected_num_non_trainable_weights=0)


def test_layer_harness_catches_a_weight_that_does_not_move_and_a_wrong_count():
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    with pytest.raises(AssertionError, match=r"unchanged after a fit step: \['[^']*unused'\]"):
        run_layer_test(_UnusedWeight, {}, x, expected_num_trainable_weights=2, expected_num_non_trainable_weights=0)
    with pytest.raises(AssertionError, match="has 2 trainable weights, expected 1"):
        run_layer_test(_UnusedWeight, {}, x, expected_num_trainable_weights=1, expected_num_non_trainable_weights=0)
    run_layer_test(_UnusedWeight, {}, x, expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
                   unmoved_weights={"unused": "never reaches the output (this test's point)"})
