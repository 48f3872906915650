"""TSV readers for classification and sentence pairs: real GLUE files, headers, broken lines."""

import re

import pytest

from tfpretrain.text.readers import DataFormatError
from tfpretrain.text.task_readers import (
    check_labels,
    is_header,
    label_set,
    read_classification_tsv,
    read_pair_tsv,
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _raises_at(path, line, *words):
    return pytest.raises(
        DataFormatError, match=re.escape(f"{path}:{line}: ") + "".join(".*" + re.escape(w) for w in words)
    )


def _count_data_lines(path):
    """Independent count: non-blank lines after the first (the GLUE files have a header)."""
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in list(f)[1:] if line.strip())


@pytest.mark.parametrize("split", ["train", "dev"])
def test_sst2_files(shared_data, split):
    path = shared_data / "sst2" / f"{split}.tsv"
    examples = read_classification_tsv(path)
    assert len(examples) == _count_data_lines(path)
    assert label_set(examples) == ["0", "1"]
    with open(path, encoding="utf-8") as f:
        f.readline()
        label, text = f.readline().rstrip("\n").split("\t")
    assert examples[0].texts == (text,) and examples[0].label == label
    assert examples[0].source == f"{path}:2"


@pytest.mark.parametrize("split", ["train", "dev"])
def test_rte_files(shared_data, split):
    path = shared_data / "rte" / f"{split}.tsv"
    examples = read_pair_tsv(path)
    assert len(examples) == _count_data_lines(path)
    assert label_set(examples) == ["0", "1"]
    with open(path, encoding="utf-8") as f:
        f.readline()
        first, second, label, _ = f.readline().rstrip("\n").split("\t")
    assert examples[0].texts == (first, second) and examples[0].label == label


def test_with_and_without_header_read_the_same(tmp_path):
    body = "positive\ta fine film\nnegative\tdull\n"
    with_header = read_classification_tsv(_write(tmp_path, "a.tsv", "label\tsentence\n" + body))
    without = read_classification_tsv(_write(tmp_path, "b.tsv", body))
    assert [(e.texts, e.label) for e in with_header] == [(e.texts, e.label) for e in without]
    assert [e.label for e in without] == ["positive", "negative"]
    assert without[0].line == 1 and with_header[0].line == 2


def test_header_names_place_the_columns(tmp_path):
    # GLUE's original SST-2 puts the label last; the header says so.
    examples = read_classification_tsv(_write(tmp_path, "a.tsv", "sentence\tlabel\ngreat\t1\n"))
    assert examples[0].texts == ("great",) and examples[0].label == "1"
    pairs = read_pair_tsv(_write(tmp_path, "b.tsv", "idx\tlabel\tsentence1\tsentence2\n7\tyes\tA b.\tA.\n"))
    assert pairs[0].texts == ("A b.", "A.") and pairs[0].label == "yes"


def test_pairs_without_header_with_or_without_index(tmp_path):
    three = read_pair_tsv(_write(tmp_path, "a.tsv", "A man runs.\tA person moves.\t0\n"))
    four = read_pair_tsv(_write(tmp_path, "b.tsv", "A man runs.\tA person moves.\t0\t12\n"))
    assert three[0].texts == four[0].texts == ("A man runs.", "A person moves.")
    assert three[0].label == four[0].label == "0"


def test_header_detection():
    assert is_header(["label", "content"]) and is_header(["sentence1", "sentence2", "label", "idx"])
    assert not is_header(["0", "label me happy"])
    assert not is_header(["positive", "good"])


def test_bom_crlf_blank_lines_and_empty_text(tmp_path):
    path = _write(tmp_path, "a.tsv", "\ufefflabel\tsentence\r\n1\tok\r\n\r\n0\t\r\n")
    examples = read_classification_tsv(path)
    assert [(e.texts, e.label) for e in examples] == [(("ok",), "1"), (("",), "0")]


def test_wrong_column_count_names_the_line(tmp_path):
    path = _write(tmp_path, "a.tsv", "label\tsentence\n1\tok\n0\ttoo\tmany\n")
    with _raises_at(path, 3, "3 tab-separated column", "2 like the header (line 1)"):
        read_classification_tsv(path)
    path = _write(tmp_path, "b.tsv", "1\tok\n0\n")
    with _raises_at(path, 2, "1 tab-separated column", "2 like the first line"):
        read_classification_tsv(path)
    path = _write(tmp_path, "c.tsv", "just text without label\n")
    with _raises_at(path, 1, "1 tab-separated column", "label<TAB>text"):
        read_classification_tsv(path)
    path = _write(tmp_path, "d.tsv", "a\tb\n")
    with _raises_at(path, 1, "2 tab-separated column", "sentence1<TAB>sentence2<TAB>label"):
        read_pair_tsv(path)


def test_empty_label_names_the_line(tmp_path):
    path = _write(tmp_path, "a.tsv", "1\tok\n \tno label\n")
    with _raises_at(path, 2, "an empty label"):
        read_classification_tsv(path)


def test_label_column_override(tmp_path):
    path = _write(tmp_path, "a.tsv", "good film\tpos\n")
    assert read_classification_tsv(path, label_column=1)[0].label == "pos"
    path = _write(tmp_path, "b.tsv", "text\tstars\tlabel\nfine\t5\tpos\n")
    assert read_classification_tsv(path, label_column="stars")[0].label == "5"


def test_unknown_label_names_file_line_and_known_labels(tmp_path):
    path = _write(tmp_path, "dev.tsv", "label\tsentence\n0\tok\n2\tnew label\n")
    with _raises_at(path, 3, "label '2'", "'0', '1'"):
        check_labels(read_classification_tsv(path), ["0", "1"])


def test_label_order():
    class E:
        def __init__(self, label):
            self.label = label
    assert label_set([E("10"), E("9"), E("2")]) == ["2", "9", "10"]
    assert label_set([E("pos"), E("neg")]) == ["neg", "pos"]
