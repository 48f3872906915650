"""Masked-LM pretraining of a BERT encoder on raw text (``tfpretrain pretrain-bert``)."""

import itertools
import json
import math
import os

import keras

from tfpretrain.text.readers import read_text
from tfpretrain.training import fit_resumable
from tfpretrain.training.distribute import get_strategy
from tfpretrain.training.schedules import bert_optimizer

VOCABULARY_SAMPLE_LINES = 50_000  # lines read to learn the WordPiece vocabulary (about 2 minutes)
VALIDATION_BATCHES = 20


def _sample_lines(text_paths, limit):
    """The first ``limit`` text lines of the files, read in Python so bad input names its line."""
    def lines():
        for path in text_paths:
            yield from read_text(path)  # raises DataFormatError naming path:line

    return list(itertools.islice(lines(), limit))


def _new_tokenizer(text_paths, out_dir, vocabulary_size, lowercase, log):
    """A WordPiece tokenizer learned from the text, or the one an interrupted run saved."""
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    vocabulary_path = os.path.join(out_dir, "vocab.txt")
    if os.path.exists(vocabulary_path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        log(f"Resuming: reusing {vocabulary_path}")
        return WordPieceTokenizer(load_vocabulary(vocabulary_path), lowercase=lowercase)
    lines = _sample_lines(text_paths, VOCABULARY_SAMPLE_LINES)
    if not any(line.strip() for line in lines):
        raise ValueError(f"no text found in {', '.join(text_paths)}")
    log(f"Learning a {vocabulary_size}-piece WordPiece vocabulary from {len(lines)} lines ...")
    vocabulary = learn_wordpiece_vocabulary(lines, vocabulary_size, lowercase=lowercase)
    return WordPieceTokenizer(vocabulary, lowercase=lowercase)


def run(text_paths, out_dir, preset="tiny", init_dir=None, steps=1000, steps_per_epoch=None,
        vocabulary_size=8000, lowercase=True, sequence_length=128, batch_size=16, learning_rate=5e-4,
        warmup_fraction=0.1, whole_word=False, max_selections=None, jit_compile="auto", strategy="default",
        logical_cpus=None, seed=0, verbose=1, log=print):
    """Pretrains a BERT encoder with masked-LM and saves a BERT directory to ``out_dir``.

    Args:
        text_paths: plain-text files (one sentence or paragraph per line) or
            CoNLL-U files (their ``# text =`` lines); streamed, never loaded whole.
        preset: a `BERT_PRESETS` name for a new encoder (ignored with ``init_dir``).
        init_dir: continue pretraining a BERT directory (``import-hf`` output or
            an earlier ``pretrain-bert``), keeping its vocabulary.
        steps: training steps in all; ``steps_per_epoch`` (default
            min(steps, 500)) steps run between held-out evaluations and checkpoints.
        whole_word: mask all pieces of a word together.
        jit_compile: True, False or "auto" (XLA when a GPU is visible: on a
            2-core CPU the XLA step measured slower than the plain graph).

    Returns a dict with the held-out masked-LM accuracy and perplexity, the
    first and last training accuracy, and training tokens/s.
    """
    from tfpretrain.models.bert import BERT_PRESETS, BertEncoder, BertMaskedLM, load_bert, save_bert
    from tfpretrain.text.bert_datasets import masked_lm_dataset
    from tfpretrain.text.masking import MaskedLMMasker

    distribution = get_strategy(strategy, logical_cpus)  # before anything touches the devices
    if init_dir is None and preset not in BERT_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(BERT_PRESETS)}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    with distribution.scope():  # variables must be created under the strategy
        if init_dir:
            encoder, tokenizer = load_bert(init_dir)
            log(f"Continuing from {init_dir}")
        else:
            tokenizer = _new_tokenizer(text_paths, out_dir, vocabulary_size, lowercase, log)
            encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **BERT_PRESETS[preset])
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"--sequence-length {sequence_length} exceeds the encoder's maximum "
                         f"({encoder.max_sequence_length})")
    max_selections = max_selections or max(1, math.ceil(0.15 * sequence_length))

    masker = MaskedLMMasker(
        vocabulary_size=tokenizer.vocabulary_size(), mask_token_id=tokenizer.mask_token_id,
        unselectable_token_ids=[tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id],
        max_selections=max_selections, whole_word=whole_word, seed=seed,
    )
    train, dev = (
        masked_lm_dataset(text_paths, tokenizer, masker, sequence_length=sequence_length,
                          batch_size=batch_size, seed=seed, split=split, repeat=split == "train")
        for split in ("train", "heldout")
    )
    dev = dev.take(VALIDATION_BATCHES).cache()
    if not any(True for _ in dev):  # fills the cache; a tiny corpus may hold out less than one batch
        log("The held-out lines do not fill one batch: no validation masked-LM accuracy")
        dev = None

    steps_per_epoch = steps_per_epoch or min(steps, 500)
    epochs = math.ceil(steps / steps_per_epoch)
    if jit_compile == "auto":
        import tensorflow as tf

        jit_compile = bool(tf.config.list_logical_devices("GPU"))
    with distribution.scope():
        model = BertMaskedLM(encoder)
        model(next(iter(train))[0])  # built before fit, as checkpoint restoring needs
        model.compile(optimizer=bert_optimizer(learning_rate, epochs * steps_per_epoch, warmup_fraction),
                      jit_compile=jit_compile)
    log(f"Pretraining a {encoder.num_layers} x {encoder.hidden_dim} encoder "
        f"({encoder.count_params():,} parameters) for {epochs * steps_per_epoch} steps of "
        f"{batch_size} x {sequence_length} tokens on {distribution.num_replicas_in_sync} replica(s)")
    history, seconds = fit_resumable(model, train, dev, epochs, out_dir, verbose, log,
                                     steps_per_epoch=steps_per_epoch)
    logs = history.history
    trained_steps = len(logs.get("loss", [])) * steps_per_epoch
    result = {
        "val_accuracy": float(logs["val_accuracy"][-1]) if logs.get("val_accuracy") else None,
        "val_perplexity": float(logs["val_perplexity"][-1]) if logs.get("val_perplexity") else None,
        "first_epoch_accuracy": float(logs["accuracy"][0]) if logs.get("accuracy") else None,
        "last_epoch_accuracy": float(logs["accuracy"][-1]) if logs.get("accuracy") else None,
        "train_tokens_per_second": trained_steps * batch_size * sequence_length / max(seconds, 1e-9),
        "steps": epochs * steps_per_epoch,
    }
    save_bert(out_dir, encoder, tokenizer)
    with open(os.path.join(out_dir, "pretraining.json"), "w") as f:
        json.dump({"text": [os.path.abspath(p) for p in text_paths], "preset": None if init_dir else preset,
                   "init": os.path.abspath(init_dir) if init_dir else None, "sequence_length": sequence_length,
                   "batch_size": batch_size, "whole_word": whole_word, "seed": seed, "result": result}, f, indent=2)
    log(f"Saved the encoder to {out_dir}")
    return result
