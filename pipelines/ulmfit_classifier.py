"""ULMFiT stage 3 (``tfpretrain ulmfit --stage classifier``): train, evaluate and apply a text classifier.

`train_classifier` puts ULMFiT's concat-pooling head on the domain language
model's encoder and fine-tunes it with gradual unfreezing, discriminative
rates and the slanted triangular schedule (each a `ClassifierOptions`
switch); `evaluate` and `predict` read the directory it writes
(`tfpretrain.models.ulmfit.load_classifier`). Texts become word ids through
`tfpretrain.models.ulmfit.classification_dataset`, as in the exported
SavedModel.

Example:

>>> train_classifier("runs/ulmfit/domain_lm", "sst2/train.tsv", "sst2/dev.tsv", "runs/ulmfit/classifier", epochs=4)
>>> evaluate("runs/ulmfit/classifier", "sst2/dev.tsv")["accuracy"]
>>> predict("runs/ulmfit/classifier", ["a gorgeous film"])[0]["label"]
'1'
"""

import dataclasses
import os

import keras
import numpy as np

from tfpretrain.models.ulmfit import (
    AWD_LSTM_PRESETS,
    CLASSIFIER_DROPOUTS,
    CLASSIFIER_LEARNING_RATE,
    AwdLstmEncoder,
    WordTokenizer,
    build_text_vocabulary,
    build_ulmfit_classifier,
    classification_batch_count,
    classification_dataset,
    layer_groups,
    load_awd_lstm,
    load_classifier,
    save_classifier,
    ulmfit_optimizer,
)
from tfpretrain.models.ulmfit.fine_tuning import check_schedule
from tfpretrain.text.task_readers import check_labels, label_set, read_classification_tsv
from tfpretrain.training.callbacks import fit_resumable, read_history_csv
from tfpretrain.training.discriminative import DEFAULT_DECAY
from tfpretrain.training.metrics import label_predictions, macro_f1
from tfpretrain.training.precision import resolve_jit_compile, resolve_static_shapes, uses_precision
from tfpretrain.training.unfreezing import GradualUnfreezing

HEAD_DROPOUT = (0.2, 0.1)  # before the head's two dense layers, times dropout_scale


@dataclasses.dataclass(frozen=True)
class ClassifierOptions:
    """What `train_classifier` trains: the data, the classifier, ULMFiT's three switches and the schedule.

    Attributes:
        max_train_examples: use only the first N training examples (None: all).
        gradual_unfreezing: bool or None. Epoch 0 trains the head only, each
            later epoch one more layer group from the top (`GradualUnfreezing`);
            None: ``not from_scratch``.
        discriminative: bool or None. Group ``i`` from the top learns at
            ``learning_rate / decay**i``; None: ``not from_scratch``.
        schedule: "slanted" (`SlantedTriangularLR` over all steps) or "constant".
        from_scratch: train the same classifier from random weights (``preset``,
            a vocabulary of the training texts): the baseline.
        preset: the from-scratch encoder's `AWD_LSTM_PRESETS` name.
        epochs: int. steps_per_epoch: None (one pass over the training examples
            per epoch) or a number of batches (the data repeats) — gradual
            unfreezing steps per epoch.
        batch_size: int. learning_rate: the peak rate of the top group. decay: 2.6.
        sequence_length: int. Words kept per text.
        dropout_scale: float. Multiplies every classifier dropout (fastai's ``drop_mult``).
        head_hidden_dim: int. Width of the head's hidden layer (50).
        min_count: from-scratch vocabulary: words seen fewer times are ``[UNK]``.
        column: the label column (see `read_classification_tsv`).
    """

    max_train_examples: int | None = None
    gradual_unfreezing: bool | None = None
    discriminative: bool | None = None
    schedule: str = "slanted"
    from_scratch: bool = False
    preset: str = "small"
    epochs: int = 6
    steps_per_epoch: int | None = None
    batch_size: int = 32
    learning_rate: float = CLASSIFIER_LEARNING_RATE
    decay: float = DEFAULT_DECAY
    sequence_length: int = 128
    dropout_scale: float = 1.0
    head_hidden_dim: int = 50
    min_count: int = 2
    column: int | str | None = None


def classifier_options(options=None, **settings):
    """``options`` (default `ClassifierOptions()`) with ``settings`` replaced; an unknown name is a TypeError."""
    names = {field.name for field in dataclasses.fields(ClassifierOptions)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise TypeError(f"unknown classifier option(s) {unknown}; ClassifierOptions has {sorted(names)}")
    return dataclasses.replace(options or ClassifierOptions(), **settings)


def _read_examples(train_path, dev_path, options):
    """The training and dev examples and the label set, checked."""
    train = read_classification_tsv(train_path, options.column)
    dev = read_classification_tsv(dev_path, options.column)
    if options.max_train_examples is not None:
        train = train[:options.max_train_examples]
    if not train or not dev:
        raise ValueError(f"{train_path if not train else dev_path}: no examples found")
    labels = label_set(train)
    if len(labels) < 2:
        raise ValueError(f"{train_path}: the training examples have one label ({labels[0]!r}); a classifier needs "
                         "at least two")
    check_labels(dev, labels)
    return train, dev, labels


def _encoder(lm_dir, texts, options, dropouts):
    """``(encoder, tokenizer, description)``: the language model's encoder, or a new one (``from_scratch``)."""
    if options.from_scratch:
        vocabulary = build_text_vocabulary(texts, options.min_count, None, lowercase=True)
        tokenizer = WordTokenizer(vocabulary, lowercase=True)
        encoder = AwdLstmEncoder(tokenizer.vocabulary_size(), **{**AWD_LSTM_PRESETS[options.preset], **dropouts})
        return encoder, tokenizer, (f"from scratch ({options.preset} preset, {len(vocabulary):,} words from the "
                                    "training texts)")
    model, tokenizer, _ = load_awd_lstm(lm_dir, **dropouts)
    return getattr(model, "encoder", model), tokenizer, f"on the language model in {lm_dir}"


@uses_precision
def train_classifier(lm_dir, train_path, dev_path, out_dir, options=None, *, precision=None, jit_compile="auto",
                     static_shapes="auto", seed=0, verbose=1, log=print, **settings):
    """Trains ULMFiT's classifier (stage 3) on labelled TSV; saves a classifier directory to ``out_dir``.

    The domain language model's encoder (``lm_dir``, with ULMFiT's classifier
    dropouts ``CLASSIFIER_DROPOUTS`` x ``dropout_scale``) under the concat-
    pooling head (`build_ulmfit_classifier`), trained with Adam (beta1 0.7,
    beta2 0.99, `ulmfit_optimizer`) and ULMFiT's three fine-tuning
    techniques, each with a switch in `ClassifierOptions`: gradual
    unfreezing, discriminative rates and the slanted triangular schedule.
    ``from_scratch=True`` trains the same classifier from random weights
    (``lm_dir`` unused) — the baseline; its switches default to off.
    Resumes after an interruption.

    Args:
        lm_dir: an AWD-LSTM directory (`pretrain_lm` output), or None with ``from_scratch``.
        train_path, dev_path: TSV files, ``label<TAB>text`` (`read_classification_tsv`).
        out_dir: the classifier directory (checkpoints and logs too).
        options: a `ClassifierOptions` (None: the defaults).
        precision, jit_compile: see `pretrain_lm`.
        static_shapes: True, False or "auto" (on when XLA is): batches padded
            to length buckets and the batch size (`classification_dataset`),
            so that XLA compiles a few programs, not one per batch length.
        seed: int. Seeds weights, dropout and data order.
        **settings: `ClassifierOptions` fields, replacing those of ``options``
            (``epochs=4, batch_size=16``).

    Returns:
        the dev scores (`evaluate`: ``accuracy``, ``macro_f1``,
        ``num_examples``) plus ``train_loss`` (last epoch),
        ``train_examples_per_second``, ``num_train_examples``, ``epochs``,
        ``steps`` and ``train_seconds`` (this call's ``fit``).
    """
    o = classifier_options(options, **settings)
    gradual_unfreezing = (not o.from_scratch) if o.gradual_unfreezing is None else bool(o.gradual_unfreezing)
    discriminative = (not o.from_scratch) if o.discriminative is None else bool(o.discriminative)
    check_schedule(o.schedule)
    if o.from_scratch and o.preset not in AWD_LSTM_PRESETS:
        raise ValueError(f"unknown preset {o.preset!r}; choose one of {', '.join(AWD_LSTM_PRESETS)}")
    if not o.from_scratch and not lm_dir:
        raise ValueError("train_classifier needs lm_dir (a language model from pretrain_lm), or from_scratch=True")
    if o.epochs < 1 or o.sequence_length < 1:
        raise ValueError(f"epochs and sequence_length must be at least 1, got {o.epochs} and {o.sequence_length}")
    keras.utils.set_random_seed(seed)

    train, dev, labels = _read_examples(train_path, dev_path, o)
    dropouts = {name: min(0.95, rate * o.dropout_scale) for name, rate in CLASSIFIER_DROPOUTS.items()}
    head_dropout = [min(0.95, rate * o.dropout_scale) for rate in HEAD_DROPOUT]
    texts = [example.texts[0] for example in train]
    encoder, tokenizer, source = _encoder(lm_dir, texts, o, dropouts)
    classifier = build_ulmfit_classifier(encoder, len(labels), head_hidden_dim=o.head_hidden_dim,
                                         head_dropout=head_dropout)
    groups = layer_groups(classifier)

    jit_compile = resolve_jit_compile(jit_compile)
    static_shapes = resolve_static_shapes(static_shapes, jit_compile)
    label_ids = [labels.index(example.label) for example in train]
    train_data = classification_dataset(texts, label_ids, tokenizer, o.batch_size, o.sequence_length, shuffle=True,
                                        seed=seed, static_shapes=static_shapes)
    dev_data = classification_dataset([e.texts[0] for e in dev], [labels.index(e.label) for e in dev], tokenizer,
                                      o.batch_size, o.sequence_length, static_shapes=static_shapes)
    if o.steps_per_epoch is None:
        epoch_steps = classification_batch_count(texts, tokenizer, o.batch_size, o.sequence_length)
    else:
        epoch_steps = int(o.steps_per_epoch)
        train_data = train_data.repeat()
    total_steps = o.epochs * epoch_steps
    classifier.compile(
        optimizer=ulmfit_optimizer(groups, o.learning_rate, total_steps, o.schedule, discriminative, o.decay),
        # ignore_class: the rows that fill a static-shape batch (label -1, weight 0) leave the mean loss unchanged.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile)
    callbacks = [GradualUnfreezing(groups)] if gradual_unfreezing else []
    switches = ", ".join(f"{name} {'on' if on else 'off'}" for name, on in (
        ("gradual unfreezing", gradual_unfreezing), ("discriminative rates", discriminative)))
    log(f"Training a {len(labels)}-label classifier {source} on {len(train):,} examples for {o.epochs} epochs of "
        f"{epoch_steps} steps; peak rate {o.learning_rate}, {o.schedule} schedule, {switches}")
    history, seconds = fit_resumable(classifier, train_data, dev_data, o.epochs, out_dir, verbose, log,
                                     steps_per_epoch=o.steps_per_epoch, callbacks=callbacks)
    epochs_run = len(history.history.get("loss", []))

    scores = _score(classifier, tokenizer, labels, dev, o.batch_size, o.sequence_length, static_shapes)
    losses = read_history_csv(os.path.join(out_dir, "history.csv")).get("loss")
    scores.update(
        train_loss=losses[-1][1] if losses else None,
        train_examples_per_second=epochs_run * epoch_steps * o.batch_size / max(seconds, 1e-9)
        if o.steps_per_epoch else epochs_run * len(train) / max(seconds, 1e-9),
        num_train_examples=len(train), epochs=o.epochs, steps=total_steps, train_seconds=seconds,
    )
    config = {
        "lowercase": tokenizer.lowercase, "task": "classify", "labels": labels, "column": o.column,
        "head_hidden_dim": o.head_hidden_dim, "head_dropout": head_dropout, "sequence_length": o.sequence_length,
        "train": os.path.abspath(train_path), "dev": os.path.abspath(dev_path),
        "init": None if o.from_scratch else os.path.abspath(lm_dir), "from_scratch": bool(o.from_scratch),
        "preset": o.preset if o.from_scratch else None, "max_train_examples": o.max_train_examples,
        "gradual_unfreezing": gradual_unfreezing, "discriminative": discriminative, "schedule": o.schedule,
        "epochs": o.epochs, "steps_per_epoch": o.steps_per_epoch, "batch_size": o.batch_size,
        "learning_rate": o.learning_rate, "decay": o.decay, "dropout_scale": o.dropout_scale, "precision": precision,
        "static_shapes": static_shapes, "seed": seed,
        "result": scores,
    }
    save_classifier(out_dir, classifier, encoder, tokenizer, config)
    log(f"Saved the classifier to {out_dir}: dev accuracy {scores['accuracy']:.4f}")
    return scores


def probabilities(model, tokenizer, texts, batch_size, sequence_length, static_shapes=False):
    """The classifier's label probabilities ``(len(texts), num_labels)`` for raw texts, in order."""
    data = classification_dataset(texts, None, tokenizer, batch_size, sequence_length, static_shapes=static_shapes)
    logits = model.predict(data, verbose=0)[:len(texts)]  # static shapes fill the last batch at its end
    return keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, "float32"), axis=-1))


def _score(model, tokenizer, labels, examples, batch_size, sequence_length, static_shapes=False):
    predicted_probabilities = probabilities(model, tokenizer, [e.texts[0] for e in examples], batch_size,
                                            sequence_length, static_shapes)
    predicted = np.argmax(predicted_probabilities, axis=-1)
    gold = np.array([labels.index(e.label) for e in examples])
    return {"accuracy": float(np.mean(predicted == gold)), "macro_f1": macro_f1(gold, predicted),
            "num_examples": len(examples)}


def evaluate(model_dir, data_path, column=None, batch_size=64):
    """Scores a classifier directory on a labelled TSV file: ``accuracy``, ``macro_f1``, ``num_examples``.

    A label the classifier does not know is an error naming its line.
    """
    model, tokenizer, config = load_classifier(model_dir)
    examples = read_classification_tsv(data_path, column if column is not None else config.get("column"))
    if not examples:
        raise ValueError(f"{data_path}: no examples found")
    check_labels(examples, config["labels"])
    return _score(model, tokenizer, config["labels"], examples, batch_size, config["sequence_length"])


def predict(model_dir, texts, batch_size=64):
    """Labels of raw texts: one ``{"text", "label", "score", "probabilities": {label: p}}`` per text, in order."""
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {text!r}; expected a string")
    if not texts:
        return []
    model, tokenizer, config = load_classifier(model_dir)
    return label_predictions(texts, probabilities(model, tokenizer, texts, batch_size, config["sequence_length"]),
                             config["labels"])
