"""EntityF1 / TokenAccuracy against seqeval 1.2.2 (the oracle), in eager, graph, XLA and fit."""

import random
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

from tfpretrain.text.readers import read_iob2
from tfpretrain.training.metrics import EntityF1, TokenAccuracy, entity_report

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
IOBES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
# Tags seqeval reads oddly: no prefix ("PER" is chunk letter P, type "ER"), bare
# letters (type "_"), "." and "O-" prefixes, multi-dash types, POS tags.
ODD = [
    "O", "PER", "LOC", "X", "B", "I", "E", "S", ".", ".PER", "X-PER", "B-PER", "I-PER", "E-PER",
    "S-PER", "O-PER", "B-", "I-LOC-X", "I-LOC", "NOUN",
]
TAG_SETS = {"iob2": IOB2, "iobes": IOBES, "odd": ODD}


def seqeval_scores(gold, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning, "seems not to be NE tag"
        return precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred)


def as_floats(result):
    return [float(result[f"entity_{key}"]) for key in ("precision", "recall", "f1")]


def random_corpus(rng, tags, num_sentences, max_length, keep=0.7):
    """Gold sentences (lengths 0..max_length) and predictions that copy each gold tag with prob ``keep``."""
    gold = [[rng.choice(tags) for _ in range(rng.randint(0, max_length))] for _ in range(num_sentences)]
    pred = [[tag if rng.random() < keep else rng.choice(tags) for tag in seq] for seq in gold]
    return gold, pred


def padded_batches(rng, tags, gold, pred):
    """Random-size batches of ids: -1 after each gold sentence, garbage after each prediction."""
    ids = {tag: i for i, tag in enumerate(tags)}
    start = 0
    while start < len(gold):
        size = rng.randint(1, 40)
        rows = range(start, min(start + size, len(gold)))
        time = max(len(gold[i]) for i in rows) + rng.randint(0, 3)
        y_true = np.full((len(rows), time), -1, "int32")
        y_pred = np.array([[rng.randint(-5, len(tags) + 5) for _ in range(time)] for _ in rows], "int32")
        for row, i in enumerate(rows):
            y_true[row, :len(gold[i])] = [ids[t] for t in gold[i]]
            y_pred[row, :len(pred[i])] = [ids[t] for t in pred[i]]
        yield y_true, y_pred
        start += size


@pytest.fixture(scope="module")
def graph_update():
    """One traced update per metric, for fast randomised runs (dynamic batch and time)."""
    cache = {}

    def update(metric, y_true, y_pred):
        if id(metric) not in cache:
            spec = tf.TensorSpec([None, None], tf.int32)
            cache[id(metric)] = tf.function(metric.update_state, input_signature=[spec, spec])
        cache[id(metric)](y_true, y_pred)

    return update


@pytest.mark.parametrize("tag_set", sorted(TAG_SETS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_seqeval_on_random_sequences(tag_set, seed, graph_update):
    tags = TAG_SETS[tag_set]
    rng = random.Random(f"{tag_set}-{seed}")
    metric = EntityF1(tags)
    accuracy = TokenAccuracy()
    num_sentences = 0
    for _ in range(40):
        gold, pred = random_corpus(rng, tags, rng.randint(1, 150), rng.choice([3, 8, 25]), rng.random())
        num_sentences += len(gold)
        metric.reset_state()
        accuracy.reset_state()
        for y_true, y_pred in padded_batches(rng, tags, gold, pred):
            graph_update(metric, y_true, y_pred)
            accuracy.update_state(y_true, y_pred)
        np.testing.assert_allclose(as_floats(metric.result()), seqeval_scores(gold, pred), atol=1e-6)
        if any(gold):
            assert float(accuracy.result()) == pytest.approx(accuracy_score(gold, pred), abs=1e-6)
    assert num_sentences > 2000


def test_random_scores_are_not_trivial():
    """The randomised comparison above exercises non-zero, non-one scores."""
    rng = random.Random(0)
    gold, pred = random_corpus(rng, IOB2, 200, 10)
    precision, recall, f1 = seqeval_scores(gold, pred)
    assert 0.2 < precision < 0.9 and 0.2 < recall < 0.9 and 0.2 < f1 < 0.9


def test_seqeval_quirks_one_by_one():
    """Hand-checked cases where seqeval's conlleval rules differ from strict IOB2."""
    cases = [
        ([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]], 1.0),  # I after O starts a chunk
        ([["B-PER", "I-LOC"]], [["B-PER", "B-LOC"]], 1.0),  # a type change splits chunks
        ([["B-PER", "E-PER", "E-PER"]], [["B-PER", "E-PER", "S-PER"]], 1.0),
        ([["PER", "PER", "O", "LOC"]], [["PER", "PER", "O", "O"]], 2 / 3),  # no prefix: type "ER"
        # A chunk closed without a new start reuses the old begin (seqeval's stale begin_offset):
        ([["B-PER", "E-PER", "X-PER", "O"]], [["B-PER", "E-PER", "O", "O"]], 2 / 3),
        ([["O"], ["X", "B-PER"]], [["O"], ["O", "B-PER"]], 2 / 3),
        ([["B-PER"], []], [["B-PER"], []], 1.0),
    ]
    for gold, pred, expected in cases:
        assert seqeval_scores(gold, pred)[2] == pytest.approx(expected)
        assert entity_report(gold, pred)["f1"] == pytest.approx(expected, abs=1e-6), (gold, pred)


def test_stale_begins_carry_across_batches():
    # "X" after "O" starts nothing, so the chunk it ends begins at the last start,
    # in an earlier sentence: gold's at 0, the prediction's at 1.
    gold = [["B-PER", "I-PER"], ["O", "X", "B-LOC"], ["X", "B-PER"]]
    pred = [["B-PER", "B-PER"], ["O", "X", "B-LOC"], ["X", "B-PER"]]
    expected = seqeval_scores(gold, pred)
    assert expected != seqeval_scores(gold[1:], pred[1:])  # the first sentence matters
    for batch_size in (1, 2, 3):
        report = entity_report(gold, pred, batch_size=batch_size)
        np.testing.assert_allclose([report["precision"], report["recall"], report["f1"]], expected, atol=1e-6)


@pytest.mark.parametrize(
    "gold, pred",
    [
        ([["O", "O"], []], [["O", "O"], []]),  # no entities at all: 0, 0, 0
        ([["B-PER", "O"]], [["O", "O"]]),  # nothing predicted
        ([["O", "O"]], [["B-PER", "I-PER"]]),  # nothing to find
        ([[]], [[]]),
    ],
)
def test_zero_division_gives_zero_like_seqeval(gold, pred):
    report = entity_report(gold, pred)
    assert [report["precision"], report["recall"], report["f1"]] == list(seqeval_scores(gold, pred))
    assert (report["precision"], report["recall"], report["f1"]) == (0.0, 0.0, 0.0)


def test_seqeval_docstring_example_and_per_type():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    report = entity_report(gold, pred)
    assert (report["precision"], report["recall"], report["f1"]) == (0.5, 0.5, 0.5)
    assert report["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert report["per_type"] == {  # support is an int, as seqeval's
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_real_uner_dev_with_perturbed_predictions(shared_data):
    sentences = read_iob2(shared_data / "uner_english_ewt" / "dev.iob2")
    gold = [list(s.tags) for s in sentences]
    tags = sorted({t for seq in gold for t in seq})
    rng = random.Random(10)
    pred = [[rng.choice(tags) if rng.random() < 0.1 else t for t in seq] for seq in gold]
    report = entity_report(gold, pred, batch_size=128)
    expected = seqeval_scores(gold, pred)
    np.testing.assert_allclose([report["precision"], report["recall"], report["f1"]], expected, atol=1e-6)
    assert 0.3 < expected[2] < 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_type = classification_report(gold, pred, output_dict=True)
    assert sorted(report["per_type"]) == ["LOC", "ORG", "PER"]
    for kind, scores in report["per_type"].items():
        assert scores["support"] == per_type[kind]["support"] and isinstance(scores["support"], int)
        for key, oracle_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert scores[key] == pytest.approx(per_type[kind][oracle_key], abs=1e-6)
    assert report["accuracy"] == pytest.approx(accuracy_score(gold, pred), abs=1e-6)


def test_ignored_positions_inside_a_row_are_dropped_not_read_as_o():
    # Sub-word pieces after the first carry -1: the words form the sentence.
    tags = ["O", "B-PER", "I-PER"]
    metric = EntityF1(tags)
    metric.update_state([[1, -1, 2, 0, -1]], [[1, 0, 2, 0, 1]])
    assert as_floats(metric.result()) == [1.0, 1.0, 1.0]
    gold, pred = [["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]
    assert as_floats(metric.result()) == list(seqeval_scores(gold, pred))


def test_scores_and_ids_give_the_same_result():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, len(IOB2), (6, 9)).astype("int32")
    y_true[:, 7:] = -1
    scores = rng.normal(size=(6, 9, len(IOB2))).astype("float32")
    by_ids, by_scores = EntityF1(IOB2), EntityF1(IOB2)
    by_ids.update_state(y_true, scores.argmax(-1))
    by_scores.update_state(y_true, scores)
    assert as_floats(by_ids.result()) == as_floats(by_scores.result())
    accuracy = TokenAccuracy()
    accuracy.update_state(y_true, scores)
    assert float(accuracy.result()) == pytest.approx((y_true == scores.argmax(-1))[y_true >= 0].mean())


def test_sample_weight_scales_entities_by_sentence():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O", "B-ORG"], ["B-PER", "O", "O"]]
    pred = [["B-PER", "I-PER", "O"], ["B-LOC", "O", "O"], ["B-PER", "B-LOC", "O"]]
    ids = {tag: i for i, tag in enumerate(IOB2)}
    y_true = np.array([[ids[t] for t in seq] for seq in gold], "int32")
    y_pred = np.array([[ids[t] for t in seq] for seq in pred], "int32")
    weighted = EntityF1(IOB2)
    weighted.update_state(y_true, y_pred, sample_weight=np.array([1.0, 0.0, 1.0]))
    assert as_floats(weighted.result()) == pytest.approx(list(seqeval_scores(gold[::2], pred[::2])))
    doubled = EntityF1(IOB2)
    doubled.update_state(y_true, y_pred, sample_weight=np.full((3, 3), 2.0))
    assert as_floats(doubled.result()) == pytest.approx(list(seqeval_scores(gold, pred)))
    assert float(doubled.true_positives.numpy().sum()) == 2 * 3


def test_graph_and_xla_match_eager():
    rng = np.random.default_rng(0)
    batches = []
    for time in (12, 5):
        y_true = rng.integers(0, len(IOBES), (8, time)).astype("int32")
        y_true[:, time - 3:] = -1
        y_true[2, 1] = -1
        batches.append((y_true, rng.integers(0, len(IOBES), (8, time)).astype("int32")))
    results = []
    for mode in ("eager", "graph", "xla"):
        metrics = [EntityF1(IOBES), TokenAccuracy()]

        def step(y_true, y_pred, metrics=metrics):
            for metric in metrics:
                metric.update_state(y_true, y_pred)

        if mode != "eager":
            step = tf.function(step, jit_compile=mode == "xla")
        for y_true, y_pred in batches:
            step(tf.constant(y_true), tf.constant(y_pred))
        results.append(as_floats(metrics[0].result()) + [float(metrics[1].result())])
    assert results[0] == results[1] == results[2]
    assert 0 < results[0][2] < 1


def test_config_round_trip_and_registration():
    metric = EntityF1(IOBES, name="ner")
    config = metric.get_config()
    assert config["tags"] == IOBES and config["name"] == "ner"
    clone = EntityF1.from_config(config)
    assert clone.tags == IOBES and clone.name == "ner"
    serialized = keras.saving.serialize_keras_object(metric)
    assert serialized["registered_name"] == "tfpretrain>EntityF1"
    assert keras.saving.deserialize_keras_object(serialized).tags == IOBES
    accuracy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(TokenAccuracy()))
    assert isinstance(accuracy, TokenAccuracy) and accuracy.name == "token_accuracy"
    with pytest.raises(ValueError, match="non-empty tag strings"):
        EntityF1(["O", ""])


def test_reset_state_restarts_the_evaluation():
    metric = EntityF1(ODD)
    gold, pred = [["O"], ["X", "B-PER"]], [["O"], ["O", "B-PER"]]
    ids = {tag: i for i, tag in enumerate(ODD)}
    y_true = np.array([[ids["O"], -1], [ids["X"], ids["B-PER"]]], "int32")
    y_pred = np.array([[ids["O"], 0], [ids["O"], ids["B-PER"]]], "int32")
    for _ in range(2):
        metric.reset_state()
        metric.update_state(y_true, y_pred)
        np.testing.assert_allclose(as_floats(metric.result()), seqeval_scores(gold, pred), atol=1e-6)


def test_entity_report_checks_lengths():
    with pytest.raises(ValueError, match="Sentence 1 has 2 gold tags but 1 predicted"):
        entity_report([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        entity_report([["O"], ["O"]], [["O"]])


def _toy_tagging_data(rng, num_sentences):
    """Word ids 1..9 with a fixed tag each (so entities are learnable); 0 / -1 pad."""
    word_tags = np.array([0, 1, 2, 3, 4, 0, 0, 1, 3, 0])  # word id -> IOB2 id (O, B-PER, I-PER, B-LOC, I-LOC)
    x = np.zeros((num_sentences, 10), "int32")
    y = np.full((num_sentences, 10), -1, "int32")
    for row in range(num_sentences):
        length = rng.integers(1, 11)
        x[row, :length] = rng.integers(1, 10, length)
        y[row, :length] = word_tags[x[row, :length]]
    return x, y


def test_metrics_in_model_fit_log_keys_and_values(tmp_path):
    tags = IOB2[:5]
    rng = np.random.default_rng(0)
    x, y = _toy_tagging_data(rng, 64)
    x_val, y_val = _toy_tagging_data(rng, 24)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(10, 8),
                              keras.layers.Dense(len(tags))])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=[EntityF1(tags), TokenAccuracy()],
    )
    history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(x_val, y_val), verbose=0)
    assert set(history.history) == {
        "loss", "entity_precision", "entity_recall", "entity_f1", "token_accuracy",
        "val_loss", "val_entity_precision", "val_entity_recall", "val_entity_f1", "val_token_accuracy",
    }
    predicted = model.predict(x_val, verbose=0).argmax(-1)
    gold = [[tags[t] for t in row[row >= 0]] for row in y_val]
    pred = [[tags[p] for p in prediction[:len(seq)]] for prediction, seq in zip(predicted, gold)]
    np.testing.assert_allclose(
        [history.history[f"val_entity_{k}"][-1] for k in ("precision", "recall", "f1")],
        seqeval_scores(gold, pred), atol=1e-6,
    )
    assert history.history["val_token_accuracy"][-1] == pytest.approx(accuracy_score(gold, pred), abs=1e-6)
    assert history.history["val_entity_f1"][-1] > 0.5

    path = tmp_path / "tagger.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.evaluate(x_val, y_val, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    )


def test_metrics_in_an_xla_compiled_model():
    # On a GPU, Keras' jit_compile="auto" puts the metric updates under XLA.
    tags = IOB2[:5]
    x, y = _toy_tagging_data(np.random.default_rng(1), 32)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(10, 8),
                              keras.layers.Dense(len(tags))])
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=[EntityF1(tags), TokenAccuracy()], jit_compile=True,
    )
    assert model.jit_compile
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0).argmax(-1)
    gold = [[tags[t] for t in row[row >= 0]] for row in y]
    pred = [[tags[p] for p in prediction[:len(seq)]] for prediction, seq in zip(predicted, gold)]
    report = entity_report(gold, pred)
    assert [logs["entity_precision"], logs["entity_recall"], logs["entity_f1"]] == pytest.approx(
        [report["precision"], report["recall"], report["f1"]], abs=1e-6
    )
    assert report["f1"] > 0


# --- the scheme comes from the model's tag set, not from the gold file (issue 15, defect 1) ---------------

NO_ENTITY_CASES = [
    ([["O", "O", "O"]], [["O", "O", "O"]]),  # no entities anywhere: seqeval says 0.0, not accuracy 1.0
    ([["O", "O", "O", "O", "O"]], [["B-PER", "I-PER", "O", "O", "O"]]),  # predicted ones only: 0.0, not 0.6
    ([["O", "O"], ["O"]], [["O", "B-LOC"], ["I-ORG"]]),
]


@pytest.mark.parametrize("gold, pred", NO_ENTITY_CASES)
def test_score_tags_on_a_file_without_entities_matches_seqeval(gold, pred):
    from tfpretrain.training.metrics import score_tags

    scores = score_tags(gold, pred, tags=IOB2)
    assert [scores["precision"], scores["recall"], scores["f1"]] == list(seqeval_scores(gold, pred))
    assert scores["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    if any(tag != "O" for seq in pred for tag in seq):  # without the model's tags, the predicted ones tell
        assert score_tags(gold, pred)["f1"] == seqeval_scores(gold, pred)[2]


def test_score_tags_of_a_pos_model_stays_token_accuracy():
    from tfpretrain.training.metrics import score_tags

    scores = score_tags([["NOUN", "VERB"]], [["NOUN", "NOUN"]], tags=["NOUN", "VERB", "ADJ"])
    assert scores == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.5}
