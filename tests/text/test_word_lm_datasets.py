"""Word-level LM data: the in-graph word tokenizer, the vocabulary builder and the packed next-word stream."""

import collections
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_preprocessing_test
from tfpretrain.text.readers import read_text
from tfpretrain.models.ulmfit.preprocessor import (
    END_OF_LINE,
    WordTokenizer,
    build_word_vocabulary,
    word_lm_dataset,
    word_tokens,
)

# Words are separated by single spaces, so ``line.lower().split()`` is an independent oracle.
LINES = [
    "The cat sat on the mat .",
    "A dog ran !",
    "the cat ran , the dog sat",
    "Cats and dogs",
    "on the mat the cat sat .",
    "A bird sang",
    "the end",
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n\n", encoding="utf-8")
    return path


def _oracle_stream(lines, tokenizer):
    ids = {word: i + 2 for i, word in enumerate(tokenizer.vocabulary)}
    return [ids.get(word, 1) for line in lines for word in line.lower().split() + [END_OF_LINE]]


def _windows(dataset):
    """Every (token_ids, next_ids) row of a dataset, with the checks that hold for each batch."""
    rows = []
    for token_ids, next_ids, weights in dataset:
        np.testing.assert_array_equal(token_ids[:, 1:], next_ids[:, :-1])
        np.testing.assert_array_equal(weights, np.ones(token_ids.shape, "float32"))
        rows += [np.concatenate([x, y[-1:]]) for x, y in zip(token_ids.numpy(), next_ids.numpy())]
    return rows


# --- WordTokenizer ------------------------------------------------------------------------------


def test_word_tokenizer_ids_oov_and_lowercase():
    tokenizer = WordTokenizer(["</S>", "the", "cat", "école"])
    assert tokenizer(tf.constant(["The CAT sat.", "ÉCOLE"])).to_list() == [[3, 4, 1, 1], [5]]
    assert WordTokenizer(["</S>", "the"], lowercase=False)(tf.constant(["The the"])).to_list() == [[1, 3]]
    assert tokenizer.vocabulary_size() == 6 and tokenizer.end_of_line_id == 2
    assert (tokenizer.token_to_id("cat"), tokenizer.token_to_id("dog"), tokenizer.id_to_token(4)) == (4, 1, "cat")
    text = tokenizer.detokenize(tf.constant([[3, 4, 1, 2, 0, 0]])).numpy()
    assert text.tolist() == [b"the cat [UNK] </S>"]
    assert word_tokens(tf.constant(["Hello, WORLD!"])).to_list() == [[b"hello", b",", b"world", b"!"]]


def test_word_tokenizer_gives_the_same_ids_directly_mapped_and_batched():
    tokenizer = WordTokenizer(["</S>", "the", "cat", "sat", "."])
    run_preprocessing_test(tokenizer, LINES, example_fn=lambda line: tokenizer(line[None])[0], batch_size=3)


def test_word_tokenizer_config_file_and_errors(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("</S>\nthe\ncat\n", encoding="utf-8")
    tokenizer = WordTokenizer(str(path), lowercase=False)
    assert tokenizer.vocabulary == ["</S>", "the", "cat"]
    revived = WordTokenizer.from_config(tokenizer.get_config())
    assert revived.vocabulary == tokenizer.vocabulary and revived.lowercase is False
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        WordTokenizer(["the", "[UNK]"])
    with pytest.raises(ValueError, match="repeats words"):
        WordTokenizer(["the", "cat", "the"])
    with pytest.raises(ValueError, match="outside"):
        tokenizer.id_to_token(5)


# --- Vocabulary ---------------------------------------------------------------------------------


def test_build_word_vocabulary_counts_like_python(corpus):
    counts = collections.Counter(word for line in LINES for word in line.lower().split())
    expected = [w for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if c >= 2]
    assert build_word_vocabulary([corpus], min_count=2, max_size=None) == [END_OF_LINE] + expected
    assert build_word_vocabulary([corpus], min_count=1, max_size=3) == [END_OF_LINE] + ["the", "cat", "sat"]
    cased = build_word_vocabulary([corpus], min_count=1, lowercase=False)
    assert "The" in cased and "The" not in build_word_vocabulary([corpus], min_count=1)
    with pytest.raises(ValueError, match="no word occurs 100"):
        build_word_vocabulary([corpus], min_count=100)


# --- word_lm_dataset ----------------------------------------------------------------------------


def test_windows_are_the_line_stream_in_order(corpus):
    tokenizer = WordTokenizer(build_word_vocabulary([corpus], min_count=2))
    dataset = word_lm_dataset([corpus], tokenizer, sequence_length=4, batch_size=3, split="all",
                              shuffle_buffer=0, repeat=False)
    assert dataset.element_spec[0].dtype == tf.int32
    stream = _oracle_stream(LINES, tokenizer)
    windows = _windows(dataset)
    usable = len(stream) // 5  # whole windows of 5 words; one pass keeps a last, smaller batch
    assert len(windows) == usable and usable % 3 != 0
    np.testing.assert_array_equal(np.concatenate(windows), stream[: 5 * usable])
    repeating = word_lm_dataset([corpus], tokenizer, sequence_length=4, batch_size=2, split="all")
    assert repeating.element_spec[0].shape == (2, 4)  # static shapes for training
    # A word list and a tokenizer give the same data.
    same = word_lm_dataset([corpus], tokenizer.vocabulary, sequence_length=4, batch_size=2, split="all",
                           shuffle_buffer=0, repeat=False)
    np.testing.assert_array_equal(np.concatenate(_windows(same)), stream[: 5 * usable])


def test_train_and_heldout_split_the_lines(corpus):
    tokenizer = WordTokenizer(build_word_vocabulary([corpus], min_count=1))

    def stream(split):
        dataset = word_lm_dataset([corpus], tokenizer, sequence_length=1, batch_size=1, split=split,
                                  heldout_every=3, shuffle_buffer=0, repeat=False)
        return np.concatenate(_windows(dataset)).tolist()

    heldout_lines = [line for i, line in enumerate(LINES) if i % 3 == 0]
    train_lines = [line for i, line in enumerate(LINES) if i % 3 != 0]
    for split, lines in (("heldout", heldout_lines), ("train", train_lines)):
        expected = _oracle_stream(lines, tokenizer)
        assert stream(split) == expected[: len(expected) // 2 * 2]


def test_repeat_and_shuffle_defaults(corpus):
    tokenizer = WordTokenizer(build_word_vocabulary([corpus], min_count=1))
    one_pass = _windows(word_lm_dataset([corpus], tokenizer, sequence_length=3, batch_size=1, split="all",
                                        shuffle_buffer=0, repeat=False))
    train = word_lm_dataset([corpus], tokenizer, sequence_length=3, batch_size=1, heldout_every=2)
    assert len(list(itertools.islice(train, 3 * len(one_pass)))) == 3 * len(one_pass)  # train repeats
    heldout = word_lm_dataset([corpus], tokenizer, sequence_length=3, batch_size=1, heldout_every=2,
                              split="heldout")
    assert 0 < len(list(heldout)) < len(one_pass)  # heldout is one pass
    shuffled = _windows(word_lm_dataset([corpus], tokenizer, sequence_length=3, batch_size=1, split="all",
                                        shuffle_buffer=100, seed=1, repeat=False))
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, one_pass))
    assert [tuple(w) for w in shuffled] != [tuple(w) for w in one_pass]


def test_errors_name_the_problem(corpus, tmp_path):
    with pytest.raises(ValueError, match="</S>"):
        word_lm_dataset([corpus], ["the", "cat"])
    with pytest.raises(ValueError, match="split"):
        word_lm_dataset([corpus], ["</S>", "the"], split="validation")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        word_lm_dataset([tmp_path / "missing.txt"], ["</S>", "the"])
    broken = tmp_path / "broken.conllu"
    broken.write_text("# text = a b\n1\ta\n", encoding="utf-8")
    # The reader's DataFormatError reaches the caller through tf.data with its path:line.
    with pytest.raises(Exception, match=r"broken.conllu:2"):
        next(iter(word_lm_dataset([broken], ["</S>", "a"], sequence_length=1, batch_size=1)))


def test_ewt_slice_streams_with_few_unknown_words(shared_data, tmp_path):
    texts = list(itertools.islice(read_text(shared_data / "ud_english_ewt" / "train.conllu"), 2000))
    path = tmp_path / "ewt.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    tokenizer = WordTokenizer(build_word_vocabulary([path], min_count=2))
    token_ids, next_ids, _ = next(iter(word_lm_dataset([path], tokenizer, split="train")))
    assert token_ids.shape == (32, 70) and next_ids.shape == (32, 70)
    assert 0.0 < float(np.mean(token_ids.numpy() == 1)) < 0.15  # [UNK] rate with min_count=2
    assert np.all(token_ids.numpy() > 0)  # packed: no padding
