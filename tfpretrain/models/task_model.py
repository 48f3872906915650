"""Fine-tuned BERT and GPT task models: the tasks, building and loading them, their datasets, prediction and scores.

A fine-tune starts from a BERT directory (`tfpretrain.models.bert.load_bert`)
or a GPT directory (`tfpretrain.models.gpt.load_gpt`);
``model_kind(dir).architecture`` says which. A fine-tuned model directory
is such a directory (so a fine-tuned encoder can seed another fine-tune)
plus the head's weights and ``task.json`` (task, labels or tags, sequence
length, head options, dev scores), all written through
`tfpretrain.models.model_dir`. `load_task_model` loads every task directory,
question answering included.

BERT takes classify, pair, tag and qa; GPT takes classify, pair, similarity
and choice, rewritten as `tfpretrain.models.gpt.preprocessor` describes.
Strings become model inputs through the architecture's preprocessor
(`tfpretrain.models.bert.preprocessor`, `tfpretrain.models.gpt.preprocessor`),
in `task_dataset` as in the exported modules.

Example:

>>> model, tokenizer, options = load_task_model("runs/sst2")
>>> probabilities, _, truncated = predict_texts(model, tokenizer, options, [("a gorgeous film",)])
>>> score_examples(model, tokenizer, options, read_classification_tsv("sst2/dev.tsv"))["accuracy"]
0.89...
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.models.model_dir import (
    ARCHITECTURE_TASKS,
    TASK_FILE,
    TASKS,
    load_head_weights,
    model_kind,
    read_task_options,
    save_head_weights,
    write_task_options,
)
from tfpretrain.text.task_readers import TEXT_TASKS
from tfpretrain.training.metrics import macro_f1, score_tags

# The CRF constraint of a tag scheme (IOB1 and IO tags are read as IOB2).
SCHEME_CONSTRAINTS = {"IOB2": "BIO", "IOBES": "IOBES"}
# The options task.json must hold for each task, beyond ``task`` itself.
REQUIRED_OPTIONS = {
    **{task: ("labels", "sequence_length") for task in TEXT_TASKS},
    "tag": ("tags", "sequence_length"),
    "qa": ("sequence_length", "doc_stride", "max_query_length", "max_answer_length"),
}


# ---------------------------------------------------------------------------
# Models and their directories


def build_task_model(task, encoder, options):
    """The model of ``task`` on ``encoder`` (a `BertEncoder` or `GptDecoder`) for ``options`` (as in task.json).

    Args:
        task: one of `TASKS`.
        encoder: the backbone; GPT when ``options["architecture"] == "gpt"``.
        options: dict with ``sequence_length`` and ``labels`` (text tasks),
            ``tags`` (and optionally ``crf``, ``constraint``) for tag,
            ``lm_loss_weight`` for GPT.

    BERT's models take inputs of any length (fine-tuning cuts each batch to
    its longest example, `tfpretrain.models.bert.preprocessor.cut_padding`).

    Returns:
        A Keras model: `build_sequence_classifier`, `build_token_tagger`,
        `build_question_answerer` or a built `GptTransferModel`.
    """
    if options.get("architecture") == "gpt":
        from tfpretrain.models.gpt.transfer import GptTransferModel

        model = GptTransferModel(encoder, task, num_labels=len(options["labels"]),
                                 lm_loss_weight=options.get("lm_loss_weight", 0.5), name=f"{task}_model")
        model.build()  # subclassed: built before its head weights load or a checkpoint restores
        return model
    if task in TEXT_TASKS:
        from tfpretrain.models.bert.classifier import build_sequence_classifier

        return build_sequence_classifier(encoder, len(options["labels"]), name=f"{task}_model")
    if task == "qa":
        from tfpretrain.models.bert.question_answering import build_question_answerer

        return build_question_answerer(encoder)
    from tfpretrain.models.bert.token_tagger import build_token_tagger

    return build_token_tagger(encoder, options["tags"], crf=options.get("crf", False),
                              constraint=options.get("constraint"))


def _head_layers(model, encoder):
    return [layer for layer in model.layers if layer is not encoder and layer.weights]


def check_architecture(task, architecture, init_dir):
    """Raises a clear error when the model in ``init_dir`` (``architecture``: "bert" or "gpt") cannot do ``task``.

    Example:

    >>> check_architecture("choice", model_kind("runs/minilm").architecture, "runs/minilm")
    Traceback (most recent call last):
    ValueError: --task choice needs a GPT directory (tfpretrain pretrain-gpt); runs/minilm holds a BERT model, ...
    """
    if architecture not in ARCHITECTURE_TASKS:
        raise ValueError(f"{init_dir} holds {model_kind(init_dir).describe()}; --task {task} fine-tunes a BERT "
                         "directory (import-hf, pretrain-bert) or a GPT directory (pretrain-gpt)")
    if task not in ARCHITECTURE_TASKS[architecture]:
        other = "gpt" if architecture == "bert" else "bert"
        raise ValueError(f"--task {task} needs a {other.upper()} directory (tfpretrain pretrain-{other}"
                         f"{' or import-hf' if other == 'bert' else ''}); {init_dir} holds a "
                         f"{architecture.upper()} model, which does {', '.join(ARCHITECTURE_TASKS[architecture])}")


def _load_backbone(model_dir):
    from tfpretrain.models.bert.saving import load_bert
    from tfpretrain.models.gpt.saving import load_gpt

    return (load_gpt if model_kind(model_dir).architecture == "gpt" else load_bert)(model_dir)


def load_init_encoder(init_dir, sequence_length):
    """The encoder (BERT) or decoder (GPT) and tokenizer a fine-tune starts from, checked against ``sequence_length``.

    Example:

    >>> encoder, tokenizer = load_init_encoder("runs/minilm", 128)
    """
    encoder, tokenizer = _load_backbone(init_dir)
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds the encoder's max_sequence_length "
                         f"{encoder.max_sequence_length} ({init_dir}); use --sequence-length "
                         f"{encoder.max_sequence_length} or less")
    return encoder, tokenizer


def record_run(options, *, train_path, dev_path, init_dir, tokenizer, encoder, scores, **settings):
    """Adds what a fine-tuning run used and scored to its task.json ``options`` (and returns them)."""
    config = encoder.constructor_config()
    options.update(
        train=os.path.abspath(train_path), dev=os.path.abspath(dev_path), init=os.path.abspath(init_dir),
        dev_scores=scores, tokenizer={"lowercase": tokenizer.lowercase, "strip_accents": tokenizer.strip_accents},
        encoder={k: v for k, v in config.items() if isinstance(v, (int, float, str, bool, type(None)))},
        **settings,
    )
    return options


def save_task_model(out_dir, model, encoder, tokenizer, options):
    """Writes the BERT (or GPT) directory of the fine-tuned encoder, the head weights and task.json.

    Example:

    >>> save_task_model("runs/sst2", model, encoder, tokenizer, {"task": "classify", "labels": ["0", "1"],
    ...                 "sequence_length": 128, "architecture": "bert"})
    """
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.models.gpt.saving import save_gpt

    os.makedirs(out_dir, exist_ok=True)
    (save_gpt if options.get("architecture") == "gpt" else save_bert)(out_dir, encoder, tokenizer)
    save_head_weights(out_dir, _head_layers(model, encoder))
    write_task_options(out_dir, options)


def load_task_model(model_dir):
    """Returns ``(model, tokenizer, options)`` of any fine-tuned BERT or GPT directory (`save_task_model`), qa included.

    Raises:
        FileNotFoundError: no task.json or head weights.
        ValueError: an unknown task, task.json without the task's options,
            or head weights that do not match it.

    Example:

    >>> model, tokenizer, options = load_task_model("runs/squad")
    >>> options["task"], options["doc_stride"]
    ('qa', 128)
    """
    options = read_task_options(model_dir)
    path = os.path.join(model_dir, TASK_FILE)
    task = options.get("task")
    if task not in TASKS:
        raise ValueError(f"{path}: task {task!r}; expected one of {', '.join(TASKS)}")
    missing = [key for key in REQUIRED_OPTIONS[task] if key not in options]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}; the file is incomplete "
                         f"(fine-tune again with `tfpretrain finetune --task {task} --out DIR`)")
    encoder, tokenizer = _load_backbone(model_dir)
    model = build_task_model(task, encoder, options)
    load_head_weights(model_dir, _head_layers(model, encoder))
    return model, tokenizer, options


# ---------------------------------------------------------------------------
# Datasets: (x, y, info) batches, info the per-example truncation


def input_dtypes(model):
    """The dtype of each named input of ``model`` (datasets and exported signatures cast their features to match).

    `GptTransferModel` (subclassed: no symbolic inputs) takes int32 ids and mask.
    """
    from tfpretrain.models.gpt.preprocessor import INPUT_DTYPES
    from tfpretrain.models.gpt.transfer import GptTransferModel

    if isinstance(model, GptTransferModel):
        return dict(INPUT_DTYPES)
    return {name: tensor.dtype for name, tensor in model.input.items()}


def task_dataset(task, examples, tokenizer, model, options, batch_size, shuffle=False, seed=0):
    """The ``(x, y, info)`` dataset of a classify / pair / similarity / choice / tag task.

    Args:
        task: str.
        examples: `TextExample`s or tuples of strings (text tasks);
            `TaggedSentence`s or word lists (tag).
        tokenizer: the model's `WordPieceTokenizer`.
        model: the task model (for its input dtypes).
        options: its task.json (``sequence_length``, ``labels`` or ``tags``, ``architecture``).
        batch_size, shuffle, seed: batching and per-epoch shuffling (training
            batches hold examples of similar length).

    BERT's batches are cut to their longest example (GPT's stay
    ``sequence_length`` long: its transfer head reads the whole sequence), or with
    ``options["static_shapes"]`` padded to a few fixed lengths
    (`tfpretrain.models.bert.preprocessor.cut_padding`).

    Returns:
        A `tf.data.Dataset` of ``(x, y, info)``: ``y`` label ids (tag ids
        per word slot for tag; -1 where unknown), ``info`` the truncation
        (``truncated`` flags, or for tag ``num_words_truncated``).
    """
    from tfpretrain.models.bert.preprocessor import text_dataset, word_dataset

    common = dict(tokenizer=tokenizer, sequence_length=options["sequence_length"], batch_size=batch_size,
                  input_dtypes=input_dtypes(model), shuffle=shuffle, seed=seed,
                  static_shapes=bool(options.get("static_shapes", False)))
    if task == "tag":
        return word_dataset(examples, tags=options["tags"], **common)
    if options.get("architecture") == "gpt":
        from tfpretrain.models.gpt.preprocessor import encode_gpt_inputs

        def encode(tokenizer, texts, sequence_length):
            return encode_gpt_inputs(tokenizer, task, texts, sequence_length)

        return text_dataset(examples, labels=options["labels"], encode=encode, full_length=True, **common)
    return text_dataset(examples, labels=options["labels"], **common)


def without_info(data):
    """Drops the third element (truncation info) of a `task_dataset` so that ``fit`` sees ``(x, y)``."""
    return data.map(lambda x, y, info: (x, y))


def count_truncated(data):
    """Sum of the per-example truncation info of a `task_dataset`."""
    return int(data.map(lambda x, y, info: tf.reduce_sum(tf.cast(info, "int64"))).reduce(
        tf.constant(0, tf.int64), lambda total, n: total + n))


# ---------------------------------------------------------------------------
# Predicting and scoring


def _dense(output, padding=0):
    """A `model.predict` output as a NumPy array: batches of different widths come back ragged; pad them."""
    if isinstance(output, tf.RaggedTensor):
        output = output.to_tensor(default_value=padding)
    return np.asarray(output)


def _predict(model, data):
    """Model outputs over an (x, y, info) dataset, plus the concatenated y and info.

    Batches are as wide as their longest example, so per-word outputs and
    gold are padded to the widest batch (gold with -1) before they are joined.
    """
    outputs = model.predict(data.map(lambda x, y, info: x), verbose=0)
    outputs = {name: _dense(value) for name, value in outputs.items()} if isinstance(outputs, dict) else _dense(outputs)
    gold, info = [], []
    for _, y, extra in data:
        gold.append(y.numpy())
        info.append(extra.numpy())
    width = max((g.shape[1] for g in gold if g.ndim > 1), default=None)
    if width is not None:
        gold = [np.pad(g, [(0, 0), (0, width - g.shape[1])], constant_values=-1) for g in gold]
    return outputs, np.concatenate(gold), np.concatenate(info)


def predict_texts(model, tokenizer, options, examples, batch_size=32):
    """Class probabilities (n, num_labels), gold label ids (-1 unknown) and truncated flags of text examples."""
    data = task_dataset(options["task"], examples, tokenizer, model, options, batch_size)
    logits, gold, truncated = _predict(model, data)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, "float32"), axis=-1))
    return probabilities, gold, truncated


def predict_words(model, tokenizer, options, sentences, batch_size=32):
    """One predicted tag per word of each sentence ("O" for words cut by truncation), and the cut counts.

    Args:
        sentences: `TaggedSentence`s or lists of words.

    Returns:
        ``(tags, num_words_truncated)``: a list of tag strings per sentence,
        and the (n,) words each sentence lost (`tfpretrain.models.bert.preprocessor.word_tags`).
    """
    from tfpretrain.models.bert.preprocessor import word_tags

    data = task_dataset("tag", sentences, tokenizer, model, options, batch_size)
    outputs, _, num_words_truncated = _predict(model, data)
    lengths = [len(getattr(sentence, "tokens", sentence)) for sentence in sentences]
    tags = word_tags(outputs["tag_ids"], options["tags"], tf.constant(lengths, tf.int32), num_words_truncated,
                     max(lengths, default=0))
    return ([[tag.decode("utf-8") for tag in row[:length]] for row, length in zip(tags.numpy().tolist(), lengths)],
            num_words_truncated)


def score_examples(model, tokenizer, options, examples, batch_size=32):
    """The scores of a classify / pair / similarity / choice / tag model on labelled examples, a JSON-ready dict.

    Text tasks: ``accuracy``, ``macro_f1``, ``num_examples``, ``num_truncated``.
    tag: ``precision``, ``recall``, ``f1`` (entities, seqeval semantics),
    ``accuracy`` (words), ``sentences``, ``tokens``, ``num_words_truncated``
    (words cut by truncation, scored as predicted "O").
    """
    if options["task"] == "tag":
        predicted, num_words_truncated = predict_words(model, tokenizer, options, examples, batch_size)
        scores = score_tags([list(s.tags) for s in examples], predicted, tags=options["tags"])
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
