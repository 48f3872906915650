"""What the fine-tuning jobs share: task data, tf.data encoding, the model directory, scoring.

A fine-tune starts from a BERT directory (`load_bert`) or a GPT directory
(`load_gpt`); ``options["architecture"]`` ("bert" or "gpt") says which. A
fine-tuned model directory is such a directory (so a fine-tuned encoder can
seed another fine-tune) plus ``task.json`` (task, labels, sequence length,
head options, dev scores) and ``head.weights.npz`` (the weights of the layers
on top of the encoder, by layer name).

BERT takes classify, pair, tag and qa; GPT takes classify, pair, similarity
and choice, rewritten as `tfpretrain.text.gpt_transforms` describes.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.models.bert.classifier import build_sequence_classifier
from tfpretrain.models.bert.token_tagger import build_token_tagger
from tfpretrain.pipelines.evaluate import score as score_tags
from tfpretrain.text.readers import detect_scheme, read_tagged, to_iob2
from tfpretrain.text.task_readers import check_labels, label_set, read_choice_tsv, read_task_tsv

TASKS = ("classify", "pair", "qa", "tag", "similarity", "choice")
TEXT_TASKS = {"classify": 1, "pair": 2, "similarity": 2, "choice": None}  # task -> texts per example (None: any)
ARCHITECTURE_TASKS = {"bert": ("classify", "pair", "qa", "tag"), "gpt": ("classify", "pair", "similarity", "choice")}
SCHEME_CONSTRAINTS = {"IOB2": "BIO", "IOBES": "IOBES"}
TASK_FILE = "task.json"
HEAD_WEIGHTS_FILE = "head.weights.npz"
_TAG_FORMATS = {".iob2": "iob2", ".conllu": "conllu", ".conll": "conll"}


# ---------------------------------------------------------------------------
# Reading task data


def tag_format(path, format=None):  # noqa: A002 (the CLI's option name)
    """The tagged-file format: ``format`` if given, else from the extension (default "iob2")."""
    if format:
        return format
    return _TAG_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "iob2")


def read_text_examples(task, path, format=None, column=None):  # noqa: A002
    """Reads a classify / pair / similarity / choice TSV file; ``column`` overrides the label column."""
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
    """Reads a tagged file; IOB1 / IO chunk tags become IOB2 (as ``train-tagger`` does)."""
    format = tag_format(path, format)
    sentences = read_tagged(path, format, column)
    if not sentences:
        raise ValueError(f"{path}: no sentences found; is --format {format} (and --column) right?")
    if to_iob2_scheme and detect_scheme(set(tag_list(sentences))) in ("IOB2", "IO"):
        sentences = [dataclasses.replace(s, tags=tuple(to_iob2(s.tags))) for s in sentences]
    return sentences


_TSV_LAYOUTS = {"classify": "label<TAB>text", "pair": "sentence1<TAB>sentence2<TAB>label",
                "similarity": "sentence1<TAB>sentence2<TAB>label",
                "choice": "context<TAB>choice_0<TAB>...<TAB>choice_k<TAB>label"}


def read_task_data(task, train_path, dev_path, format=None, column=None):  # noqa: A002
    """Reads the training and dev data of a classify / pair / tag task.

    Returns:
        ``(train, dev, options)``: examples (`TextExample`s or `TaggedSentence`s)
        and the task options learned from them: ``labels`` (classify / pair,
        from the training file; a dev label outside them is an error naming
        its line) or ``tags``, ``scheme`` and ``format`` (tag; the tag set is
        that of both files, as for ``train-tagger``).
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


# ---------------------------------------------------------------------------
# tf.data encoding: strings -> word pieces -> packed, fixed-length model inputs


def input_dtypes(model):
    """The dtype of each named input of ``model`` (datasets cast their features to match).

    `GptTransferModel` (subclassed: no symbolic inputs) takes int32 ids and mask.
    """
    from tfpretrain.models.gpt.transfer import GptTransferModel

    if isinstance(model, GptTransferModel):
        return {"token_ids": "int32", "padding_mask": "int32"}
    return {name: tensor.dtype for name, tensor in model.input.items()}


def _cast(packed, dtypes):
    return {name: tf.cast(packed[name], dtypes.get(name, packed[name].dtype)) for name in dtypes}


def encode_texts(tokenizer, texts, sequence_length):
    """Packs a batch of 1 or 2 string columns as ``[CLS] a [SEP] (b [SEP])``.

    Returns the packed dict of `pack_segments` and ``truncated`` (batch,) bool:
    whether the texts lost pieces to ``sequence_length``.
    """
    from tfpretrain.text.packing import pack_segments

    segments = tuple(tokenizer(column) for column in texts)  # each (batch, pieces), ragged
    packed = pack_segments(segments, sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                           tokenizer.pad_token_id)
    num_pieces = tf.add_n([tf.cast(s.row_lengths(), "int32") for s in segments]) + len(segments) + 1
    return packed, num_pieces > sequence_length


def encode_words(tokenizer, words, sequence_length):
    """Packs a batch of word lists (ragged (batch, words) strings) with one slot per word.

    Returns ``(packed, num_words_truncated)``: ``word_positions`` / ``word_mask``
    have ``sequence_length - 2`` slots (no more words can fit), and per
    sentence how many words truncation cut off.
    """
    from tfpretrain.text.packing import pack_words

    num_words = sequence_length - 2
    pieces = tokenizer.tokenize_words(words)  # (batch, words, pieces)
    packed = dict(pack_words(pieces, sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                             tokenizer.pad_token_id, max_words=num_words))
    for name in ("word_positions", "word_mask"):
        packed[name] = tf.ensure_shape(packed[name], [None, num_words])
    return packed, packed.pop("num_words_truncated")


def text_dataset(examples, tokenizer, sequence_length, batch_size, input_dtypes, labels=None,
                 shuffle=False, seed=0, gpt_task=None):
    """``(x, label_id, truncated)`` batches for classify / pair / similarity / choice examples (label_id -1 if unknown).

    ``examples``: `TextExample`s, or tuples of strings. BERT packs them as
    ``[CLS] a [SEP] (b [SEP])``; with ``gpt_task`` they become GPT transfer
    sequences (`tfpretrain.text.gpt_transforms.encode_gpt_inputs`).
    """
    columns = list(zip(*[getattr(e, "texts", e) for e in examples]))
    index = {label: i for i, label in enumerate(labels or [])}
    label_ids = [index.get(getattr(e, "label", None), -1) for e in examples]
    data = tf.data.Dataset.from_tensor_slices(
        (tuple(tf.constant(list(c), tf.string) for c in columns), tf.constant(label_ids, tf.int32))
    )
    if shuffle:
        data = data.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)

    def encode(texts, label_ids):
        if gpt_task:
            from tfpretrain.text.gpt_transforms import encode_gpt_inputs

            packed, truncated = encode_gpt_inputs(tokenizer, gpt_task, texts, sequence_length)
        else:
            packed, truncated = encode_texts(tokenizer, texts, sequence_length)
        return _cast(packed, input_dtypes), label_ids, truncated

    return data.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def word_dataset(sentences, tokenizer, sequence_length, batch_size, input_dtypes, tags=None,
                 shuffle=False, seed=0):
    """``(x, tag_ids, num_words_truncated)`` batches for tagging; tag_ids -1 at padding, cut words, unknown tags.

    ``sentences``: `TaggedSentence`s, or lists of words.
    """
    words = [list(getattr(s, "tokens", s)) for s in sentences]
    lengths = [len(w) for w in words]
    index = {tag: i for i, tag in enumerate(tags or [])}
    tag_ids = [index.get(t, -1) for s, ws in zip(sentences, words) for t in getattr(s, "tags", [None] * len(ws))]
    data = tf.data.Dataset.from_tensor_slices((
        tf.RaggedTensor.from_row_lengths(tf.constant([w for ws in words for w in ws], tf.string), lengths),
        tf.RaggedTensor.from_row_lengths(tf.constant(tag_ids, tf.int32), lengths),
    ))
    if shuffle:
        data = data.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)
    num_words = sequence_length - 2

    def encode(words, tag_ids):
        packed, num_words_truncated = encode_words(tokenizer, words, sequence_length)
        gold = tag_ids.to_tensor(default_value=-1, shape=[None, num_words])  # (batch, words)
        gold = tf.where(packed["word_mask"], gold, -1)
        return _cast(packed, input_dtypes), gold, num_words_truncated

    return data.ragged_batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def task_dataset(task, examples, tokenizer, model, options, batch_size, shuffle=False, seed=0):
    """The (x, y, info) dataset of a classify / pair / tag task."""
    common = dict(tokenizer=tokenizer, sequence_length=options["sequence_length"], batch_size=batch_size,
                  input_dtypes=input_dtypes(model), shuffle=shuffle, seed=seed)
    if task == "tag":
        return word_dataset(examples, tags=options["tags"], **common)
    gpt_task = task if options.get("architecture") == "gpt" else None
    return text_dataset(examples, labels=options["labels"], gpt_task=gpt_task, **common)


def without_info(data):
    """Drops the third element (truncation info) so that ``fit`` sees ``(x, y)``."""
    return data.map(lambda x, y, info: (x, y))


def count_truncated(data):
    """Sum of the per-example truncation info of an (x, y, info) dataset."""
    return int(data.map(lambda x, y, info: tf.reduce_sum(tf.cast(info, "int64"))).reduce(
        tf.constant(0, tf.int64), lambda total, n: total + n))


# ---------------------------------------------------------------------------
# Models


def build_task_model(task, encoder, options):
    """The model of a task on ``encoder`` for ``options`` (as stored in task.json)."""
    sequence_length = options["sequence_length"]
    if options.get("architecture") == "gpt":
        from tfpretrain.models.gpt.transfer import GptTransferModel

        model = GptTransferModel(encoder, task, num_classes=len(options["labels"]),
                                 lm_loss_weight=options.get("lm_loss_weight", 0.5), name=f"{task}_model")
        model.build()  # subclassed: built before its head weights load or a checkpoint restores
        return model
    if task in TEXT_TASKS:
        return build_sequence_classifier(encoder, len(options["labels"]), sequence_length=sequence_length,
                                         name=f"{task}_model")
    return build_token_tagger(encoder, options["tags"], crf=options.get("crf", False),
                              constraint=options.get("constraint"), sequence_length=sequence_length)


def _head_layers(model, encoder):
    return [layer for layer in model.layers if layer is not encoder and layer.weights]


def architecture_of(model_dir):
    """"gpt" for a GPT directory (``decoder.json``), else "bert"."""
    from tfpretrain.models.gpt import is_gpt_dir

    return "gpt" if is_gpt_dir(model_dir) else "bert"


def check_architecture(task, architecture, init_dir):
    """Raises a clear error when the model in ``init_dir`` cannot do ``task``."""
    if task not in ARCHITECTURE_TASKS[architecture]:
        other = "gpt" if architecture == "bert" else "bert"
        raise ValueError(f"--task {task} needs a {other.upper()} directory (tfpretrain pretrain-{other}"
                         f"{' or import-hf' if other == 'bert' else ''}); {init_dir} holds a "
                         f"{architecture.upper()} model, which does {', '.join(ARCHITECTURE_TASKS[architecture])}")


def _load_pretrained(model_dir):
    from tfpretrain.models.bert.saving import load_bert
    from tfpretrain.models.gpt import load_gpt

    return (load_gpt if architecture_of(model_dir) == "gpt" else load_bert)(model_dir)


def load_init_encoder(init_dir, sequence_length):
    """The encoder (BERT) or decoder (GPT) and tokenizer a fine-tune starts from, checked against ``sequence_length``."""
    encoder, tokenizer = _load_pretrained(init_dir)
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds the encoder's max_sequence_length "
                         f"{encoder.max_sequence_length} ({init_dir}); use --sequence-length "
                         f"{encoder.max_sequence_length} or less")
    return encoder, tokenizer


def load_head_weights(model_dir, model, encoder):
    """Restores the head (every layer but the encoder) from ``head.weights.npz``, checking each shape."""
    head_path = os.path.join(model_dir, HEAD_WEIGHTS_FILE)
    if not os.path.exists(head_path):
        raise FileNotFoundError(f"{model_dir}: {HEAD_WEIGHTS_FILE} is missing; the fine-tuned model directory "
                                "is incomplete (fine-tune again with `tfpretrain finetune --out DIR`).")
    with np.load(head_path) as stored:
        layers = _head_layers(model, encoder)
        expected = {f"{layer.name}/{i}" for layer in layers for i in range(len(layer.weights))}
        if set(stored.files) != expected:
            raise ValueError(f"{head_path} holds {sorted(stored.files)} but the model's head has {sorted(expected)}; "
                             "task.json and the weights do not match")
        for layer in layers:
            weights = []
            for i, variable in enumerate(layer.weights):
                key = f"{layer.name}/{i}"
                if key not in stored or stored[key].shape != tuple(variable.shape):
                    found = stored[key].shape if key in stored else "nothing"
                    raise ValueError(f"{head_path}: weight {key} should have shape {tuple(variable.shape)}, "
                                     f"found {found}; task.json and the weights do not match")
                weights.append(stored[key])
            layer.set_weights(weights)


def record_run(options, *, train_path, dev_path, init_dir, tokenizer, encoder, scores, **settings):
    """Adds what a fine-tuning run used and scored to its ``task.json`` options."""
    config = encoder.constructor_config()
    options.update(
        train=os.path.abspath(train_path), dev=os.path.abspath(dev_path), init=os.path.abspath(init_dir),
        dev_scores=scores, tokenizer={"lowercase": tokenizer.lowercase, "strip_accents": tokenizer.strip_accents},
        encoder={k: v for k, v in config.items() if isinstance(v, (int, float, str, bool, type(None)))},
        **settings,
    )
    return options


def save_task_model(out_dir, model, encoder, tokenizer, options):
    """Writes the BERT (or GPT) directory of the fine-tuned encoder, the head weights and task.json."""
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.models.gpt import save_gpt

    os.makedirs(out_dir, exist_ok=True)
    (save_gpt if options.get("architecture") == "gpt" else save_bert)(out_dir, encoder, tokenizer)
    head = {}
    for layer in _head_layers(model, encoder):
        for i, weight in enumerate(layer.get_weights()):
            head[f"{layer.name}/{i}"] = weight
    np.savez(os.path.join(out_dir, HEAD_WEIGHTS_FILE), **head)
    with open(os.path.join(out_dir, TASK_FILE), "w", encoding="utf-8") as f:
        json.dump(options, f, indent=2)


def read_task_options(model_dir):
    """The task.json of a fine-tuned model directory."""
    path = os.path.join(model_dir, TASK_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir} is not a fine-tuned model directory: {TASK_FILE} is missing "
                                "(fine-tune one with `tfpretrain finetune --task ... --out DIR`).")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_task_model(model_dir):
    """Returns ``(model, tokenizer, options)`` of a fine-tuned model (not qa) saved by `save_task_model`."""
    options = read_task_options(model_dir)
    task = options.get("task")
    if task not in TEXT_TASKS and task != "tag":
        raise ValueError(f"{os.path.join(model_dir, TASK_FILE)}: task {task!r}; expected one of "
                         f"{', '.join(list(TEXT_TASKS) + ['tag'])} (load question-answering models with "
                         "tfpretrain.pipelines.finetune_qa)")
    encoder, tokenizer = _load_pretrained(model_dir)
    model = build_task_model(task, encoder, options)
    load_head_weights(model_dir, model, encoder)
    return model, tokenizer, options


# ---------------------------------------------------------------------------
# Predicting and scoring


def _predict(model, data):
    """Model outputs over an (x, y, info) dataset, plus the concatenated y and info."""
    outputs = model.predict(data.map(lambda x, y, info: x), verbose=0)
    gold, info = [], []
    for _, y, extra in data:
        gold.append(y.numpy())
        info.append(extra.numpy())
    return outputs, np.concatenate(gold), np.concatenate(info)


def predict_texts(model, tokenizer, options, examples, batch_size=32):
    """Class probabilities (n, num_labels), gold label ids (-1 unknown) and truncated flags."""
    data = task_dataset(options["task"], examples, tokenizer, model, options, batch_size)
    logits, gold, truncated = _predict(model, data)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, "float32"), axis=-1))
    return probabilities, gold, truncated


def predict_words(model, tokenizer, options, sentences, batch_size=32):
    """One predicted tag per word of each sentence ("O" for words cut by truncation), and the cut counts."""
    data = task_dataset("tag", sentences, tokenizer, model, options, batch_size)
    outputs, _, num_words_truncated = _predict(model, data)
    tags = options["tags"]
    predicted = []
    for row, sentence in enumerate(sentences):
        length = len(getattr(sentence, "tokens", sentence))
        kept = length - int(num_words_truncated[row])
        predicted.append([tags[i] for i in outputs["tag_ids"][row, :kept]] + ["O"] * (length - kept))
    return predicted, num_words_truncated


def label_predictions(texts, probabilities, labels):
    """One ``{"text", "label", "score", "probabilities": {label: p}}`` per text, the label the most probable."""
    results = []
    for text, row in zip(texts, probabilities):
        best = int(np.argmax(row))
        results.append({"text": text, "label": labels[best], "score": float(row[best]),
                        "probabilities": {label: float(p) for label, p in zip(labels, row)}})
    return results


def macro_f1(gold, predicted):
    """Unweighted mean of per-class F1 over the classes in gold or predictions (as scikit-learn)."""
    scores = []
    for label in np.union1d(gold, predicted):
        true_positives = np.sum((gold == label) & (predicted == label))
        denominator = np.sum(gold == label) + np.sum(predicted == label)
        scores.append(2.0 * true_positives / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def score_examples(model, tokenizer, options, examples, batch_size=32):
    """The scores of a classify / pair / tag model on labelled examples, a JSON-serialisable dict.

    classify / pair: ``accuracy``, ``macro_f1``, ``num_examples``, ``num_truncated``.
    tag: ``precision``, ``recall``, ``f1`` (entities, seqeval semantics),
    ``accuracy`` (words), ``sentences``, ``tokens``, ``num_words_truncated``
    (words cut by truncation, scored as predicted "O").
    """
    if options["task"] == "tag":
        predicted, num_words_truncated = predict_words(model, tokenizer, options, examples, batch_size)
        scores = score_tags([list(s.tags) for s in examples], predicted)
        scores.update(sentences=len(examples), tokens=sum(len(s.tokens) for s in examples),
                      num_words_truncated=int(np.sum(num_words_truncated)))
        return scores
    probabilities, gold, truncated = predict_texts(model, tokenizer, options, examples, batch_size)
    predicted = np.argmax(probabilities, axis=-1)
    return {
        "accuracy": float(np.mean(predicted == gold)),
        "macro_f1": macro_f1(gold, predicted),
        "num_examples": len(examples),
        "num_truncated": int(np.sum(truncated)),
    }
