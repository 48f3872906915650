"""ULMFiT's AWD-LSTM: encoder, tied language model, classifier, layer groups, vocabulary expansion, saving."""

import itertools
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_layer_test
from tfpretrain.layers.concat_pooling import ConcatPooling
from tfpretrain.models.ulmfit import (
    AWD_LSTM_PRESETS,
    CLASSIFIER_DROPOUTS,
    AwdLstmEncoder,
    AwdLstmLanguageModel,
    OutputBias,
    build_ulmfit_classifier,
    expand_vocabulary,
    is_awd_lstm_dir,
    layer_groups,
    load_awd_lstm,
    save_awd_lstm,
)
from tfpretrain.text.readers import read_text
from tfpretrain.models.ulmfit import WordTokenizer, build_word_vocabulary, word_lm_dataset

RNG = np.random.default_rng(0)
WORDS = ["</S>", "the", "film", "is", "good", "bad", "a", "."]
TINY = AWD_LSTM_PRESETS["tiny"]


def _ids(batch=3, time=6, vocabulary_size=len(WORDS) + 2):
    return RNG.integers(1, vocabulary_size, size=(batch, time)).astype("int32")


def _tiny_lm(vocabulary_size=len(WORDS) + 2, **kwargs):
    return AwdLstmLanguageModel(AwdLstmEncoder(vocabulary_size, **TINY), **kwargs)


@pytest.fixture(scope="module")
def ewt_slice(tmp_path_factory, shared_data):
    """The first 1,200 sentences of EWT train (about 18k words) as a text file, and 300 later ones."""
    texts = list(itertools.islice(read_text(shared_data / "ud_english_ewt" / "train.conllu"), 1500))
    directory = tmp_path_factory.mktemp("ewt")
    train, heldout = directory / "train.txt", directory / "heldout.txt"
    train.write_text("\n".join(texts[:1200]) + "\n", encoding="utf-8")
    heldout.write_text("\n".join(texts[1200:]) + "\n", encoding="utf-8")
    return train, heldout


# --- Encoder ------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(AWD_LSTM_PRESETS))
def test_presets_build_with_the_documented_sizes(preset):
    config = AWD_LSTM_PRESETS[preset]
    encoder = AwdLstmEncoder(vocabulary_size=50, **config)
    assert [lstm.units for lstm in encoder.lstm_layers] == (
        [config["hidden_dim"]] * (config["num_layers"] - 1) + [config["embedding_dim"]]
    )
    assert encoder.token_embedding.embeddings.shape == (50, config["embedding_dim"])
    assert encoder(_ids(vocabulary_size=50)).shape == (3, 6, config["embedding_dim"])


def test_encoder_masks_padding_and_reads_left_to_right():
    encoder = AwdLstmEncoder(len(WORDS) + 2, **TINY)
    ids = _ids(2, 7)
    ids[1, 4:] = 0
    states = np.asarray(encoder(ids))
    later = ids.copy()
    later[:, 5] = 3  # a later word (real or padding) never changes earlier states
    np.testing.assert_allclose(np.asarray(encoder(later))[:, :5], states[:, :5], atol=1e-6)
    # The output carries the padding mask to the next layer.
    np.testing.assert_array_equal(ConcatPooling()(encoder(ids)), ConcatPooling()(states, mask=ids != 0))
    shorter = np.asarray(encoder(ids[1:, :4]))  # padding is masked: the same states as without it
    np.testing.assert_allclose(states[1, :4], shorter[0], atol=1e-6)


def test_encoder_dropouts_only_in_training_and_config_round_trip():
    encoder = AwdLstmEncoder(len(WORDS) + 2, **TINY)
    ids = _ids()
    np.testing.assert_array_equal(encoder(ids), encoder(ids, training=False))
    assert not np.allclose(encoder(ids, training=True), encoder(ids, training=True))
    revived = AwdLstmEncoder.from_config(encoder.get_config())
    assert revived.constructor_config() == encoder.constructor_config()
    frozen = AwdLstmEncoder.from_config({**encoder.get_config(), "trainable": False})
    assert not frozen.trainable_weights
    with pytest.raises(ValueError, match="num_layers"):
        AwdLstmEncoder(20, num_layers=0)


# --- Language model -----------------------------------------------------------------------------


def test_language_model_ties_the_output_projection_to_the_embedding():
    lm = _tiny_lm()
    ids = _ids()
    logits = np.asarray(lm(ids))
    assert logits.dtype == np.float32 and logits.shape == (3, 6, len(WORDS) + 2)
    lm.output_bias.bias.assign(RNG.normal(size=len(WORDS) + 2).astype("float32"))
    states = np.asarray(lm.encoder(ids))
    embeddings = np.asarray(lm.encoder.token_embedding.embeddings)
    np.testing.assert_allclose(lm(ids), states @ embeddings.T + np.asarray(lm.output_bias.bias), atol=1e-5)
    matrices = [w for w in lm.weights if w.shape == embeddings.shape or w.shape == embeddings.T.shape]
    assert len(matrices) == 1  # one matrix serves as embedding and decoder


def test_output_bias_harness():
    run_layer_test(OutputBias, {"units": 5}, RNG.normal(size=(2, 3, 5)).astype("float32"),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0,
                   expected_output_shape=(2, 3, 5), expected_output_dtype="float32")


def test_language_model_reloads_from_a_keras_file(tmp_path):
    lm = _tiny_lm(output_dropout=0.2)
    lm.compile(optimizer="adam")
    ids = _ids()
    lm.fit(ids, _ids(), epochs=1, batch_size=3, verbose=0)
    lm.save(tmp_path / "lm.keras")
    reloaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert isinstance(reloaded, AwdLstmLanguageModel) and reloaded.output_dropout == 0.2
    np.testing.assert_allclose(reloaded(ids), lm(ids), atol=1e-5)


def test_perplexity_is_exp_of_the_mean_next_word_nll_without_ar_tar():
    lm = _tiny_lm()
    lm.compile(optimizer="sgd")
    ids, targets = _ids(4, 5), _ids(4, 5)
    weights = np.ones((4, 5), "float32")
    weights[0, 3:] = 0
    results = lm.evaluate(ids, targets, sample_weight=weights, batch_size=4, verbose=0, return_dict=True)
    logits = np.asarray(lm(ids)).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    mean_nll = (nll * weights).sum() / weights.sum()
    np.testing.assert_allclose(results["loss"], mean_nll, rtol=1e-5)
    np.testing.assert_allclose(results["perplexity"], np.exp(mean_nll), rtol=1e-4)
    accuracy = ((logits.argmax(-1) == targets) * weights).sum() / weights.sum()
    np.testing.assert_allclose(results["accuracy"], accuracy, rtol=1e-6)
    # In training AR and TAR are added to the loss, but not to the perplexity.
    lm.compute_loss(ids, targets, lm(ids, training=True), weights)
    assert len(lm.losses) == 2 and all(float(loss) > 0 for loss in lm.losses)


def test_language_model_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    lm = _tiny_lm()
    lm.compile(optimizer="adam")
    ids = _ids()
    logits = lm(ids, training=True)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits))
    assert all(w.dtype == "float32" for w in lm.weights)
    history = lm.fit(ids, _ids(), epochs=1, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_short_fit_lowers_the_loss_on_an_ewt_slice(ewt_slice):
    train_path, heldout_path = ewt_slice
    tokenizer = WordTokenizer(build_word_vocabulary([train_path], min_count=2))
    lm = AwdLstmLanguageModel(AwdLstmEncoder(tokenizer.vocabulary_size(), **TINY))
    lm.compile(optimizer=keras.optimizers.Adam(3e-3))
    heldout = word_lm_dataset([heldout_path], tokenizer, sequence_length=35, batch_size=16, split="all", repeat=False)
    before = lm.evaluate(heldout, verbose=0, return_dict=True)
    train = word_lm_dataset([train_path], tokenizer, sequence_length=35, batch_size=16, split="all")
    history = lm.fit(train, steps_per_epoch=40, epochs=3, verbose=0)
    after = lm.evaluate(heldout, verbose=0, return_dict=True)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after["loss"] < before["loss"] - 1.0, (before, after)
    assert after["perplexity"] < 0.5 * before["perplexity"]


# --- Classifier ---------------------------------------------------------------------------------


def test_classifier_concat_pooling_equals_numpy_over_the_real_words():
    encoder = AwdLstmEncoder(len(WORDS) + 2, **TINY)
    classifier = build_ulmfit_classifier(encoder, num_labels=3)
    tokenizer = WordTokenizer(WORDS)
    ids = tokenizer(tf.constant(["the film is good .", "bad", "a bad , bad film"])).to_tensor()  # (3, 6)
    assert classifier(ids).shape == (3, 3) and classifier(ids).dtype == tf.float32
    pooled = keras.Model(classifier.inputs, classifier.get_layer("concat_pooling").output)(ids)
    states = np.asarray(encoder(ids))
    expected = []
    for row, sequence in zip(np.asarray(ids), states):
        real = sequence[row != 0]
        expected.append(np.concatenate([real[-1], real.max(0), real.mean(0)]))
    np.testing.assert_allclose(pooled, np.stack(expected), rtol=1e-5, atol=1e-6)
    padded = np.pad(np.asarray(ids), [[0, 0], [0, 4]])  # more padding changes nothing
    np.testing.assert_allclose(classifier(padded), classifier(ids), atol=1e-5)


def test_classifier_trains_and_reloads_from_a_keras_file(tmp_path):
    classifier = build_ulmfit_classifier(AwdLstmEncoder(len(WORDS) + 2, **CLASSIFIER_DROPOUTS, **{
        k: TINY[k] for k in ("embedding_dim", "hidden_dim", "num_layers")}), num_labels=2)
    classifier.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = _ids(8, 5)
    history = classifier.fit(ids, RNG.integers(0, 2, size=8), epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    classifier.save(tmp_path / "classifier.keras")
    reloaded = keras.saving.load_model(tmp_path / "classifier.keras")
    np.testing.assert_allclose(reloaded(ids), classifier(ids), atol=1e-5)
    with pytest.raises(ValueError, match="num_labels"):
        build_ulmfit_classifier(classifier.layers[1], num_labels=1)


# --- Layer groups -------------------------------------------------------------------------------


def _group_names(groups):
    return [[layer.name for layer in group] for group in groups]


def test_layer_groups_cover_every_weight_once_bottom_first():
    encoder = AwdLstmEncoder(len(WORDS) + 2, **{**TINY, "num_layers": 3})
    lm = _tiny_lm()
    lm(_ids())
    classifier = build_ulmfit_classifier(encoder, num_labels=2)
    assert _group_names(layer_groups(encoder)) == [
        ["token_embedding", "input_dropout"], ["lstm_0", "hidden_dropout_0"], ["lstm_1", "hidden_dropout_1"],
        ["lstm_2"],
    ]
    assert _group_names(layer_groups(lm))[-1] == ["output_dropout", "output_bias"]
    groups = layer_groups(classifier)
    assert len(groups) == 5 and groups[-1][0].name == "concat_pooling" and groups[-1][-1].name == "logits"
    for model in (encoder, lm, classifier):
        grouped = [id(w) for group in layer_groups(model) for layer in group for w in layer.weights]
        assert sorted(grouped) == sorted(id(w) for w in model.weights)


# --- Vocabulary expansion and saving ------------------------------------------------------------


def test_expand_vocabulary_keeps_rows_by_word_and_fills_the_mean():
    lm = _tiny_lm()
    lm(_ids())
    lm.output_bias.bias.assign(RNG.normal(size=len(WORDS) + 2).astype("float32"))
    new_words = ["</S>", "movie", "good", "the", "dull"]  # kept: </S>, good, the; new: movie, dull
    expanded = expand_vocabulary(lm, WORDS, WordTokenizer(new_words))
    old_rows = np.asarray(lm.encoder.token_embedding.embeddings)
    new_rows = np.asarray(expanded.encoder.token_embedding.embeddings)
    old_bias, new_bias = np.asarray(lm.output_bias.bias), np.asarray(expanded.output_bias.bias)
    assert new_rows.shape == (len(new_words) + 2, TINY["embedding_dim"])
    for new_id, source in [(0, 0), (1, 1), (2, 2), (4, 2 + WORDS.index("good")), (5, 2 + WORDS.index("the"))]:
        np.testing.assert_array_equal(new_rows[new_id], old_rows[source])
        assert new_bias[new_id] == old_bias[source]
    for new_id in (3, 6):  # movie, dull
        np.testing.assert_allclose(new_rows[new_id], old_rows.mean(0), rtol=1e-6)
        np.testing.assert_allclose(new_bias[new_id], old_bias.mean(), rtol=1e-5)
    for old, new in zip(lm.encoder.lstm_layers, expanded.encoder.lstm_layers):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert expanded.head_config() == lm.head_config()
    arrays = expand_vocabulary({"rows": old_rows}, WORDS, new_words)
    np.testing.assert_array_equal(arrays["rows"], new_rows)
    with pytest.raises(ValueError, match="old vocabulary"):
        expand_vocabulary(old_rows, WORDS[:-1], new_words)


def test_save_and_load_round_trip_carries_the_vocabulary(tmp_path):
    lm = _tiny_lm(output_dropout=0.3)
    lm(_ids())
    lm.output_bias.bias.assign(RNG.normal(size=len(WORDS) + 2).astype("float32"))
    tokenizer = WordTokenizer(WORDS, lowercase=False)
    directory = str(tmp_path / "lm")
    save_awd_lstm(directory, lm, tokenizer, {"corpus": "test"})
    assert is_awd_lstm_dir(directory) and not is_awd_lstm_dir(str(tmp_path))
    loaded, loaded_tokenizer, config = load_awd_lstm(directory)
    assert isinstance(loaded, AwdLstmLanguageModel) and loaded.output_dropout == 0.3
    assert loaded_tokenizer.vocabulary == WORDS and loaded_tokenizer.lowercase is False
    assert config == {"corpus": "test", "lowercase": False}
    ids = _ids()
    np.testing.assert_allclose(loaded(ids), lm(ids), atol=1e-6)
    # Overrides change dropouts only; an encoder directory loads as an encoder.
    overridden = load_awd_lstm(directory, **CLASSIFIER_DROPOUTS)[0]
    assert overridden.encoder.input_dropout == CLASSIFIER_DROPOUTS["input_dropout"]
    np.testing.assert_allclose(overridden(ids), lm(ids), atol=1e-6)
    save_awd_lstm(str(tmp_path / "encoder"), lm.encoder, WORDS)
    encoder = load_awd_lstm(str(tmp_path / "encoder"))[0]
    np.testing.assert_allclose(encoder(ids), lm.encoder(ids), atol=1e-6)


def test_saving_errors_name_the_problem(tmp_path):
    lm = _tiny_lm()
    with pytest.raises(ValueError, match="the vocabulary has 7 words"):
        save_awd_lstm(str(tmp_path / "lm"), lm, WORDS[:-1])
    save_awd_lstm(str(tmp_path / "lm"), lm, WORDS)
    with pytest.raises(ValueError, match="cannot override"):
        load_awd_lstm(str(tmp_path / "lm"), hidden_dim=3)
    os.remove(tmp_path / "lm" / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="missing vocab.txt"):
        load_awd_lstm(str(tmp_path / "lm"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_awd_lstm(str(tmp_path / "nowhere"))
