"""BERT task heads: sequence classifier and word tagger (softmax / CRF), against numpy oracles."""

import itertools

import keras
import numpy as np
import pytest

from tfpretrain.layers.crf import CRF
from tfpretrain.models.bert.classifier import build_sequence_classifier
from tfpretrain.models.bert.encoder import BertEncoder
from tfpretrain.models.bert.token_tagger import BertTokenTagger, build_token_tagger, gather_words

SEQUENCE_LENGTH = 10
TAGS = ["O", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def encoder():
    return BertEncoder(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                       max_sequence_length=SEQUENCE_LENGTH)


def _inputs(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([SEQUENCE_LENGTH, 6, 4][:batch])
    padding_mask = (np.arange(SEQUENCE_LENGTH)[None] < lengths[:, None]).astype("int32")
    token_ids = np.where(padding_mask, rng.integers(5, 40, (batch, SEQUENCE_LENGTH)), 0).astype("int32")
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}


def _word_inputs(batch=3):
    x = _inputs(batch)
    num_words = SEQUENCE_LENGTH - 2
    # Words start at pieces 1, 2, 4, 5, ... (some words have two pieces).
    positions = np.array([1, 2, 4, 5, 6, 7, 8, 0], "int32")
    kept = np.array([7, 3, 2][:batch])
    word_mask = np.arange(num_words)[None] < kept[:, None]
    x["word_positions"] = np.where(word_mask, positions[None], 0).astype("int32")
    x["word_mask"] = word_mask.astype("int32")
    return x


def test_classifier_is_dense_on_pooled_output(encoder):
    model = build_sequence_classifier(encoder, num_labels=3, sequence_length=SEQUENCE_LENGTH)
    x = _inputs()
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    pooled = keras.ops.convert_to_numpy(encoder(x, training=False)["pooled_output"])
    kernel, bias = model.get_layer("classifier").get_weights()
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, pooled @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_classifier_needs_two_labels(encoder):
    with pytest.raises(ValueError, match="at least 2 labels"):
        build_sequence_classifier(encoder, num_labels=1)


def test_gather_words_takes_first_pieces():
    sequence = np.random.rand(2, 6, 4).astype("float32")
    positions = np.array([[1, 3, 4], [1, 2, 0]], "int32")
    gathered = keras.ops.convert_to_numpy(gather_words(sequence, positions))
    np.testing.assert_allclose(gathered, np.stack([sequence[b, positions[b]] for b in range(2)]))


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_softmax_tagger_loss_and_decoding(encoder):
    model = build_token_tagger(encoder, TAGS, sequence_length=SEQUENCE_LENGTH)
    x = _word_inputs()
    outputs = model(x, training=False)
    potentials = keras.ops.convert_to_numpy(outputs["potentials"])
    tag_ids = keras.ops.convert_to_numpy(outputs["tag_ids"])
    assert potentials.shape == (3, SEQUENCE_LENGTH - 2, 3)
    np.testing.assert_array_equal(tag_ids, np.where(x["word_mask"] > 0, potentials.argmax(-1), 0))

    rng = np.random.default_rng(1)
    y = np.where(x["word_mask"] > 0, rng.integers(0, 3, x["word_mask"].shape), -1)
    loss = float(model.compute_loss(x, y, outputs, training=False))
    log_probabilities = np.take_along_axis(_log_softmax(potentials), np.maximum(y, 0)[..., None], -1)[..., 0]
    expected = -log_probabilities[y >= 0].mean()  # mean over real words only
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_crf_tagger_loss_is_the_brute_force_negative_log_likelihood(encoder):
    model = build_token_tagger(encoder, TAGS, crf=True, sequence_length=SEQUENCE_LENGTH)
    assert isinstance(model, BertTokenTagger) and isinstance(model.crf, CRF)
    x = _word_inputs()
    # Make the CRF weights non-trivial.
    rng = np.random.default_rng(2)
    model.crf.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.crf.get_weights()])
    outputs = model(x, training=False)
    potentials = keras.ops.convert_to_numpy(outputs["potentials"])
    transitions, start, end = (keras.ops.convert_to_numpy(w) for w in model.crf.weights)
    y = np.where(x["word_mask"] > 0, rng.integers(0, 3, x["word_mask"].shape), -1)

    def path_score(row, path):
        score = start[path[0]] + end[path[-1]] + sum(potentials[row, t, tag] for t, tag in enumerate(path))
        return score + sum(transitions[a, b] for a, b in zip(path, path[1:]))

    nlls, best_paths = [], []
    for row in range(3):
        n = int(x["word_mask"][row].sum())
        paths = list(itertools.product(range(3), repeat=n))
        scores = np.array([path_score(row, p) for p in paths])
        log_partition = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
        nlls.append(log_partition - path_score(row, tuple(y[row, :n])))
        best_paths.append(paths[int(scores.argmax())])
    loss = float(model.compute_loss(x, y, outputs, training=False))
    np.testing.assert_allclose(loss, np.mean(nlls), rtol=1e-4)
    tag_ids = keras.ops.convert_to_numpy(outputs["tag_ids"])
    for row, path in enumerate(best_paths):
        assert tuple(tag_ids[row, :len(path)]) == path
        assert not tag_ids[row, len(path):].any()


def test_crf_constraint_forbids_invalid_paths(encoder):
    model = build_token_tagger(encoder, TAGS, crf=True, constraint="BIO", sequence_length=SEQUENCE_LENGTH)
    x = _word_inputs()
    # Potentials strongly favour I-PER everywhere; the constraint still forbids O -> I-PER and a leading I-PER.
    kernel, bias = model.get_layer("potentials").get_weights()
    model.get_layer("potentials").set_weights([np.zeros_like(kernel), np.array([0.0, 0.0, 5.0], "float32")])
    tag_ids = keras.ops.convert_to_numpy(model(x, training=False)["tag_ids"])
    for row in range(3):
        tags = [TAGS[i] for i in tag_ids[row, : int(x["word_mask"][row].sum())]]
        assert tags[0] != "I-PER"
        assert all(not (b == "I-PER" and a == "O") for a, b in zip(tags, tags[1:]))


def test_constraint_needs_crf(encoder):
    with pytest.raises(ValueError, match="crf=True"):
        build_token_tagger(encoder, TAGS, constraint="BIO")


@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")
def test_tagger_fits_one_step(encoder):
    for crf in (False, True):
        model = build_token_tagger(encoder, TAGS, crf=crf, sequence_length=SEQUENCE_LENGTH)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        x = _word_inputs()
        y = np.where(x["word_mask"] > 0, 0, -1)
        history = model.fit(x, y, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
