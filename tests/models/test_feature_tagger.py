"""The tagger on a pretrained encoder's layers (issue 19): pooling, the cache, frozen weights, the model directory."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import cli, run_litert, write_sentences

TAGS = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_tagger")
    uner = shared_data / "uner_english_ewt" / "dev.iob2"
    return {"root": root, "train": write_sentences(uner, root / "train.iob2", 0, 120),
            "dev": write_sentences(uner, root / "dev.iob2", 1800, 1860)}


@pytest.fixture(scope="module")
def bert_dir(data):
    """A random 4-layer BERT (so that every layer combination applies) with a WordPiece vocabulary of the slice."""
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.text.readers import read_iob2
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    keras.utils.set_random_seed(1)
    texts = [" ".join(s.tokens) for s in read_iob2(str(data["train"]))]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 600))
    encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), num_layers=4, num_heads=2, hidden_dim=32,
                          intermediate_dim=64, max_sequence_length=64)
    out = data["root"] / "bert"
    save_bert(str(out), encoder, tokenizer)
    return out


def _parts(bert_dir, combination="concat_last_four", pooling="first", sentences=None, **options):
    from tfpretrain.models.bert.saving import load_bert
    from tfpretrain.models.tagger import (
        TAGGER_PRESETS,
        EncoderFeatures,
        EncoderTaggingPreprocessor,
        attach_encoder,
        build_tagger,
    )

    encoder, tokenizer = load_bert(str(bert_dir))
    words = sorted({t.lower() for s in sentences or [] for t in s.tokens})
    preprocessor = EncoderTaggingPreprocessor(words, TAGS, tokenizer, 64)
    features = EncoderFeatures(encoder, combination, pooling)
    head = build_tagger(preprocessor.word_vocabulary_size, TAGS, constraint="BIO",
                        features=(features.num_stacked, features.hidden_dim, combination),
                        **{**TAGGER_PRESETS["tiny"], **options})
    return preprocessor, features, head, attach_encoder(head, features)


def _read(path):
    from tfpretrain.text.readers import read_iob2

    return read_iob2(str(path))


# --- sub-word pooling against plain Python ----------------------------------------------------------------


def test_mean_and_first_piece_pooling_match_a_python_loop():
    from tfpretrain.models.tagger.features import pool_word_pieces
    from tfpretrain.text.packing import pack_words

    pieces = tf.ragged.constant([[[5], [6, 7, 8], [9, 10]], [[11, 12], [13]], [[14, 15, 16, 17], [18], [19]]])
    packed = pack_words(pieces, 8, cls_token_id=1, sep_token_id=2)  # the third text loses its last word
    rng = np.random.default_rng(0)
    sequence = rng.normal(size=(3, 8, 4)).astype("float32")
    for pooling in ("first", "mean"):
        got = pool_word_pieces(tf.constant(sequence), packed["word_positions"], packed["word_mask"],
                               packed["padding_mask"], pooling).numpy()
        for row, text in enumerate(pieces.to_list()):
            position = 1
            for word, word_pieces in enumerate(text):
                kept = position + len(word_pieces) <= 7  # [CLS] + 6 pieces + [SEP]
                span = sequence[row, position : position + len(word_pieces)]
                expected = (span[0] if pooling == "first" else span.mean(axis=0)) if kept else np.zeros(4)
                np.testing.assert_allclose(got[row, word], expected, atol=1e-6, err_msg=f"{pooling} {row} {word}")
                position += len(word_pieces)


def test_the_stack_holds_the_layers_the_combination_reads(bert_dir):
    from tfpretrain.models.bert.saving import load_bert
    from tfpretrain.models.tagger import EncoderFeatures, EncoderTaggingPreprocessor

    encoder, tokenizer = load_bert(str(bert_dir))
    preprocessor = EncoderTaggingPreprocessor([], TAGS, tokenizer, 64)
    inputs = preprocessor(tf.constant([["The", "cat", "sat", "."], ["Hello", "", "", ""]]))
    hidden = encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})["hidden_states"]
    first = inputs["word_positions"].numpy()
    expected = {"last": [hidden[-1]], "second_to_last": [hidden[-2]], "concat_last_four": hidden[-4:],
                "sum_last_four": [sum(hidden[-4:])], "scalar_mix": hidden}
    for combination, layers in expected.items():
        stack = EncoderFeatures(encoder, combination)(inputs).numpy()  # (2, 4 words, K, 32)
        assert stack.shape == (2, 4, len(layers), 32)
        for k, layer in enumerate(layers):
            np.testing.assert_allclose(stack[0, :, k], np.asarray(layer)[0, first[0]], atol=1e-5)
            np.testing.assert_allclose(stack[1, 0, k], np.asarray(layer)[1, first[1, 0]], atol=1e-5)
        assert not stack[1, 1:].any()  # padding words are zero


def test_too_few_layers_and_unknown_options_are_clear_errors(bert_dir):
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.models.tagger import EncoderFeatures

    shallow = BertEncoder(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                          max_sequence_length=16)
    with pytest.raises(ValueError, match="at least 4 layers; this one has 2"):
        EncoderFeatures(shallow, "concat_last_four")
    with pytest.raises(ValueError, match="unknown layer combination"):
        EncoderFeatures(shallow, "first_four")
    with pytest.raises(ValueError, match="sub-word pooling"):
        EncoderFeatures(shallow, "last", "max")


# --- the cache ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combination, pooling", [("concat_last_four", "first"), ("scalar_mix", "mean")])
def test_cached_and_uncached_features_give_the_same_loss(data, bert_dir, combination, pooling):
    from tfpretrain.models.tagger import FeatureCache, tagging_dataset

    sentences = _read(data["train"])[:40]
    preprocessor, features, head, model = _parts(bert_dir, combination, pooling, sentences)
    cache = FeatureCache.compute(features, preprocessor, sentences, batch_size=7, log=lambda line: None,
                                 progress=None)
    cached = list(tagging_dataset(sentences, preprocessor, 16, features=cache))
    uncached = list(tagging_dataset(sentences, preprocessor, 16))
    assert len(cached) == len(uncached) >= 3
    for (x_cached, y_cached), (x_full, y_full) in zip(cached, uncached):
        np.testing.assert_array_equal(y_cached, y_full)
        assert "token_ids" not in x_cached and "features" not in x_full
        loss_cached = head.compute_loss(x_cached, y_cached, head(x_cached, training=False), training=False)
        loss_full = model.compute_loss(x_full, y_full, model(x_full, training=False), training=False)
        assert abs(float(loss_cached) - float(loss_full)) <= 1e-5 * max(1.0, abs(float(loss_full)))


def test_disk_and_float16_caches_hold_what_memory_holds(data, bert_dir, tmp_path):
    from tfpretrain.models.tagger import FeatureCache

    sentences = _read(data["train"])[:30]
    preprocessor, features, _, _ = _parts(bert_dir, "last", "first", sentences)
    quiet = dict(log=lambda line: None, progress=None)
    memory = FeatureCache.compute(features, preprocessor, sentences, storage="memory", **quiet)
    disk = FeatureCache.compute(features, preprocessor, sentences, storage="disk", directory=tmp_path, **quiet)
    half = FeatureCache.compute(features, preprocessor, sentences, dtype="float16", **quiet)
    assert (memory.storage, disk.storage) == ("memory", "disk") and os.path.exists(disk.path)
    assert memory.array.shape == (sum(len(s.tokens) for s in sentences), 1, 32)
    assert half.nbytes * 2 == memory.nbytes
    for i in range(len(sentences)):
        np.testing.assert_array_equal(memory.rows(i), disk.rows(i))
        np.testing.assert_allclose(half.rows(i), memory.rows(i), rtol=2e-3, atol=2e-3)
        # each sentence's rows are the encoder's answer for that sentence alone (batching changed nothing)
        alone = features(preprocessor(tf.constant([list(sentences[i].tokens)])))[0].numpy()
        np.testing.assert_allclose(memory.rows(i), alone, atol=1e-5)
    disk.close()
    assert not os.path.exists(disk.path)


def test_a_cache_for_other_sentences_is_refused(data, bert_dir):
    from tfpretrain.models.tagger import FeatureCache, tagging_dataset

    sentences = _read(data["train"])[:5]
    preprocessor, features, _, _ = _parts(bert_dir, "last", "first", sentences)
    cache = FeatureCache.compute(features, preprocessor, sentences, log=lambda line: None, progress=None)
    with pytest.raises(ValueError, match="holds 5 sentences, not 4"):
        tagging_dataset(sentences[:4], preprocessor, features=cache)


# --- training through the pipeline -----------------------------------------------------------------------


def _encoder_weights(model):
    from tfpretrain.models.tagger import EncoderFeatures

    layer = next(lay for lay in model._flatten_layers(include_self=False) if isinstance(lay, EncoderFeatures))
    return {w.path.split("/", 1)[-1]: np.array(w) for w in layer.encoder.weights}


@pytest.fixture(scope="module")
def trained(data, bert_dir):
    from tfpretrain.pipelines import train_tagger

    out = data["root"] / "tagger"
    scores = train_tagger.run(str(data["train"]), str(data["dev"]), str(out), encoder_dir=str(bert_dir),
                              layers="concat_last_four", epochs=2, preset="tiny", verbose=0, log=lambda line: None)
    return out, scores


@pytest.mark.slow
def test_a_frozen_encoder_does_not_move_and_the_head_does(trained, bert_dir):
    from tfpretrain.models.bert.saving import load_bert
    from tfpretrain.models.tagger.saving import load_tagger

    out, scores = trained
    model, preprocessor, metadata = load_tagger(str(out))
    original = {w.path.split("/", 1)[-1]: np.array(w) for w in load_bert(str(bert_dir))[0].weights}
    after = _encoder_weights(model)
    assert after.keys() == original.keys() and len(after) > 20
    for name, value in original.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert metadata["encoder"] == os.path.abspath(bert_dir) and metadata["cache"] == "memory"
    assert metadata["layers"] == "concat_last_four" and scores["feature_seconds"] > 0
    assert not any(name.endswith(".npy") for name in os.listdir(out))  # the cache is not left behind


@pytest.mark.slow
def test_fine_tune_encoder_moves_the_encoder(data, bert_dir, tmp_path):
    from tfpretrain.models.tagger.saving import load_tagger
    from tfpretrain.pipelines import train_tagger
    from tfpretrain.models.bert.saving import load_bert

    train_tagger.run(str(data["train"]), str(data["dev"]), str(tmp_path / "tuned"), encoder_dir=str(bert_dir),
                     epochs=1, preset="tiny", fine_tune_encoder=True, encoder_learning_rate=1e-3, verbose=0,
                     log=lambda line: None)
    model, _, metadata = load_tagger(str(tmp_path / "tuned"))
    original = {w.path.split("/", 1)[-1]: np.array(w) for w in load_bert(str(bert_dir))[0].weights}
    after = _encoder_weights(model)
    moved = [name for name, value in original.items() if not np.array_equal(after[name], value)]
    assert len(moved) > len(original) // 2 and metadata["cache"] is None


@pytest.mark.slow
def test_evaluate_scores_what_training_reported(trained, data):
    out, scores = trained
    result = json.loads(cli("evaluate", "--model", out, "--data", data["dev"]).stdout.strip().splitlines()[-1])
    assert result["f1"] == pytest.approx(scores["f1"], abs=1e-9)
    assert result["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-9)


@pytest.mark.slow
def test_the_saved_model_tags_as_tag_does(trained, data, tmp_path):
    out, _ = trained
    texts = [" ".join(s.tokens) for s in _read(data["dev"])[:25]] + ["", "one", "Ünïcödé ✓ 東京 " * 3]
    answers = [json.loads(line) for line in cli("tag", "--model", out, "--json",
                                                  input="\n".join(texts) + "\n").stdout.splitlines()]
    assert len(answers) == len(texts)
    version = cli("export", "--model", out, "--name", "feat", "--root", tmp_path).stdout.strip().splitlines()[-1]
    served = tf.saved_model.load(version).signatures["serving_default"]
    assert sorted(served.structured_input_signature[1]) == ["texts"]
    outputs = served(texts=tf.constant(texts))
    for i, answer in enumerate(answers):
        n = int(outputs["lengths"][i])
        assert [t.decode() for t in outputs["tags"][i, :n].numpy()] == answer["tags"]
        assert [w.decode() for w in outputs["words"][i, :n].numpy()] == answer["words"]
    alone = served(texts=tf.constant(texts[:1]))  # the batch's longest text sets the padding; answers don't move
    assert alone["tags"][0, : int(alone["lengths"][0])].numpy().tolist() == \
        outputs["tags"][0, : int(outputs["lengths"][0])].numpy().tolist()


@pytest.mark.slow
def test_the_tflite_file_tags_as_tag_does(trained, data, tmp_path):
    out, _ = trained
    texts = [" ".join(s.tokens) for s in _read(data["dev"])[:20]] + ["", "one", "Ünïcödé ✓ 東京"]
    answers = [json.loads(line) for line in cli("tag", "--model", out, "--json",
                                                  input="\n".join(texts) + "\n").stdout.splitlines()]
    path = tmp_path / "feat.tflite"
    cli("export", "--model", out, "--tflite", path)
    on_device = run_litert(path, [{"text": text} for text in texts], tmp_path)
    for answer, device in zip(answers, on_device):
        n = device["lengths"]
        assert device["words"][:n] == answer["words"] and device["tags"][:n] == answer["tags"]


@pytest.mark.slow
def test_an_ids_only_saved_model_is_refused_clearly(trained, tmp_path):
    out, _ = trained
    result = cli("export", "--model", out, "--name", "feat", "--root", tmp_path, "--ids-only", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "encoder" in result.stderr


@pytest.mark.slow
def test_the_encoder_must_be_a_pretrained_directory(trained, data, tmp_path):
    out, _ = trained
    result = cli("train-tagger", "--format", "iob2", "--train", data["train"], "--dev", data["dev"],
                 "--encoder", out, "--out", tmp_path / "x", check=False)
    assert result.returncode == 2 and "a tagger (train-tagger)" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("train-tagger", "--format", "iob2", "--train", data["train"], "--dev", data["dev"],
                 "--encoder", tmp_path / "missing", "--out", tmp_path / "y", check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("batch_size", [7, 32])
def test_batches_per_epoch_counts_what_the_dataset_makes(data, batch_size):
    """The cosine schedule's length: the batches `tagging_dataset` makes, bucket by bucket."""
    from tfpretrain.models.tagger import TaggingPreprocessor, tagging_dataset
    from tfpretrain.pipelines.train_tagger import batches_per_epoch

    sentences = _read(data["train"]) + _read(data["dev"])
    preprocessor = TaggingPreprocessor([], TAGS)
    for static_shapes in (False, True):
        made = sum(1 for _ in tagging_dataset(sentences, preprocessor, batch_size, shuffle=True, seed=3,
                                              static_shapes=static_shapes))
        assert batches_per_epoch(sentences, batch_size) == made


def test_encoder_options_without_an_encoder_are_refused(data, tmp_path):
    from tfpretrain.pipelines import train_tagger

    with pytest.raises(ValueError, match="--layers, --fine-tune-encoder apply to a BERT encoder's features"):
        train_tagger.run(str(data["train"]), str(data["dev"]), str(tmp_path / "x"), layers="concat_last_four",
                         fine_tune_encoder=True, epochs=1, preset="tiny", verbose=0, log=lambda line: None)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_new_user_tags_upos_on_real_minilm_features(shared_data, minilm_dir, tmp_path):
    """The issue's walk-through on the real checkpoint and CoNLL-U: import-hf, train-tagger --encoder, evaluate, tag."""
    ewt = shared_data / "ud_english_ewt"
    train = write_sentences(ewt / "train.conllu", tmp_path / "train.conllu", 0, 150)
    dev = write_sentences(ewt / "dev.conllu", tmp_path / "dev.conllu", 0, 60)
    cli("import-hf", "--from", minilm_dir, "--out", tmp_path / "minilm")
    result = cli("train-tagger", "--format", "conllu", "--column", "upos", "--train", train, "--dev", dev,
                 "--encoder", tmp_path / "minilm", "--layers", "concat_last_four", "--epochs", 6, "--batch-size", 8,
                 "--out", tmp_path / "upos")
    assert "Computing the encoder's features of 150 sentences once" in result.stdout
    recorded = json.loads((tmp_path / "upos" / "tagger.json").read_text(encoding="utf-8"))
    assert (recorded["learning_rate"], recorded["schedule"], recorded["cache"]) == (1e-3, "cosine", "memory")
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["accuracy"] > 0.6  # 17 tags; 150 sentences, 6 epochs of 19 batches (NOUN alone is about 17%)
    evaluated = json.loads(cli("evaluate", "--model", tmp_path / "upos", "--data", dev).stdout.splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-9)
    tagged = cli("tag", "--model", tmp_path / "upos", "The quick brown fox jumps over the lazy dog .").stdout
    assert [line.split("\t")[0] for line in tagged.strip().splitlines()] == \
        "The quick brown fox jumps over the lazy dog .".split()
