"""ULMFiT stages 1 and 2 (``tfpretrain ulmfit``): an AWD-LSTM language model on general, then domain text.

`pretrain_lm` without ``init_dir`` builds a vocabulary and trains a new
`AwdLstmLanguageModel`; with ``init_dir`` it continues a language model on
the domain's text under the domain's vocabulary (`expand_vocabulary`). The
data is `tfpretrain.models.ulmfit.word_lm_dataset`, the optimiser
`tfpretrain.models.ulmfit.ulmfit_optimizer`.

Example:

>>> pretrain_lm(["ewt/train.conllu"], "runs/ulmfit/general_lm", preset="small")
>>> pretrain_lm(["sst2_text.txt"], "runs/ulmfit/domain_lm", init_dir="runs/ulmfit/general_lm")
"""

import os

import keras

from tfpretrain.models.ulmfit import (
    AWD_LSTM_PRESETS,
    DOMAIN_LM_LEARNING_RATE,
    GENERAL_LM_LEARNING_RATE,
    LANGUAGE_MODEL_OUTPUT_DROPOUT,
    AwdLstmEncoder,
    AwdLstmLanguageModel,
    WordTokenizer,
    build_word_vocabulary,
    expand_vocabulary,
    language_model_groups,
    layer_groups,
    load_awd_lstm,
    save_awd_lstm,
    ulmfit_optimizer,
    word_lm_dataset,
)
from tfpretrain.models.model_dir import VOCABULARY_FILE
from tfpretrain.text.vocabulary import load_vocabulary, save_vocabulary
from tfpretrain.training.callbacks import fit_resumable, read_history_csv
from tfpretrain.training.discriminative import DEFAULT_DECAY
from tfpretrain.training.precision import resolve_jit_compile, uses_precision


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


def _vocabulary(text_paths, out_dir, min_count, max_vocabulary_size, lowercase, log):
    """The vocabulary of the text, or the one an interrupted run of this stage saved."""
    path = os.path.join(out_dir, VOCABULARY_FILE)
    if os.path.exists(path) and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        log(f"Resuming: reusing {path}")
        return load_vocabulary(path)
    vocabulary = build_word_vocabulary(text_paths, min_count=min_count, max_size=max_vocabulary_size,
                                       lowercase=lowercase)
    os.makedirs(out_dir, exist_ok=True)
    save_vocabulary(vocabulary, path)
    return vocabulary


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
    groups = language_model_groups(layer_groups(language_model))
    optimizer = ulmfit_optimizer(groups, learning_rate, total_steps, schedule, discriminative, decay)
    language_model.compile(optimizer=optimizer, jit_compile=resolve_jit_compile(jit_compile))
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
