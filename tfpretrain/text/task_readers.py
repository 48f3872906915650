"""Readers of fine-tuning task files: classification, pair and choice TSV files (GLUE SST-2, RTE, ...) and tagged files.

Pure Python, like `tfpretrain.text.readers`: files become `TextExample`s (or,
for tagging, `TaggedSentence`s), the first step of reader -> tf.data text ops
-> model, whatever the architecture. `read_task_data` reads the training and
dev files of a ``tfpretrain finetune`` task and learns its labels or tags. A file may start with a header line
(``label<TAB>sentence``, ``sentence1<TAB>sentence2<TAB>label<TAB>idx``), which is
detected, skipped and used to find the columns; without one the columns are
positional: ``label<TAB>text`` for single sentences, ``sentence1<TAB>sentence2<TAB>label``
(and optionally ``<TAB>idx``) for pairs. Labels stay strings, exactly as written.
Malformed lines raise a `DataFormatError` naming ``path:line``.

Example:

>>> examples = read_classification_tsv("../shared/data/sst2/dev.tsv")
>>> examples[0].texts, examples[0].label
(('one long string of cliches .',), '0')
>>> read_pair_tsv("../shared/data/rte/dev.tsv")[0].label
'1'
>>> train, dev, options = read_task_data("pair", "../shared/data/rte/train.tsv", "../shared/data/rte/dev.tsv")
>>> options["labels"]
['0', '1']
"""

import dataclasses
import os
import re

from tfpretrain.text.readers import DataFormatError, _lines, detect_scheme, read_tagged, to_iob2

# Header names that mark a line as a header, and which column holds what.
LABEL_COLUMN_NAMES = ("label", "gold_label", "labels", "class", "target")
FIRST_TEXT_COLUMN_NAMES = ("sentence1", "text_a", "premise", "question", "question1")
SECOND_TEXT_COLUMN_NAMES = ("sentence2", "text_b", "hypothesis", "question2")
TEXT_COLUMN_NAMES = ("sentence", "content", "text", "review", "document")
_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_#]*")

# The text tasks of ``tfpretrain finetune``: task -> texts per example (None: any, choice's context and K choices).
TEXT_TASKS = {"classify": 1, "pair": 2, "similarity": 2, "choice": None}
_TSV_LAYOUTS = {"classify": "label<TAB>text", "pair": "sentence1<TAB>sentence2<TAB>label",
                "similarity": "sentence1<TAB>sentence2<TAB>label",
                "choice": "context<TAB>choice_0<TAB>...<TAB>choice_k<TAB>label"}
_TAG_FORMATS = {".iob2": "iob2", ".conllu": "conllu", ".conll": "conll"}


@dataclasses.dataclass(frozen=True)
class TextExample:
    """One labelled text or text pair.

    Args:
        texts: tuple of str. ``(text,)`` for classification, ``(text_a, text_b)`` for pairs.
        label: str. The label as written in the file.
        source: str. ``"path:line"`` of the example's line.
    """

    texts: tuple[str, ...]
    label: str
    source: str

    @property
    def path(self):
        return self.source.rsplit(":", 1)[0]

    @property
    def line(self):
        return int(self.source.rsplit(":", 1)[1])


def is_header(fields):
    """Whether a split line is a header: a label column name and only column-name-like fields."""
    names = [field.strip().lower() for field in fields]
    return any(name in LABEL_COLUMN_NAMES for name in names) and all(
        _COLUMN_NAME.fullmatch(name) for name in names
    )


def _find(names, wanted, taken):
    for index, name in enumerate(names):
        if name in wanted and index not in taken:
            return index
    return None


def _header_layout(path, number, fields, num_texts, label_column):
    """Column indices ``(text_columns, label_column)`` named by a header line."""
    names = [field.strip().lower() for field in fields]
    label = _label_index(path, number, names, label_column)
    if num_texts == 1:
        text = _find(names, TEXT_COLUMN_NAMES + FIRST_TEXT_COLUMN_NAMES, {label})
        if text is None and len(names) == 2:
            text = 1 - label
        columns = [text]
    else:
        first = _find(names, FIRST_TEXT_COLUMN_NAMES, {label})
        second = _find(names, SECOND_TEXT_COLUMN_NAMES + TEXT_COLUMN_NAMES, {label, first})
        columns = [first, second]
    if None in columns:
        wanted = "a text column (one of: " + ", ".join(TEXT_COLUMN_NAMES) + ")" if num_texts == 1 else (
            "two text columns (sentence1 and sentence2, or text_a and text_b)"
        )
        raise DataFormatError(path, number, f"a header {fields!r} without {wanted}", f"a header naming {wanted}")
    return columns, label


def _label_index(path, number, names, label_column):
    if label_column is None:
        return _find(names, LABEL_COLUMN_NAMES, set())
    if isinstance(label_column, str):
        if label_column.lower() not in names:
            raise DataFormatError(
                path, number, f"no column named {label_column!r} in the header {names!r}",
                "the label column's name as the header writes it",
            )
        return names.index(label_column.lower())
    return _column_index(path, number, label_column, len(names))


def _column_index(path, number, label_column, num_fields):
    """``label_column`` as an index into ``num_fields`` columns (negative from the end); out of range is an error."""
    index = int(label_column)
    if not -num_fields <= index < num_fields:
        raise DataFormatError(path, number, f"no label column {index} on a line of {num_fields} column(s)",
                              f"a label column index from 0 to {num_fields - 1} (or negative, from the end)")
    return index % num_fields


def _positional_layout(path, number, num_fields, num_texts, label_column):
    """Column indices for a file without a header."""
    if isinstance(label_column, str):
        raise DataFormatError(
            path, number, f"no header line to find the column named {label_column!r} in",
            "a header line, or the label column as an integer index",
        )
    if num_texts == 1:
        expected, layout = (2,), "label<TAB>text"
        label = 0 if label_column is None else _column_index(path, number, label_column, num_fields)
        columns = [1 - label]
    else:
        expected, layout = (3, 4), "sentence1<TAB>sentence2<TAB>label (optionally <TAB>idx)"
        label = 2 if label_column is None else _column_index(path, number, label_column, num_fields)
        columns = [i for i in range(3) if i != label][:2]
    if num_fields not in expected:
        raise DataFormatError(
            path, number, f"{num_fields} tab-separated column(s)",
            f"{' or '.join(map(str, expected))}: {layout} (or a header line naming the columns)",
        )
    return columns, label


def read_task_tsv(path, num_texts, label_column=None):
    """Reads labelled single texts (``num_texts=1``) or text pairs (``num_texts=2``).

    Args:
        path: str or path-like. UTF-8, with or without BOM, header or trailing newline.
        num_texts: int. 1 (classification) or 2 (sentence pairs).
        label_column: None, int or str. Overrides where the label is: an index,
            or a header column name. Defaults to the header's ``label`` column,
            else the first column (single texts) or the third (pairs).

    Returns:
        A list of `TextExample`; blank lines and repeats of the header line
        are skipped, texts are stripped of surrounding whitespace and may be empty.

    Raises:
        DataFormatError: a line with a different number of columns than the
            header or first line, an empty label, or bytes that are not UTF-8.
    """
    if num_texts not in (1, 2):
        raise ValueError(f"num_texts must be 1 (classification) or 2 (sentence pairs), got {num_texts!r}")
    examples = []
    layout = None  # (number of columns, text column indices, label index, where the layout came from)
    header = None
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if layout is None:
            if is_header(fields):
                columns, label = _header_layout(path, number, fields, num_texts, label_column)
                layout = (len(fields), columns, label, f"the header (line {number})")
                header = fields
                continue
            columns, label = _positional_layout(path, number, len(fields), num_texts, label_column)
            layout = (len(fields), columns, label, f"the first line (line {number})")
        num_fields, columns, label, origin = layout
        if fields == header:
            continue  # the header again: files joined with `cat`
        if len(fields) != num_fields:
            raise DataFormatError(
                path, number, f"{len(fields)} tab-separated column(s)",
                f"{num_fields} like {origin} (is there a tab inside a text, or a missing column?)",
            )
        label_value = fields[label].strip()
        if not label_value:
            raise DataFormatError(path, number, "an empty label", "a non-empty label in every line")
        examples.append(TextExample(
            tuple(fields[c].strip() for c in columns), label_value, f"{os.fspath(path)}:{number}",
        ))
    return examples


def read_classification_tsv(path, label_column=None):
    """Reads ``label<TAB>text`` lines (SST-2); see `read_task_tsv`."""
    return read_task_tsv(path, 1, label_column)


def read_pair_tsv(path, label_column=None):
    """Reads ``sentence1<TAB>sentence2<TAB>label[<TAB>idx]`` lines (RTE); see `read_task_tsv`."""
    return read_task_tsv(path, 2, label_column)


def read_choice_tsv(path):
    """Reads multiple-choice lines ``context<TAB>choice_0<TAB>...<TAB>choice_k<TAB>label``.

    The format of ``tfpretrain finetune --task choice``: the first column is
    the context (a story, a question), the last the 0-based index of the
    right choice, and the columns between are the K >= 2 choices, the same K
    on every line. A header line (its last column named ``label``) is
    detected and skipped, and so are repeats of it.

    Returns:
        A list of `TextExample` with ``texts = (context, choice_0, ...,
        choice_k)`` and ``label`` the index as a string ("0", "1", ...).

    Raises:
        DataFormatError: fewer than 4 columns, a line with another number of
            columns than the first, or a label that is not a choice index.

    Example:

    >>> # story.tsv:  "Karen was assigned a roommate.<TAB>She hated her.<TAB>They became friends.<TAB>1"
    >>> read_choice_tsv("story.tsv")[0].texts[2], read_choice_tsv("story.tsv")[0].label
    ('They became friends.', '1')
    """
    examples, num_fields, header = [], None, None
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if num_fields is None:
            if len(fields) < 4:
                raise DataFormatError(path, number, f"{len(fields)} tab-separated column(s)",
                                      "context<TAB>choice_0<TAB>choice_1[<TAB>...]<TAB>label (at least 4 columns)")
            num_fields = len(fields)
            if is_header(fields):
                header = fields
                continue
        if len(fields) != num_fields:
            raise DataFormatError(path, number, f"{len(fields)} tab-separated column(s)",
                                  f"{num_fields} like the first line: the same number of choices on every line")
        if fields == header:
            continue  # the header again: files joined with `cat`
        label = fields[-1].strip()
        if not re.fullmatch(r"[0-9]+", label) or int(label) >= num_fields - 2:
            raise DataFormatError(path, number, f"label {label!r}",
                                  f"the 0-based index of the right choice, 0 to {num_fields - 3}")
        examples.append(TextExample(tuple(f.strip() for f in fields[:-1]), str(int(label)),
                                    f"{os.fspath(path)}:{number}"))
    return examples


def label_set(examples):
    """The sorted labels of the examples (numeric order when all labels are integers)."""
    labels = {example.label for example in examples}
    if all(re.fullmatch(r"-?[0-9]+", label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def check_labels(examples, labels):
    """Raises a `DataFormatError` at the first example whose label is not in ``labels``."""
    known = set(labels)
    for example in examples:
        if example.label not in known:
            shown = ", ".join(repr(label) for label in labels)
            raise DataFormatError(
                example.path, example.line, f"label {example.label!r}, which the training data does not have",
                f"one of the model's labels ({shown}); fix the label, or train with it",
            )



# ---------------------------------------------------------------------------
# A fine-tuning task's files


def tag_format(path, format=None):  # noqa: A002 (the CLI's option name)
    """The tagged-file format: ``format`` if given, else from the extension (default "iob2").

    Example:

    >>> tag_format("ner/train.conll"), tag_format("ner/train.txt"), tag_format("x.txt", "conllu")
    ('conll', 'iob2', 'conllu')
    """
    if format:
        return format
    return _TAG_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "iob2")


def read_text_examples(task, path, format=None, column=None):  # noqa: A002
    """Reads the TSV file of a text task (`TEXT_TASKS`: classify, pair, similarity, choice).

    Args:
        task: str. A key of `TEXT_TASKS`.
        path: str or path-like.
        format: None or "tsv" (anything else is an error: these files are TSV).
        column: None, int or str. The label column (see `read_task_tsv`); not for choice.

    Returns:
        A list of `TextExample`.
    """
    if format not in (None, "tsv"):
        raise ValueError(f"--format {format!r} does not apply to task {task!r}; its files are TSV "
                         "(label<TAB>text, sentence1<TAB>sentence2<TAB>label, or "
                         "context<TAB>choice_0<TAB>...<TAB>label); leave --format out")
    if task == "choice":
        if column is not None:
            raise ValueError("--column does not apply to --task choice: the label is the last column")
        return read_choice_tsv(path)
    return read_task_tsv(path, TEXT_TASKS[task], label_column=column)


def _choice_labels(train_path, train, dev_path, dev):
    """The labels of a choice task, "0" .. "K-1", checking that both files have K choices."""
    counts = {len(e.texts) - 1 for e in train} | {len(e.texts) - 1 for e in dev}
    if len(counts) > 1:
        raise ValueError(f"{train_path} and {dev_path} have different numbers of choices ({sorted(counts)}); "
                         "a choice model scores a fixed number of answers")
    return [str(k) for k in range(counts.pop())]


def tag_list(*sentence_lists):
    """All tags of the given sentences, 'O' first, then alphabetical (as the CRF tagger orders them)."""
    tags = {t for sentences in sentence_lists for s in sentences for t in s.tags}
    return sorted(tags, key=lambda t: (t != "O", t))


def read_tag_sentences(path, format=None, column=None, to_iob2_scheme=True):  # noqa: A002
    """Reads a tagged file (`tfpretrain.text.readers.read_tagged`); IOB1 / IO chunk tags become IOB2.

    Args:
        path: str or path-like.
        format: "iob2", "conll" or "conllu"; None: from the extension (`tag_format`).
        column: the tag column (see `read_tagged`).
        to_iob2_scheme: bool, default True. Rewrite IOB1 / IO tags as IOB2 (as ``train-tagger`` does).

    Returns:
        A list of `TaggedSentence`.
    """
    format = tag_format(path, format)
    sentences = read_tagged(path, format, column)
    if not sentences:
        raise ValueError(f"{path}: no sentences found; is --format {format} (and --column) right?")
    if to_iob2_scheme and detect_scheme(set(tag_list(sentences))) in ("IOB2", "IO"):
        sentences = [dataclasses.replace(s, tags=tuple(to_iob2(s.tags))) for s in sentences]
    return sentences


def read_task_data(task, train_path, dev_path, format=None, column=None):  # noqa: A002
    """Reads the training and dev data of a classify / pair / similarity / choice / tag task.

    Args:
        task: str. A key of `TEXT_TASKS`, or "tag".
        train_path, dev_path: str or path-like.
        format, column: see `read_text_examples` and `read_tag_sentences`.

    Returns:
        ``(train, dev, options)``: examples (`TextExample`s or `TaggedSentence`s)
        and the task options learned from them: ``labels`` (text tasks,
        from the training file; a dev label outside them is an error naming
        its line) or ``tags``, ``scheme`` and ``format`` (tag; the tag set is
        that of both files, as for ``train-tagger``).

    Example:

    >>> train, dev, options = read_task_data("classify", "sst2/train.tsv", "sst2/dev.tsv")
    >>> options["labels"]
    ['0', '1']
    """
    if task in TEXT_TASKS:
        train = read_text_examples(task, train_path, format, column)
        dev = read_text_examples(task, dev_path, format, column)
        for path, examples in ((train_path, train), (dev_path, dev)):
            if not examples:
                raise ValueError(f"{path}: no examples found; expected TSV lines like {_TSV_LAYOUTS[task]}")
        labels = _choice_labels(train_path, train, dev_path, dev) if task == "choice" else label_set(train)
        if len(labels) < 2:
            raise ValueError(f"{train_path}: only the label {labels[0]!r} occurs; a classifier needs at least "
                             "two labels in the training data")
        check_labels(dev, labels)
        return train, dev, {"labels": labels, "format": "tsv", "column": column}
    format = tag_format(train_path, format)
    train = read_tag_sentences(train_path, format, column)
    dev = read_tag_sentences(dev_path, format, column)
    tags = tag_list(train, dev)
    return train, dev, {"tags": tags, "scheme": detect_scheme(set(tags)), "format": format, "column": column}


__all__ = [
    "TEXT_TASKS",
    "TextExample",
    "check_labels",
    "is_header",
    "label_set",
    "read_choice_tsv",
    "read_classification_tsv",
    "read_pair_tsv",
    "read_tag_sentences",
    "read_task_data",
    "read_task_tsv",
    "read_text_examples",
    "tag_format",
    "tag_list",
]
