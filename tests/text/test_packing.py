"""Packing ``[CLS] a [SEP] (b [SEP])`` and word alignment against brute force and keras-hub."""

import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_preprocessing_test
from tfpretrain.text import pack_segments, pack_words

CLS, SEP, PAD = 101, 102, 0


def reference_pack(a, b, sequence_length, truncation):
    """Pure Python: hand out room one piece at a time (round robin) or fill a first (waterfall)."""
    segments = [a] if b is None else [a, b]
    budget = sequence_length - len(segments) - 1
    keep = [0] * len(segments)
    if truncation == "waterfall":
        for i, s in enumerate(segments):
            keep[i] = min(len(s), budget - sum(keep))
    else:
        while sum(keep) < budget and any(k < len(s) for k, s in zip(keep, segments)):
            for i, s in enumerate(segments):
                if keep[i] < len(s) and sum(keep) < budget:
                    keep[i] += 1
    tokens, segment_ids = [CLS], [0]
    for i, (s, k) in enumerate(zip(segments, keep)):
        tokens += list(s[:k]) + [SEP]
        segment_ids += [i] * (k + 1)
    padding = sequence_length - len(tokens)
    return tokens + [PAD] * padding, segment_ids + [0] * padding, [True] * len(tokens) + [False] * padding


def random_segments(rng, batch, max_length):
    return [list(rng.integers(1000, 2000, size=rng.integers(0, max_length + 1))) for _ in range(batch)]


@pytest.mark.parametrize("truncation", ["round_robin", "waterfall"])
@pytest.mark.parametrize("pair", [False, True])
def test_pack_segments_equals_brute_force(truncation, pair):
    rng = np.random.default_rng(0)
    for sequence_length in (3, 4, 8, 16):
        a = random_segments(rng, 40, 14)
        b = random_segments(rng, 40, 14) if pair else [None] * 40
        if pair and sequence_length == 3:
            continue
        segments = (tf.ragged.constant(a, dtype=tf.int32),) + ((tf.ragged.constant(b, dtype=tf.int32),) if pair else ())
        packed = pack_segments(segments, sequence_length, CLS, SEP, PAD, truncation=truncation)
        for i in range(40):
            tokens, segment_ids, mask = reference_pack(a[i], b[i], sequence_length, truncation)
            assert packed["token_ids"][i].numpy().tolist() == tokens
            assert packed["segment_ids"][i].numpy().tolist() == segment_ids
            assert packed["padding_mask"][i].numpy().tolist() == mask
        assert packed["token_ids"].shape == (40, sequence_length) and packed["token_ids"].dtype == tf.int32


@pytest.mark.parametrize("truncation", ["round_robin", "waterfall"])
def test_pack_segments_equals_keras_hub(truncation):
    keras_hub = pytest.importorskip("keras_hub")
    rng = np.random.default_rng(1)
    a = tf.ragged.constant(random_segments(rng, 64, 20), dtype=tf.int32)
    b = tf.ragged.constant(random_segments(rng, 64, 20), dtype=tf.int32)
    packer = keras_hub.layers.MultiSegmentPacker(
        24, start_value=CLS, end_value=SEP, pad_value=PAD, truncate=truncation)
    token_ids, segment_ids = packer((a, b))
    ours = pack_segments((a, b), 24, CLS, SEP, PAD, truncation=truncation)
    np.testing.assert_array_equal(ours["token_ids"], token_ids)
    np.testing.assert_array_equal(ours["segment_ids"], segment_ids)


def test_round_robin_keeps_the_short_segment_whole():
    packed = pack_segments((tf.ragged.constant([[1] * 30]), tf.ragged.constant([[2] * 5])), 16, CLS, SEP)
    tokens = packed["token_ids"][0].numpy().tolist()
    assert tokens.count(2) == 5 and tokens.count(1) == 16 - 3 - 5


def test_pack_segments_direct_mapped_batched_agree():
    rng = np.random.default_rng(2)
    a = random_segments(rng, 12, 10)
    run_preprocessing_test(lambda x: pack_segments((x,), 8, CLS, SEP), tf.ragged.constant(a, dtype=tf.int32))


def test_pack_segments_rejects_bad_arguments():
    a = tf.ragged.constant([[1, 2]])
    with pytest.raises(ValueError, match="cannot hold"):
        pack_segments((a, a), 2, CLS, SEP)
    with pytest.raises(ValueError, match="unknown truncation"):
        pack_segments((a,), 8, CLS, SEP, truncation="longest")
    with pytest.raises(ValueError, match="1 or 2 segments"):
        pack_segments((a, a, a), 8, CLS, SEP)


def reference_pack_words(words, sequence_length):
    """Pure Python: whole words while they fit in sequence_length - 2."""
    tokens, positions = [CLS], []
    for pieces in words:
        if len(tokens) - 1 + len(pieces) > sequence_length - 2:
            break
        positions.append(len(tokens))
        tokens += pieces
    tokens.append(SEP)
    return tokens + [PAD] * (sequence_length - len(tokens)), positions, len(words) - len(positions)


def test_pack_words_equals_brute_force():
    rng = np.random.default_rng(3)
    batch = [[list(rng.integers(1000, 2000, size=rng.integers(1, 4))) for _ in range(rng.integers(0, 9))]
             for _ in range(50)]
    word_pieces = tf.ragged.constant(batch, dtype=tf.int32, ragged_rank=2)
    for sequence_length in (2, 5, 12, 32):
        packed = pack_words(word_pieces, sequence_length, CLS, SEP, PAD)
        max_words = max(len(words) for words in batch)
        assert packed["word_positions"].shape == (50, max_words)
        for i, words in enumerate(batch):
            tokens, positions, truncated = reference_pack_words(words, sequence_length)
            assert packed["token_ids"][i].numpy().tolist() == tokens
            kept = len(positions)
            assert packed["word_positions"][i].numpy().tolist() == positions + [0] * (max_words - kept)
            assert packed["word_mask"][i].numpy().tolist() == [True] * kept + [False] * (max_words - kept)
            assert int(packed["num_words_truncated"][i]) == truncated
            assert packed["padding_mask"][i].numpy().sum() == len([t for t in tokens if t != PAD])


def test_pack_words_static_max_words_counts_cut_words():
    word_pieces = tf.ragged.constant([[[5], [6, 7], [8]], [[9]]], dtype=tf.int32, ragged_rank=2)
    packed = pack_words(word_pieces, 16, CLS, SEP, max_words=2)
    assert packed["word_positions"].numpy().tolist() == [[1, 2], [1, 0]]
    assert packed["num_words_truncated"].numpy().tolist() == [1, 0]
    assert packed["token_ids"][0].numpy().tolist()[:5] == [CLS, 5, 6, 7, SEP]
    wide = pack_words(word_pieces, 16, CLS, SEP, max_words=5)
    assert wide["word_mask"].numpy().tolist() == [[True] * 3 + [False] * 2, [True] + [False] * 4]


def test_pack_words_points_at_first_pieces_of_real_words(shared_data, minilm_dir):
    import os

    from tfpretrain.text import WordPieceTokenizer, tokenize
    from tfpretrain.text.readers import read_text

    tokenizer = WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"))
    texts = list(read_text(shared_data / "ud_english_ewt" / "dev.conllu"))[:64]
    word_pieces = tokenizer.tokenize_words(tokenize(tf.constant(texts)))
    packed = pack_words(word_pieces, 24, tokenizer.cls_token_id, tokenizer.sep_token_id)
    first_pieces = word_pieces[:, :, :1].merge_dims(1, 2).to_tensor(-1).numpy()
    gathered = np.take_along_axis(packed["token_ids"].numpy(), packed["word_positions"].numpy(), axis=1)
    mask = packed["word_mask"].numpy()
    np.testing.assert_array_equal(gathered[mask], first_pieces[:, : mask.shape[1]][mask])
    assert packed["num_words_truncated"].numpy().sum() > 0  # some EWT sentences exceed 22 pieces
    assert np.all(mask.sum(axis=1) + packed["num_words_truncated"].numpy() == word_pieces.row_lengths().numpy())
