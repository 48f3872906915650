"""Train a CRF sequence tagger, optionally on top of a pretrained BiLM (``tfpretrain train-tagger``)."""

import dataclasses
import os

import keras

from tfpretrain.models.bilm import load_language_model
from tfpretrain.models.tagger import TAGGER_PRESETS, TaggingPreprocessor, build_tagger, keys_of, tagging_dataset
from tfpretrain.models.tagger.saving import save_tagger
from tfpretrain.models.tagger.evaluation import evaluate_sentences
from tfpretrain.text.vocabulary import build_vocabulary
from tfpretrain.text.readers import detect_scheme, read_tagged, to_iob2
from tfpretrain.training import fit_resumable
from tfpretrain.training.metrics import EntityF1, TokenAccuracy
from tfpretrain.training.precision import check_jit_compile, float32_copy, resolve_static_shapes, uses_precision

SCHEME_CONSTRAINTS = {"IOB2": "BIO", "IOBES": "IOBES"}


def tag_set(*sentence_lists):
    """All tags of the given sentences, 'O' first, then alphabetical."""
    tags = {t for sentences in sentence_lists for s in sentences for t in s.tags}
    return sorted(tags, key=lambda t: (t != "O", t))


def normalize_to_iob2(sentences):
    """Rewrites IOB1 / IO chunk tags as IOB2 (an ``I-X`` that starts a chunk becomes ``B-X``)."""
    return [dataclasses.replace(s, tags=tuple(to_iob2(s.tags))) for s in sentences]


@uses_precision
def run(train_path, dev_path, out_dir, format="iob2", column=None, bilm_dir=None, epochs=10,
        preset="small", language_model_mode="top", constraint="auto", batch_size=32,
        learning_rate=3e-3, min_count=2, precision=None, jit_compile="auto", static_shapes="auto", seed=0,
        overwrite=False, verbose=1, log=print):
    """Trains a tagger and saves it to ``out_dir``; returns the dev scores.

    Args:
        constraint: "auto" (BIO/IOBES constraint when the tags use that scheme),
            None, "BIO" or "IOBES".
        precision: "float32", "mixed_float16" or "mixed_bfloat16" (None: what
            the run in ``out_dir`` recorded, else float32); the CRF runs in
            float32 and the saved tagger is float32 either way.
        jit_compile: True, False or "auto" (Keras' choice: XLA on a GPU unless a layer cannot be compiled).
        static_shapes: True, False or "auto" (on with ``jit_compile=True``):
            batches padded to length buckets and the batch size
            (`tfpretrain.models.tagger.tagging_dataset`), so that XLA compiles a few
            programs, not one per sentence length.
        overwrite: bool, default False. ``out_dir`` holding a finished run is
            an error unless True; then that run is deleted first
            (`tfpretrain.training.callbacks.prepare_out_dir`). An interrupted
            run resumes either way.
    """
    if preset not in TAGGER_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(TAGGER_PRESETS)}")
    keras.utils.set_random_seed(seed)
    train = read_tagged(train_path, format, column)
    dev = read_tagged(dev_path, format, column)
    for path, sentences in ((train_path, train), (dev_path, dev)):
        if not sentences:
            raise ValueError(f"{path}: no sentences found; is --format {format} (and --column) right?")
    scheme = detect_scheme(set(tag_set(train, dev)))
    if scheme in ("IOB2", "IO"):  # IOB1 (CoNLL-2003) and IO files become IOB2, which the BIO constraint needs
        train, dev = normalize_to_iob2(train), normalize_to_iob2(dev)
        scheme = "IOB2"
    tags = tag_set(train, dev)
    if constraint == "auto":
        constraint = SCHEME_CONSTRAINTS.get(scheme)
    words = build_vocabulary([keys_of(s.tokens for s in train)], min_count=min_count)
    preprocessor = TaggingPreprocessor(words, tags)
    log(f"Read {len(train)} training and {len(dev)} dev sentences; {len(tags)} tags ({scheme}); "
        f"{preprocessor.word_vocabulary_size} word ids; constraint: {constraint}")

    language_model = load_language_model(bilm_dir) if bilm_dir else None
    model = build_tagger(
        preprocessor.word_vocabulary_size, tags, language_model=language_model,
        language_model_mode=language_model_mode, constraint=constraint, **TAGGER_PRESETS[preset],
    )
    metrics = [TokenAccuracy(name="accuracy")]
    if scheme in SCHEME_CONSTRAINTS:
        metrics.append(EntityF1(tags, name="entity"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=5.0), metrics=metrics,
                  jit_compile=check_jit_compile(jit_compile))

    static_shapes = resolve_static_shapes(static_shapes, jit_compile)
    train_data = tagging_dataset(train, preprocessor, batch_size, shuffle=True, seed=seed, static_shapes=static_shapes)
    dev_data = tagging_dataset(dev, preprocessor, batch_size, static_shapes=static_shapes)
    history, seconds = fit_resumable(model, train_data, dev_data, epochs, out_dir, verbose, log)
    epochs_run = len(history.history.get("loss", []))
    train_tokens = sum(len(s.tokens) for s in train)

    scores = evaluate_sentences(model, preprocessor, dev)
    scores["train_tokens_per_second"] = train_tokens * epochs_run / max(seconds, 1e-9)
    metadata = {
        "format": format, "column": column, "scheme": scheme, "constraint": constraint,
        "preset": preset, "precision": precision, "static_shapes": static_shapes, "bilm": os.path.abspath(bilm_dir) if bilm_dir else None,
        "language_model_mode": language_model_mode if bilm_dir else None,
        "train": os.path.abspath(train_path), "dev": os.path.abspath(dev_path), "dev_scores": scores,
    }
    save_tagger(out_dir, float32_copy(model), preprocessor, metadata)
    log(f"Saved the tagger to {out_dir}")
    return scores
