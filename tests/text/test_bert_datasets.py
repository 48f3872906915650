"""Masked-LM pretraining batches from text files: shapes, content, splits, reproducibility, streaming."""

import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.models.bert import masked_lm_dataset
from tfpretrain.text import MaskedLMMasker, WordPieceTokenizer
from tfpretrain.text.readers import DataFormatError

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "home", "un", "##believ", "##able", "##s"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


def make_masker(tokenizer, **kwargs):
    kwargs.setdefault("max_selections", 4)
    return MaskedLMMasker(tokenizer.vocabulary_size(), tokenizer.mask_token_id,
                          [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id], **kwargs)


def unmask(x, mask_ids, mask_weights):
    """The token ids before masking: the targets written back at their positions."""
    token_ids = x["token_ids"].numpy().copy()
    for i in range(len(token_ids)):
        targets = zip(x["mask_positions"][i].numpy(), mask_ids[i].numpy(), mask_weights[i].numpy())
        for position, token, weight in targets:
            if weight:
                token_ids[i, position] = token
    return token_ids


def test_batches_are_the_token_stream_framed_and_masked(tokenizer, corpus):
    path, lines = corpus
    dataset = masked_lm_dataset([path], tokenizer, make_masker(tokenizer), sequence_length=12, batch_size=4,
                                shuffle_buffer=0, repeat=False)
    spec = dataset.element_spec
    assert spec[0]["token_ids"].shape.as_list() == [4, 12] and spec[0]["mask_positions"].shape.as_list() == [4, 4]
    assert spec[1].shape.as_list() == [4, 4] and spec[2].dtype == tf.float32
    stream = tokenizer(tf.constant(lines)).flat_values.numpy()
    bodies = []
    for x, mask_ids, mask_weights in dataset:
        original = unmask(x, mask_ids, mask_weights)
        assert np.all(original[:, 0] == tokenizer.cls_token_id) and np.all(original[:, -1] == tokenizer.sep_token_id)
        assert np.all(x["padding_mask"].numpy()) and not np.any(x["segment_ids"].numpy())
        assert np.all(mask_weights.numpy().sum(axis=1) == 2)  # round(0.15 * 10)
        changed = x["token_ids"].numpy() != original
        assert changed.sum() > 0
        bodies.append(original[:, 1:-1].reshape(-1))
    bodies = np.concatenate(bodies)
    assert len(stream) - len(bodies) < 4 * 10  # only the tail that fills no batch is dropped
    np.testing.assert_array_equal(bodies, stream[: len(bodies)])


def test_train_and_heldout_split_every_kth_line(tokenizer, tmp_path):
    lines = [f"{'cat' if i % 5 == 0 else 'dog'} sat" for i in range(200)]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    masker = make_masker(tokenizer, mask_token_rate=0.0, random_token_rate=0.0)

    def tokens(split):
        dataset = masked_lm_dataset([path], tokenizer, masker, sequence_length=6, batch_size=2, shuffle_buffer=0,
                                    repeat=False, split=split, heldout_every=5)
        return np.concatenate([x["token_ids"].numpy()[:, 1:-1].reshape(-1) for x, _, _ in dataset])

    cat, dog = tokenizer.token_to_id("cat"), tokenizer.token_to_id("dog")
    heldout, train = tokens("heldout"), tokens("train")
    assert set(heldout) == {cat, tokenizer.token_to_id("sat")} and len(heldout) == 80
    assert cat not in set(train) and dog in set(train) and len(train) == 320
    with pytest.raises(ValueError, match="unknown split"):
        masked_lm_dataset([path], tokenizer, masker, split="dev")


def test_same_seed_same_batches_different_seed_different(tokenizer, corpus):
    path, _ = corpus

    def first_batches(seed, masker_seed):
        dataset = masked_lm_dataset([path], tokenizer, make_masker(tokenizer, seed=masker_seed), sequence_length=10,
                                    batch_size=4, shuffle_buffer=50, seed=seed)
        return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(5)]

    a, b = first_batches(1, 1), first_batches(1, 1)
    for left, right in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_array_equal(left, right)
    other_shuffle = first_batches(2, 1)
    assert not np.array_equal(a[0][0]["token_ids"], other_shuffle[0][0]["token_ids"])
    other_masks = first_batches(1, 2)
    assert not np.array_equal(a[0][0]["mask_positions"], other_masks[0][0]["mask_positions"])


def test_repeat_cycles_with_fresh_masks(tokenizer, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("the cat sat on the mat .\n" * 3, encoding="utf-8")
    masker = make_masker(tokenizer)
    once = list(masked_lm_dataset([path], tokenizer, masker, sequence_length=9, batch_size=1, shuffle_buffer=0,
                                  repeat=False))
    assert len(once) == 3  # 24 pieces, 7 per sequence
    repeated = list(masked_lm_dataset([path], tokenizer, masker, sequence_length=9, batch_size=1,
                                      shuffle_buffer=0).take(40))
    positions = {tuple(x["mask_positions"].numpy()[0]) for x, _, _ in repeated}
    assert len(repeated) == 40 and len(positions) > 3


def test_whole_word_masking_through_the_dataset(tokenizer, corpus):
    path, _ = corpus
    masker = make_masker(tokenizer, whole_word=True, max_selections=6, selection_rate=0.3)
    dataset = masked_lm_dataset([path], tokenizer, masker, sequence_length=16, batch_size=8, shuffle_buffer=0)
    believ = tokenizer.token_to_id("##believ")
    split_checked = 0
    for x, mask_ids, mask_weights in dataset.take(20):
        original = unmask(x, mask_ids, mask_weights)
        starts = tokenizer.word_starts(tf.constant(original)).numpy()
        for i in range(len(original)):
            selected = set(x["mask_positions"].numpy()[i][mask_weights.numpy()[i] > 0].tolist())
            for position in np.flatnonzero(original[i] == believ):
                word = [position - 1] if position > 1 and starts[i, position - 1] else []
                word += [position] + ([position + 1] if position + 1 < 15 and not starts[i, position + 1] else [])
                hit = selected & set(word)
                assert not hit or hit == set(word)
                split_checked += bool(hit)
    assert split_checked > 0


def test_streams_lazily_and_reports_bad_files(tokenizer, tmp_path):
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write(b"the cat sat on the mat .\n" * 5000)
        f.write(b"bad \xff byte\n")  # read_text raises when it gets here
    masker = make_masker(tokenizer)
    dataset = masked_lm_dataset([path], tokenizer, masker, sequence_length=16, batch_size=4, shuffle_buffer=10)
    x, _, _ = next(iter(dataset))  # the first batch comes before the bad line is read
    assert x["token_ids"].shape == (4, 16)
    with pytest.raises((DataFormatError, tf.errors.InvalidArgumentError, tf.errors.UnknownError)):
        for _ in masked_lm_dataset([path], tokenizer, masker, sequence_length=16, batch_size=4, repeat=False):
            pass
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        masked_lm_dataset([tmp_path / "missing.txt"], tokenizer, masker)


def test_real_corpus_with_the_minilm_vocabulary(shared_data, minilm_dir):
    import os

    tokenizer = WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"))
    masker = make_masker(tokenizer, max_selections=20)
    dataset = masked_lm_dataset([shared_data / "ud_english_ewt" / "dev.conllu"], tokenizer, masker,
                                sequence_length=128, batch_size=8, split="train")
    x, mask_ids, mask_weights = next(iter(dataset))
    assert x["token_ids"].shape == (8, 128) and mask_ids.shape == (8, 20)
    assert np.all(mask_weights.numpy().sum(axis=1) == 19)  # round(0.15 * 126)
    assert np.mean(x["token_ids"].numpy() == tokenizer.mask_token_id) > 0.1
    assert np.mean(x["token_ids"].numpy() == tokenizer.unk_token_id) < 0.01
