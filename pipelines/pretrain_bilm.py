"""Pretrain a bidirectional LM on raw text (``tfpretrain pretrain-bilm``)."""

import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.models.bilm import (
    BILM_PRESETS,
    LANGUAGE_MODEL_RESERVED,
    BiLMLanguageModel,
    count_tokens,
    language_model_dataset,
    save_language_model,
    tokenized_lines,
    word_lookup,
)
from tfpretrain.models.model_dir import BILM_VOCABULARY_FILE
from tfpretrain.text.vocabulary import build_vocabulary, load_vocabulary, save_vocabulary
from tfpretrain.training import fit_resumable
from tfpretrain.training.precision import check_jit_compile, float32_copy, resolve_static_shapes, uses_precision

HELDOUT_EVERY = 20  # every 20th line measures held-out perplexity
MAX_CHARS_PER_TOKEN = 50


@uses_precision
def run(text_paths, out_dir, epochs=3, preset="small", batch_size=32, sequence_length=64, min_count=2,
        max_vocabulary=50000, learning_rate=2e-3, precision=None, jit_compile="auto", static_shapes="auto", seed=0,
        overwrite=False, verbose=1, log=print):
    """Builds the vocabulary, trains `BiLMLanguageModel`, saves it to ``out_dir``.

    ``sequence_length`` (``--max-length``) is the tokens kept per line, the
    datasets' ``sequence_length``. ``precision`` ("float32",
    "mixed_float16", "mixed_bfloat16"; None: what the run in ``out_dir``
    recorded, else float32) and ``jit_compile`` (True, False, "auto": Keras'
    choice, see `check_jit_compile`) are the `tfpretrain.training.precision`
    options; the saved ``language_model.keras`` is float32 either way.
    ``static_shapes`` (True, False, "auto": on with ``jit_compile=True``) pads
    every batch to a length bucket and the batch size
    (`tfpretrain.models.bilm.language_model_dataset`). ``overwrite``: a
    finished run in ``out_dir`` is an error unless True, then it is deleted
    first (`tfpretrain.training.callbacks.prepare_out_dir`).

    Returns a dict of results (held-out perplexity, tokens/s, sizes).
    """
    if preset not in BILM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(BILM_PRESETS)}")
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    vocabulary_path = os.path.join(out_dir, BILM_VOCABULARY_FILE)
    if os.path.exists(vocabulary_path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        vocabulary = load_vocabulary(vocabulary_path)  # resuming: keep the ids the checkpoint used
        log(f"Resuming: reusing {vocabulary_path} ({len(vocabulary)} words)")
    else:
        log(f"Counting words in {len(text_paths)} file(s) ...")
        vocabulary = build_vocabulary(count_tokens(text_paths, sequence_length), min_count=min_count,
                                      max_size=max_vocabulary, reserved=LANGUAGE_MODEL_RESERVED)
        if len(vocabulary) <= len(LANGUAGE_MODEL_RESERVED):
            raise ValueError(f"no words found in {', '.join(map(str, text_paths))}: the files hold no text lines")
        save_vocabulary(vocabulary, vocabulary_path)
    lookup = word_lookup(vocabulary)
    log(f"Vocabulary: {len(vocabulary) + 2} word ids (min count {min_count}) -> {vocabulary_path}")

    common = dict(word_lookup=lookup, batch_size=batch_size, sequence_length=sequence_length,
                  max_chars_per_token=MAX_CHARS_PER_TOKEN, heldout_every=HELDOUT_EVERY,
                  static_shapes=resolve_static_shapes(static_shapes, jit_compile))
    train = language_model_dataset(text_paths, seed=seed, **common)
    heldout = language_model_dataset(text_paths, heldout=True, shuffle_buffer=0, **common)

    model = BiLMLanguageModel(vocabulary_size=len(vocabulary) + 2, **BILM_PRESETS[preset])
    model(np.zeros((1, 1, MAX_CHARS_PER_TOKEN), "int32"))  # build, so a checkpoint can be restored into it
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=5.0),
                  jit_compile=check_jit_compile(jit_compile))
    history, seconds = fit_resumable(model, train, heldout, epochs, out_dir, verbose, log)
    # Training tokens per epoch, counted in the graph on the tokenised lines (no second pass
    # through char ids, shuffling and bucketing).
    training_lines = tokenized_lines(text_paths, sequence_length, heldout_every=HELDOUT_EVERY)
    num_tokens = int(training_lines.reduce(np.int64(0), lambda n, tokens: n + tf.size(tokens, tf.int64)))
    results = {
        "preset": preset,
        "precision": precision,
        "static_shapes": common["static_shapes"],
        "vocabulary_size": len(vocabulary) + 2,
        "epochs_run": len(history.history.get("loss", [])),
        "heldout_perplexity": float(history.history["val_perplexity"][-1]) if history.history.get("val_perplexity") else None,
        "train_tokens_per_epoch": num_tokens,
        "train_tokens_per_second": num_tokens * len(history.history.get("loss", [])) / max(seconds, 1e-9),
    }
    save_language_model(out_dir, float32_copy(model), results)
    log(f"Saved the language model to {out_dir} (held-out perplexity {results['heldout_perplexity']})")
    return results
