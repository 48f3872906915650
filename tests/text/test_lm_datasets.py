"""Next-token batches from text files: the packed stream against a Python oracle, splits, seeds, bad input."""

import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.models.gpt import causal_lm_dataset
from tfpretrain.text import WordPieceTokenizer, piece_sequences
from tfpretrain.text.readers import DataFormatError

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "home", "un", "##believ", "##able", "##s"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[START]", "[DELIM]", "[EXTRACT]", ".", ","] + WORDS


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


def stream(tokenizer, lines):
    """The oracle: each line's pieces (tokenised one line at a time, in Python order), then [SEP]."""
    ids = []
    for line in lines:
        ids += tokenizer(tf.constant([line])).to_list()[0] + [tokenizer.sep_token_id]
    return np.array(ids)


def test_batches_are_the_packed_stream_shifted_by_one(tokenizer, corpus):
    path, lines = corpus
    dataset = causal_lm_dataset([path], tokenizer, sequence_length=12, batch_size=4, shuffle_buffer=0, repeat=False)
    x_spec, y_spec, w_spec = dataset.element_spec
    assert x_spec["token_ids"].shape.as_list() == [4, 12] and y_spec.shape.as_list() == [4, 12]
    assert x_spec["padding_mask"].dtype == tf.int32 and w_spec.dtype == tf.float32
    windows = []
    for x, y, weights in dataset:
        np.testing.assert_array_equal(x["token_ids"].numpy()[:, 1:], y.numpy()[:, :-1])
        assert np.all(x["padding_mask"].numpy() == 1) and np.all(weights.numpy() == 1)
        windows.append(np.concatenate([x["token_ids"].numpy(), y.numpy()[:, -1:]], axis=1).reshape(-1))
    packed = np.concatenate(windows)
    expected = stream(tokenizer, lines)
    assert len(expected) - len(packed) < 4 * 13  # only the tail that fills no batch is dropped
    np.testing.assert_array_equal(packed, expected[: len(packed)])
    assert np.sum(packed == tokenizer.sep_token_id) > 100  # documents end with [SEP]


def test_piece_sequences_direct_and_without_separators(tokenizer, corpus):
    path, lines = corpus
    windows = np.stack(list(piece_sequences([path], tokenizer, 7, repeat=False).as_numpy_iterator()))
    plain = np.concatenate([tokenizer(tf.constant([line])).to_list()[0] for line in lines])
    assert windows.shape[1] == 7 and len(plain) - windows.size < 7
    np.testing.assert_array_equal(windows.reshape(-1), plain[: windows.size])
    with_ends = np.stack(list(piece_sequences([path], tokenizer, 7, repeat=False, end_of_line_id=3)
                              .as_numpy_iterator()))
    np.testing.assert_array_equal(with_ends.reshape(-1), stream(tokenizer, lines)[: with_ends.size])


def test_train_and_heldout_split_every_kth_line(tokenizer, tmp_path):
    lines = [f"{'cat' if i % 5 == 0 else 'dog'} sat" for i in range(200)]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines), encoding="utf-8")

    def tokens(split):
        dataset = causal_lm_dataset([path], tokenizer, sequence_length=5, batch_size=2, shuffle_buffer=0,
                                    repeat=False, split=split, heldout_every=5)
        return np.concatenate([x["token_ids"].numpy().reshape(-1) for x, _, _ in dataset])

    cat, dog, sat = (tokenizer.token_to_id(t) for t in ("cat", "dog", "sat"))
    heldout, train = tokens("heldout"), tokens("train")
    assert set(heldout) == {cat, sat, tokenizer.sep_token_id}
    assert cat not in set(train) and dog in set(train)
    assert len(heldout) == 100 and len(train) == 400  # 40 and 160 lines of 3 pieces, windows of 6, batches of 2
    with pytest.raises(ValueError, match="unknown split"):
        causal_lm_dataset([path], tokenizer, split="dev")


def test_same_seed_same_batches_and_repeat_cycles(tokenizer, corpus):
    path, _ = corpus

    def first_batches(seed):
        dataset = causal_lm_dataset([path], tokenizer, sequence_length=10, batch_size=4, shuffle_buffer=50, seed=seed)
        return [x["token_ids"].numpy() for x, _, _ in dataset.take(60)]  # more than one pass over the corpus

    a, b, other = first_batches(1), first_batches(1), first_batches(2)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(a[0], other[0])


def test_real_corpus_with_a_learned_gpt_vocabulary(shared_data):
    from tfpretrain.models.gpt import GPT_RESERVED_TOKENS
    from tfpretrain.text import learn_wordpiece_vocabulary
    from tfpretrain.text.readers import read_text

    path = shared_data / "ud_english_ewt" / "dev.conllu"
    lines = list(read_text(str(path)))[:500]
    vocabulary = learn_wordpiece_vocabulary(lines, 500, reserved_tokens=GPT_RESERVED_TOKENS)
    assert vocabulary[: len(GPT_RESERVED_TOKENS)] == GPT_RESERVED_TOKENS
    tokenizer = WordPieceTokenizer(vocabulary)
    x, y, _ = next(iter(causal_lm_dataset([path], tokenizer, sequence_length=64, batch_size=8, shuffle_buffer=0)))
    assert x["token_ids"].shape == (8, 64) and y.shape == (8, 64)
    expected = stream(tokenizer, lines[:40])
    np.testing.assert_array_equal(x["token_ids"].numpy()[0], expected[:64])
    assert np.mean(x["token_ids"].numpy() == tokenizer.unk_token_id) < 0.01


def test_reports_bad_and_missing_files(tokenizer, tmp_path):
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write(b"the cat sat on the mat .\n" * 3000)
        f.write(b"bad \xff byte\n")  # read_text raises when it gets here
    x, _, _ = next(iter(causal_lm_dataset([path], tokenizer, sequence_length=16, batch_size=4, shuffle_buffer=10)))
    assert x["token_ids"].shape == (4, 16)  # the first batch comes before the bad line is read
    with pytest.raises((DataFormatError, tf.errors.InvalidArgumentError, tf.errors.UnknownError), match="big.txt"):
        for _ in causal_lm_dataset([path], tokenizer, sequence_length=16, batch_size=4, repeat=False):
            pass
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        causal_lm_dataset([tmp_path / "missing.txt"], tokenizer)
    with pytest.raises(ValueError, match="sequence_length"):
        causal_lm_dataset([path], tokenizer, sequence_length=0)
