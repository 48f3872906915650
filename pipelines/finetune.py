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
from tfpretrain.models.fine_tuning import (
    CRF_LEARNING_RATE,
    HEAD_LEARNING_RATE,
    WARMUP_FRACTION,
    check_schedule,
    fine_tuning_optimizer,
    layer_groups,
)
from tfpretrain.training.callbacks import CHECKPOINT_DIR, KeepBest, fit_resumable, read_history_csv
from tfpretrain.training.discriminative import DEFAULT_DECAY
from tfpretrain.training.distribute import get_strategy
from tfpretrain.training.metrics import EntityF1, TokenAccuracy, label_predictions
from tfpretrain.training.precision import check_jit_compile, resolve_static_shapes, uses_precision
from tfpretrain.training.unfreezing import GradualUnfreezing
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
TAG_BATCH_SIZE = 16  # tag: twice the steps of 32 on a small NER set (README, "How the fine-tuning defaults were chosen")
LEARNING_RATE = 1e-4  # BERT's encoder's peak rate (README, "How the fine-tuning defaults were chosen")
GPT_LEARNING_RATE = 5e-5


def _run_defaults():
    import inspect

    return {name: p.default for name, p in inspect.signature(run.__wrapped__).parameters.items()}


def _check_task(task):
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _compile(model, task, options, optimizer, jit_compile="auto"):
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
        sequence_length=None, epochs=None, batch_size=None, learning_rate=None,
        head_learning_rate=None, crf_learning_rate=None, warmup=WARMUP_FRACTION,
        schedule="linear", discriminative=False, decay=DEFAULT_DECAY, gradual_unfreezing=False, keep_best=True,
        max_train_examples=None, seed=0, strategy="default", logical_cpus=None, doc_stride=None,
        max_query_length=None, max_answer_length=None, lm_loss_weight=None, precision=None, jit_compile="auto",
        static_shapes="auto", overwrite=False, verbose=1, log=print):
    """Fine-tunes the BERT encoder or GPT decoder in ``init_dir`` with a task head; saves it to ``out_dir``.

    Training is `fit_resumable`: a checkpoint per epoch under ``out_dir``, and
    the same call after an interruption continues from the last finished
    epoch. The optimizer is BERT's AdamW with one peak rate for the encoder,
    one for the task head and one for a CRF, under one schedule (BERT's
    linear warm-up and decay, or ULMFiT's slanted triangle), optionally with
    ULMFiT's discriminative rates and gradual unfreezing
    (`tfpretrain.models.fine_tuning`). Batches hold examples of similar
    length, padded to their longest. The model of the epoch with the best
    dev score is the one saved (``keep_best``).

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
            (`TASK_DEFAULTS`: 128, 3, 32 for classify / pair, batch 16 for tag;
            finetune_qa's own for qa).
        learning_rate: the encoder's peak learning rate (None: BERT `LEARNING_RATE`,
            1e-4; GPT `GPT_LEARNING_RATE`, 5e-5; qa: finetune_qa's 5e-5).
        head_learning_rate, crf_learning_rate: the peak rates of the task
            head (pooler included) and of a CRF's transition scores (None:
            BERT `tfpretrain.models.fine_tuning.HEAD_LEARNING_RATE`,
            ``CRF_LEARNING_RATE``; GPT: the decoder's rate, as GPT-1 trains).
        warmup: the fraction of the steps spent warming up (schedule "linear").
        schedule: "linear" (BERT) or "slanted" (ULMFiT's slanted triangular rates).
        discriminative, decay: ULMFiT's discriminative fine-tuning: each
            encoder group below the top block learns ``decay`` times more
            slowly than the one above it (groups: embeddings, each block).
        gradual_unfreezing: train only the head in the first epoch, then
            unfreeze one more group (top block first) per epoch.
        keep_best: save the epoch with the best dev score (entity F1 for
            tag with entities, else accuracy), not the last.
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
        static_shapes: True, False or "auto" (on with XLA): pad batches to a
            few fixed lengths (`tfpretrain.models.bert.preprocessor.cut_padding`)
            instead of their longest example, so that XLA compiles a few shapes.
        overwrite: bool, default False. ``out_dir`` holding a finished run is
            an error unless True; then that run is deleted first
            (`tfpretrain.training.callbacks.prepare_out_dir`). An interrupted
            run resumes either way.

    Returns:
        The dev scores (see `evaluate`) of the saved model plus ``train_loss``
        (last epoch), ``train_examples_per_second`` and ``best_epoch``.
    """
    _check_task(task)
    architecture = model_kind(init_dir).architecture
    check_architecture(task, architecture, init_dir)
    if lm_loss_weight is not None and architecture != "gpt":
        raise ValueError(f"--lm-loss-weight is for GPT models; {init_dir} holds a BERT encoder")
    if task == "qa":
        recipe = dict(head_learning_rate=head_learning_rate, crf_learning_rate=crf_learning_rate, warmup=warmup,
                      schedule=schedule, discriminative=discriminative, decay=decay,
                      gradual_unfreezing=gradual_unfreezing, keep_best=keep_best, static_shapes=static_shapes)
        defaults = _run_defaults()
        changed = [name for name, value in recipe.items() if value != defaults[name]]
        if changed:
            raise ValueError(f"{', '.join('--' + n.replace('_', '-') for n in changed)}: not for --task qa yet "
                             "(it fine-tunes at one rate with BERT's schedule)")
        if crf or format not in (None, "json", "squad") or column is not None:
            raise ValueError("--crf, --format and --column do not apply to --task qa (SQuAD JSON files)")
        from tfpretrain.pipelines import finetune_qa

        sizes = {"sequence_length": sequence_length, "epochs": epochs, "batch_size": batch_size,
                 "learning_rate": learning_rate,
                 "doc_stride": doc_stride, "max_query_length": max_query_length,
                 "max_answer_length": max_answer_length}
        return finetune_qa.run(init_dir, train_path, dev_path, out_dir,
                               max_train_examples=max_train_examples, seed=seed, strategy=strategy,
                               logical_cpus=logical_cpus, precision=precision, jit_compile=jit_compile,
                               verbose=verbose, log=log,
                               **{name: value for name, value in sizes.items() if value is not None})
    sequence_length = TASK_DEFAULTS["sequence_length"] if sequence_length is None else int(sequence_length)
    if architecture == "gpt":  # GPT-1's one rate: the BERT rates below were measured on BERT only
        learning_rate = GPT_LEARNING_RATE if learning_rate is None else float(learning_rate)
    else:
        learning_rate = LEARNING_RATE if learning_rate is None else float(learning_rate)
        head_learning_rate = HEAD_LEARNING_RATE if head_learning_rate is None else head_learning_rate
        crf_learning_rate = CRF_LEARNING_RATE if crf_learning_rate is None else crf_learning_rate
    epochs = TASK_DEFAULTS["epochs"] if epochs is None else int(epochs)
    if batch_size is None:
        batch_size = TAG_BATCH_SIZE if task == "tag" else TASK_DEFAULTS["batch_size"]
    batch_size = int(batch_size)
    if crf and task != "tag":
        raise ValueError(f"--crf applies to --task tag only, not {task!r}")
    if any(value is not None for value in (doc_stride, max_query_length, max_answer_length)):
        raise ValueError(f"--doc-stride and --max-answer-length apply to --task qa only, not {task!r}")
    if sequence_length < 4:
        raise ValueError(f"sequence_length must be at least 4 ([CLS], [SEP] and text), got {sequence_length}")
    check_schedule(schedule)
    distribution = get_strategy(strategy, logical_cpus)  # first: it must run before TF sets up its devices
    keras.utils.set_random_seed(seed)
    static_shapes = resolve_static_shapes(static_shapes, jit_compile)

    train, dev, options = read_task_data(task, train_path, dev_path, format, column)
    if max_train_examples is not None:
        train = train[:max_train_examples]
    options.update(task=task, sequence_length=int(sequence_length), architecture=architecture, precision=precision,
                   static_shapes=bool(static_shapes))
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
        optimizer = fine_tuning_optimizer(
            model, encoder, learning_rate, steps_per_epoch * epochs, head_learning_rate=head_learning_rate,
            crf_learning_rate=crf_learning_rate if crf else None, schedule=schedule, warmup_fraction=warmup,
            decay=decay if discriminative else 1.0)
        _compile(model, task, options, optimizer, jit_compile)

    train_data = task_dataset(task, train, tokenizer, model, options, batch_size, shuffle=True, seed=seed)
    dev_data = task_dataset(task, dev, tokenizer, model, options, batch_size)
    unit = "words" if task == "tag" else "examples"
    log(f"Truncation to {sequence_length} pieces cuts {count_truncated(train_data)} training and "
        f"{count_truncated(dev_data)} dev {unit} (scored as {'predicted O' if task == 'tag' else 'truncated'})")

    callbacks, keep = [], None
    if gradual_unfreezing:
        callbacks.append(GradualUnfreezing(layer_groups(model, encoder)))
    if keep_best:
        keep = KeepBest(os.path.join(out_dir, CHECKPOINT_DIR),
                        "val_entity_f1" if options.get("scheme") in SCHEME_CONSTRAINTS and task == "tag"
                        else "val_accuracy")
    with warnings.catch_warnings():
        # The tagger does not use the encoder's [CLS] pooler, which therefore gets no gradient.
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")
        history, seconds = fit_resumable(model, without_info(train_data), without_info(dev_data), epochs,
                                         out_dir, verbose, log, callbacks=callbacks, keep_best=keep)
    epochs_run = len(history.history.get("loss", []))
    if keep is not None and keep.best_epoch is not None:
        log(f"Kept epoch {keep.best_epoch} of {epochs} ({keep.monitor} {keep.best_score:.4f})")

    scores = score_examples(model, tokenizer, options, dev, batch_size)
    losses = read_history_csv(os.path.join(out_dir, "history.csv")).get("loss")
    if losses:
        scores["train_loss"] = losses[-1][1]
    scores["train_examples_per_second"] = len(train) * epochs_run / max(seconds, 1e-9)
    scores["best_epoch"] = keep.best_epoch if keep is not None and keep.best_epoch else epochs
    record_run(options, train_path=train_path, dev_path=dev_path, init_dir=init_dir, tokenizer=tokenizer,
               encoder=encoder, scores=scores, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
               head_learning_rate=head_learning_rate, crf_learning_rate=crf_learning_rate if crf else None,
               warmup=warmup, schedule=schedule, decay=decay if discriminative else None,
               gradual_unfreezing=bool(gradual_unfreezing), keep_best=bool(keep_best))
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
