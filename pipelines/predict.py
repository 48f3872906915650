"""Answers of a model, whichever form it is in (``tfpretrain predict``).

``path`` may be a model directory (``train-tagger``, ``finetune``, ``ulmfit``,
a BERT directory), a SavedModel version directory (``saved_models/NAME/N``)
or a ``.tflite`` file; all three run the same raw-text graph, so they print
the same answers (up to float rounding in the scores).

An input with several texts (pair, similarity, QA, choice) is one line with
the texts separated by tabs, in the order ``text_a, text_b`` /
``question, context`` / ``context, choice_0, choice_1, ...``.

Inputs may be `str` or `bytes` (``tfpretrain tag`` / ``predict`` read stdin
as bytes, so that a line that is not valid UTF-8 still gets its answer): the
graph receives the bytes as they are, and the answers show them decoded with
``errors="replace"``. Every answer is valid JSON (a NaN score becomes null).
"""

import os

import numpy as np
import tensorflow as tf

from tfpretrain.export.tflite import TfliteModel, ordered_inputs, to_bytes

#: Outputs with one entry per word, cut to the text's ``lengths``.
PER_WORD = ("words", "tags", "starts", "ends", "word_vectors")
BATCH_SIZE = 64


def load(path):
    """A function: list of inputs -> dict of numpy outputs with a batch axis, for one of the three forms."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model; give a model directory (train-tagger, finetune, ulmfit, "
                                "a BERT directory), a SavedModel version directory or a .tflite file")
    if path.endswith(".tflite") or os.path.isfile(path):
        model = TfliteModel(path)
        return model.input_names, lambda rows: [model.run_one(row) for row in rows]
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        import tensorflow_text  # noqa: F401  (registers the ops the SavedModel uses)

        signature = tf.saved_model.load(path).signatures["serving_default"]
    else:
        from tfpretrain.export.serving import serving_module

        signature = serving_module(path)[1]["serving_default"]
    names = _input_names(signature)
    return names, lambda rows: [_run_signature(signature, names, rows)]


def _input_names(signature):
    args, kwargs = signature.structured_input_signature
    return ordered_inputs(list(kwargs) or [spec.name for spec in args])


def _run_signature(signature, names, rows):
    columns = {}
    for i, name in enumerate(names):
        if name == "choices":
            width = max(len(row) - i for row in rows)
            columns[name] = tf.constant([[to_bytes(t) for t in row[i:]] + [b""] * (width - len(row) + i)
                                         for row in rows], tf.string, shape=[len(rows), width])
        else:
            columns[name] = tf.constant([to_bytes(row[i]) for row in rows], tf.string, shape=[len(rows)])
    outputs = signature(**columns) if signature.structured_input_signature[1] else signature(
        *(columns[spec.name] for spec in signature.structured_input_signature[0]))
    return {key: value.numpy() for key, value in outputs.items()}


def split_inputs(texts, names):
    """Each text as a tuple of fields, one per input name (tab-separated; ``choices`` takes the rest)."""
    rows = []
    for number, text in enumerate(texts, start=1):
        if isinstance(text, (tuple, list)):
            fields = tuple(text)
        elif isinstance(text, bytes):
            fields = tuple(text.split(b"\t"))
        else:
            fields = tuple(str(text).split("\t"))
        if len(names) == 1:
            fields = (text,) if isinstance(text, (str, bytes)) else ("\t".join(fields),)
        elif "choices" in names:
            if len(fields) < len(names) + 1:
                raise ValueError(f"input {number}: expected a context and at least two choices, tab-separated")
        elif len(fields) != len(names):
            raise ValueError(f"input {number}: expected {len(names)} tab-separated texts ({', '.join(names)}), "
                             f"got {len(fields)}")
        rows.append(fields)
    return rows


def answers(outputs, rows):
    """One JSON-serialisable dict per row of a batch of outputs (per-word outputs cut to ``lengths``)."""
    results = []
    for i, row in enumerate(rows):
        answer = {"text": display(row[0]) if len(row) == 1 else [display(field) for field in row]}
        length = int(outputs["lengths"][i]) if "lengths" in outputs else None
        for key in sorted(outputs):
            value = outputs[key][i]
            if key in PER_WORD and length is not None:
                value = value[:length]
            answer[key] = _jsonable(value)
        results.append(answer)
    return results


def _jsonable(value):
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind == "S":  # strings; a scalar one comes as numpy bytes
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist() \
            if value.ndim else value.item().decode("utf-8", "replace")
    if value.dtype.kind == "f":  # NaN / Inf (a QA score without an answer) as null: bare NaN is not JSON
        rounded = np.round(value.astype(np.float64), 6)
        if value.ndim == 0:
            return float(rounded) if np.isfinite(rounded) else None
        return np.where(np.isfinite(rounded), rounded, None).tolist()
    return value.tolist()


def display(text):
    """``text`` as a `str` that prints and JSON-encodes: bytes decoded and lone surrogates replaced with U+FFFD."""
    return to_bytes(text).decode("utf-8", "replace")


def run(path, texts):
    """Answers for ``texts``, one dict per input, in order."""
    names, predict = load(path)
    rows = split_inputs(texts, names)
    results = []
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        offset = 0
        for outputs in predict(batch):
            size = len(next(iter(outputs.values())))
            results += answers(outputs, batch[offset : offset + size])
            offset += size
    return results
