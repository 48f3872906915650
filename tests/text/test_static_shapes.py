"""Static-shape batches (XLA, TPUs): a few fixed shapes, every example once, and the losses and metrics of dynamic ones."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.models import build_tagger
from tfpretrain.models.bilm import LANGUAGE_MODEL_RESERVED, count_tokens, language_model_dataset, word_lookup
from tfpretrain.models.tagger import TAGGER_PRESETS, TaggingPreprocessor, tagging_dataset
from tfpretrain.models.ulmfit import (
    WordTokenizer,
    build_text_vocabulary,
    build_ulmfit_classifier,
    classification_batch_count,
    classification_dataset,
)
from tfpretrain.pipelines.ulmfit_classifier import probabilities
from tfpretrain.pipelines.train_tagger import tag_set
from tfpretrain.text import build_vocabulary
from tfpretrain.text.buckets import (
    DEFAULT_BUCKET_BOUNDARIES,
    bucket_by_length,
    bucket_lengths,
    fill_batch,
    pad_to_bucket,
)
from tfpretrain.text.readers import read_conllu
from tfpretrain.text.task_readers import read_classification_tsv
from tfpretrain.training.metrics import EntityF1, TokenAccuracy
from tfpretrain.training.precision import resolve_static_shapes


def test_bucket_lengths_and_filling():
    assert bucket_lengths((8, 16, 32), sequence_length=20) == [8, 16, 20]
    assert bucket_lengths((32, 8, 8), sequence_length=8) == [8]
    with pytest.raises(ValueError, match="maximum length"):
        bucket_lengths((8,), sequence_length=None)
    real, (ids, labels) = fill_batch(4, (tf.constant([[1, 2], [3, 4]]), tf.constant([7, 8])))
    assert real.numpy().tolist() == [True, True, False, False]
    assert ids.numpy().tolist() == [[1, 2], [3, 4], [1, 2], [1, 2]] and labels.numpy().tolist() == [7, 8, 7, 7]
    real, dense = pad_to_bucket(tf.ragged.constant([[1, 2, 3], [4]]), (2, 4), sequence_length=10, batch_size=3)
    assert dense.numpy().tolist() == [[1, 2, 3, 0], [4, 0, 0, 0], [1, 2, 3, 0]]  # 3 words -> the 4 bucket
    real, dense = pad_to_bucket(tf.ragged.constant([list(range(1, 9))]), (2, 4), sequence_length=6, batch_size=1)
    assert dense.numpy().tolist() == [[1, 2, 3, 4, 5, 6]]  # cut to sequence_length
    assert resolve_static_shapes("auto", True) and not resolve_static_shapes("auto", "auto")
    with pytest.raises(ValueError, match="static_shapes"):
        resolve_static_shapes("yes", True)


def test_a_too_long_element_is_an_error_not_a_silent_cut():
    tokens = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([["a"] * 5])).map(lambda t: t)
    with pytest.raises(tf.errors.OpError, match="longer than sequence_length=3"):
        list(bucket_by_length(tokens, 2, (2,), "", static_shapes=True, sequence_length=3))


def _assert_matches(static_batches, dynamic_batches, batch_size, allowed, pads):
    """Each static batch is its dynamic twin padded to an allowed length and filled to batch_size rows.

    ``pads``: a function of a batch -> {name: (array, padding value or None: no time axis, value at the
    filled rows or None: copied rows)}.
    """
    assert len(static_batches) == len(dynamic_batches)
    for static, dynamic in zip(static_batches, dynamic_batches):
        static, dynamic = pads(static), pads(dynamic)
        rows, length = next(iter(dynamic.values()))[0].shape[:2]
        for name, (array, padding, filled) in static.items():
            assert array.shape[0] == batch_size, (name, array.shape)
            if padding is None:
                np.testing.assert_array_equal(array[:rows], dynamic[name][0], err_msg=name)
            else:
                assert array.shape[1] in allowed, (name, array.shape)
                np.testing.assert_array_equal(array[:rows, :length], dynamic[name][0], err_msg=name)
                assert (array[:rows, length:] == padding).all(), name
            if filled is not None:
                assert (array[rows:] == filled).all(), name


def test_tagging_batches_are_static_and_equal_the_dynamic_ones(shared_data):
    sentences = read_conllu(shared_data / "ud_english_ewt" / "dev.conllu")[:400]
    pre = TaggingPreprocessor(build_vocabulary([t.lower() for t in s.tokens] for s in sentences),
                              sorted({t for s in sentences for t in s.tags}))
    dynamic = list(tagging_dataset(sentences, pre, 16))
    static = list(tagging_dataset(sentences, pre, 16, static_shapes=True))
    allowed = bucket_lengths(DEFAULT_BUCKET_BOUNDARIES, max(len(s.tokens) for s in sentences))

    def parts(batch):
        features, tag_ids = batch
        return {"word_ids": (features["word_ids"].numpy(), 0, None),
                "char_ids": (features["char_ids"].numpy(), 0, None), "tag_ids": (tag_ids.numpy(), -1, -1)}

    _assert_matches(static, dynamic, 16, allowed, parts)
    static_shapes = {tuple(features["word_ids"].shape) for features, _ in static}
    dynamic_shapes = {tuple(features["word_ids"].shape) for features, _ in dynamic}
    assert len(static_shapes) <= len(allowed) < len(dynamic_shapes)
    # Shuffled training batches: every sentence once among the real rows.
    shuffled = tagging_dataset(sentences, pre, 16, shuffle=True, seed=0, static_shapes=True)
    real_rows = sum(int((tag_ids.numpy() >= 0).any(axis=1).sum()) for _, tag_ids in shuffled)
    assert real_rows == len(sentences)


@pytest.mark.slow
def test_tagger_loss_and_metrics_ignore_the_filling_rows(shared_data):
    # Chunks a tiny tagger learns in seconds: runs of one part of speech in EWT (B-NOUN I-NOUN B-VERB ...).
    sentences = [dataclasses.replace(s, tags=tuple(
        ("I-" if i and s.tags[i - 1] == tag else "B-") + tag for i, tag in enumerate(s.tags)))
        for s in read_conllu(shared_data / "ud_english_ewt" / "dev.conllu")[:160]]
    tags = tag_set(sentences)
    pre = TaggingPreprocessor(build_vocabulary([t.lower() for t in s.tokens] for s in sentences), tags)
    keras.utils.set_random_seed(0)
    model = build_tagger(pre.word_vocabulary_size, tags, constraint="BIO", **TAGGER_PRESETS["tiny"])
    model.compile(optimizer=keras.optimizers.Adam(2e-2), metrics=[TokenAccuracy(name="accuracy"), EntityF1(tags, name="entity")])
    model.fit(tagging_dataset(sentences, pre, 16, shuffle=True, seed=0), epochs=4, verbose=0)  # finds chunks
    dynamic = tagging_dataset(sentences, pre, 16)
    static = tagging_dataset(sentences, pre, 16, static_shapes=True)
    for (fd, td), (fs, ts) in zip(dynamic, static):  # batch by batch: the same mean loss over the sentences
        loss_d = model.compute_loss(fd, td, model(fd, training=False), training=False)
        loss_s = model.compute_loss(fs, ts, model(fs, training=False), training=False)
        np.testing.assert_allclose(float(loss_s), float(loss_d), rtol=1e-5)
    scores_d = model.evaluate(dynamic, verbose=0, return_dict=True)
    scores_s = model.evaluate(static, verbose=0, return_dict=True)
    assert scores_d["entity_f1"] > 0.2  # otherwise the comparison below says little
    for name in ("accuracy", "entity_f1", "entity_precision", "entity_recall"):
        assert scores_s[name] == pytest.approx(scores_d[name], abs=1e-6), name
    # (The epoch's "loss" differs: Keras weighs each batch's mean by its row count, filled rows included.)


def test_language_model_batches_are_static_and_equal_the_dynamic_ones(shared_data, tmp_path):
    corpus = tmp_path / "ewt.txt"
    with open(shared_data / "ud_english_ewt" / "dev.conllu", encoding="utf-8") as f:
        corpus.write_text("".join(line[len("# text = "):] for line in f if line.startswith("# text = ")),
                          encoding="utf-8")
    vocabulary = build_vocabulary(count_tokens([str(corpus)]), min_count=2, reserved=LANGUAGE_MODEL_RESERVED)
    options = dict(word_lookup=word_lookup(vocabulary), batch_size=32, sequence_length=40, shuffle_buffer=0)
    dynamic = list(language_model_dataset([str(corpus)], **options))
    static = list(language_model_dataset([str(corpus)], static_shapes=True, **options))

    def parts(batch):
        char_ids, targets = batch
        return {"char_ids": (char_ids.numpy(), 0, None), "next_ids": (targets["next_ids"].numpy(), -1, -1),
                "previous_ids": (targets["previous_ids"].numpy(), -1, -1)}

    _assert_matches(static, dynamic, 32, bucket_lengths(DEFAULT_BUCKET_BOUNDARIES, 40), parts)
    with pytest.raises(ValueError, match="sequence_length"):
        language_model_dataset([str(corpus)], options["word_lookup"], sequence_length=None, static_shapes=True)


def test_ulmfit_classifier_batches_and_scores(shared_data):
    examples = read_classification_tsv(shared_data / "sst2" / "dev.tsv")[:150]
    texts, labels = [e.texts[0] for e in examples], [int(e.label) for e in examples]
    vocabulary = build_text_vocabulary(texts, 2, None, lowercase=True)
    tokenizer = WordTokenizer(vocabulary, lowercase=True)
    options = dict(batch_size=16, sequence_length=24)
    allowed = bucket_lengths(DEFAULT_BUCKET_BOUNDARIES, 24)

    def parts(batch):
        ids, label_ids = batch[:2]
        return {"ids": (ids.numpy(), 0, None), "labels": (label_ids.numpy(), None, -1)}

    in_order = list(classification_dataset(texts, labels, tokenizer, **options))
    in_order_static = list(classification_dataset(texts, labels, tokenizer, static_shapes=True, **options))
    _assert_matches(in_order_static, in_order, 16, allowed, parts)
    assert all(((y.numpy() >= 0) == (w.numpy() == 1)).all() for _, y, w in in_order_static)
    shuffled = [classification_dataset(texts, labels, tokenizer, shuffle=True, seed=0, static_shapes=static,
                                       **options) for static in (False, True)]
    _assert_matches(list(shuffled[1]), list(shuffled[0]), 16, allowed, parts)
    assert len(list(shuffled[1])) == classification_batch_count(texts, tokenizer, 16, 24)

    keras.utils.set_random_seed(0)
    from tfpretrain.models.ulmfit import AWD_LSTM_PRESETS, AwdLstmEncoder

    encoder = AwdLstmEncoder(tokenizer.vocabulary_size(), **AWD_LSTM_PRESETS["tiny"])
    model = build_ulmfit_classifier(encoder, 2, 8, (0.0, 0.0))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    dynamic = classification_dataset(texts, labels, tokenizer, **options)
    static = classification_dataset(texts, labels, tokenizer, static_shapes=True, **options)
    for (xd, yd), (xs, ys, ws) in zip(dynamic, static):
        loss_d = model.compute_loss(xd, yd, model(xd), training=False)
        loss_s = model.compute_loss(xs, ys, model(xs), sample_weight=ws, training=False)
        np.testing.assert_allclose(float(loss_s), float(loss_d), rtol=1e-5)
    np.testing.assert_allclose(probabilities(model, tokenizer, texts, 16, 24, static_shapes=True),
                               probabilities(model, tokenizer, texts, 16, 24), atol=1e-5)  # filling cut off
    accuracy_d = model.evaluate(dynamic, verbose=0, return_dict=True)["accuracy"]
    assert model.evaluate(static, verbose=0, return_dict=True)["accuracy"] == pytest.approx(accuracy_d, abs=1e-6)
