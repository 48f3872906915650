"""Masked-LM corruption: rates pinned to 0 and 1, statistics on many tokens, reproducibility, whole words."""

import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_preprocessing_test
from tfpretrain.text import MaskedLMMasker

VOCABULARY_SIZE, PAD, CLS, SEP, MASK = 1000, 0, 2, 3, 4
SPECIAL = [PAD, CLS, SEP]


def make_masker(**kwargs):
    return MaskedLMMasker(VOCABULARY_SIZE, MASK, SPECIAL, **kwargs)


def random_batch(rng, batch, length, min_real=1):
    """[CLS] random ids [SEP] [PAD]...; each row has at least ``min_real`` ordinary tokens."""
    rows = []
    for _ in range(batch):
        real = rng.integers(min_real, length - 1)
        rows.append([CLS] + list(rng.integers(5, VOCABULARY_SIZE, size=real)) + [SEP] + [PAD] * (length - real - 2))
    return np.array(rows, dtype=np.int32)


def expected_count(num_candidates, rate, max_selections):
    return 0 if num_candidates == 0 else min(max_selections, max(1, round(rate * num_candidates)))


def numpy(out):
    return {name: value.numpy() for name, value in out.items()}


def test_counts_follow_bert_and_specials_are_never_selected():
    rng = np.random.default_rng(0)
    token_ids = random_batch(rng, 200, 64)
    out = numpy(make_masker(max_selections=8)(token_ids, None, 0))
    for i in range(len(token_ids)):
        candidates = np.isin(token_ids[i], SPECIAL, invert=True)
        count = int(out["mask_weights"][i].sum())
        assert count == expected_count(candidates.sum(), 0.15, 8)
        positions = out["mask_positions"][i, :count]
        assert np.all(np.diff(positions) > 0) and np.all(candidates[positions])
        np.testing.assert_array_equal(out["mask_ids"][i, :count], token_ids[i, positions])
        assert np.all(out["mask_positions"][i, count:] == 0) and np.all(out["mask_ids"][i, count:] == 0)
        unselected = np.ones(64, bool)
        unselected[positions] = False
        np.testing.assert_array_equal(out["token_ids"][i, unselected], token_ids[i, unselected])
    assert out["mask_positions"].shape == (200, 8) and out["mask_weights"].dtype == np.float32


def test_row_without_candidates_selects_nothing():
    out = numpy(make_masker()(np.array([[CLS, SEP, PAD, PAD]], np.int32), None, 0))
    assert out["mask_weights"].sum() == 0 and out["token_ids"].tolist() == [[CLS, SEP, PAD, PAD]]


def test_rates_pinned_to_zero_and_one():
    rng = np.random.default_rng(1)
    token_ids = random_batch(rng, 50, 32)
    candidates = np.isin(token_ids, SPECIAL, invert=True)

    everything = numpy(make_masker(selection_rate=1.0, max_selections=32, mask_token_rate=1.0,
                                   random_token_rate=0.0)(token_ids, None, 0))
    np.testing.assert_array_equal(everything["mask_weights"].sum(axis=1), candidates.sum(axis=1))
    np.testing.assert_array_equal(everything["token_ids"], np.where(candidates, MASK, token_ids))

    # selection_rate 0 still picks one token per row, as BERT's max(1, round(...)).
    one = numpy(make_masker(selection_rate=0.0)(token_ids, None, 0))
    assert np.all(one["mask_weights"].sum(axis=1) == 1)

    kept = numpy(make_masker(mask_token_rate=0.0, random_token_rate=0.0)(token_ids, None, 0))
    np.testing.assert_array_equal(kept["token_ids"], token_ids)
    assert kept["mask_weights"].sum() > 0

    randomised = numpy(make_masker(selection_rate=1.0, max_selections=32, mask_token_rate=0.0,
                                   random_token_rate=1.0)(token_ids, None, 0))
    replaced = randomised["token_ids"][candidates]
    assert not np.any(np.isin(replaced, SPECIAL + [MASK]))
    assert np.mean(replaced != token_ids[candidates]) > 0.99  # 1 in 995 may redraw the same id
    np.testing.assert_array_equal(randomised["token_ids"][~candidates], token_ids[~candidates])


def test_statistics_on_many_tokens():
    rng = np.random.default_rng(2)
    token_ids = np.concatenate([[[CLS]] * 4000, rng.integers(5, VOCABULARY_SIZE, size=(4000, 126)),
                                [[SEP]] * 4000], axis=1).astype(np.int32)
    out = numpy(make_masker(max_selections=20, seed=3)(token_ids, None, 0))
    weights = out["mask_weights"] > 0
    assert np.all(weights.sum(axis=1) == 19)  # round(0.15 * 126)
    positions = out["mask_positions"][weights]
    original = out["mask_ids"][weights]
    now = np.take_along_axis(out["token_ids"], out["mask_positions"], axis=1)[weights]
    n = len(positions)
    masked, unchanged = np.mean(now == MASK), np.mean(now == original)
    randomised = 1 - masked - unchanged
    tolerance = 4 * np.sqrt(0.1 * 0.9 / n)
    assert abs(masked - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n)
    assert abs(randomised - 0.1) < tolerance + 0.001  # a random id may equal the original (1 in 995)
    assert abs(unchanged - 0.1) < tolerance + 0.001
    # Every non-special position is equally likely to be selected.
    counts = np.bincount(positions, minlength=128)
    assert counts[0] == 0 and counts[127] == 0
    expected = n / 126
    assert np.all(np.abs(counts[1:127] - expected) < 5 * np.sqrt(expected))
    # Random replacements spread over the vocabulary.
    replacements = now[(now != MASK) & (now != original)]
    assert len(np.unique(replacements)) > 0.9 * min(len(replacements), VOCABULARY_SIZE - 4) * 0.5


def test_reproducible_and_seeded_per_element():
    rng = np.random.default_rng(4)
    token_ids = random_batch(rng, 16, 40, min_real=20)
    masker = make_masker(seed=5)
    first, again = numpy(masker(token_ids, None, 0)), numpy(make_masker(seed=5)(token_ids, None, 0))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    other_seed = numpy(make_masker(seed=6)(token_ids, None, 0))
    assert not np.array_equal(other_seed["mask_positions"], first["mask_positions"])
    same_rows = np.repeat(token_ids[:1], 16, axis=0)
    per_row = numpy(masker(same_rows, None, 0))["mask_positions"]
    assert len({tuple(r) for r in per_row}) > 12  # different element index, different masks
    # A row's masks depend only on its element index, not on its batch.
    shifted = numpy(masker(token_ids[5:9], None, 5))
    explicit = numpy(masker(token_ids[5:9], None, tf.constant([5, 6, 7, 8], tf.int64)))
    single = numpy(masker(token_ids[7], None, 7))
    for name in first:
        np.testing.assert_array_equal(shifted[name], first[name][5:9])
        np.testing.assert_array_equal(explicit[name], first[name][5:9])
        np.testing.assert_array_equal(single[name], first[name][7])


@pytest.mark.parametrize("whole_word", [False, True])
def test_direct_mapped_then_batched_and_batched_then_mapped_agree(whole_word):
    rng = np.random.default_rng(7)
    token_ids = random_batch(rng, 24, 30, min_real=10)
    word_starts = rng.random(token_ids.shape) < 0.6
    masker = make_masker(whole_word=whole_word, seed=8)
    run_preprocessing_test(masker, (token_ids, word_starts), with_index=True, batch_size=8, num_parallel_calls=4)


def words_of(token_ids, word_starts):
    """Pure Python: lists of positions, one per word (a start and the continuations after it)."""
    words, current = [], None
    for position, (token, start) in enumerate(zip(token_ids, word_starts)):
        if token in SPECIAL:
            current = None
            continue
        if start or current is None:
            current = [position]
            words.append(current)
        else:
            current.append(position)
    return words


def test_whole_word_never_splits_a_word():
    rng = np.random.default_rng(9)
    token_ids = random_batch(rng, 300, 48, min_real=5)
    word_starts = rng.random(token_ids.shape) < 0.4  # long words: up to many pieces
    out = numpy(make_masker(whole_word=True, max_selections=10, seed=1)(token_ids, word_starts, 0))
    multi_piece_words_selected = 0
    for i in range(len(token_ids)):
        selected = set(out["mask_positions"][i][out["mask_weights"][i] > 0].tolist())
        candidates = int(np.isin(token_ids[i], SPECIAL, invert=True).sum())
        assert len(selected) <= expected_count(candidates, 0.15, 10)
        for word in words_of(token_ids[i], word_starts[i]):
            hit = selected & set(word)
            assert not hit or hit == set(word), f"row {i} splits word {word}: selected {sorted(selected)}"
            multi_piece_words_selected += bool(hit) and len(word) > 1
        # Greedy within the budget: no unselected word would still have fitted... unless none is left.
        budget = expected_count(candidates, 0.15, 10)
        left = [len(w) for w in words_of(token_ids[i], word_starts[i]) if not set(w) & selected]
        assert not left or min(left) > budget - len(selected)
    assert multi_piece_words_selected > 50


def test_whole_word_with_single_piece_words_counts_like_token_masking():
    rng = np.random.default_rng(10)
    token_ids = random_batch(rng, 100, 40)
    out = numpy(make_masker(whole_word=True)(token_ids, np.ones_like(token_ids, bool), 0))
    plain = numpy(make_masker()(token_ids, None, 0))
    np.testing.assert_array_equal(out["mask_weights"].sum(axis=1), plain["mask_weights"].sum(axis=1))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="word_starts"):
        make_masker(whole_word=True)(np.array([[CLS, 7, SEP]], np.int32), None, 0)
    with pytest.raises(ValueError, match="at most 1"):
        make_masker(mask_token_rate=0.8, random_token_rate=0.3)
    with pytest.raises(ValueError, match="selection_rate"):
        make_masker(selection_rate=1.5)


def test_static_shapes_in_a_graph():
    masker = make_masker(max_selections=6)
    spec = tf.TensorSpec([None, 16], tf.int32)
    concrete = tf.function(lambda x: masker(x, None, 0)).get_concrete_function(spec)
    assert concrete.structured_outputs["mask_positions"].shape.as_list() == [None, 6]
    assert concrete.structured_outputs["token_ids"].shape.as_list() == [None, 16]
    short = numpy(masker(np.array([[CLS, 7, 8, SEP]], np.int32), None, 0))  # fewer positions than max_selections
    assert short["mask_positions"].shape == (1, 6)
