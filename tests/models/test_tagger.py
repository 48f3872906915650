"""The tagger learns a small task, reloads from .keras, and answers odd input one tag per token."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.export import TaggingModule
from tfpretrain.export.tagging_module import MAX_WORDS
from tfpretrain.pipelines.predict import answers
from tfpretrain.models import BiLMLanguageModel, CRFTagger, build_tagger
from tfpretrain.models.tagger import TAGGER_PRESETS
from tfpretrain.pipelines import default_data
from tfpretrain.models.tagger.evaluation import evaluate_sentences
from tfpretrain.models.tagger import TaggingPreprocessor, tagging_dataset
from tfpretrain.text import build_vocabulary
from tfpretrain.text.readers import TaggedSentence
from tfpretrain.training.metrics import EntityF1, TokenAccuracy


def _sentences(pairs):
    return [TaggedSentence(tuple(t), tuple(g), None, f"generated:{i}") for i, (t, g) in enumerate(pairs)]


@pytest.fixture(scope="module")
def trained():
    train, dev = default_data.tagged_sentences(num_train=400, num_dev=100, seed=3)
    train, dev = _sentences(train), _sentences(dev)
    tags = sorted({t for s in train + dev for t in s.tags}, key=lambda t: (t != "O", t))
    pre = TaggingPreprocessor(build_vocabulary([t.lower() for t in s.tokens] for s in train), tags)
    keras.utils.set_random_seed(0)
    model = build_tagger(pre.word_vocabulary_size, tags, constraint="BIO", **TAGGER_PRESETS["tiny"])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=[TokenAccuracy(name="accuracy"), EntityF1(tags)])
    history = model.fit(tagging_dataset(train, pre, 16, shuffle=True, seed=0),
                        validation_data=tagging_dataset(dev, pre, 32), epochs=6, verbose=0)
    return model, pre, dev, history


@pytest.mark.slow
def test_tagger_learns_the_small_task(trained):
    model, pre, dev, history = trained
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0], losses
    assert "val_entity_f1" in history.history and "val_accuracy" in history.history
    scores = evaluate_sentences(model, pre, dev)
    assert scores["f1"] > 0.8, scores  # dev names are partly unseen in training
    assert abs(scores["f1"] - history.history["val_entity_f1"][-1]) < 1e-4


@pytest.mark.slow
def test_tagger_reloads_with_equal_outputs(trained, tmp_path):
    model, pre, dev, _ = trained
    features, _ = next(iter(tagging_dataset(dev[:8], pre, 8)))
    path = str(tmp_path / "tagger.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, CRFTagger)
    before, after = model(features), reloaded(features)
    np.testing.assert_array_equal(before["tag_ids"], after["tag_ids"])
    np.testing.assert_allclose(before["potentials"], after["potentials"], atol=1e-5)


@pytest.mark.slow
def test_predict_returns_decoded_tags(trained):
    model, pre, dev, _ = trained
    features, tag_ids = next(iter(tagging_dataset(dev[:8], pre, 8)))
    predicted = model.predict(features, verbose=0)["tag_ids"]
    valid = tag_ids.numpy() >= 0
    assert predicted.shape == tag_ids.shape
    assert (predicted[valid] == tag_ids.numpy()[valid]).mean() > 0.8


BAD_TEXTS = [
    "",
    "   \t  ",
    "control\x00characters\x07in\x1bthe middle",
    "emoji 🙂🎉 and flags 🇵🇹 here",
    "Τα νέα από την Αθήνα",
    "北京大学的学生",
    "مرحبا يا صديقي",
    " ".join(["word"] * 2000),
]


@pytest.mark.slow
def test_odd_input_gives_one_tag_per_token(trained):
    model, pre, _, _ = trained
    module = TaggingModule(model, pre)
    outputs = {k: v.numpy() for k, v in module.tag_texts(tf.constant(BAD_TEXTS)).items()}
    results = answers(outputs, [(text,) for text in BAD_TEXTS])
    assert len(results) == len(BAD_TEXTS)
    assert results[0]["words"] == [] and results[1]["words"] == []
    # 2,000 words: the first MAX_WORDS are tagged, the cut is reported.
    assert len(results[-1]["words"]) == MAX_WORDS and results[-1]["num_words_truncated"] == 2000 - MAX_WORDS
    for text, result in zip(BAD_TEXTS, results):
        assert len(result["tags"]) == len(result["words"]) == len(result["starts"]) == result["lengths"]
        assert all(tag in pre.tags for tag in result["tags"])
        assert 0.0 < result["score"] <= 1.0 or len(result["words"]) >= 100  # a long path's probability underflows
        data = text.encode("utf-8")
        assert [data[s:e].decode("utf-8") for s, e in zip(result["starts"], result["ends"])] == result["words"]
    # The same text alone or in a mixed batch gets the same tags.
    alone = answers({k: v.numpy() for k, v in module.tag_texts(tf.constant(BAD_TEXTS[3:4])).items()},
                    [(BAD_TEXTS[3],)])[0]
    assert alone["tags"] == results[3]["tags"] and alone["words"] == results[3]["words"]


def test_tagger_with_language_model_variants(tmp_path):
    lm = BiLMLanguageModel(vocabulary_size=50, hidden_dim=8, num_layers=2, filters=[[1, 4], [2, 4]], num_sampled=10)
    tags = ["O", "B-X", "I-X"]
    for mode in ("top", "scalar_mix"):
        model = build_tagger(20, tags, language_model=lm, language_model_mode=mode, **TAGGER_PRESETS["tiny"])
        features = {"word_ids": np.array([[2, 3, 0]]), "char_ids": np.random.randint(1, 259, (1, 3, 6))}
        features["char_ids"][0, 2] = 0
        out = model(features)
        assert tuple(out["tag_ids"].shape) == (1, 3)
        lm_paths = {w.path for w in lm.weights}
        assert not lm_paths & {w.path for w in model.trainable_weights}
        path = os.path.join(str(tmp_path), f"{mode}.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        assert len(reloaded.trainable_weights) == len(model.trainable_weights)  # the LM stays frozen
        np.testing.assert_array_equal(reloaded(features)["tag_ids"], out["tag_ids"])
        # Padding changes nothing: the sentence alone equals its row in a longer, padded batch.
        padded = {"word_ids": np.pad(features["word_ids"], [[0, 0], [0, 4]]),
                  "char_ids": np.pad(features["char_ids"], [[0, 0], [0, 4], [0, 0]])}
        alone, in_batch = model(features)["potentials"][0, :2], model(padded)["potentials"][0, :2]
        np.testing.assert_allclose(in_batch, alone, atol=1e-5)
    with pytest.raises(ValueError, match="language_model_mode"):
        build_tagger(20, tags, language_model=lm, language_model_mode="bottom")
