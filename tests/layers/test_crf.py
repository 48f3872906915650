"""CRF: the shared harness, then likelihood, gradients and Viterbi against brute force over every tag path."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.harness import run_layer_test
from tfpretrain.layers.crf import CRF, FORBIDDEN_SCORE, allowed_transitions

BIO_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# Small tag sets for brute force: 4 tags (BIO, unconstrained) or 5 (IOBES), lengths 0..5.
TAG_SETS = {
    None: ["O", "B-PER", "I-PER", "B-LOC"],
    "BIO": ["O", "B-PER", "I-PER", "B-LOC"],
    "IOBES": ["O", "B-X", "I-X", "E-X", "S-X"],
}
LENGTHS = [5, 4, 3, 2, 1, 0]


def _crf_with_random_weights(tags, constraint, seed=0):
    crf = CRF(len(tags), tags=tags, constraint=constraint)
    crf.build((None, None, len(tags)))
    rng = np.random.default_rng(seed)
    for weight in (crf.transitions, crf.start_transitions, crf.end_transitions):
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return crf


def _effective_weights(crf):
    """The weights the CRF should score paths with: forbidden moves at -1e4 (numpy, float64)."""
    weights = (crf.transitions, crf.start_transitions, crf.end_transitions)
    weights = [np.asarray(w, "float64") for w in weights]
    if crf.constraint is None:
        return weights
    allowed = allowed_transitions(crf.tags, crf.constraint)
    return [np.where(a, w, FORBIDDEN_SCORE) for a, w in zip(allowed, weights)]


def _all_paths(potentials, transitions, start, end):
    """Every tag path of one row ``(length, num_tags)`` with its score, by enumeration."""
    length, num_tags = potentials.shape
    paths = np.array(list(itertools.product(range(num_tags), repeat=length)))  # (num_tags**length, length)
    scores = (
        start[paths[:, 0]]
        + end[paths[:, -1]]
        + potentials[np.arange(length), paths].sum(axis=1)
        + transitions[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    )
    return paths, scores


def _logsumexp(x):
    return np.max(x) + np.log(np.sum(np.exp(x - np.max(x))))


def _batch(tags, constraint, seed=0):
    """A CRF with random weights, potentials ``(6, 5, num_tags)`` with lengths 5..0, and gold
    tag ids (an allowed path per row, -1 at padded steps)."""
    crf = _crf_with_random_weights(tags, constraint, seed)
    rng = np.random.default_rng(seed + 1)
    num_tags, max_length = len(tags), max(LENGTHS)
    potentials = rng.normal(size=(len(LENGTHS), max_length, num_tags)).astype("float32")
    mask = np.arange(max_length)[None] < np.array(LENGTHS)[:, None]
    tag_ids = np.full(mask.shape, -1, "int32")
    weights = _effective_weights(crf)
    for row, length in enumerate(LENGTHS):
        if length:
            paths, scores = _all_paths(potentials[row, :length].astype("float64"), *weights)
            allowed = paths[scores > FORBIDDEN_SCORE / 2]
            tag_ids[row, :length] = allowed[rng.integers(len(allowed))]
    return crf, potentials, mask, tag_ids


def test_harness():
    mask = np.array([[True] * 6, [True] * 3 + [False] * 3, [False] * 6])
    run_layer_test(
        CRF,
        {"num_tags": 5, "tags": BIO_TAGS, "constraint": "BIO"},
        np.random.default_rng(0).normal(size=(3, 6, 5)).astype("float32"),
        expected_num_trainable_weights=3,  # transitions, start and end scores
        expected_num_non_trainable_weights=0,
        expected_output_shape=(3, 6),
        expected_output_dtype="int32",
        mask=mask,
        run_training=False,  # the output is integer tag ids; see test_fit_learns_tagging_task
    )


@pytest.mark.parametrize("constraint", list(TAG_SETS))
def test_log_likelihood_matches_brute_force(constraint):
    crf, potentials, mask, tag_ids = _batch(TAG_SETS[constraint], constraint)
    log_likelihood = crf.log_likelihood(potentials, tag_ids, mask)
    assert keras.backend.standardize_dtype(log_likelihood.dtype) == "float32"
    weights = _effective_weights(crf)
    expected = []
    for row, length in enumerate(LENGTHS):
        if not length:
            expected.append(0.0)
            continue
        paths, scores = _all_paths(potentials[row, :length].astype("float64"), *weights)
        gold = np.flatnonzero((paths == tag_ids[row, :length]).all(axis=1))[0]
        expected.append(scores[gold] - _logsumexp(scores))
    np.testing.assert_allclose(log_likelihood, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("constraint", list(TAG_SETS))
def test_viterbi_matches_brute_force(constraint):
    crf, potentials, mask, _ = _batch(TAG_SETS[constraint], constraint, seed=3)
    tag_ids, best_scores = crf.decode(potentials, mask)
    np.testing.assert_array_equal(crf(potentials, mask=mask), tag_ids)
    weights = _effective_weights(crf)
    for row, length in enumerate(LENGTHS):
        np.testing.assert_array_equal(tag_ids[row, length:], 0)  # masked steps decode to 0
        if not length:
            assert float(best_scores[row]) == 0.0
            continue
        paths, scores = _all_paths(potentials[row, :length].astype("float64"), *weights)
        best, runner_up = np.sort(scores)[-1], np.sort(scores)[-2]
        np.testing.assert_allclose(best_scores[row], best, atol=1e-4, rtol=0)
        assert best - runner_up > 1e-3, "random potentials should give a unique best path"
        np.testing.assert_array_equal(tag_ids[row, :length], paths[np.argmax(scores)])


@pytest.mark.parametrize("constraint", [None, "BIO"])
def test_gradients_are_gold_minus_marginals(constraint):
    crf, potentials, mask, tag_ids = _batch(TAG_SETS[constraint], constraint, seed=5)
    potentials = tf.constant(potentials)
    with tf.GradientTape() as tape:
        tape.watch(potentials)
        total = ops.sum(crf.log_likelihood(potentials, tag_ids, mask))
    variables = [potentials, crf.transitions, crf.start_transitions, crf.end_transitions]
    grads = tape.gradient(total, variables)

    weights = _effective_weights(crf)
    expected = [np.zeros(v.shape) for v in variables]
    for row, length in enumerate(LENGTHS):
        if not length:
            continue
        paths, scores = _all_paths(potentials[row, :length].numpy().astype("float64"), *weights)
        probabilities = np.exp(scores - _logsumexp(scores))  # (num_paths,)
        gold = tag_ids[row, :length]
        # d log p(gold) = (feature counts of gold) - (expected feature counts under the model).
        for path, weight in [(gold, 1.0)] + list(zip(paths, -probabilities)):
            expected[0][row, np.arange(length), path] += weight
            np.add.at(expected[1], (path[:-1], path[1:]), weight)
            expected[2][path[0]] += weight
            expected[3][path[-1]] += weight
    if constraint is not None:  # forbidden transitions are constants, not weights
        for grad, allowed in zip(expected[1:], allowed_transitions(crf.tags, constraint)):
            grad[~allowed] = 0.0
    for grad, want, name in zip(grads, expected, ["potentials", "transitions", "start", "end"]):
        np.testing.assert_allclose(np.asarray(grad), want, atol=1e-4, rtol=0, err_msg=name)


def test_allowed_transitions_bio():
    transitions, start, end = allowed_transitions(BIO_TAGS, "BIO")
    # to:        O  B-PER I-PER B-LOC I-LOC
    expected = [[1, 1, 0, 1, 0],  # from O
                [1, 1, 1, 1, 0],  # from B-PER
                [1, 1, 1, 1, 0],  # from I-PER
                [1, 1, 0, 1, 1],  # from B-LOC
                [1, 1, 0, 1, 1]]  # from I-LOC
    np.testing.assert_array_equal(transitions, np.array(expected, bool))
    np.testing.assert_array_equal(start, [True, True, False, True, False])
    np.testing.assert_array_equal(end, [True] * 5)
    np.testing.assert_array_equal(allowed_transitions(BIO_TAGS, "IOB2")[0], transitions)


def test_allowed_transitions_iobes():
    transitions, start, end = allowed_transitions(["O", "B-X", "I-X", "E-X", "S-X", "S-Y"], "IOBES")
    # to:        O  B-X I-X E-X S-X S-Y
    expected = [[1, 1, 0, 0, 1, 1],  # from O
                [0, 0, 1, 1, 0, 0],  # from B-X
                [0, 0, 1, 1, 0, 0],  # from I-X
                [1, 1, 0, 0, 1, 1],  # from E-X
                [1, 1, 0, 0, 1, 1],  # from S-X
                [1, 1, 0, 0, 1, 1]]  # from S-Y
    np.testing.assert_array_equal(transitions, np.array(expected, bool))
    np.testing.assert_array_equal(start, [True, True, False, False, True, True])
    np.testing.assert_array_equal(end, [True, False, False, True, True, True])


def _bio_violations(tag_ids, lengths):
    violations = 0
    for row, length in zip(tag_ids, lengths):
        previous = "O"  # the start of a sentence acts like O for an I- tag
        for tag in (BIO_TAGS[i] for i in row[:length]):
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                violations += 1  # O -> I-X, B-X -> I-Y, I-X -> I-Y, or starting with I-X
            previous = tag
    return violations


def test_bio_constraint_decodes_well_formed_paths():
    rng = np.random.default_rng(7)
    potentials = rng.normal(size=(64, 12, 5)).astype("float32")
    potentials[..., [2, 4]] += 1.5  # favour I- tags so that an unconstrained CRF breaks the scheme
    lengths = rng.integers(1, 13, size=64)
    mask = np.arange(12)[None] < lengths[:, None]
    free = CRF(5)
    constrained = CRF(5, tags=BIO_TAGS, constraint="BIO")
    assert _bio_violations(np.asarray(free(potentials, mask=mask)), lengths) > 0
    assert _bio_violations(np.asarray(constrained(potentials, mask=mask)), lengths) == 0


def test_forbidden_gold_path_is_very_unlikely():
    crf = CRF(5, tags=BIO_TAGS, constraint="BIO")
    potentials = np.zeros((1, 3, 5), "float32")
    log_likelihood = crf.log_likelihood(potentials, np.array([[0, 2, 2]]))  # O I-PER I-PER
    assert float(log_likelihood[0]) < FORBIDDEN_SCORE / 2


def test_configuration_errors():
    with pytest.raises(ValueError, match="needs the tag strings"):
        CRF(5, constraint="BIO")
    with pytest.raises(ValueError, match=r"'PER' \(tags\[1\]\) is not a BIO tag"):
        CRF(3, tags=["O", "PER", "I-PER"], constraint="BIO")
    with pytest.raises(ValueError, match=r"'E-PER' \(tags\[2\]\) is not a BIO tag"):
        CRF(3, tags=["O", "B-PER", "E-PER"], constraint="BIO")
    with pytest.raises(ValueError, match="Unknown CRF constraint 'BILOU'"):
        CRF(3, tags=["O", "B-PER", "I-PER"], constraint="BILOU")
    with pytest.raises(ValueError, match="got 2 tags for num_tags=3"):
        CRF(3, tags=["O", "B-PER"])
    with pytest.raises(ValueError, match="last axis must hold one score per tag"):
        CRF(3)(np.zeros((1, 2, 4), "float32"))


def test_config_round_trip():
    crf = CRF(5, tags=BIO_TAGS, constraint="IOB2", name="crf")
    revived = CRF.from_config(crf.get_config())
    assert (revived.num_tags, revived.tags, revived.constraint) == (5, BIO_TAGS, "IOB2")
    assert revived.get_config() == crf.get_config()


def test_mixed_precision():
    crf = _crf_with_random_weights(BIO_TAGS, "BIO")
    mixed = CRF(5, tags=BIO_TAGS, constraint="BIO", dtype="mixed_float16")
    mixed.build((None, None, 5))
    mixed.set_weights(crf.get_weights())
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in mixed.weights)
    rng = np.random.default_rng(2)
    potentials = (4 * rng.normal(size=(8, 10, 5))).astype("float16")
    mask = np.arange(10)[None] < rng.integers(0, 11, size=8)[:, None]
    tag_ids = np.where(mask, rng.integers(0, 5, size=(8, 10)), -1)

    np.testing.assert_array_equal(mixed(potentials, mask=mask), crf(potentials.astype("float32"), mask=mask))
    log_likelihood = mixed.log_likelihood(potentials, tag_ids, mask)
    assert keras.backend.standardize_dtype(log_likelihood.dtype) == "float32"
    np.testing.assert_allclose(
        log_likelihood, crf.log_likelihood(potentials.astype("float32"), tag_ids, mask), rtol=1e-6, atol=1e-5
    )
    # Large float16 potentials must not overflow: the maths is float32.
    big = np.full((1, 4, 5), 6e4, "float16")
    assert np.isfinite(float(mixed.log_likelihood(big, np.zeros((1, 4), "int32"))[0]))


def test_jit_compile_and_dynamic_shapes():
    crf, potentials, mask, tag_ids = _batch(TAG_SETS["BIO"], "BIO", seed=9)
    eager_log_likelihood = crf.log_likelihood(potentials, tag_ids, mask)
    eager_tags, eager_scores = crf.decode(potentials, mask)
    for jit_compile in (False, True):
        log_likelihood = tf.function(crf.log_likelihood, jit_compile=jit_compile, reduce_retracing=True)
        decode = tf.function(crf.decode, jit_compile=jit_compile, reduce_retracing=True)
        np.testing.assert_allclose(log_likelihood(potentials, tag_ids, mask), eager_log_likelihood, atol=1e-5)
        tags, scores = decode(potentials, mask)
        np.testing.assert_array_equal(tags, eager_tags)
        np.testing.assert_allclose(scores, eager_scores, atol=1e-5)
        # Another batch size and length through the same functions.
        tags, _ = decode(potentials[:2, :3], mask[:2, :3])
        np.testing.assert_array_equal(tags, crf.decode(potentials[:2, :3], mask[:2, :3])[0])

    # A gradient step compiled with XLA.
    @tf.function(jit_compile=True)
    def gradients(potentials):
        with tf.GradientTape() as tape:
            tape.watch(potentials)
            loss = -ops.mean(crf.log_likelihood(potentials, tag_ids, mask))
        return tape.gradient(loss, [potentials] + crf.trainable_weights)

    potentials = tf.constant(potentials)
    with tf.GradientTape() as tape:
        tape.watch(potentials)
        loss = -ops.mean(crf.log_likelihood(potentials, tag_ids, mask))
    eager_gradients = tape.gradient(loss, [potentials] + crf.trainable_weights)
    for compiled, eager in zip(gradients(potentials), eager_gradients):
        np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_edge_cases():
    crf = _crf_with_random_weights(BIO_TAGS, None)
    rng = np.random.default_rng(4)
    # Batch of one, length one: the best tag maximises start + potential + end.
    potentials = rng.normal(size=(1, 1, 5)).astype("float32")
    tag_ids, best_scores = crf.decode(potentials)
    single = potentials[0, 0] + np.asarray(crf.start_transitions) + np.asarray(crf.end_transitions)
    assert int(tag_ids[0, 0]) == int(np.argmax(single))
    np.testing.assert_allclose(best_scores[0], single.max(), rtol=1e-6)
    np.testing.assert_allclose(
        crf.log_likelihood(potentials, [[2]]), [single[2] - _logsumexp(single.astype("float64"))], atol=1e-5
    )
    # Rows with no real step: zeros, finite gradients.
    potentials = tf.constant(rng.normal(size=(2, 4, 5)).astype("float32"))
    mask = np.array([[True] * 4, [False] * 4])
    with tf.GradientTape() as tape:
        tape.watch(potentials)
        log_likelihood = crf.log_likelihood(potentials, [[1, 2, 0, 0], [-1] * 4], mask)
    assert float(log_likelihood[1]) == 0.0
    gradient = tape.gradient(log_likelihood, potentials)
    assert np.all(np.isfinite(gradient)) and np.all(gradient[1] == 0)
    tag_ids, best_scores = crf.decode(potentials, mask)
    assert np.all(tag_ids[1] == 0) and float(best_scores[1]) == 0.0
    # An empty time axis.
    tag_ids, best_scores = crf.decode(np.zeros((3, 0, 5), "float32"))
    assert tag_ids.shape == (3, 0) and np.all(best_scores == 0)
    log_likelihood = crf.log_likelihood(np.zeros((3, 0, 5), "float32"), np.zeros((3, 0), "int32"))
    np.testing.assert_array_equal(log_likelihood, 0)


class TinyTagger(keras.Model):
    """A functional model with outputs ``{"potentials", "tag_ids"}`` trained on the CRF's NLL."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mask = ops.greater_equal(y, 0)
        return -ops.mean(self.get_layer("crf").log_likelihood(y_pred["potentials"], y, mask))


def _name_task(rng, num_sentences=64):
    """Words 1 ("the") and 2 ("Ann"); a name word is B-PER after "the" and I-PER after a name.

    The embedding sees one word at a time, so only the CRF transitions can tell B- from I-PER.
    """
    word_ids = np.zeros((num_sentences, 8), "int32")
    tag_ids = np.full((num_sentences, 8), -1, "int32")
    for row, length in enumerate(rng.integers(3, 9, size=num_sentences)):
        words = rng.integers(1, 3, size=length)
        word_ids[row, :length] = words
        previous = np.concatenate([[1], words[:-1]])
        tag_ids[row, :length] = np.where(words == 1, 0, np.where(previous == 2, 2, 1))
    return word_ids, tag_ids


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_learns_tagging_task(jit_compile):
    word_ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(3, 8, mask_zero=True)(word_ids)  # the mask reaches the CRF
    potentials = keras.layers.Dense(3)(embedded)
    tag_ids = CRF(3, name="crf")(potentials)
    model = TinyTagger(word_ids, {"potentials": potentials, "tag_ids": tag_ids})
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=jit_compile)

    words, tags = _name_task(np.random.default_rng(0))
    crf = model.get_layer("crf")
    transitions_before = np.array(crf.transitions)
    history = model.fit(words, tags, batch_size=16, epochs=25, verbose=0).history["loss"]
    assert history[-1] < 0.1 * history[0], f"NLL did not fall enough: {history[0]:.3f} -> {history[-1]:.3f}"
    assert not np.allclose(transitions_before, np.array(crf.transitions))

    decoded = model.predict(words, verbose=0)["tag_ids"]
    real = tags >= 0
    assert np.mean(decoded[real] == tags[real]) == 1.0
    assert np.all(decoded[~real] == 0)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_decode_converts_to_tflite_builtins():
    crf = _crf_with_random_weights(BIO_TAGS, "BIO")
    signature = [tf.TensorSpec([None, None, 5], tf.float32), tf.TensorSpec([None, None], tf.bool)]
    decode = tf.function(lambda potentials, mask: crf.decode(potentials, mask)[0], input_signature=signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([decode.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Select TF ops
    interpreter = tf.lite.Interpreter(model_content=converter.convert())

    rng = np.random.default_rng(6)
    for batch_size, length in [(3, 7), (1, 1)]:  # dynamic batch and time
        potentials = rng.normal(size=(batch_size, length, 5)).astype("float32")
        mask = np.arange(length)[None] < rng.integers(0, length + 1, size=batch_size)[:, None]
        feed = {"potentials": potentials, "mask": mask}
        inputs = {detail["index"]: feed[detail["name"].split("_")[-1].split(":")[0]]
                  for detail in interpreter.get_input_details()}  # "mask" or "serving_default_mask:0"
        for index, value in inputs.items():
            interpreter.resize_tensor_input(index, value.shape)
        interpreter.allocate_tensors()
        for index, value in inputs.items():
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_array_equal(output, crf.decode(potentials, mask)[0])
