"""Fine-tune a BERT encoder or a GPT decoder on a task (``tfpretrain finetune``), evaluate and use the result.

Tasks: ``classify`` (one text, TSV ``label<TAB>text`` as SST-2), ``pair`` (two
texts, TSV ``sentence1<TAB>sentence2<TAB>label`` as RTE), ``tag`` (one tag per
word, the tagger's file formats; softmax or, with ``crf=True``, BERT-CRF) and
``qa`` (SQuAD spans; handed to `tfpretrain.pipelines.finetune_qa`) from a BERT
directory; ``classify``, ``pair``, ``similarity`` (a pair file, both orders
read) and ``choice`` (TSV ``context<TAB>choice_0<TAB>...<TAB>label``, see
`tfpretrain.text.task_readers.read_choice_tsv`) from a GPT directory, with
the input rewriting of GPT-1 (`tfpretrain.models.gpt.preprocessor`).

Example:

>>> scores = run("classify", "runs/bert", "sst2/train.tsv", "sst2/dev.tsv", "runs/sst2", epochs=2)
>>> evaluate("runs/sst2", "sst2/dev.tsv")["accuracy"] == scores["accuracy"]
True
>>> predict("runs/sst2", ["a gorgeous film"])[0]["label"]
'1'
"""

import math
import os
import warnings

import keras

from tfpretrain.models.model_dir import TASKS, model_kind, read_task_options
from tfpretrain.models.task_model import (
    SCHEME_CONSTRAINTS,
    build_task_model,
    check_architecture,
    count_truncated,
    load_init_encoder,
    load_task_model,
    predict_texts,
    predict_words,
    record_run,
    save_task_model,
    score_examples,
    task_dataset,
    without_info,
)
from tfpretrain.training.callbacks import fit_resumable, read_history_csv
from tfpretrain.training.distribute import get_strategy
from tfpretrain.training.metrics import EntityF1, TokenAccuracy, label_predictions
from tfpretrain.training.precision import check_jit_compile, uses_precision
from tfpretrain.text.task_readers import (
    TEXT_TASKS,
    check_labels,
    read_tag_sentences,
    read_task_data,
    read_text_examples,
)

__all__ = ["TASKS", "TASK_DEFAULTS", "evaluate", "load_task_model", "predict", "run"]

# Defaults of classify / pair / tag (qa has its own, in finetune_qa.run).
TASK_DEFAULTS = {"sequence_length": 128, "epochs": 3, "batch_size": 32}


def _check_task(task):
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _compile(model, task, options, learning_rate, total_steps, jit_compile="auto"):
    from tfpretrain.training.schedules import bert_optimizer

    optimizer = bert_optimizer(learning_rate, total_steps)
    jit_compile = check_jit_compile(jit_compile)
    if task in TEXT_TASKS:
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit_compile)
        return
    metrics = [TokenAccuracy(name="accuracy")]
    if options["scheme"] in SCHEME_CONSTRAINTS:
        metrics.append(EntityF1(options["tags"], name="entity"))
    model.compile(optimizer=optimizer, metrics=metrics, jit_compile=jit_compile)


@uses_precision
def run(task, init_dir, train_path, dev_path, out_dir, *, format=None, column=None, crf=False,  # noqa: A002
        sequence_length=None, epochs=None, batch_size=None, learning_rate=5e-5, max_train_examples=None, seed=0,
        strategy="default", logical_cpus=None, doc_stride=None, max_query_length=None, max_answer_length=None,
        lm_loss_weight=None, precision=None, jit_compile="auto", overwrite=False, verbose=1, log=print):
    """Fine-tunes the BERT encoder or GPT decoder in ``init_dir`` with a task head; saves it to ``out_dir``.

    Training is `fit_resumable`: a checkpoint per epoch under ``out_dir``, and
    the same call after an interruption continues from the last finished
    epoch. The optimizer is AdamW with BERT's schedule (linear warm-up over
    10% of the steps, then linear decay to 0).

    Args:
        task: "classify", "pair", "tag" or "qa" (BERT); "classify", "pair",
            "similarity" or "choice" (GPT).
        init_dir: a BERT directory (`tfpretrain.models.bert.load_bert`), e.g.
            from ``pretrain-bert``, ``import-hf`` or an earlier fine-tune, or a
            GPT directory (`tfpretrain.models.gpt.load_gpt`, from ``pretrain-gpt``).
        train_path, dev_path: labelled files (TSV for classify / pair; the
            tagger's formats for tag; SQuAD JSON for qa).
        out_dir: where the fine-tuned model directory is written.
        format, column: tag: the tagged-file format ("iob2", "conll",
            "conllu"; default from the extension) and tag column. classify /
            pair: format must be None or "tsv"; column is the label column.
        crf: tag only: a CRF on top of the per-word scores (BERT-CRF), with
            the BIO / IOBES constraint of the tag scheme (IOB1 / IO become IOB2).
        sequence_length: pieces per example, ``[CLS]`` and ``[SEP]`` included;
            longer texts are truncated (counted in the log and the scores).
            None: the task's default, like ``epochs`` and ``batch_size``
            (`TASK_DEFAULTS`: 128, 3, 32 for classify / pair / tag;
            finetune_qa's own for qa).
        learning_rate: peak learning rate, default 5e-5.
        max_train_examples: use only the first N training examples.
        strategy, logical_cpus: see `tfpretrain.training.distribute.get_strategy`.
        doc_stride, max_query_length, max_answer_length: qa only (see
            `tfpretrain.pipelines.finetune_qa.run`; None: its defaults).
        lm_loss_weight: GPT only: weight of the auxiliary language-model loss
            (GPT-1's lambda; None: 0.5; 0 turns it off).
        precision: "float32", "mixed_float16" or "mixed_bfloat16"; None: what
            the run in ``out_dir`` recorded, else float32
            (`tfpretrain.training.precision.uses_precision`). Recorded in
            task.json; the saved model reloads in float32.
        jit_compile: True, False or "auto" (Keras' choice: XLA on a GPU unless a layer cannot be compiled).
        overwrite: bool, default False. ``out_dir`` holding a finished run is
            an error unless True; then that run is deleted first
            (`tfpretrain.training.callbacks.prepare_out_dir`). An interrupted
            run resumes either way.

    Returns:
        The dev scores (see `evaluate`) plus ``train_loss`` (last epoch) and
        ``train_examples_per_second``.
    """
    _check_task(task)
    architecture = model_kind(init_dir).architecture
    check_architecture(task, architecture, init_dir)
    if lm_loss_weight is not None and architecture != "gpt":
        raise ValueError(f"--lm-loss-weight is for GPT models; {init_dir} holds a BERT encoder")
    if task == "qa":
        if crf or format not in (None, "json", "squad") or column is not None:
            raise ValueError("--crf, --format and --column do not apply to --task qa (SQuAD JSON files)")
        from tfpretrain.pipelines import finetune_qa

        sizes = {"sequence_length": sequence_length, "epochs": epochs, "batch_size": batch_size,
                 "doc_stride": doc_stride, "max_query_length": max_query_length,
                 "max_answer_length": max_answer_length}
        return finetune_qa.run(init_dir, train_path, dev_path, out_dir, learning_rate=learning_rate,
                               max_train_examples=max_train_examples, seed=seed, strategy=strategy,
                               logical_cpus=logical_cpus, precision=precision, jit_compile=jit_compile,
                               verbose=verbose, log=log,
                               **{name: value for name, value in sizes.items() if value is not None})
    sequence_length = TASK_DEFAULTS["sequence_length"] if sequence_length is None else int(sequence_length)
    epochs = TASK_DEFAULTS["epochs"] if epochs is None else int(epochs)
    batch_size = TASK_DEFAULTS["batch_size"] if batch_size is None else int(batch_size)
    if crf and task != "tag":
        raise ValueError(f"--crf applies to --task tag only, not {task!r}")
    if any(value is not None for value in (doc_stride, max_query_length, max_answer_length)):
        raise ValueError(f"--doc-stride and --max-answer-length apply to --task qa only, not {task!r}")
    if sequence_length < 4:
        raise ValueError(f"sequence_length must be at least 4 ([CLS], [SEP] and text), got {sequence_length}")
    distribution = get_strategy(strategy, logical_cpus)  # first: it must run before TF sets up its devices
    keras.utils.set_random_seed(seed)

    train, dev, options = read_task_data(task, train_path, dev_path, format, column)
    if max_train_examples is not None:
        train = train[:max_train_examples]
    options.update(task=task, sequence_length=int(sequence_length), architecture=architecture, precision=precision)
    if architecture == "gpt":
        options.update(lm_loss_weight=0.5 if lm_loss_weight is None else float(lm_loss_weight))
    if task == "tag":
        options.update(crf=bool(crf), constraint=SCHEME_CONSTRAINTS.get(options["scheme"]) if crf else None)
    what = "labels" if task in TEXT_TASKS else f"tags ({options['scheme']})"
    log(f"Read {len(train)} training and {len(dev)} dev examples; {len(options.get('labels', options.get('tags')))} "
        f"{what}; task {task}{' with a CRF' if crf else ''}; strategy {strategy} "
        f"({distribution.num_replicas_in_sync} replica(s))")

    steps_per_epoch = math.ceil(len(train) / batch_size)
    with distribution.scope():
        encoder, tokenizer = load_init_encoder(init_dir, sequence_length)
        model = build_task_model(task, encoder, options)
        _compile(model, task, options, learning_rate, max(1, steps_per_epoch * epochs), jit_compile)

    train_data = task_dataset(task, train, tokenizer, model, options, batch_size, shuffle=True, seed=seed)
    dev_data = task_dataset(task, dev, tokenizer, model, options, batch_size)
    unit = "words" if task == "tag" else "examples"
    log(f"Truncation to {sequence_length} pieces cuts {count_truncated(train_data)} training and "
        f"{count_truncated(dev_data)} dev {unit} (scored as {'predicted O' if task == 'tag' else 'truncated'})")

    with warnings.catch_warnings():
        # The tagger does not use the encoder's [CLS] pooler, which therefore gets no gradient.
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")
        history, seconds = fit_resumable(model, without_info(train_data), without_info(dev_data), epochs,
                                         out_dir, verbose, log)
    epochs_run = len(history.history.get("loss", []))

    scores = score_examples(model, tokenizer, options, dev, batch_size)
    losses = read_history_csv(os.path.join(out_dir, "history.csv")).get("loss")
    if losses:
        scores["train_loss"] = losses[-1][1]
    scores["train_examples_per_second"] = len(train) * epochs_run / max(seconds, 1e-9)
    record_run(options, train_path=train_path, dev_path=dev_path, init_dir=init_dir, tokenizer=tokenizer,
               encoder=encoder, scores=scores, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    save_task_model(out_dir, model, encoder, tokenizer, options)
    log(f"Saved the fine-tuned {task} model to {out_dir}")
    return scores


def evaluate(model_dir, data_path, format=None, column=None, batch_size=32):  # noqa: A002
    """Scores a fine-tuned model on a labelled file; the task comes from the model's task.json.

    Returns a JSON-serialisable dict: classify / pair: ``accuracy``,
    ``macro_f1``, ``num_examples``, ``num_truncated``; tag: ``precision``,
    ``recall``, ``f1`` (entities), ``accuracy`` (words), ``sentences``,
    ``tokens``, ``num_words_truncated``; qa: what `finetune_qa.evaluate`
    returns (``exact_match``, ``f1``).

    A classify / pair label the model does not know is an error naming its
    line. A gold tag the model does not know is scored (as a miss).
    """
    options = read_task_options(model_dir)
    if options.get("task") == "qa":
        from tfpretrain.pipelines import finetune_qa

        return finetune_qa.evaluate(model_dir, data_path)
    model, tokenizer, options = load_task_model(model_dir)
    task = options["task"]
    column = column if column is not None else options.get("column")
    if task in TEXT_TASKS:
        examples = read_text_examples(task, data_path, format if format != "tsv" else None, column)
        if not examples:
            raise ValueError(f"{data_path}: no examples found")
        check_labels(examples, options["labels"])
    else:
        examples = read_tag_sentences(data_path, format or options.get("format"), column)
    return score_examples(model, tokenizer, options, examples, batch_size)


def predict(model_dir, texts, batch_size=32):
    """Predictions of a fine-tuned classify / pair / tag model, one dict per input, in order.

    Args:
        texts: classify: strings; pair, similarity: ``(text_a, text_b)``
            tuples; choice: ``(context, choice_0, ..., choice_k)`` tuples;
            tag: strings (split into words by `tfpretrain.text.tokenize`) or
            lists of words.

    Returns:
        classify / pair / similarity / choice: ``{"text", "label", "score",
        "probabilities": {label: p}}`` (choice: the label is the index of the
        chosen answer, "0", "1", ...);
        tag: ``{"text", "tokens", "tags"}`` (words cut by truncation get "O").
    """
    model, tokenizer, options = load_task_model(model_dir)
    task, labels = options["task"], options.get("labels")
    texts = list(texts)
    if not texts:
        return []
    if task == "tag":
        return _predict_tags(model, tokenizer, options, texts, batch_size)
    expected = TEXT_TASKS[task] or len(labels) + 1  # choice: the context and one text per choice
    shapes = {1: "a string", 2: "a (text_a, text_b) pair of strings"}
    inputs = []
    for i, text in enumerate(texts):
        parts = (text,) if isinstance(text, str) else tuple(text)
        if len(parts) != expected or not all(isinstance(p, str) for p in parts):
            raise ValueError(f"texts[{i}] is {text!r}; task {task!r} expects "
                             f"{shapes.get(expected, f'a (context, {expected - 1} choices) tuple of strings')}")
        inputs.append(parts)
    probabilities, _, _ = predict_texts(model, tokenizer, options, inputs, batch_size)
    return label_predictions(texts, probabilities, labels)


def _predict_tags(model, tokenizer, options, texts, batch_size):
    from tfpretrain.text.tokenizer import tokenize

    words = []
    for text in texts:
        if isinstance(text, str):
            words.append([w.decode("utf-8") for w in tokenize([text]).to_list()[0]])
        else:
            words.append([str(w) for w in text])
    predicted, _ = predict_words(model, tokenizer, options, words, batch_size)
    return [{"text": text, "tokens": tokens, "tags": tags} for text, tokens, tags in zip(texts, words, predicted)]
