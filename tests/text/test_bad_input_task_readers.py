"""Bad input for the task TSV readers (classify, pair, choice): a clear error naming file and line, or a well-formed
answer. Kinds already in test_task_readers.py (BOM, CRLF, blank lines between examples, wrong column count, spaces for
a tab, empty label, unknown dev label) are not repeated here.

Kinds here: an empty file; only blank lines; only a header; a folder as the path; a missing file; invalid UTF-8;
binary garbage; the header repeated (files joined with cat); a BOM in the middle (the same); a label column index out
of range; a non-numeric choice label; too few choice columns; a huge line; odd scripts and zero-width characters;
lone CR line ends; a single label in the training data.
"""

import re

import pytest

from tfpretrain.text.readers import DataFormatError
from tfpretrain.text.task_readers import (
    read_choice_tsv,
    read_classification_tsv,
    read_pair_tsv,
    read_task_data,
)

from tests.conftest import write_file

READERS = {"classify": read_classification_tsv, "pair": read_pair_tsv, "choice": read_choice_tsv}
GOOD = {
    "classify": "label\tsentence\n1\ta fine film\n0\tdull\n",
    "pair": "sentence1\tsentence2\tlabel\nA man runs.\tA person moves.\t0\nIt rains.\tIt is dry.\t1\n",
    "choice": "context\tchoice_0\tchoice_1\tlabel\nKaren met Sue.\tThey hated it.\tThey became friends.\t1\n"
              "It rained.\tWe got wet.\tWe got dry.\t0\n",
}


def _raises_at(path, line, *words):
    pattern = re.escape(f"{path}:{line}: ") + "".join(".*" + re.escape(w) for w in words)
    return pytest.raises(DataFormatError, match=pattern)


def _read(task, path):
    return [(e.texts, e.label) for e in READERS[task](path)]


@pytest.mark.parametrize("task", sorted(READERS))
def test_empty_blank_and_header_only_files_have_no_examples_and_a_task_says_so(tmp_path, task):
    header = GOOD[task].splitlines(keepends=True)[0]
    for name, content in (("empty", ""), ("blank", "\n \n\t\n\r\n"), ("header", header)):
        path = write_file(tmp_path, f"{name}.tsv", content)
        assert READERS[task](path) == []
        with pytest.raises(ValueError, match=re.escape(f"{path}: no examples found; expected TSV lines like")):
            read_task_data(task, path, write_file(tmp_path, "dev.tsv", GOOD[task]))


@pytest.mark.parametrize("task", sorted(READERS))
def test_a_folder_or_a_missing_file_names_the_path(tmp_path, task):
    with pytest.raises(IsADirectoryError) as error:
        READERS[task](tmp_path)
    assert error.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        READERS[task](tmp_path / "missing.tsv")
    assert error.value.filename == str(tmp_path / "missing.tsv")


@pytest.mark.parametrize("task", sorted(READERS))
def test_invalid_utf8_and_binary_garbage_are_errors_at_their_line(tmp_path, task):
    path = write_file(tmp_path, "latin1.tsv", GOOD[task].replace("dull", "dull caf\xe9").replace("dry.", "dr\xff.")
                  .encode("latin-1"))
    with _raises_at(path, 3, "not valid UTF-8"):
        READERS[task](path)
    path = write_file(tmp_path, "garbage.tsv", GOOD[task].encode() + b"\x00\x01\x02\xfe\xff" * 50)
    with _raises_at(path, 4, "NUL byte"):
        READERS[task](path)


@pytest.mark.parametrize("task", sorted(READERS))
def test_files_joined_with_cat_read_like_one_file(tmp_path, task):
    """A repeated header and a BOM per file. Was: the header became an example (label 'label') and the BOM a
    label of its own ('\\ufeff1')."""
    body = GOOD[task].split("\n", 1)[1]
    joined = write_file(tmp_path, "joined.tsv", "\ufeff" + GOOD[task] + "\ufeff" + GOOD[task])
    assert _read(task, joined) == _read(task, write_file(tmp_path, "one.tsv", GOOD[task] + body))
    headerless = write_file(tmp_path, "headerless.tsv", "\ufeff" + body + "\ufeff" + body)
    assert {label for _, label in _read(task, headerless)} == {"0", "1"}


def test_a_label_column_out_of_range_is_an_error(tmp_path):
    """Was: the index wrapped around (column 5 of 2 became column 1, the text), silently."""
    path = write_file(tmp_path, "a.tsv", "1\ta fine film\n")
    with _raises_at(path, 1, "no label column 5 on a line of 2 column(s)", "from 0 to 1"):
        read_classification_tsv(path, label_column=5)
    with _raises_at(path, 1, "no label column -3"):
        read_classification_tsv(path, label_column=-3)
    assert read_classification_tsv(path, label_column=-2)[0].label == "1"
    header = write_file(tmp_path, "b.tsv", "label\tsentence\n1\tok\n")
    with _raises_at(header, 1, "no label column 2"):
        read_classification_tsv(header, label_column=2)
    pairs = write_file(tmp_path, "c.tsv", "A.\tB.\t0\n")
    with _raises_at(pairs, 1, "no label column 3 on a line of 3"):
        read_pair_tsv(pairs, label_column=3)


@pytest.mark.parametrize("label", ["one", "-1", "1.0", "²", "2"])
def test_a_choice_label_that_is_not_a_choice_index_is_an_error(tmp_path, label):
    """Was: '²' (a Unicode digit) gave a bare ValueError from int() without file or line."""
    path = write_file(tmp_path, "choice.tsv", f"ctx\ta\tb\t0\nctx\ta\tb\t{label}\n")
    with _raises_at(path, 2, f"label {label!r}", "0-based index of the right choice, 0 to 1"):
        read_choice_tsv(path)


def test_choice_files_with_too_few_or_changing_columns(tmp_path):
    path = write_file(tmp_path, "three.tsv", "ctx\tonly one choice\t0\n")
    with _raises_at(path, 1, "3 tab-separated column(s)", "at least 4 columns"):
        read_choice_tsv(path)
    path = write_file(tmp_path, "changing.tsv", "ctx\ta\tb\t0\nctx\ta\tb\tc\t2\n")
    with _raises_at(path, 2, "5 tab-separated column(s)", "the same number of choices"):
        read_choice_tsv(path)


def test_a_huge_line_and_odd_scripts_are_kept_whole(tmp_path):
    text = "ab\u200bc " * 400_000  # 2 MB, zero-width spaces inside words
    scripts = "مرحبا e\u0301te\u0301 👩\u200d👩\u200d👧 東京"
    path = write_file(tmp_path, "odd.tsv", f"1\t{text}\n0\t{scripts}\n\u200b1\tzero-width before the label\n")
    examples = read_classification_tsv(path)
    assert examples[0].texts == (text.strip(),) and examples[1].texts == (scripts,)
    assert examples[2].label == "\u200b1"  # kept as written: a label is a string; the dev check names it


@pytest.mark.parametrize("task", sorted(READERS))
def test_lone_cr_line_ends_read_like_unix_ones(tmp_path, task):
    """Was: the whole file was one line: a wrong column count at line 1 (or a header with a long label)."""
    mac = write_file(tmp_path, "mac.tsv", GOOD[task].replace("\n", "\r"))
    assert _read(task, mac) == _read(task, write_file(tmp_path, "unix.tsv", GOOD[task]))
    assert [e.line for e in READERS[task](mac)] == [2, 3]


def test_a_single_label_in_the_training_data_is_an_error(tmp_path):
    train = write_file(tmp_path, "train.tsv", "1\tgood\n1\tfine\n")
    with pytest.raises(ValueError, match=re.escape(f"{train}: only the label '1' occurs")):
        read_task_data("classify", train, train)
