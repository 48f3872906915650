"""Fine-tuning's batches (cut to their longest, sorted by length) and recipe (one rate per group, the best epoch).

A tiny random BERT on real UNER sentences: cut batches must give the answers
of full-length ones; each optimizer group's first Adam step must move its
weights by its own rate (Adam's first step is ``rate * sign(gradient)``, an
oracle independent of our code); `KeepBest` must put back the best epoch.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_BERT_ENCODER
from tfpretrain.models.bert.preprocessor import encode_texts, encode_words, text_dataset, word_dataset
from tfpretrain.models.fine_tuning import fine_tuning_optimizer, layer_groups
from tfpretrain.models.task_model import build_task_model, input_dtypes
from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES, bucket_lengths
from tfpretrain.training.callbacks import KeepBest

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
LENGTH = 128


@pytest.fixture(scope="module")
def sentences(shared_data):
    from tfpretrain.text.readers import read_iob2

    return read_iob2(str(shared_data / "uner_english_ewt" / "dev.iob2"))[:300]


@pytest.fixture(scope="module")
def tokenizer(sentences):
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    return WordPieceTokenizer(learn_wordpiece_vocabulary([" ".join(s.tokens) for s in sentences], 800))


def _tagger(tokenizer, crf=True, seed=1):
    from tfpretrain.models.bert.encoder import BertEncoder

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **TINY_BERT_ENCODER)
    options = {"tags": TAGS, "crf": crf, "constraint": "BIO" if crf else None, "sequence_length": LENGTH}
    return build_task_model("tag", encoder, options), encoder


def _padding(batches):
    """Padding pieces over all batches, and every example's real pieces (as sorted tuples)."""
    padding, examples = 0, []
    for x, _, _ in batches:
        mask = x["padding_mask"].numpy().astype(bool)
        padding += int(mask.size - mask.sum())
        examples += [tuple(row[m]) for row, m in zip(x["token_ids"].numpy(), mask)]
    return padding, sorted(examples)


@pytest.mark.parametrize("static_shapes", [False, True])
def test_batches_are_cut_and_training_batches_sorted(tokenizer, sentences, static_shapes):
    model, _ = _tagger(tokenizer)
    common = dict(tokenizer=tokenizer, sequence_length=LENGTH, batch_size=16, input_dtypes=input_dtypes(model),
                  tags=TAGS, static_shapes=static_shapes)
    in_order = list(word_dataset(sentences, **common))
    shuffled = list(word_dataset(sentences, shuffle=True, seed=3, **common))
    assert len(in_order) == len(shuffled) == 19  # ceil(300 / 16): nothing dropped, nothing added
    for x, gold, _ in in_order + shuffled:
        pieces = x["padding_mask"].numpy().sum(axis=1)
        words = x["word_mask"].numpy().sum(axis=1)
        width = x["token_ids"].shape[1]
        if static_shapes:
            assert width == min(b for b in bucket_lengths(DEFAULT_BUCKET_BOUNDARIES, LENGTH) if b >= pieces.max())
            assert x["word_mask"].shape[1] == width - 2
        else:
            assert width == pieces.max() and x["word_mask"].shape[1] == words.max()
        assert gold.shape == x["word_mask"].shape
        np.testing.assert_array_equal(gold.numpy() >= 0, x["word_mask"].numpy() > 0)
    padding_in_order, examples_in_order = _padding(in_order)
    padding_sorted, examples_sorted = _padding(shuffled)
    assert examples_sorted == examples_in_order  # the same 300 sentences, each once
    if not static_shapes:
        assert padding_sorted < 0.25 * padding_in_order, (padding_sorted, padding_in_order)
    # A new epoch reshuffles.
    again = list(word_dataset(sentences, shuffle=True, seed=3, **common))
    assert [b[0]["token_ids"].shape for b in again] == [b[0]["token_ids"].shape for b in shuffled]
    data = word_dataset(sentences, shuffle=True, seed=3, **common)
    first, second = [[b[0]["token_ids"].numpy().tolist() for b in data] for _ in range(2)]
    assert first != second


@pytest.mark.parametrize("static_shapes", [False, True])
def test_cut_batches_give_the_full_length_answers(tokenizer, sentences, static_shapes):
    """The tagger's per-word scores and the classifier's logits on cut batches equal those at full length."""
    model, encoder = _tagger(tokenizer)
    dtypes = input_dtypes(model)
    words = [list(s.tokens) for s in sentences[:48]]
    data = word_dataset(words, tokenizer, LENGTH, 16, dtypes, static_shapes=static_shapes)
    widths = []
    for index, (x, _, _) in enumerate(data):
        batch = tf.ragged.constant(words[16 * index:16 * (index + 1)])
        full, _ = encode_words(tokenizer, batch, LENGTH)
        full = {name: tf.cast(full[name], dtype) for name, dtype in dtypes.items()}
        expected = model(full)["potentials"].numpy()
        cut = model(x)["potentials"].numpy()
        width = cut.shape[1]
        widths.append(width)
        np.testing.assert_allclose(cut, expected[:, :width], atol=1e-5)
        np.testing.assert_array_equal(model(x)["tag_ids"].numpy(), model(full)["tag_ids"].numpy()[:, :width])
    assert min(widths) < LENGTH // 2, widths  # the check compared cut batches

    classifier = build_task_model("classify", encoder, {"labels": ["0", "1"], "sequence_length": LENGTH})
    texts = [" ".join(w) for w in words]
    dtypes = input_dtypes(classifier)
    data = text_dataset([(t,) for t in texts], tokenizer, LENGTH, 16, dtypes, static_shapes=static_shapes)
    for index, (x, _, _) in enumerate(data):
        full, _ = encode_texts(tokenizer, (tf.constant(texts[16 * index:16 * (index + 1)]),), LENGTH)
        full = {name: tf.cast(full[name], dtype) for name, dtype in dtypes.items()}
        np.testing.assert_allclose(classifier(x).numpy(), classifier(full).numpy(), atol=1e-5)


def test_layer_groups_are_embeddings_blocks_and_head(tokenizer):
    model, encoder = _tagger(tokenizer)
    groups = [[layer.name for layer in group] for group in layer_groups(model, encoder)]
    assert len(groups) == 1 + TINY_BERT_ENCODER["num_layers"] + 1
    assert "token_embedding" in groups[0] and "embeddings_layer_norm" in groups[0]
    assert groups[1:-1] == [["transformer_layer_0"], ["transformer_layer_1"]]
    assert set(groups[-1]) == {"pooler", "potentials", "crf"}
    every = [variable.path for group in layer_groups(model, encoder) for layer in group for variable in layer.weights]
    assert sorted(every) == sorted(v.path for v in model.weights if "seed_generator" not in v.path)


def _max_step(before, after, prefix):
    changes = [np.max(np.abs(after[p] - before[p])) for p in before if p.startswith(prefix)]
    assert changes, prefix
    return max(changes)


def test_each_group_takes_a_first_adam_step_of_its_own_rate(tokenizer, sentences):
    """Adam's first update is rate * sign(gradient): each group's largest change is its rate."""
    model, encoder = _tagger(tokenizer)
    rate, head, crf, decay = 1e-4, 3e-3, 2e-2, 4.0
    optimizer = fine_tuning_optimizer(model, encoder, rate, total_steps=10, head_learning_rate=head,
                                      crf_learning_rate=crf, warmup_fraction=0.0, decay=decay)
    model.compile(optimizer=optimizer)
    x, y, _ = next(iter(word_dataset(sentences[:32], tokenizer, LENGTH, 32, input_dtypes(model), tags=TAGS)))
    before = {v.path: v.numpy().copy() for v in model.trainable_weights}
    model.train_on_batch(x, y)
    after = {v.path: v.numpy() for v in model.trainable_weights}
    expected = {"crf/": crf, "potentials/": head, "transformer_layer_1/": rate,
                "transformer_layer_0/": rate / decay, "embeddings_layer_norm/": rate / decay**2,
                "token_embedding/": rate / decay**2}  # each row once, as a dense gradient has it
    paths = sorted(before)
    for prefix, value in expected.items():
        matching = [p for p in paths if p.startswith(prefix)]
        assert matching, (prefix, paths[:10])
        assert max(np.max(np.abs(after[p] - before[p])) for p in matching) == pytest.approx(value, rel=0.02), prefix


def test_slanted_schedule_and_bad_settings(tokenizer):
    model, encoder = _tagger(tokenizer, crf=False)
    optimizer = fine_tuning_optimizer(model, encoder, 1e-4, total_steps=100, schedule="slanted")
    assert sorted(optimizer.group_learning_rates()) == pytest.approx(sorted([1e-4 / 32] * 3 + [1e-3 / 32]))
    with pytest.raises(ValueError, match="schedule must be one of linear, slanted"):
        fine_tuning_optimizer(model, encoder, 1e-4, 100, schedule="cosine")
    with pytest.raises(ValueError, match="warmup_fraction"):
        fine_tuning_optimizer(model, encoder, 1e-4, 100, warmup_fraction=1.0)
    with pytest.raises(ValueError, match="decay must be at least 1"):
        fine_tuning_optimizer(model, encoder, 1e-4, 100, decay=0.5)


def test_keep_best_puts_back_the_best_epoch_and_resumes_knowing_it(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    keep = KeepBest(tmp_path, "val_accuracy")
    keep.set_model(model)
    keep.on_train_begin()
    weights = {}
    for epoch, score in enumerate([0.5, 0.8, 0.7]):
        model.layers[0].kernel.assign(np.full((2, 1), float(epoch), "float32"))
        weights[epoch] = model.get_weights()
        keep.on_epoch_end(epoch, {"val_accuracy": score})
    keep.on_train_end()
    assert (keep.best_epoch, keep.best_score) == (2, 0.8)
    np.testing.assert_array_equal(model.get_weights()[0], weights[1][0])
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 2

    resumed = KeepBest(tmp_path, "val_accuracy")  # a run restarted after epoch 3
    resumed.set_model(model)
    resumed.on_train_begin()
    assert (resumed.best_epoch, resumed.best_score) == (2, 0.8)
    model.layers[0].kernel.assign(np.full((2, 1), 9.0, "float32"))
    resumed.on_epoch_end(3, {"val_accuracy": 0.8})  # a tie keeps the earlier epoch
    resumed.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], weights[1][0])
    with pytest.raises(ValueError, match="KeepBest monitors 'val_accuracy', which the epoch's logs lack"):
        resumed.on_epoch_end(4, {"loss": 1.0})
