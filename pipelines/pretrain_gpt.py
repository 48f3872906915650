"""Next-token pretraining of a GPT decoder on raw text (``tfpretrain pretrain-gpt``)."""

import os

from tfpretrain.pipelines.lm_pretraining import (
    fit_language_model,
    last_logged,
    new_tokenizer,
    start_run,
    write_pretraining_record,
)
from tfpretrain.training.distribute import get_strategy, remove_worker_dir, worker_dir
from tfpretrain.training.precision import uses_precision

SAMPLE_TOKENS = 20  # greedy tokens generated from an empty prompt at the end, as a sanity check


@uses_precision
def run(text_paths, out_dir, preset="tiny", init_dir=None, steps=1000, steps_per_epoch=None, vocabulary_size=8000,
        lowercase=True, sequence_length=128, batch_size=16, learning_rate=5e-4, warmup_fraction=0.1,
        precision=None, jit_compile="auto", strategy="default", logical_cpus=None, seed=0, overwrite=False, verbose=1,
        log=print):
    """Pretrains a GPT decoder to predict the next word piece and saves a GPT directory to ``out_dir``.

    Lines are documents: ``[SEP]`` (the end-of-text token) follows each, and
    the pieces are packed into windows without padding
    (`tfpretrain.models.gpt.causal_lm_dataset`). Every 20th line is
    held out for the validation perplexity. A WordPiece vocabulary with
    `GPT_RESERVED_TOKENS` (so that GPT transfer finds ``[START]``,
    ``[DELIM]``, ``[EXTRACT]``) is learned from the first lines of the text,
    once: a run interrupted and started again with the same arguments
    resumes from the last finished epoch, with the same vocabulary.

    Args:
        text_paths: plain-text files (one document per line) or CoNLL-U files
            (their ``# text =`` lines); streamed, never loaded whole.
        out_dir: str. The GPT directory to write (checkpoints and logs too).
        preset: a `GPT_PRESETS` name for a new decoder (ignored with ``init_dir``).
        init_dir: continue pretraining a GPT directory, keeping its vocabulary.
        steps: training steps in all; ``steps_per_epoch`` (default
            min(steps, 500)) steps run between held-out evaluations and checkpoints.
        vocabulary_size: int, default 8000. Pieces in a new vocabulary.
        lowercase: bool, default True. Lower-case and strip accents.
        sequence_length: int, default 128. Tokens per training window; at
            most the decoder's ``max_sequence_length``.
        batch_size: int, default 16.
        learning_rate: float, default 5e-4. Peak of AdamW's linear warm-up
            and decay (`tfpretrain.training.schedules.bert_optimizer`).
        warmup_fraction: float, default 0.1.
        precision: "float32", "mixed_float16" or "mixed_bfloat16"; None: what
            the run in ``out_dir`` recorded, else float32
            (`tfpretrain.training.precision.uses_precision`). The saved
            decoder is float32 either way.
        jit_compile: True, False or "auto" (XLA when a GPU is visible).
        strategy, logical_cpus: the `tfpretrain.training.distribute.get_strategy`
            arguments; with "multiworker" only the chief writes ``out_dir``.
        seed: int, default 0. Initialisation and shuffling.
        overwrite: bool, default False. ``out_dir`` holding a finished run is
            an error unless True; then that run is deleted first
            (`tfpretrain.training.callbacks.prepare_out_dir`). An interrupted
            run resumes either way.
        verbose: Keras ``fit`` verbosity.
        log: callable for progress lines.

    Returns:
        a dict: ``val_perplexity`` and ``val_accuracy`` (held-out next-token
        perplexity and accuracy), ``first_epoch_perplexity``,
        ``last_epoch_perplexity``, ``train_tokens_per_second`` (fit wall
        clock, validation included), ``steps`` and ``sample`` (a greedy
        continuation of an empty prompt).

    Example:

    >>> result = run(["ewt/train.conllu"], "runs/gpt-tiny", preset="tiny", steps=2000)
    >>> result["val_perplexity"]
    """
    from tfpretrain.models.gpt import (
        GPT_PRESETS,
        GPT_RESERVED_TOKENS,
        GptCausalLM,
        GptDecoder,
        causal_lm_dataset,
        load_gpt,
        save_gpt,
    )

    distribution = get_strategy(strategy, logical_cpus)  # before anything touches the devices
    final_dir, out_dir = out_dir, worker_dir(out_dir, distribution)  # a multi-worker run's non-chief: a temp dir
    text_paths = [os.fspath(path) for path in text_paths]
    start_run(out_dir, preset, GPT_PRESETS, init_dir, steps, seed)
    with distribution.scope():  # variables must be created under the strategy
        if init_dir:
            decoder, tokenizer = load_gpt(init_dir)
            log(f"Continuing from {init_dir}")
        else:
            tokenizer = new_tokenizer(text_paths, out_dir, vocabulary_size, lowercase, log,
                                       reserved_tokens=GPT_RESERVED_TOKENS)
            decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **GPT_PRESETS[preset])
    if sequence_length > decoder.max_sequence_length:
        raise ValueError(f"--sequence-length {sequence_length} exceeds the decoder's maximum "
                         f"({decoder.max_sequence_length}); use a shorter length or a larger preset")

    train, dev = (
        causal_lm_dataset(text_paths, tokenizer, sequence_length=sequence_length, batch_size=batch_size, seed=seed,
                          split=split, repeat=split == "train")
        for split in ("train", "heldout")
    )
    model, logs, summary = fit_language_model(
        lambda: GptCausalLM(decoder, tokenizer), train, dev, out_dir=out_dir, steps=steps,
        steps_per_epoch=steps_per_epoch, batch_size=batch_size, sequence_length=sequence_length,
        learning_rate=learning_rate, warmup_fraction=warmup_fraction, jit_compile=jit_compile,
        distribution=distribution, description=f"a {decoder.num_layers} x {decoder.hidden_dim} decoder",
        verbose=verbose, log=log)
    result = {
        "val_perplexity": last_logged(logs, "val_perplexity"),
        "val_accuracy": last_logged(logs, "val_accuracy"),
        "first_epoch_perplexity": last_logged(logs, "perplexity", 0),
        "last_epoch_perplexity": last_logged(logs, "perplexity"),
        **summary,
        "sample": model.generate("", max_new_tokens=SAMPLE_TOKENS, sampler="greedy"),
    }
    save_gpt(out_dir, decoder, tokenizer)
    write_pretraining_record(out_dir, text_paths, preset, init_dir, result, sequence_length=sequence_length,
                             batch_size=batch_size, learning_rate=learning_rate, seed=seed, precision=precision,
                             jit_compile=jit_compile, strategy=strategy)
    remove_worker_dir(final_dir, distribution)
    log(f"Saved the decoder to {final_dir}")
    return result
