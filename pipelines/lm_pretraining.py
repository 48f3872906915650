"""What ``pretrain-bert`` and ``pretrain-gpt`` share: the WordPiece vocabulary, the held-out batches, the fit.

A pretraining run streams ``(train, heldout)`` datasets from text files,
builds its model under the distribution strategy, trains it for a number of
steps with AdamW and BERT's linear warm-up and decay, checkpointing every
``steps_per_epoch`` steps (`fit_resumable`: the same call resumes), and
records what it did in ``pretraining.json`` next to the saved model.
"""

import itertools
import json
import math
import os

from tfpretrain.models.model_dir import PRETRAINING_RECORD
from tfpretrain.text.readers import read_text
from tfpretrain.training.callbacks import HISTORY_FILE, fit_resumable, read_history_csv
from tfpretrain.training.precision import resolve_jit_compile
from tfpretrain.training.schedules import bert_optimizer

VOCABULARY_SAMPLE_LINES = 50_000  # lines read to learn the WordPiece vocabulary (about 2 minutes)
VALIDATION_BATCHES = 20


def start_run(out_dir, preset, presets, init_dir, steps, seed):
    """Checks the arguments every pretraining run shares, seeds Keras and creates ``out_dir``."""
    import keras

    if init_dir is None and preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(presets)}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)


def sample_lines(text_paths, limit):
    """The first ``limit`` text lines of the files, read in Python so bad input names its line."""
    def lines():
        for path in text_paths:
            yield from read_text(path)  # raises DataFormatError naming path:line

    return list(itertools.islice(lines(), limit))


def new_tokenizer(text_paths, out_dir, vocabulary_size, lowercase, log, reserved_tokens=None):
    """A WordPiece tokenizer learned from the text, or the one an interrupted run saved.

    The vocabulary is written to ``out_dir/vocab.txt`` as soon as it is
    learned, so a resumed run trains on the same pieces.
    """
    from tfpretrain.text.vocabulary import load_vocabulary, save_vocabulary
    from tfpretrain.text.wordpiece import RESERVED_TOKENS, WordPieceTokenizer, learn_wordpiece_vocabulary

    vocabulary_path = os.path.join(out_dir, "vocab.txt")
    if os.path.exists(vocabulary_path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        log(f"Resuming: reusing {vocabulary_path}")
        return WordPieceTokenizer(load_vocabulary(vocabulary_path), lowercase=lowercase)
    lines = sample_lines(text_paths, VOCABULARY_SAMPLE_LINES)
    if not any(line.strip() for line in lines):
        raise ValueError(f"no text found in {', '.join(text_paths)}")
    log(f"Learning a {vocabulary_size}-piece WordPiece vocabulary from {len(lines)} lines ...")
    vocabulary = learn_wordpiece_vocabulary(lines, vocabulary_size, lowercase=lowercase,
                                            reserved_tokens=reserved_tokens or RESERVED_TOKENS)
    save_vocabulary(vocabulary, vocabulary_path)
    return WordPieceTokenizer(vocabulary, lowercase=lowercase)


def heldout_batches(dataset, log):
    """The first `VALIDATION_BATCHES` held-out batches, cached; None (logged) if there is not one."""
    dataset = dataset.take(VALIDATION_BATCHES).cache()
    if not any(True for _ in dataset):  # fills the cache; a tiny corpus may hold out less than one batch
        log("The held-out lines do not fill one batch: no validation scores")
        return None
    return dataset


def fit_language_model(build_model, train, heldout, *, out_dir, steps, steps_per_epoch, batch_size, sequence_length,
                       learning_rate, warmup_fraction, jit_compile, distribution, description, verbose, log):
    """Builds, compiles and trains a language model for ``steps`` steps; resumes from ``out_dir``'s checkpoint.

    Args:
        build_model: callable returning the (uncompiled) model; called under
            the distribution scope and built on one training batch before
            ``fit``, as checkpoint restoring needs.
        train, heldout: ``(x, y, sample_weight)`` datasets; ``train``
            repeats; ``heldout`` (finite) goes through `heldout_batches`.
        steps_per_epoch: steps between held-out evaluations and checkpoints
            (None: min(steps, 500)).
        jit_compile: True, False or "auto" (XLA only when a GPU is visible;
            on a 2-core CPU the XLA step measured slower than the plain graph).
        distribution: the `tf.distribute` strategy; with several workers
            (``--strategy multiworker``) each worker reads every batch and keeps
            its share (data sharding: the text files are fewer than the workers).
        description: e.g. "a 4 x 256 encoder", for the log.

    Returns:
        ``(model, logs, summary)``: the trained model, ``{metric: [value
        per epoch]}`` of the whole run (read from ``history.csv``, so a
        resumed run's first epoch is the first epoch trained, not the first
        after the restart) and ``{"train_tokens_per_second", "steps"}`` (fit wall clock,
        validation included).
    """
    import tensorflow as tf

    if isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train, heldout = train.with_options(options), heldout.with_options(options)
    heldout = heldout_batches(heldout, log)
    steps_per_epoch = steps_per_epoch or min(steps, 500)
    epochs = math.ceil(steps / steps_per_epoch)
    jit_compile = resolve_jit_compile(jit_compile)
    with distribution.scope():
        model = build_model()
        model(next(iter(train))[0])
        model.compile(optimizer=bert_optimizer(learning_rate, epochs * steps_per_epoch, warmup_fraction),
                      jit_compile=jit_compile)
    log(f"Pretraining {description} ({model.count_params():,} parameters with the head) for "
        f"{epochs * steps_per_epoch} steps of {batch_size} x {sequence_length} tokens on "
        f"{distribution.num_replicas_in_sync} replica(s)")
    history, seconds = fit_resumable(model, train, heldout, epochs, out_dir, verbose, log,
                                     steps_per_epoch=steps_per_epoch)
    logs = {name: [value for _, value in values]
            for name, values in read_history_csv(os.path.join(out_dir, HISTORY_FILE)).items()}
    trained_steps = len(history.history.get("loss", [])) * steps_per_epoch  # by this call, for the rate
    summary = {"train_tokens_per_second": trained_steps * batch_size * sequence_length / max(seconds, 1e-9),
               "steps": epochs * steps_per_epoch}
    return model, logs, summary


def last_logged(logs, name, index=-1):
    """``logs[name][index]`` as a float, or None when Keras did not log it."""
    return float(logs[name][index]) if logs.get(name) else None


def write_pretraining_record(out_dir, text_paths, preset, init_dir, result, **settings):
    """Writes ``pretraining.json``: the text, the preset or the starting directory, the settings, the result."""
    with open(os.path.join(out_dir, PRETRAINING_RECORD), "w") as f:
        json.dump({"text": [os.path.abspath(p) for p in text_paths], "preset": None if init_dir else preset,
                   "init": os.path.abspath(init_dir) if init_dir else None, **settings, "result": result},
                  f, indent=2)
