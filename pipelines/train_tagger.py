"""Train a CRF sequence tagger, optionally on a pretrained encoder's layers (``tfpretrain train-tagger``).

Three token representations, one tagger (`tfpretrain.models.tagger.build_tagger`):

- the baseline: word embeddings and the character CNN;
- ``--bilm DIR`` (or ``--encoder`` a ``pretrain-bilm`` directory): TagLM / ELMo
  on a frozen bidirectional LM, run inside the tagger;
- ``--encoder DIR`` a BERT directory (``import-hf``, ``pretrain-bert``, or a
  fine-tuned one): the feature-based approach. The chosen layers of the frozen
  encoder (``--layers``), one vector per word (``--subword-pooling``), join at
  the input or after the first BiLSTM (``--inject``). They are computed once,
  kept in memory or on disk (`tfpretrain.models.tagger.FeatureCache`), and the
  epochs train the tagger alone; ``--fine-tune-encoder`` trains the encoder
  too, at its own learning rate, without a cache. The saved tagger holds the
  encoder, so ``evaluate``, ``tag``, ``predict`` and ``export`` read raw text.
"""

import dataclasses
import os
import time

import keras

from tfpretrain.models.bilm import load_language_model
from tfpretrain.models.tagger import (
    TAGGER_PRESETS,
    EncoderFeatures,
    EncoderTaggingPreprocessor,
    FeatureCache,
    TaggingPreprocessor,
    attach_encoder,
    build_tagger,
    keys_of,
    tagging_dataset,
)
from tfpretrain.models.tagger.saving import save_tagger
from tfpretrain.models.tagger.evaluation import evaluate_sentences
from tfpretrain.text.buckets import DEFAULT_BUCKET_BOUNDARIES
from tfpretrain.text.vocabulary import build_vocabulary
from tfpretrain.text.readers import detect_scheme, read_tagged, to_iob2
from tfpretrain.training import fit_resumable
from tfpretrain.training.metrics import EntityF1, TokenAccuracy
from tfpretrain.training.precision import check_jit_compile, float32_copy, resolve_static_shapes, uses_precision

SCHEME_CONSTRAINTS = {"IOB2": "BIO", "IOBES": "IOBES"}
LEARNING_RATE = 3e-3  # Adam's peak rate for the tagger
FEATURE_LEARNING_RATE = 1e-3  # on a BERT encoder's features (UNER, 20 epochs: 0.643 F1 against 0.617 at 3e-3)


def tag_set(*sentence_lists):
    """All tags of the given sentences, 'O' first, then alphabetical."""
    tags = {t for sentences in sentence_lists for s in sentences for t in s.tags}
    return sorted(tags, key=lambda t: (t != "O", t))


def normalize_to_iob2(sentences):
    """Rewrites IOB1 / IO chunk tags as IOB2 (an ``I-X`` that starts a chunk becomes ``B-X``)."""
    return [dataclasses.replace(s, tags=tuple(to_iob2(s.tags))) for s in sentences]


def _encoder_kind(encoder_dir):
    """``"bert"`` or ``"bilm"``: the kind of pretrained directory ``--encoder`` names, refused otherwise."""
    from tfpretrain.models.model_dir import model_kind

    kind = model_kind(encoder_dir)
    if kind.architecture in ("bert", "bilm") and (kind.architecture == "bert" or kind.task is None):
        return kind.architecture
    raise ValueError(f"--encoder {encoder_dir} holds {kind.describe()}; a tagger reads the layers of a BERT "
                     "directory (import-hf, pretrain-bert, finetune) or a BiLM (pretrain-bilm)")


def _bilm_mode(encoder_dir, layers, inject, subword_pooling):
    """The TagLM / ELMo mode that ``--layers`` and ``--inject`` ask of a BiLM directory."""
    modes = {("last", "top"): "top", ("scalar_mix", "input"): "scalar_mix"}
    if (layers, inject) not in modes or subword_pooling != "first":
        raise ValueError(f"{encoder_dir} is a BiLM (pretrain-bilm): it joins the tagger as TagLM "
                         "(--layers last --inject top) or ELMo (--layers scalar_mix --inject input); "
                         f"got --layers {layers} --inject {inject}" +
                         ("" if subword_pooling == "first" else " (and a BiLM has no sub-words to pool)"))
    return modes[(layers, inject)]


@uses_precision
def run(train_path, dev_path, out_dir, format="iob2", column=None, bilm_dir=None, epochs=10,
        preset="small", language_model_mode="top", constraint="auto", batch_size=32,
        learning_rate=None, min_count=2, precision=None, jit_compile="auto", static_shapes="auto", seed=0,
        overwrite=False, verbose=1, log=print, encoder_dir=None, layers="last", inject="input",
        subword_pooling="first", use_words=True, use_chars=True, fine_tune_encoder=False,
        encoder_learning_rate=5e-5, sequence_length=None, cache="auto", cache_dtype="float32", schedule=None):
    """Trains a tagger and saves it to ``out_dir``; returns the dev scores.

    Args:
        learning_rate: float or None: Adam's peak rate (None: 1e-3 on a BERT
            encoder's features, whose 1,536 dimensions overfit faster, else 3e-3).
        encoder_dir: a BERT directory (feature-based tagging) or a BiLM
            directory (as ``bilm_dir``), or None.
        layers: with a BERT encoder, which layers make a word's features:
            "last", "second_to_last", "sum_last_four", "concat_last_four" (the
            BERT paper's best feature-based NER setup) or "scalar_mix" (learned).
        inject: "input" (features join the word and character vectors, ELMo /
            flair) or "top" (after the first BiLSTM, TagLM).
        subword_pooling: "first" (a word's first piece) or "mean" (of its pieces).
        use_words, use_chars: keep the word embedding / the character CNN.
        fine_tune_encoder: train the encoder too, at ``encoder_learning_rate``
            (features are then computed every step; no cache).
        sequence_length: word pieces per sentence (default: the encoder's
            maximum, up to 512); words beyond it get zero features.
        cache: "auto" (memory when it takes at most half the available
            memory, else disk), "memory" or "disk" (a ``.npy`` file in ``out_dir``,
            deleted after training).
        cache_dtype: "float32" or "float16".
        schedule: "cosine" (the rate decays to 0 over the ``epochs``, so the
            last epochs settle) or "constant"; None: cosine on a BERT
            encoder's features, constant otherwise (UNER, 8 epochs without
            an encoder: entity F1 0.15 / 0.17 constant, 0.00 / 0.12 cosine).
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
    if encoder_dir and bilm_dir:
        raise ValueError("give --encoder or --bilm, not both")
    encoder_kind = _encoder_kind(encoder_dir) if encoder_dir else None
    bert_only = {"--layers": layers != "last", "--inject": inject != "input",
                 "--subword-pooling": subword_pooling != "first", "--fine-tune-encoder": fine_tune_encoder,
                 "--sequence-length": sequence_length is not None}
    misplaced = [option for option, given in bert_only.items() if given and encoder_kind != "bert"
                 and not (encoder_kind == "bilm" and option in ("--layers", "--inject"))]
    if misplaced:
        raise ValueError(f"{', '.join(misplaced)} apply to a BERT encoder's features: give --encoder BERT_DIR"
                         + (f" ({encoder_dir} is a BiLM)" if encoder_kind == "bilm" else ""))
    if encoder_kind == "bilm":
        bilm_dir, language_model_mode = encoder_dir, _bilm_mode(encoder_dir, layers, inject, subword_pooling)
    options = dict(constraint=constraint, use_words=use_words, use_chars=use_chars, **TAGGER_PRESETS[preset])
    encoder_features = None
    if encoder_kind == "bert":
        preprocessor, encoder_features, head, model = _feature_tagger(
            encoder_dir, words, tags, layers, subword_pooling, fine_tune_encoder, sequence_length, inject, options)
    else:
        preprocessor = TaggingPreprocessor(words, tags)
        language_model = load_language_model(bilm_dir) if bilm_dir else None
        head = model = build_tagger(preprocessor.word_vocabulary_size, tags, language_model=language_model,
                                    language_model_mode=language_model_mode, **options)
    log(f"Read {len(train)} training and {len(dev)} dev sentences; {len(tags)} tags ({scheme}); "
        f"{preprocessor.word_vocabulary_size} word ids; constraint: {constraint}")

    started = time.perf_counter()
    caches = (None, None)
    if encoder_features is not None and not fine_tune_encoder:
        caches = tuple(FeatureCache.compute(encoder_features, preprocessor, sentences, dtype=cache_dtype,
                                            storage=cache, directory=out_dir, log=log,
                                            progress={0: None, 1: "bar"}.get(verbose, "lines"))
                       for sentences in (train, dev))
    feature_seconds = time.perf_counter() - started
    trained = head if caches[0] is not None else model  # the head alone on cached features
    static_shapes = resolve_static_shapes(static_shapes, jit_compile)
    train_data = tagging_dataset(train, preprocessor, batch_size, shuffle=True, seed=seed, static_shapes=static_shapes,
                                 features=caches[0])
    dev_data = tagging_dataset(dev, preprocessor, batch_size, static_shapes=static_shapes, features=caches[1])
    metrics = [TokenAccuracy(name="accuracy")]
    if scheme in SCHEME_CONSTRAINTS:
        metrics.append(EntityF1(tags, name="entity"))
    learning_rate = learning_rate or (FEATURE_LEARNING_RATE if encoder_kind == "bert" else LEARNING_RATE)
    schedule = schedule or ("cosine" if encoder_kind == "bert" else "constant")
    rate = learning_rate_schedule(learning_rate, schedule, epochs * batches_per_epoch(train, batch_size))
    trained.compile(optimizer=_optimizer(trained, encoder_features, rate, fine_tune_encoder,
                                         encoder_learning_rate / learning_rate),
                    metrics=metrics, jit_compile=check_jit_compile(jit_compile))

    started = time.perf_counter()
    try:
        history, seconds = fit_resumable(trained, train_data, dev_data, epochs, out_dir, verbose, log)
    finally:
        for feature_cache in caches:
            if feature_cache is not None:
                feature_cache.close()
    fit_seconds = time.perf_counter() - started
    epochs_run = len(history.history.get("loss", []))
    train_tokens = sum(len(s.tokens) for s in train)

    scores = evaluate_sentences(model, preprocessor, dev)
    scores["train_tokens_per_second"] = train_tokens * epochs_run / max(seconds, 1e-9)
    # Everything a user waits for per training sentence: the features computed once, then every epoch with
    # its dev scoring (as flair's trainer reports it).
    scores["train_sentences_per_second"] = len(train) * epochs_run / max(feature_seconds + fit_seconds, 1e-9)
    if caches[0] is not None:
        scores["feature_seconds"] = feature_seconds
    metadata = {
        "format": format, "column": column, "scheme": scheme, "constraint": constraint,
        "preset": preset, "precision": precision, "static_shapes": static_shapes, "bilm": os.path.abspath(bilm_dir) if bilm_dir else None,
        "language_model_mode": language_model_mode if bilm_dir else None,
        "encoder": os.path.abspath(encoder_dir) if encoder_kind == "bert" else None,
        "train": os.path.abspath(train_path), "dev": os.path.abspath(dev_path), "dev_scores": scores,
    }
    if encoder_kind == "bert":
        metadata.update(layers=layers, inject=inject, subword_pooling=subword_pooling,
                        fine_tune_encoder=fine_tune_encoder, sequence_length=preprocessor.sequence_length,
                        cache=None if caches[0] is None else caches[0].storage,
                        cache_dtype=None if caches[0] is None else cache_dtype)
    metadata.update(use_words=use_words, use_chars=use_chars, learning_rate=learning_rate, schedule=schedule,
                    epochs=epochs, batch_size=batch_size)
    save_tagger(out_dir, float32_copy(model), preprocessor, metadata)
    log(f"Saved the tagger to {out_dir}")
    return scores


def _feature_tagger(encoder_dir, words, tags, layers, subword_pooling, fine_tune_encoder, sequence_length, inject,
                    options):
    """``(preprocessor, encoder_features, head, model)`` of a tagger on a BERT directory's layers."""
    from tfpretrain.models.bert.saving import load_bert

    encoder, tokenizer = load_bert(encoder_dir)
    longest = min(512, encoder.max_sequence_length)
    sequence_length = sequence_length or longest
    if not 3 <= sequence_length <= encoder.max_sequence_length:
        raise ValueError(f"--sequence-length {sequence_length}: the encoder in {encoder_dir} reads 3 to "
                         f"{encoder.max_sequence_length} pieces")
    preprocessor = EncoderTaggingPreprocessor(words, tags, tokenizer, sequence_length)
    encoder_features = EncoderFeatures(encoder, layers, subword_pooling, train_encoder=fine_tune_encoder,
                                       name="encoder_features")
    head = build_tagger(preprocessor.word_vocabulary_size, tags,
                        features=(encoder_features.num_stacked, encoder_features.hidden_dim, layers), inject=inject,
                        **options)
    return preprocessor, encoder_features, head, attach_encoder(head, encoder_features)


SCHEDULES = ("cosine", "constant")


def batches_per_epoch(sentences, batch_size, bucket_boundaries=DEFAULT_BUCKET_BOUNDARIES):
    """How many batches `tagging_dataset` makes of ``sentences`` in an epoch: each length bucket's, rounded up.

    >>> batches_per_epoch([TaggedSentence(("a", "b", "c"), ("O", "O", "O"))] * 40, 32)  # one bucket: 32 + 8
    2
    """
    lengths = sorted({int(b) for b in bucket_boundaries if int(b) > 0})
    counts = {}
    for sentence in sentences:
        bucket = next((i for i, limit in enumerate(lengths) if len(sentence.tokens) <= limit), len(lengths))
        counts[bucket] = counts.get(bucket, 0) + 1
    return sum(-(-count // batch_size) for count in counts.values())


def learning_rate_schedule(learning_rate, schedule, total_steps):
    """The tagger's rate: ``"cosine"`` decays from ``learning_rate`` to 0 over the run, ``"constant"`` keeps it."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "constant":
        return learning_rate
    return keras.optimizers.schedules.CosineDecay(learning_rate, max(1, int(total_steps)))


def _optimizer(model, encoder_features, learning_rate, fine_tune_encoder, encoder_factor):
    """Adam for the tagger; with ``fine_tune_encoder``, the encoder at ``encoder_factor`` times its rate."""
    def adam(rate):
        return keras.optimizers.Adam(rate, clipnorm=5.0)

    if not fine_tune_encoder or encoder_features is None:
        return adam(learning_rate)
    from tfpretrain.training.discriminative import multi_rate_optimizer

    head_layers = [layer for layer in model.layers if layer is not encoder_features and not isinstance(
        layer, keras.layers.InputLayer)]
    return multi_rate_optimizer(adam, [[encoder_features], head_layers], [encoder_factor, 1.0], learning_rate)
