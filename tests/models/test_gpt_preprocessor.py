"""GPT-1's input rewriting: each task's documented token sequences, built token by token in Python."""

import pytest
import tensorflow as tf

from tfpretrain.models.gpt.preprocessor import TRANSFER_TOKENS, encode_gpt_inputs, sequence_layout
from tfpretrain.text.task_readers import read_choice_tsv
from tfpretrain.text.readers import DataFormatError
from tfpretrain.text.wordpiece import RESERVED_TOKENS, WordPieceTokenizer

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "yes", "no", "."]
VOCABULARY = RESERVED_TOKENS + list(TRANSFER_TOKENS) + WORDS


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


def ids(text):
    return [VOCABULARY.index(w) for w in text.split()]


START, DELIM, EXTRACT = (VOCABULARY.index(t) for t in TRANSFER_TOKENS)


def expected(*texts, length):
    """[START] a [DELIM] b ... [EXTRACT], padded with 0; no truncation needed in these cases."""
    tokens = [START]
    for i, text in enumerate(texts):
        tokens += ids(text) + ([DELIM] if i < len(texts) - 1 else [EXTRACT])
    return tokens + [0] * (length - len(tokens)), [1] * len(tokens) + [0] * (length - len(tokens))


def encode(tokenizer, task, columns, length=12):
    packed, truncated = encode_gpt_inputs(tokenizer, task, tuple(tf.constant(c) for c in columns), length)
    return packed["token_ids"].numpy(), packed["padding_mask"].numpy(), truncated.numpy()


def test_classify_is_start_text_extract(tokenizer):
    token_ids, mask, truncated = encode(tokenizer, "classify", [["the cat sat", "a dog"]])
    assert token_ids.shape == (2, 1, 12)
    for row, text in enumerate(["the cat sat", "a dog"]):
        assert (token_ids[row, 0].tolist(), mask[row, 0].tolist()) == expected(text, length=12)
    assert not truncated.any()


def test_pair_is_start_premise_delim_hypothesis_extract(tokenizer):
    token_ids, mask, _ = encode(tokenizer, "pair", [["the cat sat on a mat"], ["a cat sat"]])
    assert (token_ids[0, 0].tolist(), mask[0, 0].tolist()) == expected("the cat sat on a mat", "a cat sat", length=12)


def test_similarity_has_both_orders(tokenizer):
    token_ids, mask, _ = encode(tokenizer, "similarity", [["the cat", "a dog ran"], ["sat", "the mat"]])
    assert token_ids.shape == (2, 2, 12)
    assert token_ids[1, 0].tolist() == expected("a dog ran", "the mat", length=12)[0]
    assert token_ids[1, 1].tolist() == expected("the mat", "a dog ran", length=12)[0]
    assert mask[0, 1].tolist() == expected("sat", "the cat", length=12)[1]


def test_choice_has_one_sequence_per_answer(tokenizer):
    token_ids, _, _ = encode(tokenizer, "choice", [["the cat sat ."], ["yes"], ["no"], ["a dog"]])
    assert token_ids.shape == (1, 3, 12)
    for k, answer in enumerate(["yes", "no", "a dog"]):
        assert token_ids[0, k].tolist() == expected("the cat sat .", answer, length=12)[0]


def test_truncation_keeps_the_special_tokens_and_is_reported(tokenizer):
    long = " ".join(["the cat sat on the mat"] * 5)
    token_ids, mask, truncated = encode(tokenizer, "pair", [[long, "a dog"], ["yes", "no"]], length=8)
    assert truncated.tolist() == [True, False]
    row = token_ids[0, 0].tolist()
    assert row[0] == START and row[-1] == EXTRACT and row.count(DELIM) == 1
    assert row[row.index(DELIM) + 1:-1] == ids("yes")  # round robin: the short text is kept whole
    assert mask[0, 0].sum() == 8


def test_empty_text_still_gives_start_and_extract(tokenizer):
    token_ids, mask, _ = encode(tokenizer, "classify", [[""]], length=4)
    assert token_ids[0, 0].tolist() == [START, EXTRACT, 0, 0] and mask[0, 0].tolist() == [1, 1, 0, 0]


def test_layouts_and_errors(tokenizer):
    assert sequence_layout("choice", 4) == ((0, 1), (0, 2), (0, 3))
    with pytest.raises(ValueError, match="takes 2 text"):
        sequence_layout("pair", 1)
    with pytest.raises(ValueError, match="unknown GPT transfer task"):
        sequence_layout("qa", 2)
    with pytest.raises(ValueError, match=r"no \[START\], \[DELIM\], \[EXTRACT\]"):
        encode_gpt_inputs(WordPieceTokenizer(RESERVED_TOKENS + WORDS), "classify", (tf.constant(["a"]),), 8)


def test_choice_tsv_reader(tmp_path):
    path = tmp_path / "choice.tsv"
    path.write_text("context\tchoice_0\tchoice_1\tlabel\nit was great .\tbad\tgood\t1\n\nawful .\tbad\tgood\t0\n")
    examples = read_choice_tsv(path)
    assert [(e.texts, e.label) for e in examples] == [
        (("it was great .", "bad", "good"), "1"), (("awful .", "bad", "good"), "0")]
    assert examples[1].source == f"{path}:4"
    path.write_text("ctx\ta\tb\t2\n")
    with pytest.raises(DataFormatError, match=r"choice.tsv:1.*0-based index"):
        read_choice_tsv(path)
    path.write_text("ctx\ta\tb\t0\nctx\ta\tb\tc\t0\n")
    with pytest.raises(DataFormatError, match=r"choice.tsv:2"):
        read_choice_tsv(path)
    path.write_text("ctx\ta\t0\n")
    with pytest.raises(DataFormatError, match=r"at least 4 columns"):
        read_choice_tsv(path)
