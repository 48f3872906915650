"""Readers on the real corpora (checked against independent counts) and on broken files."""

import pickle
import re
import types

import pytest

from tfpretrain.text.readers import (
    DataFormatError,
    TaggedSentence,
    detect_scheme,
    read_conll,
    read_conllu,
    read_iob2,
    read_tagged,
    read_text,
    to_iob2,
)

UPOS = {
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X",
}


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _raises_at(path, line, *words):
    """Context manager: a DataFormatError naming ``path:line`` and mentioning ``words``."""
    return pytest.raises(DataFormatError, match=re.escape(f"{path}:{line}: ") + "".join(".*" + re.escape(w) for w in words))


# --- the real files -----------------------------------------------------------------

@pytest.fixture(scope="module")
def ud_dev(shared_data):
    return shared_data / "ud_english_ewt" / "dev.conllu"


@pytest.fixture(scope="module")
def uner_dev(shared_data):
    return shared_data / "uner_english_ewt" / "dev.iob2"


def test_ud_dev_matches_independent_counts(ud_dev):
    sentences = read_conllu(ud_dev)
    lines = ud_dev.read_text(encoding="utf-8").splitlines()
    word_lines = [line for line in lines if re.match(r"[0-9]+\t", line)]
    assert len(sentences) == 2001 == sum(1 for line in lines if line.startswith("# sent_id"))
    assert sum(len(s.tokens) for s in sentences) == len(word_lines) == 25147
    assert [t for s in sentences for t in s.tokens] == [line.split("\t")[1] for line in word_lines]
    assert {tag for s in sentences for tag in s.tags} == UPOS
    assert detect_scheme({tag for s in sentences for tag in s.tags}) == "none"
    first = sentences[0]
    assert first.text == "From the AP comes this story :"
    assert first.tokens == ("From", "the", "AP", "comes", "this", "story", ":")
    assert first.tags == ("ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT")
    # Sources point at each sentence's first word line.
    for sentence in sentences[:50]:
        path, line = sentence.source.rsplit(":", 1)
        assert path == str(ud_dev)
        assert lines[int(line) - 1].startswith("1\t" + sentence.tokens[0] + "\t")


def test_ud_dev_skips_multiword_tokens_and_empty_nodes(ud_dev):
    text = ud_dev.read_text(encoding="utf-8")
    assert re.search(r"^[0-9]+-[0-9]+\t", text, re.M) and re.search(r"^[0-9]+\.[0-9]+\t", text, re.M)
    sentences = read_conllu(ud_dev)
    assert all(re.fullmatch(r"[A-Z]+", tag) for s in sentences for tag in s.tags)


def test_conllu_column_by_name_or_index(ud_dev):
    by_name = read_conllu(ud_dev, column="deprel")
    assert read_conllu(ud_dev, column=7) == by_name
    assert read_conllu(ud_dev, column="UPOS") == read_conllu(ud_dev)
    assert by_name[0].tags[:3] == ("case", "det", "obl")
    with pytest.raises(ValueError, match="Unknown CoNLL-U column 'tag'"):
        read_conllu(ud_dev, column="tag")
    with pytest.raises(ValueError, match="10 columns"):
        read_conllu(ud_dev, column=10)


def test_uner_dev_matches_independent_counts(uner_dev):
    sentences = read_iob2(uner_dev)
    lines = uner_dev.read_text(encoding="utf-8").splitlines()
    token_lines = [line for line in lines if line and not line.startswith("#")]
    assert len(sentences) == 2001
    assert sum(len(s.tokens) for s in sentences) == len(token_lines) == 25149
    assert [s.text for s in sentences] == [line[len("# text = "):] for line in lines if line.startswith("# text = ")]
    tags = {tag for s in sentences for tag in s.tags}
    assert tags == {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}
    assert detect_scheme(tags) == "IOB2"
    assert all(to_iob2(s.tags) == list(s.tags) for s in sentences)  # valid IOB2 throughout
    assert sentences[0].tokens[6:8] == ("tampa", "bay")
    assert sentences[0].tags[6:8] == ("B-LOC", "I-LOC")
    assert sentences[0].source == f"{uner_dev}:4"


def test_read_text_on_conllu_yields_exactly_the_text_comments(ud_dev):
    texts = read_text(ud_dev)
    assert isinstance(texts, types.GeneratorType)
    expected = [line[len("# text = "):] for line in ud_dev.read_text(encoding="utf-8").splitlines()
                if line.startswith("# text = ")]
    assert list(texts) == expected
    assert len(expected) == 2001


def test_read_tagged_dispatches(ud_dev, uner_dev, tmp_path):
    assert read_tagged(uner_dev, "iob2") == read_iob2(uner_dev)
    assert read_tagged(ud_dev, "conllu", column="xpos") == read_conllu(ud_dev, column="xpos")
    conll = _write(tmp_path, "a.conll", "EU NNP B-NP B-ORG\n")
    assert read_tagged(conll, "conll", column=1)[0].tags == ("NNP",)
    with pytest.raises(ValueError, match="Unknown format 'csv'"):
        read_tagged(conll, "csv")


# --- CoNLL-2003 ----------------------------------------------------------------------

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER
"""


def test_conll_reads_sentences_and_columns(tmp_path):
    path = _write(tmp_path, "a.conll", CONLL)
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [
        ("EU", "rejects", "German", "call"), ("Peter", "Blackburn", "Smith"),
    ]
    assert sentences[0].tags == ("I-ORG", "O", "I-MISC", "O")
    assert sentences[0].text is None
    assert sentences[0].source == f"{path}:3"
    assert sentences[1].source == f"{path}:8"
    assert read_conll(path, column=1)[0].tags == ("NNP", "VBZ", "JJ", "NN")
    assert read_conll(path, column=-2)[1].tags == ("B-NP", "I-NP", "I-NP")
    assert to_iob2(sentences[1].tags) == ["B-PER", "I-PER", "B-PER"]


def test_crlf_bom_and_missing_final_blank_line_give_the_same_sentences(tmp_path):
    plain = read_conll(_write(tmp_path, "a.conll", CONLL))
    windows = _write(tmp_path, "b.conll", "\ufeff" + CONLL.rstrip("\n").replace("\n", "\r\n"))
    assert [(s.tokens, s.tags) for s in read_conll(windows)] == [(s.tokens, s.tags) for s in plain]
    iob2 = "# text = EU rejects\n1\tEU\tB-ORG\t-\t-\n2\trejects\tO\t-\t-\n\n# text = Hi\n1\tHi\tO\t-\t-"
    expected = read_iob2(_write(tmp_path, "a.iob2", iob2 + "\n\n"))
    got = read_iob2(_write(tmp_path, "b.iob2", ("\ufeff" + iob2).replace("\n", "\r\n")))
    assert [(s.tokens, s.tags, s.text) for s in got] == [(s.tokens, s.tags, s.text) for s in expected]
    assert got[1] == TaggedSentence(("Hi",), ("O",), "Hi", f"{tmp_path / 'b.iob2'}:6")
    assert list(read_text(_write(tmp_path, "c.txt", "\ufeffone\r\n\r\ntwo\r\n"))) == ["one", "two"]


def test_empty_and_comment_only_files_give_no_sentences(tmp_path):
    assert read_conll(_write(tmp_path, "a.conll", "")) == []
    assert read_conll(_write(tmp_path, "b.conll", "-DOCSTART- -X- -X- O\n\n\n")) == []
    assert read_iob2(_write(tmp_path, "c.iob2", "# newdoc id = x\n\n")) == []
    assert read_conllu(_write(tmp_path, "d.conllu", "\ufeff")) == []
    assert list(read_text(_write(tmp_path, "e.txt", "\n  \n"))) == []


def test_conll_malformed_lines(tmp_path):
    path = _write(tmp_path, "a.conll", "EU NNP B-NP B-ORG\nrejects VBZ O\n")
    with _raises_at(path, 2, "3 whitespace-separated columns", "expected 4", "line 1"):
        read_conll(path)
    path = _write(tmp_path, "b.conll", "EU NNP B-NP B-ORG\n")
    with _raises_at(path, 1, "no tag column 4"):
        read_conll(path, column=4)
    path = _write(tmp_path, "c.conll", "EU\n")
    with _raises_at(path, 1, "1 whitespace-separated column", "at least 2"):
        read_conll(path)
    path = _write(tmp_path, "d.conll", b"EU NNP B-NP B-ORG\n\nK\xf6ln NNP B-NP B-LOC\n")
    with _raises_at(path, 3, "not valid UTF-8", "UTF-8 encoded"):
        read_conll(path)


# --- UNER IOB2 -----------------------------------------------------------------------

def test_iob2_malformed_lines(tmp_path):
    good = "# text = a b\n1\ta\tO\t-\t-\n"
    cases = [
        ("2\tb\tO\t-\n", "4 tab-separated columns", "expected 5"),
        ("x\tb\tO\t-\t-\n", "token index 'x'", "integer index"),
        ("2\t\tO\t-\t-\n", "an empty token", "non-empty token"),
        ("2\tb\t\t-\t-\n", "an empty tag", "non-empty tag"),
        ("# text = c\n", "a comment line inside a sentence", "blank line"),
    ]
    for i, (bad_line, *words) in enumerate(cases):
        path = _write(tmp_path, f"{i}.iob2", good + bad_line)
        with _raises_at(path, 3, *words):
            read_iob2(path)
    path = _write(tmp_path, "column.iob2", good)
    with _raises_at(path, 2, "no tag column 5 on a line of 5 columns"):
        read_iob2(path, column=5)
    path = _write(tmp_path, "spaces.iob2", "1 a O\n")
    with _raises_at(path, 1, "1 tab-separated column", "tab-separated?"):
        read_iob2(path)


# --- CoNLL-U -------------------------------------------------------------------------

CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_
"""


def test_conllu_skips_ranges_and_empty_nodes(tmp_path):
    path = _write(tmp_path, "a.conllu", CONLLU)
    [sentence] = read_conllu(path)
    assert sentence == TaggedSentence(
        ("Do", "n't", "go", "."), ("AUX", "PART", "VERB", "PUNCT"), "Don't go.", f"{path}:4"
    )


def test_conllu_malformed_lines(tmp_path):
    lines = CONLLU.splitlines(keepends=True)
    cases = [
        (6, "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\n", "9 tab-separated columns", "10 CoNLL-U columns"),
        (5, "two\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n", "token id 'two'", "an integer id"),
        (5, "2\t\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_\n", "an empty form", "non-empty form"),
    ]
    for i, (line_number, bad_line, *words) in enumerate(cases):
        broken = lines[:line_number - 1] + [bad_line] + lines[line_number:]
        path = _write(tmp_path, f"{i}.conllu", "".join(broken))
        with _raises_at(path, line_number, *words):
            read_conllu(path)
    path = _write(tmp_path, "latin1.conllu", CONLLU.replace("go\tgo", "gö\tgo"), encoding="latin-1")
    with _raises_at(path, 6, "not valid UTF-8"):
        read_conllu(path)


# --- plain text ----------------------------------------------------------------------

def test_read_text_plain_lines(tmp_path):
    path = _write(tmp_path, "a.txt", "First line.\n\n  Second line.  \n\t\nLast line without newline")
    assert list(read_text(path)) == ["First line.", "Second line.", "Last line without newline"]


def test_read_text_detects_conllu_by_content(tmp_path):
    path = _write(tmp_path, "a.txt", "\n" + CONLLU + "\n" + CONLLU.replace("Don't go.", "Again."))
    assert list(read_text(path)) == ["Don't go.", "Again."]
    path = _write(tmp_path, "b.txt", CONLLU.split("\n", 2)[2])  # first line is a 10-column token line
    with _raises_at(path, 1, "without a '# text =' comment"):
        list(read_text(path))


def test_read_text_streams(tmp_path):
    path = _write(tmp_path, "a.txt", b"fine\n" + b"more\n" * 1000 + b"bad \xff\n")
    texts = read_text(path)
    assert next(texts) == "fine"  # lazily: the bad last line has not been decoded yet
    with _raises_at(path, 1002, "not valid UTF-8"):
        list(texts)


def test_read_text_conllu_errors(tmp_path):
    path = _write(tmp_path, "a.conllu", "# text = ok\n1\tok\tok\tINTJ\tUH\t_\t0\troot\t_\t_\n\nplain text line\n")
    texts = read_text(path)
    assert next(texts) == "ok"
    with _raises_at(path, 4, "1 tab-separated columns", "10 CoNLL-U columns"):
        next(texts)


# --- schemes -------------------------------------------------------------------------

def test_to_iob2():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-LOC"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-LOC",
    ]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-MISC", "I-MISC"]
    assert to_iob2(iob2) == iob2
    assert to_iob2([]) == []
    with pytest.raises(ValueError, match="'E-PER' at position 1"):
        to_iob2(["B-PER", "E-PER"])


@pytest.mark.parametrize(
    "tags, scheme",
    [
        ({"O", "B-PER", "I-PER"}, "IOB2"),
        ({"O", "I-PER", "I-LOC"}, "IO"),
        ({"O", "B-PER", "I-PER", "E-PER", "S-PER"}, "IOBES"),
        ({"O", "S-PER"}, "IOBES"),
        ({"NOUN", "VERB"}, "none"),
        ({"O", "PER", "LOC"}, "none"),
        ({"O", "B-PER", "X-PER"}, "none"),
        ({"O", "B-"}, "none"),
        ({"O"}, "none"),
        (set(), "none"),
    ],
)
def test_detect_scheme(tags, scheme):
    assert detect_scheme(tags) == scheme


def test_data_format_error_is_a_value_error_and_pickles():
    error = DataFormatError("a.conll", 3, "2 columns", "4")
    assert isinstance(error, ValueError)
    assert str(error) == "a.conll:3: 2 columns; expected 4"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.line) == (str(error), "a.conll", 3)


def test_tagged_sentence_needs_one_tag_per_token():
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        TaggedSentence(("a", "b"), ("O",), None, "x:1")
