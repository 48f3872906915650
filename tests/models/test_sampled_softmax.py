"""The sampled softmax against TensorFlow's own samplers and loss, and its draws against P(c)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfpretrain.models.bilm import log_uniform_candidates, log_uniform_probability, sampled_softmax_loss
from tfpretrain.models.bilm.sampled_softmax import log_uniform_unique_candidates, unique_expected_count


def _problem(vocabulary_size=200, dim=8, n=64, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(vocabulary_size, dim)).astype("float32")
    biases = rng.normal(size=(vocabulary_size,)).astype("float32")
    inputs = rng.normal(size=(n, dim)).astype("float32")
    # Frequent (small) ids as labels, as in text, so that the sampled set hits some of them.
    labels = np.minimum(rng.zipf(1.3, size=n) - 1, vocabulary_size - 1).astype("int64")
    return weights, biases, inputs, labels


def _tensorflow_draw(labels, num_sampled, vocabulary_size):
    candidates, true_expected, sampled_expected = tf.random.log_uniform_candidate_sampler(
        true_classes=labels[:, None], num_true=1, num_sampled=num_sampled, unique=False,
        range_max=vocabulary_size, seed=1,
    )
    return candidates.numpy(), true_expected.numpy(), sampled_expected.numpy()


def _brute_force_loss(weights, biases, labels, inputs, candidates, true_expected, sampled_expected):
    """Jean et al.'s sampled softmax, one example at a time; every copy of the label among the negatives removed."""
    losses = []
    for x, label, true_count in zip(inputs, labels, true_expected[:, 0]):
        true_logit = x @ weights[label] + biases[label] - np.log(true_count)
        sampled = (weights[candidates] @ x + biases[candidates] - np.log(sampled_expected))[candidates != label]
        losses.append(np.logaddexp.reduce(np.concatenate([[true_logit], sampled])) - true_logit)
    return np.array(losses)


@pytest.mark.parametrize("num_sampled", [16, 100])
def test_expected_counts_match_tensorflows_sampler(num_sampled):
    vocabulary_size = 200
    _, _, _, labels = _problem(vocabulary_size)
    candidates, true_expected, sampled_expected = _tensorflow_draw(labels, num_sampled, vocabulary_size)
    np.testing.assert_allclose(num_sampled * log_uniform_probability(candidates, vocabulary_size),
                               sampled_expected, rtol=1e-5)
    np.testing.assert_allclose(num_sampled * log_uniform_probability(labels, vocabulary_size),
                               true_expected[:, 0], rtol=1e-5)


@pytest.mark.parametrize("num_sampled", [16, 100])
def test_loss_matches_tensorflow_sampled_softmax_loss_on_its_candidates(num_sampled):
    vocabulary_size = 200
    weights, biases, inputs, labels = _problem(vocabulary_size)
    candidates, true_expected, sampled_expected = _tensorflow_draw(labels, num_sampled, vocabulary_size)
    # TensorFlow's accidental-hit removal (built for unique samplers) removes one copy of a label drawn
    # several times; here every id is drawn once, so both remove every hit.
    candidates, first = np.unique(candidates, return_index=True)
    sampled_expected = sampled_expected[first]
    assert np.any(labels[:, None] == candidates[None, :]), "no accidental hit to remove: change the seed"
    expected = tf.nn.sampled_softmax_loss(
        weights=weights, biases=biases, labels=labels[:, None], inputs=inputs, num_sampled=len(candidates),
        num_classes=vocabulary_size, sampled_values=(candidates, true_expected, sampled_expected),
        remove_accidental_hits=True,
    )
    losses = sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, sampled_ids=candidates)
    assert losses.shape == (len(labels),)
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-5)


def test_loss_removes_every_copy_of_a_label_drawn_several_times():
    vocabulary_size, num_sampled = 200, 100
    weights, biases, inputs, labels = _problem(vocabulary_size)
    candidates, true_expected, sampled_expected = _tensorflow_draw(labels, num_sampled, vocabulary_size)
    copies = np.sum(labels[:, None] == candidates[None, :], axis=1)
    assert np.any(copies > 1), "no label drawn twice: change the seed"
    expected = _brute_force_loss(weights, biases, labels, inputs, candidates, true_expected, sampled_expected)
    tensorflow = tf.nn.sampled_softmax_loss(
        weights=weights, biases=biases, labels=labels[:, None], inputs=inputs, num_sampled=num_sampled,
        num_classes=vocabulary_size, sampled_values=(candidates, true_expected, sampled_expected),
        remove_accidental_hits=True,
    ).numpy()
    # The brute force agrees with TensorFlow wherever a label was drawn at most once ...
    np.testing.assert_allclose(expected[copies <= 1], tensorflow[copies <= 1], rtol=1e-5, atol=1e-5)
    losses = sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, sampled_ids=candidates)
    # ... and with it, every copy of a label is removed from the negatives.
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-5)


def test_draws_follow_the_log_uniform_distribution():
    vocabulary_size, num_sampled, draws = 50, 4000, 50
    generator = keras.random.SeedGenerator(3)
    ids = np.concatenate([log_uniform_candidates(num_sampled, vocabulary_size, seed=generator).numpy()
                          for _ in range(draws)])  # 200,000 draws
    assert ids.min() >= 0 and ids.max() < vocabulary_size
    observed = np.bincount(ids, minlength=vocabulary_size)
    c = np.arange(vocabulary_size)
    probability = np.log((c + 2) / (c + 1)) / np.log(vocabulary_size + 1)  # sums to 1
    _, p_value = stats.chisquare(observed, probability * len(ids))
    assert p_value > 1e-4, (p_value, observed[:5], (probability * len(ids))[:5])


def test_draws_over_a_large_vocabulary_follow_the_cumulative_distribution():
    vocabulary_size, num_draws = 100_000, 400_000
    ids = log_uniform_candidates(num_draws, vocabulary_size, seed=7).numpy()
    assert ids.min() >= 0 and ids.max() < vocabulary_size
    for k in (1, 10, 100, 1000, 10_000, 50_000):
        cdf = math.log(k + 1) / math.log(vocabulary_size + 1)  # P(id < k)
        standard_error = math.sqrt(cdf * (1 - cdf) / num_draws)
        assert abs(np.mean(ids < k) - cdf) < 5 * standard_error, (k, np.mean(ids < k), cdf)


def test_compiles_with_xla_and_draws_fresh_negatives_each_step():
    weights, biases, inputs, labels = _problem(vocabulary_size=300, n=32)
    weights = tf.Variable(weights)
    generator = keras.random.SeedGenerator(0)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            losses = sampled_softmax_loss(weights, biases, labels, inputs, num_sampled=64, seed=generator)
            total = tf.reduce_sum(losses)
        return losses, tf.convert_to_tensor(tape.gradient(total, weights))

    first, gradient = step()
    second, _ = step()
    assert first.shape == (32,) and np.all(np.isfinite(first)) and np.all(first > 0)
    assert np.all(np.isfinite(gradient)) and np.any(gradient.numpy() != 0)
    assert not np.allclose(first, second)  # the seed generator advanced: a new sample


# The unique sampler of the non-XLA BiLM: TensorFlow's unique log-uniform sampler, drawn from a seed generator.


@pytest.mark.parametrize("num_sampled", [16, 100])
def test_unique_expected_counts_match_tensorflows_unique_sampler(num_sampled):
    vocabulary_size = 200
    _, _, _, labels = _problem(vocabulary_size)
    candidates, true_expected, sampled_expected = tf.random.log_uniform_candidate_sampler(
        true_classes=labels[:, None], num_true=1, num_sampled=num_sampled, unique=True,
        range_max=vocabulary_size, seed=1)
    assert len(set(candidates.numpy())) == num_sampled
    # The number of draws TensorFlow made, from one expected count: 1 - (1 - p) ** tries.
    probability = np.log((candidates[0] + 2) / (candidates[0] + 1)) / np.log(vocabulary_size + 1)
    num_tries = int(round(np.log1p(-sampled_expected[0]) / np.log1p(-probability)))
    assert num_tries > num_sampled  # a draw was repeated: the formula, not the shortcut, is tested
    np.testing.assert_allclose(unique_expected_count(candidates, vocabulary_size, num_sampled, num_tries),
                               sampled_expected, rtol=1e-4)
    np.testing.assert_allclose(unique_expected_count(labels[:, None], vocabulary_size, num_sampled, num_tries),
                               true_expected, rtol=1e-4)
    np.testing.assert_allclose(unique_expected_count(candidates, vocabulary_size, num_sampled, num_sampled),
                               num_sampled * log_uniform_probability(candidates, vocabulary_size), rtol=1e-6)


def test_unique_draws_match_tensorflows_unique_sampler_in_distribution():
    vocabulary_size, num_sampled, draws = 50, 10, 600
    labels = np.array([0, 3, 20], "int64")
    generator = keras.random.SeedGenerator(5)
    ours = tf.function(lambda: log_uniform_unique_candidates(labels, num_sampled, vocabulary_size, seed=generator))
    included = {"ours": np.zeros(vocabulary_size), "tensorflow": np.zeros(vocabulary_size)}
    true_counts = {"ours": 0.0, "tensorflow": 0.0}
    for step in range(draws):
        ids, true_expected, sampled_expected = ours()
        ids = ids.numpy()
        assert len(set(ids)) == num_sampled and ids.min() >= 0 and ids.max() < vocabulary_size
        included["ours"][ids] += 1
        true_counts["ours"] += true_expected.numpy()[:, 0] / draws
        ids, true_expected, _ = tf.random.log_uniform_candidate_sampler(
            true_classes=labels[:, None], num_true=1, num_sampled=num_sampled, unique=True,
            range_max=vocabulary_size, seed=step + 1)
        included["tensorflow"][ids.numpy()] += 1
        true_counts["tensorflow"] += true_expected.numpy()[:, 0] / draws
    frequency = {name: counts / draws for name, counts in included.items()}
    spread = np.sqrt(2 * frequency["tensorflow"] * (1 - frequency["tensorflow"]) / draws) + 1 / draws
    assert np.all(np.abs(frequency["ours"] - frequency["tensorflow"]) < 5 * spread), frequency
    # The expected count of a label is its inclusion probability, on average, for both samplers.
    np.testing.assert_allclose(true_counts["ours"], true_counts["tensorflow"], rtol=0.03)
    np.testing.assert_allclose(true_counts["ours"], frequency["ours"][labels], atol=0.06)


def test_unique_draw_is_set_by_the_seed_generators_state():
    generator = keras.random.SeedGenerator(11)
    state = generator.state.numpy().copy()
    first = log_uniform_unique_candidates([1, 2], 64, 300, seed=generator)[0].numpy()
    second = log_uniform_unique_candidates([1, 2], 64, 300, seed=generator)[0].numpy()
    assert not np.array_equal(first, second)  # the generator advanced
    generator.state.assign(state)  # as a restored checkpoint does
    np.testing.assert_array_equal(log_uniform_unique_candidates([1, 2], 64, 300, seed=generator)[0], first)
    every = log_uniform_unique_candidates([1], 30, 30, seed=3)[0].numpy()
    assert sorted(every) == list(range(30))
    with pytest.raises(ValueError, match="num_sampled"):
        log_uniform_unique_candidates([1], 31, 30)
