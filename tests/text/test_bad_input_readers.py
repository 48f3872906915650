"""Bad input for the corpus readers (CoNLL, IOB2, CoNLL-U, plain text): a clear error naming file and line, or a
well-formed answer. Kinds already in test_readers.py (empty file, comments only, CRLF, leading BOM, wrong column
count, missing tag column, invalid UTF-8, spaces for tabs, bad ids, empty token / tag) are not repeated here.

Kinds here: only blank lines; a folder as the path; a missing file; binary garbage; a file of NUL bytes; UTF-16;
a huge line; odd scripts and zero-width characters; a BOM in the middle (files joined with cat); lone CR line ends;
spaces around a tab-separated tag; tab and space mixes in CoNLL; a plain text starting with '#'; duplicate
'# text =' comments; a line of a zero-width space only.
"""

import os
import re

import pytest

from tfpretrain.text.readers import DataFormatError, read_conll, read_conllu, read_iob2, read_tagged, read_text

from tests.conftest import write_file

READERS = {"conll": read_conll, "iob2": read_iob2, "conllu": read_conllu}
CONLL = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
IOB2 = "# text = EU rejects\n1\tEU\tB-ORG\t-\t-\n2\trejects\tO\t-\t-\n\n1\tPeter\tB-PER\t-\t-\n"
CONLLU = "# text = Hi there\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n2\tthere\tthere\tADV\tRB\t_\t1\tadvmod\t_\t_\n"
SAMPLES = {"conll": CONLL, "iob2": IOB2, "conllu": CONLLU}


def _pairs(sentences):
    return [(s.tokens, s.tags) for s in sentences]


def _raises_at(path, line, *words):
    pattern = re.escape(f"{path}:{line}: ") + "".join(".*" + re.escape(w) for w in words)
    return pytest.raises(DataFormatError, match=pattern)


@pytest.mark.parametrize("format", sorted(READERS))
def test_only_blank_lines_give_no_sentences(tmp_path, format):
    path = write_file(tmp_path, "blank", "\n   \n\t\n\r\n\n")
    assert read_tagged(path, format) == []


@pytest.mark.parametrize("reader", [read_conll, read_iob2, read_conllu, lambda p: list(read_text(p))])
def test_a_folder_or_a_missing_file_names_the_path(tmp_path, reader):
    with pytest.raises(IsADirectoryError) as error:
        reader(tmp_path)
    assert error.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        reader(tmp_path / "missing.txt")
    assert error.value.filename == str(tmp_path / "missing.txt")


@pytest.mark.parametrize("format", sorted(READERS) + ["text"])
def test_binary_garbage_is_an_error_at_its_line(tmp_path, format):
    garbage = bytes((7 * i + 200) % 256 for i in range(1024))  # starts with bytes that are not UTF-8
    path = write_file(tmp_path, "garbage.bin", garbage)
    reader = (lambda p: list(read_text(p))) if format == "text" else READERS[format]
    with _raises_at(path, 1, "expected a UTF-8 encoded text file"):  # NUL bytes or invalid UTF-8, both binary
        reader(path)


@pytest.mark.parametrize("format", sorted(READERS) + ["text"])
def test_a_file_of_nul_bytes_is_not_read_as_text(tmp_path, format):
    """Valid UTF-8 but binary: a sparse or truncated file. Was: read_text yielded '\\x00\\x00...' as a sentence."""
    path = write_file(tmp_path, "zeros.txt", b"\0" * 4096)
    reader = (lambda p: list(read_text(p))) if format == "text" else READERS[format]
    with _raises_at(path, 1, "a NUL byte", "binary file"):
        reader(path)


def test_utf16_is_an_error_at_line_1(tmp_path):
    path = write_file(tmp_path, "utf16.iob2", IOB2.encode("utf-16"))
    with _raises_at(path, 1, "the file is UTF-16", "UTF-8 encoded", "iconv -f utf-16"):
        read_iob2(path)


def test_a_huge_line_is_read_whole(tmp_path):
    word = "x" * 2_000_000
    path = write_file(tmp_path, "huge.txt", f"short\n{word}\n")
    assert [len(text) for text in read_text(path)] == [5, 2_000_000]
    path = write_file(tmp_path, "huge.conll", f"{word} NN O\nend NN O\n")
    assert _pairs(read_conll(path)) == [((word, "end"), ("O", "O"))]


def test_odd_scripts_and_zero_width_characters_are_kept_exactly(tmp_path):
    tokens = ["مرحبا", "e\u0301te\u0301", "👩\u200d👩\u200d👧", "a\u200bb", "東京", "ᐃᓄᒃᑎᑐᑦ"]
    body = "".join(f"{i}\t{token}\t{'B-LOC' if i == 5 else 'O'}\t-\t-\n" for i, token in enumerate(tokens, 1))
    [sentence] = read_iob2(write_file(tmp_path, "scripts.iob2", body))
    assert list(sentence.tokens) == tokens and sentence.tags[4] == "B-LOC"
    assert list(read_text(write_file(tmp_path, "scripts.txt", " ".join(tokens) + "\n"))) == [" ".join(tokens)]


@pytest.mark.parametrize("format", sorted(READERS))
def test_files_joined_with_cat_read_like_one_file(tmp_path, format):
    """Each joined file brings its BOM. Was: CoNLL read the token '\\ufeffEU', IOB2 failed on index '\\ufeff1'."""
    sample = SAMPLES[format]
    joined = write_file(tmp_path, "joined", ("\ufeff" + sample + "\n") * 2)
    assert _pairs(read_tagged(joined, format)) == _pairs(read_tagged(write_file(tmp_path, "twice", (sample + "\n") * 2),
                                                                      format))


@pytest.mark.parametrize("format", sorted(READERS))
def test_lone_cr_line_ends_read_like_unix_ones(tmp_path, format):
    """Old Mac files. Was: the whole file was one line and IOB2 read one token, silently."""
    sample = SAMPLES[format]
    expected = _pairs(read_tagged(write_file(tmp_path, "unix", sample), format))
    assert _pairs(read_tagged(write_file(tmp_path, "mac", sample.replace("\n", "\r")), format)) == expected
    broken = sample.replace("\n", "\r").rstrip("\r") + "\r\u0000\r"  # the error's line counts CR line ends
    line = sample.count("\n") + 1
    with _raises_at(write_file(tmp_path, "broken", broken), line, "NUL byte"):
        read_tagged(tmp_path / "broken", format)


def test_spaces_around_a_tab_separated_tag_are_not_part_of_it(tmp_path):
    """Was: 'O ' and 'B-PER ' became tags of their own, silently."""
    path = write_file(tmp_path, "spaces.iob2", "1\tEU \tB-ORG \t-\t-\n2\trejects\t O\t-\t-\n")
    assert _pairs(read_iob2(path)) == [(("EU", "rejects"), ("B-ORG", "O"))]
    conllu = CONLLU.replace("\tINTJ\t", "\tINTJ \t")
    assert read_conllu(write_file(tmp_path, "spaces.conllu", conllu))[0].tags == ("INTJ", "ADV")


def test_tab_and_space_mixes_in_conll_read_the_same(tmp_path):
    mixed = CONLL.replace(" ", "\t", 2).replace("B-VP O", "B-VP   \t O")
    assert _pairs(read_conll(write_file(tmp_path, "mixed.conll", mixed))) == _pairs(
        read_conll(write_file(tmp_path, "plain.conll", CONLL)))


def test_a_plain_text_starting_with_a_hash_is_plain_text(tmp_path):
    """Was: read as CoNLL-U, failing with 'expected 10 CoNLL-U columns' on the first ordinary line."""
    path = write_file(tmp_path, "notes.txt", "# Chapter one\n\nIt was a dark night.\n#hashtag line\n")
    assert list(read_text(path)) == ["# Chapter one", "It was a dark night.", "#hashtag line"]
    conllu = write_file(tmp_path, "ud.txt", "# sent_id = 1\n" + CONLLU)  # still found by its content
    assert list(read_text(conllu)) == ["Hi there"]


def test_duplicate_text_comments_keep_the_first(tmp_path):
    path = write_file(tmp_path, "dup.conllu", CONLLU.replace("# text = Hi there\n", "# text = Hi there\n# text = Bye\n"))
    assert read_conllu(path)[0].text == "Hi there"
    assert list(read_text(path)) == ["Hi there"]


def test_a_line_of_only_a_zero_width_space_is_an_error_at_its_line(tmp_path):
    path = write_file(tmp_path, "zw.conll", "EU NNP B-NP B-ORG\n\u200b\n")
    with _raises_at(path, 2, "1 whitespace-separated column"):
        read_conll(path)
    assert os.path.exists(path)
