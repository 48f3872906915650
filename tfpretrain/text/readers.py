"""Readers for tagged corpora (CoNLL-2003, UNER IOB2, CoNLL-U) and plain text.

Pure Python: they turn files into `TaggedSentence`s or strings, the first step of
reader -> tf.data text ops -> model. Every reader accepts UTF-8 with or without a
byte-order mark and with Unix or Windows line endings, yields the last sentence
even without a trailing blank line, and reports malformed input as a
`DataFormatError` that names the file and the 1-based line.

Example:

>>> sentences = tfpretrain.text.readers.read_iob2("../shared/data/uner_english_ewt/dev.iob2")
>>> sentences[0].tokens[6:8], sentences[0].tags[6:8]
(('tampa', 'bay'), ('B-LOC', 'I-LOC'))
"""

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator

CONLLU_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
FORMATS = ("conll", "iob2", "conllu")

_TEXT_COMMENT = re.compile(r"#\s*text\s*=\s?(.*)")
_INTEGER = re.compile(r"[0-9]+")
_RANGE = re.compile(r"[0-9]+-[0-9]+")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")


class DataFormatError(ValueError):
    """Malformed input data; the message reads ``path:line: what is wrong; what was expected``.

    Args:
        path: str. The file being read.
        line: int. 1-based line number of the offending line.
        problem: str. What is wrong with the line.
        expected: str. What the reader expected instead.
    """

    def __init__(self, path, line, problem, expected):
        self.path = os.fspath(path)
        self.line = int(line)
        self.problem = problem
        self.expected = expected
        super().__init__(f"{self.path}:{self.line}: {problem}; expected {expected}")

    def __reduce__(self):
        return type(self), (self.path, self.line, self.problem, self.expected)


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its tokens, one tag per token, raw text and where it came from.

    Args:
        tokens: tuple of str.
        tags: tuple of str, as long as `tokens`.
        text: str or None. The ``# text =`` comment when the file has one.
        source: str. ``"path:line"`` of the sentence's first token line.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    text: str | None
    source: str

    def __post_init__(self):
        if len(self.tokens) != len(self.tags):
            raise ValueError(
                f"{self.source}: {len(self.tokens)} tokens but {len(self.tags)} tags; "
                "expected one tag per token"
            )


def _lines(path):
    """Yields ``(line_number, line)`` with byte-order marks and the line ending removed.

    Reads one line at a time, so a file of any size streams. Line ends are
    ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files), numbered as an editor
    numbers them. A byte-order mark starting any line is dropped (files joined
    with ``cat`` carry one per file). NUL bytes (a binary file) and bytes that
    are not UTF-8 are a `DataFormatError` naming the line.
    """
    number = 0
    with open(path, "rb") as file:
        for raw in file:
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            for part in raw.split(b"\r"):
                number += 1
                if number == 1 and part.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise DataFormatError(path, number, "a UTF-16 byte-order mark: the file is UTF-16",
                                          "a UTF-8 encoded text file (re-encode it, e.g. `iconv -f utf-16 -t utf-8`)")
                if b"\0" in part:
                    raise DataFormatError(
                        path, number, "a NUL byte (is it a binary file?)",
                        "a UTF-8 encoded text file",
                    )
                try:
                    line = part.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataFormatError(
                        path, number, f"bytes that are not valid UTF-8 ({error.reason} at byte "
                        f"{error.start} of the line)", "a UTF-8 encoded text file (re-encode it, "
                        "e.g. `iconv -f latin1 -t utf-8`)",
                    ) from None
                yield number, line.removeprefix("\ufeff")


def _read_sentences(path, parse_token_line, comments):
    """Groups token lines into sentences separated by blank lines.

    Args:
        path: the file.
        parse_token_line: callable ``(fields_line, line_number) -> (token, tag)``
            or None to skip the line (``-DOCSTART-``, multiword ranges).
        comments: bool. Whether lines starting with ``#`` are comments.
    """
    sentences = []
    tokens, tags, text, first_line = [], [], None, None

    def flush():
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), text, f"{path}:{first_line}"))

    for number, line in _lines(path):
        if not line.strip():
            flush()
            tokens, tags, text, first_line = [], [], None, None
            continue
        if comments and line.startswith("#"):
            if tokens:
                raise DataFormatError(
                    path, number, "a comment line inside a sentence",
                    "comments only before a sentence's first token line (is a blank line missing?)",
                )
            match = _TEXT_COMMENT.fullmatch(line)
            if match and text is None:
                text = match.group(1).strip()
            continue
        parsed = parse_token_line(line, number)
        if parsed is None:
            continue
        if first_line is None:
            first_line = number
        tokens.append(parsed[0])
        tags.append(parsed[1])
    flush()
    return sentences


class _ColumnLayout:
    """Checks token lines: as many columns as the first one, enough of them, the tag column."""

    def __init__(self, path, separator_name, min_columns, required):
        self.path = path
        self.separator_name = separator_name
        self.min_columns = min_columns
        self.required = required
        self.num_columns = None
        self.first_line = None

    def check(self, fields, number, column):
        if self.num_columns is not None and len(fields) != self.num_columns:
            raise DataFormatError(
                self.path, number, f"{len(fields)} {self.separator_name}-separated columns",
                f"{self.num_columns} like the first token line (line {self.first_line})",
            )
        if len(fields) < self.min_columns:
            raise DataFormatError(
                self.path, number, f"{len(fields)} {self.separator_name}-separated column(s)",
                f"at least {self.min_columns}: {self.required}",
            )
        if not -len(fields) <= column < len(fields):
            raise DataFormatError(
                self.path, number, f"no tag column {column} on a line of {len(fields)} columns",
                "a `column` index that exists on every token line",
            )
        if self.num_columns is None:
            self.num_columns, self.first_line = len(fields), number


def _check_fields(path, number, token, tag, token_name):
    if not token:
        raise DataFormatError(path, number, f"an empty {token_name}", f"a non-empty {token_name}")
    if not tag:
        raise DataFormatError(path, number, "an empty tag", "a non-empty tag (use 'O' for none)")


def read_conll(path, column=-1):
    """Reads CoNLL-2003: whitespace-separated ``token POS chunk NER`` lines.

    ``-DOCSTART-`` lines are skipped; a blank line ends a sentence. There are no
    comment lines (``#`` is an ordinary token).

    Args:
        path: str or path-like.
        column: int. Index of the tag column, negative from the end. Defaults to
            -1 (the last column: NER in CoNLL-2003; use 1 for POS, 2 for chunks).

    Returns:
        A list of `TaggedSentence` (``text`` is None); ``[]`` for an empty file.
        CoNLL-2003 tags are IOB1: pass them through `to_iob2` for IOB2.

    Raises:
        DataFormatError: a line with a different number of columns than the first
            token line, without the tag column, or not UTF-8.
    """
    layout = _ColumnLayout(path, "whitespace", 2, "token ... tag")

    def parse(line, number):
        fields = line.split()
        if fields[0] == "-DOCSTART-":
            return None
        layout.check(fields, number, column)
        return fields[0], fields[column]

    return _read_sentences(path, parse, comments=False)


def read_iob2(path, column=2):
    """Reads the UNER layout: tab-separated ``index token tag extra extra`` lines.

    Lines starting with ``#`` are comments; ``# text = ...`` is kept as the
    sentence's text. A blank line ends a sentence.

    Args:
        path: str or path-like.
        column: int. Index of the tag column. Defaults to 2.

    Returns:
        A list of `TaggedSentence`; ``[]`` for an empty file.

    Raises:
        DataFormatError: a line with a different number of columns than the first
            token line, without the tag column, with a non-integer index, an empty
            token or tag, or not UTF-8.
    """
    layout = _ColumnLayout(path, "tab", 3, "index, token, tag (is the file tab-separated?)")

    def parse(line, number):
        fields = line.split("\t")
        layout.check(fields, number, column)
        if not _INTEGER.fullmatch(fields[0]):
            raise DataFormatError(
                path, number, f"token index {fields[0]!r}", "an integer index in the first column"
            )
        token, tag = fields[1].strip(), fields[column].strip()  # "O " is "O"
        _check_fields(path, number, token, tag, "token")
        return token, tag

    return _read_sentences(path, parse, comments=True)


def _conllu_column(column):
    if isinstance(column, str):
        if column.lower() not in CONLLU_COLUMNS:
            raise ValueError(f"Unknown CoNLL-U column {column!r}; expected one of {CONLLU_COLUMNS}.")
        return CONLLU_COLUMNS.index(column.lower())
    if not -10 <= column < 10:
        raise ValueError(f"CoNLL-U has 10 columns; expected a column index in [-10, 10), got {column}.")
    return column % 10


def _conllu_fields(path, line, number):
    """Splits a CoNLL-U token line; returns None for multiword ranges and empty nodes."""
    fields = line.split("\t")
    if len(fields) != 10:
        raise DataFormatError(
            path, number, f"{len(fields)} tab-separated columns",
            f"10 CoNLL-U columns ({' '.join(CONLLU_COLUMNS)})",
        )
    if _RANGE.fullmatch(fields[0]) or _DECIMAL.fullmatch(fields[0]):
        return None
    if not _INTEGER.fullmatch(fields[0]):
        raise DataFormatError(
            path, number, f"token id {fields[0]!r}",
            "an integer id, a multiword range like '1-2' or an empty node like '1.1'",
        )
    return fields


def read_conllu(path, column="upos"):
    """Reads CoNLL-U (Universal Dependencies), one tag column per token.

    Multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped, so the
    tokens are the syntactic words. ``# text = ...`` is kept as the text.

    Args:
        path: str or path-like.
        column: str or int. The tag column by name (one of `CONLLU_COLUMNS`:
            id form lemma upos xpos feats head deprel deps misc) or index.
            Defaults to "upos".

    Returns:
        A list of `TaggedSentence`; ``[]`` for an empty file.

    Raises:
        DataFormatError: a line without exactly 10 tab-separated columns, with an
            id that is not an integer, range or decimal, an empty form or tag, or
            not UTF-8.
    """
    index = _conllu_column(column)

    def parse(line, number):
        fields = _conllu_fields(path, line, number)
        if fields is None:
            return None
        form, tag = fields[1].strip(), fields[index].strip()  # "NOUN " is "NOUN"
        _check_fields(path, number, form, tag, "form (token)")
        return form, tag

    return _read_sentences(path, parse, comments=True)


_READERS = {"conll": read_conll, "iob2": read_iob2, "conllu": read_conllu}


def read_tagged(path, format, column=None):  # noqa: A002 (the CLI's option name)
    """Reads a tagged corpus in one of `FORMATS`: "conll", "iob2" or "conllu".

    Args:
        path: str or path-like.
        format: str. "conll" (CoNLL-2003), "iob2" (UNER) or "conllu".
        column: the tag column as the chosen reader takes it; None for its default.

    Returns:
        A list of `TaggedSentence`.
    """
    if format not in _READERS:
        raise ValueError(f"Unknown format {format!r}; expected one of {FORMATS}.")
    reader = _READERS[format]
    return reader(path) if column is None else reader(path, column)


def read_text(path) -> Iterator[str]:
    """Streams sentences or paragraphs of raw text, one per non-blank line.

    A CoNLL-U file (name ending in ``.conllu``, or whose first non-blank line
    starts with ``#`` or has 10 tab-separated columns) yields the values of its
    ``# text =`` lines instead. The file is read lazily, one line at a time.

    Args:
        path: str or path-like.

    Yields:
        str, stripped of surrounding whitespace; empty texts are skipped.

    Raises:
        DataFormatError (while iterating): bytes that are not UTF-8; in a CoNLL-U
            file, a line that is neither a comment nor a 10-column token line, or
            a sentence without a ``# text =`` line.
    """
    lines = _lines(path)
    conllu = os.fspath(path).endswith(".conllu")
    head = []  # the leading blank and comment-like lines, then the first other line
    for number, line in lines:
        head.append((number, line))
        if line.strip() and not line.startswith("#"):
            break
    if not conllu:
        # CoNLL-U when the first line that is not a comment is a 10-column token line (a plain text may start
        # with '#' too, e.g. a Markdown title), or when there are only comments and they look like CoNLL-U's.
        first = head[-1][1] if head else ""
        if first.strip() and not first.startswith("#"):
            conllu = len(first.split("\t")) == 10
        else:
            conllu = any(_TEXT_COMMENT.fullmatch(line) or line.startswith("# sent_id") for _, line in head)
    if not conllu:
        for _, line in _chain(head, lines):
            if line.strip():
                yield line.strip()
        return
    yield from _conllu_texts(path, _chain(head, lines))


def _chain(head, rest):
    yield from head
    yield from rest


def _missing_text(path, line):
    return DataFormatError(
        path, line, "a CoNLL-U sentence without a '# text =' comment",
        "a '# text = ...' line before each sentence's tokens",
    )


def _conllu_texts(path, lines: Iterable[tuple[int, str]]):
    text, first_token_line = None, None
    for number, line in lines:
        if not line.strip():
            if first_token_line is not None and text is None:
                raise _missing_text(path, first_token_line)
            if text:
                yield text
            text, first_token_line = None, None
        elif line.startswith("#"):
            match = _TEXT_COMMENT.fullmatch(line)
            if match and text is None:
                text = match.group(1).strip()
        else:
            _conllu_fields(path, line, number)
            if first_token_line is None:
                first_token_line = number
    if first_token_line is not None and text is None:
        raise _missing_text(path, first_token_line)
    if text:
        yield text


def _split_prefix(tag):
    """``"B-PER" -> ("B", "PER")``; None when the tag has no ``X-`` prefix."""
    prefix, dash, kind = tag.partition("-")
    if dash and len(prefix) == 1 and kind:
        return prefix, kind
    return None


def to_iob2(tags: Iterable[str]) -> list[str]:
    """Converts IOB1 tags to IOB2: an ``I-X`` that starts a chunk becomes ``B-X``.

    Valid IOB2 comes back unchanged, so calling this on either scheme is safe.

    Args:
        tags: iterable of str, one sentence's tags ("O", "B-X", "I-X").

    Returns:
        list of str.

    Raises:
        ValueError: a tag that is neither "O" nor "B-X"/"I-X".

    Example:

    >>> tfpretrain.text.readers.to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC']
    """
    converted = []
    previous = "O"
    for position, tag in enumerate(tags):
        split = None if tag == "O" else _split_prefix(tag)
        if tag != "O" and (split is None or split[0] not in "BI"):
            raise ValueError(
                f"to_iob2 expects IOB1/IOB2 tags ('O', 'B-X', 'I-X'); got {tag!r} at position "
                f"{position}. Use detect_scheme to check the tag set first."
            )
        if split is not None and split[0] == "I" and previous[2:] != split[1]:
            tag = "B-" + split[1]
        converted.append(tag)
        previous = tag
    return converted


def detect_scheme(tag_set: Iterable[str]) -> str:
    """Names the chunk scheme of a tag vocabulary.

    Args:
        tag_set: iterable of str.

    Returns:
        "IOBES" if any tag is "E-X" or "S-X"; else "IOB2" if any is "B-X"; else
        "IO" if any is "I-X"; "none" when some tag other than "O" has no such
        prefix (e.g. UPOS tags) or there are no chunk tags at all, i.e. when
        entity metrics do not apply. A tag set cannot tell IOB1 from IOB2
        (`to_iob2` handles both).
    """
    prefixes = set()
    for tag in set(tag_set):
        if tag == "O":
            continue
        split = _split_prefix(tag)
        if split is None or split[0] not in "BIES":
            return "none"
        prefixes.add(split[0])
    if prefixes & {"E", "S"}:
        return "IOBES"
    if "B" in prefixes:
        return "IOB2"
    if "I" in prefixes:
        return "IO"
    return "none"


__all__ = [
    "CONLLU_COLUMNS",
    "DataFormatError",
    "FORMATS",
    "TaggedSentence",
    "detect_scheme",
    "read_conll",
    "read_conllu",
    "read_iob2",
    "read_tagged",
    "read_text",
    "to_iob2",
]

