"""ULMFiT (``tfpretrain ulmfit``): general LM -> domain LM -> text classifier, three resumable stages.

Howard & Ruder (2018) in three calls, each writing one AWD-LSTM directory
(`tfpretrain.models.ulmfit.save_awd_lstm`):

1. `pretrain_lm` on general text (e.g. EWT train): a new vocabulary and an
   `AwdLstmLanguageModel` trained from scratch -> ``OUT/general_lm``;
2. `pretrain_lm` on the target domain's text with ``init_dir`` = stage 1:
   the vocabulary of the domain text replaces the general one (words in
   both keep their rows, new words start at the mean embedding,
   `expand_vocabulary`), fine-tuned with discriminative rates and the
   slanted triangular schedule -> ``OUT/domain_lm``;
3. `train_classifier` on labelled TSV (``label<TAB>text``, SST-2): the
   domain LM's encoder with ULMFiT's concat-pooling head, trained with
   gradual unfreezing (`GradualUnfreezing`), discriminative rates
   (`discriminative_optimizer`) and `SlantedTriangularLR` — each can be
   switched off for ablations, and ``from_scratch=True`` trains the same
   classifier from random weights -> ``OUT/classifier``.

Every stage checkpoints each epoch (`fit_resumable`): the same call after an
interruption continues from the last finished epoch. A directory is
finished when its ``config.json`` holds the ``result`` (written last);
`run` skips finished stages.

Example:

>>> run(["ewt/train.conllu"], None, "sst2/train.tsv", "sst2/dev.tsv", "runs/ulmfit", max_train_examples=1000)
>>> evaluate("runs/ulmfit/classifier", "sst2/dev.tsv")["accuracy"]
>>> predict("runs/ulmfit/classifier", ["a gorgeous film"])[0]["label"]
'1'

References:
    Howard & Ruder, "Universal Language Model Fine-tuning for Text
    Classification", ACL 2018.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.pipelines.bert_tasks import label_predictions
from tfpretrain.text.buckets import bucket_by_length, bucket_of, fill_batch, pad_to_bucket
from tfpretrain.text.datasets import DEFAULT_BUCKET_BOUNDARIES
from tfpretrain.text.task_readers import check_labels, label_set, read_classification_tsv
from tfpretrain.training.callbacks import fit_resumable, read_history_csv
from tfpretrain.training.precision import resolve_jit_compile, resolve_static_shapes, uses_precision
from tfpretrain.training.discriminative import DEFAULT_DECAY, discriminative_optimizer
from tfpretrain.training.schedules import SlantedTriangularLR
from tfpretrain.training.unfreezing import GradualUnfreezing

STAGES = ("general", "domain", "classifier")
STAGE_DIRS = {"general": "general_lm", "domain": "domain_lm", "classifier": "classifier"}
SCHEDULES = ("slanted", "constant")
HEAD_WEIGHTS_FILE = "head.weights.npz"
DOMAIN_TEXT_FILE = "domain_text.txt"  # run(): the training TSV's texts, when no domain text is given
ADAM_BETAS = (0.7, 0.99)  # the paper: "Adam with beta1 = 0.7 instead of the default 0.9 and beta2 = 0.99"
# Peak learning rates. Classifier: the paper's 0.01. Language models: 0.01 too, above the paper's 0.004 for LM
# fine-tuning: with EWT-sized general corpora most domain words are new (mean embedding) and must be learnt in
# stage 2. Measured on EWT train (small preset, 3 epochs): held-out perplexity 229 at 0.01, 340 at 0.003.
GENERAL_LM_LEARNING_RATE, DOMAIN_LM_LEARNING_RATE, CLASSIFIER_LEARNING_RATE = 1e-2, 1e-2, 1e-2

__all__ = ["STAGES", "evaluate", "is_classifier_dir", "is_finished", "load_classifier", "predict", "pretrain_lm", "run",
           "train_classifier"]


# ---------------------------------------------------------------------------
# Shared pieces


def _adam(learning_rate):
    return keras.optimizers.Adam(learning_rate, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1])


def _optimizer(groups, learning_rate, total_steps, schedule, discriminative, decay):
    """Adam under the chosen schedule; with ``discriminative`` one rate per layer group."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    rate = SlantedTriangularLR(learning_rate, total_steps) if schedule == "slanted" else float(learning_rate)
    if discriminative:
        return discriminative_optimizer(_adam, groups, rate, decay)
    return _adam(rate)


def _read_config(directory):
    from tfpretrain.models.model_dir import read_json

    return read_json(directory, "config.json") if os.path.exists(os.path.join(directory, "config.json")) else None


def is_finished(directory):
    """Whether a stage's directory holds its finished model (``config.json`` with the ``result``)."""
    config = _read_config(directory) if os.path.isdir(directory) else None
    return bool(config) and "result" in config


def _last(history, key):
    values = history.get(key)
    return float(values[-1]) if values else None


def _check_paths(paths, what):
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths or [])]
    if not paths:
        raise ValueError(f"no {what} files given")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{what} file(s) not found: {', '.join(missing)}")
    return paths


# ---------------------------------------------------------------------------
# Stages 1 and 2: language models


def _vocabulary(text_paths, out_dir, min_count, max_vocabulary_size, lowercase, log):
    """The vocabulary of the text, or the one an interrupted run of this stage saved."""
    from tfpretrain.text.vocabulary import load_vocabulary, save_vocabulary
    from tfpretrain.text.word_lm_datasets import build_word_vocabulary

    path = os.path.join(out_dir, "vocab.txt")
    if os.path.exists(path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        log(f"Resuming: reusing {path}")
        return load_vocabulary(path)
    vocabulary = build_word_vocabulary(text_paths, min_count=min_count, max_size=max_vocabulary_size,
                                       lowercase=lowercase)
    os.makedirs(out_dir, exist_ok=True)
    save_vocabulary(vocabulary, path)
    return vocabulary


def _language_model_groups(groups):
    """LM fine-tuning's groups: the embedding, tied to the output layer, moves up to the head's (top) group.

    As fastai's ``awd_lstm_lm_split`` (ULMFiT's reference code): the top rate
    lets the rows of the domain's new words, which all start at the mean
    embedding, move apart; at ``rate / decay**num_layers`` they barely would.
    The classifier keeps the embedding at the bottom.
    """
    return groups[1:-1] + [groups[0] + groups[-1]]


def _count_batches(dataset):
    return sum(1 for _ in dataset)


@uses_precision
def pretrain_lm(text_paths, out_dir, init_dir=None, preset="small", epochs=3, steps_per_epoch=None,
                sequence_length=70, batch_size=32, learning_rate=None, schedule="slanted", discriminative=None,
                decay=DEFAULT_DECAY, min_count=2, max_vocabulary_size=60000, lowercase=True, precision=None,
                jit_compile="auto", seed=0, verbose=1, log=print):
    """Trains an AWD-LSTM language model (ULMFiT stages 1 and 2); saves an AWD-LSTM directory.

    Without ``init_dir`` (stage 1, general-domain pretraining) the vocabulary
    is built from the text and a new `AwdLstmLanguageModel` of ``preset`` is
    trained. With ``init_dir`` (stage 2, target-task LM fine-tuning) the
    language model in ``init_dir`` continues on the new text, under the new
    text's vocabulary: a word both vocabularies hold keeps its embedding and
    output-bias row, a new word starts at the mean (`expand_vocabulary`).

    Training streams packed windows of ``sequence_length`` words
    (`word_lm_dataset`, every 20th line held out for the validation
    perplexity); optimiser Adam (beta1 0.7, beta2 0.99) under
    `SlantedTriangularLR` (or a constant rate), with discriminative rates
    (`discriminative_optimizer`, lower groups / ``decay``) by default in
    stage 2: the LSTM layers from the top down, the tied embedding and
    output bias together on top. Interrupted runs resume from the last epoch's checkpoint.

    Args:
        text_paths: plain-text files (one text per line) or CoNLL-U files.
        out_dir: the AWD-LSTM directory written (checkpoints and logs too).
        init_dir: an AWD-LSTM language-model directory to fine-tune (stage 2).
        preset: `AWD_LSTM_PRESETS` name of a new model (stage 1 only).
        epochs: int. Epochs of ``steps_per_epoch`` steps.
        steps_per_epoch: int or None: one pass over the training lines
            (counted before training).
        sequence_length, batch_size: windows of words per step.
        learning_rate: peak rate; None: 0.01 (the paper fine-tunes at 0.004
            from a Wikitext-103 model; small general corpora leave more to learn).
        schedule: "slanted" (`SlantedTriangularLR` over all steps) or "constant".
        discriminative: bool or None (None: True with ``init_dir``).
        decay: the factor between the rates of adjacent layer groups (2.6).
        min_count, max_vocabulary_size, lowercase: the vocabulary
            (`build_word_vocabulary`; ``lowercase`` comes from ``init_dir`` in stage 2).
        precision: "float32", "mixed_float16" or "mixed_bfloat16" (None: what
            the run in ``out_dir`` recorded, else float32); the saved AWD-LSTM
            directory reloads in float32 either way.
        jit_compile: True, False or "auto" (XLA only with a GPU: on a 2-core
            CPU the plain graph of the LSTM loop was as fast).
        seed: int. Seeds weights, dropout and data order.

    Returns:
        dict: ``val_perplexity`` and ``val_accuracy`` (held-out next-word),
        ``train_perplexity`` (last epoch), ``train_tokens_per_second``,
        ``steps``, ``vocabulary_size``, ``train_seconds`` (of this call's
        ``fit``, validation included) and, in stage 2, ``new_words`` (words
        the general vocabulary lacked).
    """
    from tfpretrain.models.ulmfit import (
        AWD_LSTM_PRESETS,
        LANGUAGE_MODEL_OUTPUT_DROPOUT,
        AwdLstmEncoder,
        AwdLstmLanguageModel,
        expand_vocabulary,
        layer_groups,
        load_awd_lstm,
        save_awd_lstm,
    )
    from tfpretrain.text.word_lm_datasets import WordTokenizer, word_lm_dataset

    text_paths = _check_paths(text_paths, "language-model text")
    if init_dir is None and preset not in AWD_LSTM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(AWD_LSTM_PRESETS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    keras.utils.set_random_seed(seed)
    stage = "domain" if init_dir else "general"
    discriminative = bool(init_dir) if discriminative is None else bool(discriminative)
    if learning_rate is None:
        learning_rate = DOMAIN_LM_LEARNING_RATE if init_dir else GENERAL_LM_LEARNING_RATE

    new_words = None
    if init_dir:
        language_model, old_tokenizer, _ = load_awd_lstm(init_dir)
        if not isinstance(language_model, AwdLstmLanguageModel):
            raise ValueError(f"{init_dir} holds an encoder without its language-model head (a classifier's "
                             "encoder?); stage 2 continues a language model written by pretrain_lm")
        lowercase = old_tokenizer.lowercase
        vocabulary = _vocabulary(text_paths, out_dir, min_count, max_vocabulary_size, lowercase, log)
        known = set(old_tokenizer.vocabulary)
        new_words = sum(word not in known for word in vocabulary)
        log(f"Continuing the language model in {init_dir}: {len(vocabulary):,} words in the new vocabulary, "
            f"{new_words:,} of them new (mean embedding), {len(known - set(vocabulary)):,} general words dropped")
        language_model = expand_vocabulary(language_model, old_tokenizer, vocabulary)
    else:
        vocabulary = _vocabulary(text_paths, out_dir, min_count, max_vocabulary_size, lowercase, log)
        encoder = AwdLstmEncoder(len(vocabulary) + 2, **AWD_LSTM_PRESETS[preset])
        language_model = AwdLstmLanguageModel(encoder, output_dropout=LANGUAGE_MODEL_OUTPUT_DROPOUT)
    tokenizer = WordTokenizer(vocabulary, lowercase=lowercase)

    def data(split):
        return word_lm_dataset(text_paths, tokenizer, sequence_length=sequence_length, batch_size=batch_size,
                               split=split, seed=seed, repeat=split == "train")

    if steps_per_epoch is None:
        steps_per_epoch = _count_batches(word_lm_dataset(text_paths, tokenizer, sequence_length, batch_size,
                                                         split="train", repeat=False, shuffle_buffer=0))
        if steps_per_epoch == 0:
            raise ValueError(f"{', '.join(text_paths)} hold fewer than {batch_size} x {sequence_length + 1} "
                             "training words: lower batch_size or sequence_length, or give more text")
    heldout = data("heldout").cache()
    if _count_batches(heldout) == 0:  # fills the cache
        log("The held-out lines do not fill one batch: no validation perplexity")
        heldout = None
    train = data("train")
    total_steps = epochs * steps_per_epoch

    language_model(next(iter(train))[0])  # built before fit, as checkpoint restoring needs
    groups = _language_model_groups(layer_groups(language_model))
    language_model.compile(optimizer=_optimizer(groups, learning_rate, total_steps, schedule, discriminative, decay),
                           jit_compile=resolve_jit_compile(jit_compile))
    encoder = language_model.encoder
    log(f"Training the {stage} language model ({encoder.num_layers} LSTM layers, {encoder.embedding_dim}/"
        f"{encoder.hidden_dim}, {language_model.count_params():,} parameters) for {total_steps} steps of "
        f"{batch_size} x {sequence_length} words; peak rate {learning_rate}, {schedule} schedule"
        f"{f', discriminative (/{decay})' if discriminative else ''}")
    history, seconds = fit_resumable(language_model, train, heldout, epochs, out_dir, verbose, log,
                                     steps_per_epoch=steps_per_epoch)
    epochs_run = len(history.history.get("loss", []))
    logged = {key: [value for _, value in values]
              for key, values in read_history_csv(os.path.join(out_dir, "history.csv")).items()}
    result = {
        "val_perplexity": _last(logged, "val_perplexity"),
        "val_accuracy": _last(logged, "val_accuracy"),
        "train_perplexity": _last(logged, "perplexity"),
        "train_tokens_per_second": epochs_run * steps_per_epoch * batch_size * sequence_length / max(seconds, 1e-9),
        "steps": total_steps,
        "vocabulary_size": tokenizer.vocabulary_size(),
        "train_seconds": seconds,
    }
    if new_words is not None:
        result["new_words"] = new_words
    config = {
        "lowercase": lowercase, "stage": stage, "text": [os.path.abspath(p) for p in text_paths],
        "init": os.path.abspath(init_dir) if init_dir else None, "preset": None if init_dir else preset,
        "epochs": epochs, "steps_per_epoch": steps_per_epoch, "sequence_length": sequence_length,
        "batch_size": batch_size, "learning_rate": learning_rate, "schedule": schedule,
        "discriminative": discriminative, "decay": decay, "min_count": min_count,
        "max_vocabulary_size": max_vocabulary_size, "precision": precision, "seed": seed, "result": result,
    }
    save_awd_lstm(out_dir, language_model, tokenizer, config)  # config.json last: the stage is finished
    log(f"Saved the {stage} language model to {out_dir}: validation perplexity "
        f"{result['val_perplexity'] if result['val_perplexity'] is None else round(result['val_perplexity'], 2)}")
    return result


# ---------------------------------------------------------------------------
# Stage 3: the classifier


def classification_dataset(texts, label_ids, tokenizer, batch_size=32, sequence_length=128, shuffle=False,
                           seed=0, bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES, static_shapes=False):
    """Batches of ``(token_ids, label_ids)``: texts as word ids (0-padded, at most ``sequence_length``).

    With ``shuffle`` (training) the texts are shuffled every epoch and batched
    with texts of similar length (less padding); otherwise batches keep the
    input order. Tokenisation runs in the graph (`WordTokenizer`).

    Args:
        texts: list of str. label_ids: list of int, or None (no labels: the
            dataset yields token ids alone).
        tokenizer: a `tfpretrain.text.word_lm_datasets.WordTokenizer`.
        static_shapes: bool. Every batch ``(batch_size, length)`` with
            ``length`` a bucket boundary or ``sequence_length``, for XLA and
            TPUs (`tfpretrain.text.buckets`). Batches are then ``(token_ids,
            label_ids, sample_weights)``: the rows that fill a short batch
            have label -1 and weight 0 (compile the loss with
            ``ignore_class=-1``, as `train_classifier` does).

    Example:

    >>> data = classification_dataset(["a fine film", "dull"], [1, 0], tokenizer, batch_size=2)
    >>> token_ids, label_ids = next(iter(data))  # (2, 3) int32, (2,) int32
    """
    texts = tf.constant(list(texts), dtype=tf.string)
    labels = tf.constant(list(label_ids) if label_ids is not None else [0] * int(texts.shape[0]), tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    if not shuffle and not static_shapes:
        dataset = dataset.batch(batch_size).map(
            lambda text, label: (tokenizer(text)[:, :sequence_length].to_tensor(), label))
    elif not shuffle:  # input order, static shapes

        def encode_in_order(text, label):
            real, ids = pad_to_bucket(tokenizer(text), bucket_boundaries, sequence_length, batch_size)
            _, (label,) = fill_batch(batch_size, (label,))
            return real, ids, label

        dataset = dataset.batch(batch_size).map(encode_in_order)
    else:
        dataset = dataset.shuffle(int(texts.shape[0]), seed=seed, reshuffle_each_iteration=True)

        def encode(text, label):  # a batch of texts -> padded ids and lengths, for unbatching row by row
            ids = tokenizer(text)[:, :sequence_length]
            return ids.to_tensor(), ids.row_lengths(), label

        dataset = dataset.batch(1024).map(encode).unbatch().map(lambda ids, length, label: (ids[:length], label))
        dataset = bucket_by_length(dataset, batch_size, bucket_boundaries, (0, 0), static_shapes, sequence_length)
    if static_shapes:
        dataset = dataset.map(lambda real, ids, label: (ids, tf.where(real, label, -1), tf.cast(real, "float32")))
    elif shuffle:  # every row of a dynamic batch is real
        dataset = dataset.map(lambda real, ids, label: (ids, label))
    if label_ids is None:
        dataset = dataset.map(lambda ids, *rest: ids)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _bucketed_batches(texts, tokenizer, batch_size, sequence_length, bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES):
    """Batches per epoch of the shuffled `classification_dataset`: each bucket's texts / batch_size, rounded up."""
    lengths = np.minimum(tokenizer(tf.constant(list(texts))).row_lengths().numpy(), sequence_length)
    counts = np.bincount(bucket_of(lengths, [b for b in bucket_boundaries if b > 0]))
    return int(sum(math.ceil(count / batch_size) for count in counts))


def _scaled(dropouts, scale):
    return {name: min(0.95, rate * scale) for name, rate in dropouts.items()}


def _text_vocabulary(texts, min_count, max_vocabulary_size, lowercase):
    """A `WordTokenizer` vocabulary of the training texts (``from_scratch``)."""
    from tfpretrain.text.vocabulary import build_vocabulary
    from tfpretrain.text.word_lm_datasets import WORD_LM_RESERVED, word_tokens

    tokens = word_tokens(tf.constant(list(texts)), lowercase).to_list()
    words = ([w.decode("utf-8") for w in row] for row in tokens)
    vocabulary = build_vocabulary(words, min_count=min_count, max_size=max_vocabulary_size, reserved=WORD_LM_RESERVED)
    if len(vocabulary) == len(WORD_LM_RESERVED):
        raise ValueError(f"no word occurs {min_count} or more times in the training texts; lower min_count")
    return vocabulary


def _build_classifier(encoder, num_labels, head_hidden_dim, head_dropout):
    from tfpretrain.models.ulmfit import build_ulmfit_classifier

    model = build_ulmfit_classifier(encoder, num_labels, head_hidden_dim=head_hidden_dim,
                                    head_dropout=tuple(head_dropout))
    model(np.ones((1, 2), "int32"))  # built before fit, as checkpoint restoring needs
    return model


@uses_precision
def train_classifier(lm_dir, train_path, dev_path, out_dir, *, max_train_examples=None, gradual_unfreezing=None,
                     discriminative=None, schedule="slanted", from_scratch=False, preset="small", epochs=6,
                     steps_per_epoch=None, batch_size=32, learning_rate=CLASSIFIER_LEARNING_RATE,
                     decay=DEFAULT_DECAY, sequence_length=128, dropout_scale=1.0, head_hidden_dim=50,
                     min_count=2, column=None, precision=None, jit_compile="auto", static_shapes="auto", seed=0,
                     verbose=1, log=print):
    """Trains ULMFiT's classifier (stage 3) on labelled TSV; saves a classifier directory to ``out_dir``.

    The domain language model's encoder (``lm_dir``, with ULMFiT's classifier
    dropouts ``CLASSIFIER_DROPOUTS`` x ``dropout_scale``) under the concat-
    pooling head (`build_ulmfit_classifier`), trained with Adam (beta1 0.7,
    beta2 0.99) and ULMFiT's three fine-tuning techniques, each with a switch:

    - ``gradual_unfreezing``: epoch 0 trains the head only, each later epoch
      one more layer group from the top (`GradualUnfreezing`);
    - ``discriminative``: group ``i`` from the top learns at
      ``learning_rate / decay**i`` (`discriminative_optimizer`);
    - ``schedule="slanted"``: `SlantedTriangularLR` over all steps (or
      ``"constant"``).

    ``from_scratch=True`` trains the same classifier from random weights
    (``preset``, a vocabulary of the training texts; ``lm_dir`` unused) —
    the baseline; its switches default to off. Resumes after an interruption.

    Args:
        lm_dir: an AWD-LSTM directory (`pretrain_lm` output), or None with ``from_scratch``.
        train_path, dev_path: TSV files, ``label<TAB>text`` (`read_classification_tsv`).
        out_dir: the classifier directory (checkpoints and logs too).
        max_train_examples: use only the first N training examples.
        gradual_unfreezing, discriminative: bool or None (None: ``not from_scratch``).
        schedule: "slanted" or "constant".
        epochs, steps_per_epoch: ``steps_per_epoch`` None: one pass over the
            training examples per epoch; with a number, epochs of that many
            batches (the data repeats) — gradual unfreezing steps per epoch.
        batch_size, learning_rate (peak, top group), decay (2.6).
        sequence_length: int. Words kept per text.
        dropout_scale: float. Multiplies every classifier dropout (fastai's ``drop_mult``).
        head_hidden_dim: int. Width of the head's hidden layer (50).
        min_count: from_scratch vocabulary: words seen fewer times are ``[UNK]``.
        column: the label column (see `read_classification_tsv`).
        precision, jit_compile: see `pretrain_lm`.
        static_shapes: True, False or "auto" (on when XLA is): batches padded
            to length buckets and the batch size (`classification_dataset`),
            so that XLA compiles a few programs, not one per batch length.

    Returns:
        the dev scores (`evaluate`: ``accuracy``, ``macro_f1``,
        ``num_examples``) plus ``train_loss`` (last epoch),
        ``train_examples_per_second``, ``num_train_examples``, ``epochs``,
        ``steps`` and ``train_seconds`` (this call's ``fit``).
    """
    from tfpretrain.models.ulmfit import AWD_LSTM_PRESETS, CLASSIFIER_DROPOUTS, AwdLstmEncoder, layer_groups
    from tfpretrain.models.ulmfit import load_awd_lstm
    from tfpretrain.text.word_lm_datasets import WordTokenizer

    gradual_unfreezing = (not from_scratch) if gradual_unfreezing is None else bool(gradual_unfreezing)
    discriminative = (not from_scratch) if discriminative is None else bool(discriminative)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if from_scratch and preset not in AWD_LSTM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(AWD_LSTM_PRESETS)}")
    if not from_scratch and not lm_dir:
        raise ValueError("train_classifier needs lm_dir (a language model from pretrain_lm), or from_scratch=True")
    if epochs < 1 or sequence_length < 1:
        raise ValueError(f"epochs and sequence_length must be at least 1, got {epochs} and {sequence_length}")
    keras.utils.set_random_seed(seed)

    train = read_classification_tsv(train_path, column)
    dev = read_classification_tsv(dev_path, column)
    if max_train_examples is not None:
        train = train[:max_train_examples]
    if not train or not dev:
        raise ValueError(f"{train_path if not train else dev_path}: no examples found")
    labels = label_set(train)
    if len(labels) < 2:
        raise ValueError(f"{train_path}: the training examples have one label ({labels[0]!r}); a classifier needs "
                         "at least two")
    check_labels(dev, labels)
    dropouts = _scaled(CLASSIFIER_DROPOUTS, dropout_scale)
    head_dropout = [min(0.95, rate * dropout_scale) for rate in (0.2, 0.1)]
    texts = [example.texts[0] for example in train]

    if from_scratch:
        vocabulary = _text_vocabulary(texts, min_count, None, lowercase=True)
        tokenizer = WordTokenizer(vocabulary, lowercase=True)
        encoder = AwdLstmEncoder(tokenizer.vocabulary_size(), **{**AWD_LSTM_PRESETS[preset], **dropouts})
        source = f"from scratch ({preset} preset, {len(vocabulary):,} words from the training texts)"
    else:
        model, tokenizer, _ = load_awd_lstm(lm_dir, **dropouts)
        encoder = getattr(model, "encoder", model)
        source = f"on the language model in {lm_dir}"
    classifier = _build_classifier(encoder, len(labels), head_hidden_dim, head_dropout)
    groups = layer_groups(classifier)

    jit_compile = resolve_jit_compile(jit_compile)
    static_shapes = resolve_static_shapes(static_shapes, jit_compile)
    label_ids = [labels.index(example.label) for example in train]
    train_data = classification_dataset(texts, label_ids, tokenizer, batch_size, sequence_length, shuffle=True,
                                        seed=seed, static_shapes=static_shapes)
    dev_data = classification_dataset([e.texts[0] for e in dev], [labels.index(e.label) for e in dev], tokenizer,
                                      batch_size, sequence_length, static_shapes=static_shapes)
    if steps_per_epoch is None:
        epoch_steps = _bucketed_batches(texts, tokenizer, batch_size, sequence_length)
    else:
        epoch_steps = int(steps_per_epoch)
        train_data = train_data.repeat()
    total_steps = epochs * epoch_steps
    classifier.compile(
        optimizer=_optimizer(groups, learning_rate, total_steps, schedule, discriminative, decay),
        # ignore_class: the rows that fill a static-shape batch (label -1, weight 0) leave the mean loss unchanged.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile)
    callbacks = [GradualUnfreezing(groups)] if gradual_unfreezing else []
    switches = ", ".join(f"{name} {'on' if on else 'off'}" for name, on in (
        ("gradual unfreezing", gradual_unfreezing), ("discriminative rates", discriminative)))
    log(f"Training a {len(labels)}-label classifier {source} on {len(train):,} examples for {epochs} epochs of "
        f"{epoch_steps} steps; peak rate {learning_rate}, {schedule} schedule, {switches}")
    history, seconds = fit_resumable(classifier, train_data, dev_data, epochs, out_dir, verbose, log,
                                     steps_per_epoch=steps_per_epoch, callbacks=callbacks)
    epochs_run = len(history.history.get("loss", []))

    scores = _score(classifier, tokenizer, labels, dev, batch_size, sequence_length, static_shapes)
    losses = read_history_csv(os.path.join(out_dir, "history.csv")).get("loss")
    scores.update(
        train_loss=losses[-1][1] if losses else None,
        train_examples_per_second=epochs_run * epoch_steps * batch_size / max(seconds, 1e-9)
        if steps_per_epoch else epochs_run * len(train) / max(seconds, 1e-9),
        num_train_examples=len(train), epochs=epochs, steps=total_steps, train_seconds=seconds,
    )
    config = {
        "lowercase": tokenizer.lowercase, "task": "classify", "labels": labels, "column": column,
        "head_hidden_dim": head_hidden_dim, "head_dropout": head_dropout, "sequence_length": sequence_length,
        "train": os.path.abspath(train_path), "dev": os.path.abspath(dev_path),
        "init": None if from_scratch else os.path.abspath(lm_dir), "from_scratch": bool(from_scratch),
        "preset": preset if from_scratch else None, "max_train_examples": max_train_examples,
        "gradual_unfreezing": gradual_unfreezing, "discriminative": discriminative, "schedule": schedule,
        "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size,
        "learning_rate": learning_rate, "decay": decay, "dropout_scale": dropout_scale, "precision": precision,
        "static_shapes": static_shapes, "seed": seed,
        "result": scores,
    }
    _save_classifier(out_dir, classifier, encoder, tokenizer, config)
    log(f"Saved the classifier to {out_dir}: dev accuracy {scores['accuracy']:.4f}")
    return scores


def _head_layers(classifier):
    from tfpretrain.models.ulmfit import layer_groups

    return [layer for layer in layer_groups(classifier)[-1] if layer.weights]


def _save_classifier(out_dir, classifier, encoder, tokenizer, config):
    from tfpretrain.models.ulmfit import save_awd_lstm

    head = {f"{layer.name}/{i}": weight for layer in _head_layers(classifier)
            for i, weight in enumerate(layer.get_weights())}
    np.savez(os.path.join(out_dir, HEAD_WEIGHTS_FILE), **head)
    save_awd_lstm(out_dir, encoder, tokenizer, config)  # config.json last: the stage is finished


def is_classifier_dir(model_dir):
    """Whether ``model_dir`` holds a classifier written by `train_classifier` (config.json with labels)."""
    config = _read_config(model_dir) if os.path.isdir(model_dir) else None
    return bool(config) and "labels" in config and os.path.exists(os.path.join(model_dir, HEAD_WEIGHTS_FILE))


def load_classifier(model_dir):
    """Returns ``(model, tokenizer, config)`` of a classifier directory written by `train_classifier`."""
    from tfpretrain.models.ulmfit import load_awd_lstm

    if not is_classifier_dir(model_dir):
        raise FileNotFoundError(f"{model_dir} is not a ULMFiT classifier directory (no config.json with labels); "
                                "train one with train_classifier or `tfpretrain ulmfit --stage classifier`")
    encoder, tokenizer, config = load_awd_lstm(model_dir)
    model = _build_classifier(encoder, len(config["labels"]), config["head_hidden_dim"], config["head_dropout"])
    path = os.path.join(model_dir, HEAD_WEIGHTS_FILE)
    with np.load(path) as stored:
        for layer in _head_layers(model):
            keys = [f"{layer.name}/{i}" for i in range(len(layer.weights))]
            missing = [key for key in keys if key not in stored]
            if missing:
                raise ValueError(f"{path} lacks {missing}; the head weights and config.json do not match")
            layer.set_weights([stored[key] for key in keys])
    return model, tokenizer, config


def _probabilities(model, tokenizer, texts, batch_size, sequence_length, static_shapes=False):
    data = classification_dataset(texts, None, tokenizer, batch_size, sequence_length, static_shapes=static_shapes)
    logits = model.predict(data, verbose=0)[:len(texts)]  # static shapes fill the last batch at its end
    return keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, "float32"), axis=-1))


def _score(model, tokenizer, labels, examples, batch_size, sequence_length, static_shapes=False):
    from tfpretrain.pipelines.bert_tasks import macro_f1

    probabilities = _probabilities(model, tokenizer, [e.texts[0] for e in examples], batch_size, sequence_length,
                                   static_shapes)
    predicted = np.argmax(probabilities, axis=-1)
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
    probabilities = _probabilities(model, tokenizer, texts, batch_size, config["sequence_length"])
    return label_predictions(texts, probabilities, config["labels"])


# ---------------------------------------------------------------------------
# All three stages


def _write_domain_text(train_path, column, out_dir):
    """The training TSV's texts, one per line: the domain LM's text when none is given."""
    path = os.path.join(out_dir, DOMAIN_TEXT_FILE)
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for example in read_classification_tsv(train_path, column):
            f.write(" ".join(example.texts[0].split()) + "\n")
    return path


def run(general_text, domain_text, train_path, dev_path, out_dir, *, stages=STAGES, preset="small",
        general_epochs=3, general_steps_per_epoch=None, domain_epochs=2, domain_steps_per_epoch=None,
        sequence_length=70, lm_batch_size=32, general_learning_rate=None, domain_learning_rate=None,
        min_count=2, max_vocabulary_size=60000, column=None, precision=None, jit_compile="auto", seed=0, verbose=1,
        log=print, **classifier_options):
    """ULMFiT's three stages into ``OUT/general_lm``, ``OUT/domain_lm`` and ``OUT/classifier``.

    A stage whose directory is finished (`is_finished`) is skipped; an
    interrupted one resumes. ``stages`` runs a subset (``--stage``): each
    needs the previous stage's directory finished. With
    ``from_scratch=True`` (a `train_classifier` option) only the classifier
    stage runs, without a language model: the baseline.

    Args:
        general_text: general-domain text files (stage 1), e.g. EWT train.
        domain_text: target-domain text files (stage 2); None: the texts of
            ``train_path`` (all of them, labelled or not: the paper's
            semi-supervised setting), written to ``OUT/domain_text.txt``.
        train_path, dev_path: labelled TSV files (stage 3).
        stages: a subset of ``("general", "domain", "classifier")``.
        preset: the new language model's `AWD_LSTM_PRESETS` name.
        general_epochs, general_steps_per_epoch, domain_epochs,
        domain_steps_per_epoch, sequence_length, lm_batch_size,
        general_learning_rate, domain_learning_rate, min_count,
        max_vocabulary_size: the language models' `pretrain_lm` settings.
        precision, jit_compile: every stage's (`pretrain_lm`); precision None:
            what each stage's directory recorded, else float32.
        **classifier_options: `train_classifier` keywords (``epochs``,
            ``max_train_examples``, ``gradual_unfreezing``, ``discriminative``,
            ``schedule``, ``learning_rate``, ...).

    Returns:
        ``{stage: result}`` for the stages asked for (a skipped stage's saved result).
    """
    stages = [stages] if isinstance(stages, str) else list(stages)
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    dirs = {stage: os.path.join(out_dir, name) for stage, name in STAGE_DIRS.items()}
    from_scratch = bool(classifier_options.get("from_scratch"))
    if from_scratch:
        stages = ["classifier"]  # no language model to pretrain or use
    results = {}
    for stage in STAGES:
        if stage not in stages:
            continue
        previous = STAGES[STAGES.index(stage) - 1] if stage != "general" else None
        if previous and not from_scratch and not is_finished(dirs[previous]):
            raise FileNotFoundError(f"stage {stage!r} needs the finished {previous} stage in {dirs[previous]}; "
                                    f"run --stage {previous} first")
        if is_finished(dirs[stage]):
            log(f"Stage {stage}: already finished in {dirs[stage]}, skipped")
            results[stage] = _read_config(dirs[stage])["result"]
            continue
        lm_options = dict(sequence_length=sequence_length, batch_size=lm_batch_size, min_count=min_count,
                          max_vocabulary_size=max_vocabulary_size, precision=precision, jit_compile=jit_compile,
                          seed=seed, verbose=verbose, log=log)
        if stage == "general":
            if not general_text:
                raise ValueError("stage general needs general_text (e.g. EWT train text)")
            results[stage] = pretrain_lm(general_text, dirs[stage], preset=preset, epochs=general_epochs,
                                         steps_per_epoch=general_steps_per_epoch,
                                         learning_rate=general_learning_rate, **lm_options)
        elif stage == "domain":
            text = domain_text or [_write_domain_text(train_path, column, out_dir)]
            results[stage] = pretrain_lm(text, dirs[stage], init_dir=dirs["general"], epochs=domain_epochs,
                                         steps_per_epoch=domain_steps_per_epoch,
                                         learning_rate=domain_learning_rate, **lm_options)
        else:
            lm_dir = None if from_scratch else dirs["domain"]
            classifier_options.setdefault("preset", preset)  # the from-scratch classifier's size
            results[stage] = train_classifier(lm_dir, train_path, dev_path, dirs[stage], column=column, seed=seed,
                                              precision=precision, jit_compile=jit_compile, verbose=verbose,
                                              log=log, **classifier_options)
    return results
