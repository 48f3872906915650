"""Pretrain a bidirectional LM on raw text (``tfpretrain pretrain-bilm``)."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfpretrain.models.bilm import BILM_PRESETS, BiLMLanguageModel
from tfpretrain.text import build_vocabulary, language_model_dataset, save_vocabulary, tokenize, tokenized_lines
from tfpretrain.text.readers import read_text
from tfpretrain.text.datasets import LANGUAGE_MODEL_RESERVED
from tfpretrain.text.vocabulary import OOV_TOKEN, PADDING_TOKEN, load_vocabulary
from tfpretrain.training import fit_resumable
from tfpretrain.training.precision import check_jit_compile, float32_copy, resolve_static_shapes, uses_precision

HELDOUT_EVERY = 20  # every 20th line measures held-out perplexity
MAX_CHARS_PER_TOKEN = 50


def word_lookup(vocabulary):
    """The StringLookup of LM word ids: 0 padding, 1 OOV, then ``vocabulary``."""
    return keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PADDING_TOKEN, oov_token=OOV_TOKEN)


def count_tokens(text_paths, max_length=None, batch_size=1024):
    """Yields the token list of each text line, reading files in Python so bad input names its line."""
    def batches():
        batch = []
        for path in text_paths:
            for text in read_text(path):  # raises DataFormatError naming path:line
                batch.append(text)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    for batch in batches():
        for tokens in tokenize(tf.constant(batch)).to_list():
            yield [t.decode("utf-8") for t in tokens[:max_length]]


@uses_precision
def run(text_paths, out_dir, epochs=3, preset="small", batch_size=32, max_length=64, min_count=2,
        max_vocabulary=50000, learning_rate=2e-3, precision=None, jit_compile="auto", static_shapes="auto", seed=0,
        verbose=1, log=print):
    """Builds the vocabulary, trains `BiLMLanguageModel`, saves it to ``out_dir``.

    ``precision`` ("float32", "mixed_float16", "mixed_bfloat16"; None: what
    the run in ``out_dir`` recorded, else float32) and ``jit_compile`` (True,
    False, "auto": Keras' choice, see `check_jit_compile`) are the
    `tfpretrain.training.precision` options; the saved
    ``language_model.keras`` is float32 either way. ``static_shapes`` (True,
    False, "auto": on with ``jit_compile=True``) pads every batch to a length
    bucket and the batch size (`tfpretrain.text.language_model_dataset`).

    Returns a dict of results (held-out perplexity, tokens/s, sizes).
    """
    if preset not in BILM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(BILM_PRESETS)}")
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    vocabulary_path = os.path.join(out_dir, "vocabulary.txt")
    if os.path.exists(vocabulary_path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        vocabulary = load_vocabulary(vocabulary_path)  # resuming: keep the ids the checkpoint used
        log(f"Resuming: reusing {vocabulary_path} ({len(vocabulary)} words)")
    else:
        log(f"Counting words in {len(text_paths)} file(s) ...")
        vocabulary = build_vocabulary(count_tokens(text_paths, max_length), min_count=min_count,
                                      max_size=max_vocabulary, reserved=LANGUAGE_MODEL_RESERVED)
        if len(vocabulary) <= len(LANGUAGE_MODEL_RESERVED):
            raise ValueError(f"no words found in {', '.join(map(str, text_paths))}: the files hold no text lines")
        save_vocabulary(vocabulary, vocabulary_path)
    lookup = word_lookup(vocabulary)
    log(f"Vocabulary: {len(vocabulary) + 2} word ids (min count {min_count}) -> {vocabulary_path}")

    common = dict(word_lookup=lookup, batch_size=batch_size, max_length=max_length,
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
    training_lines = tokenized_lines(text_paths, max_length, heldout_every=HELDOUT_EVERY)
    num_tokens = int(training_lines.reduce(np.int64(0), lambda n, tokens: n + tf.size(tokens, tf.int64)))
    float32_copy(model).save(os.path.join(out_dir, "language_model.keras"))
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
    with open(os.path.join(out_dir, "bilm.json"), "w") as f:
        json.dump(results, f, indent=2)
    log(f"Saved the language model to {out_dir} (held-out perplexity {results['heldout_perplexity']})")
    return results


def load_language_model(directory):
    """Loads the `BiLMLanguageModel` saved by `run`."""
    import tfpretrain.layers  # noqa: F401

    path = os.path.join(directory, "language_model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{directory} holds no language_model.keras; pretrain one with `tfpretrain pretrain-bilm --out {directory}`."
        )
    return keras.saving.load_model(path)
