"""Masked-LM pretraining of a BERT encoder on raw text (``tfpretrain pretrain-bert``)."""

import math

from tfpretrain.pipelines.lm_pretraining import (
    fit_language_model,
    last_logged,
    new_tokenizer,
    start_run,
    write_pretraining_record,
)
from tfpretrain.training.distribute import get_strategy, remove_worker_dir, worker_dir
from tfpretrain.training.precision import uses_precision

@uses_precision
def run(text_paths, out_dir, preset="tiny", init_dir=None, steps=1000, steps_per_epoch=None,
        vocabulary_size=8000, lowercase=True, sequence_length=128, batch_size=16, learning_rate=5e-4,
        warmup_fraction=0.1, whole_word=False, max_selections=None, precision=None, jit_compile="auto",
        strategy="default", logical_cpus=None, seed=0, overwrite=False, verbose=1, log=print):
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
        precision: "float32", "mixed_float16" or "mixed_bfloat16"; None: what
            the run in ``out_dir`` recorded, else float32
            (`tfpretrain.training.precision.uses_precision`). The saved
            encoder is float32 either way.
        jit_compile: True, False or "auto" (XLA when a GPU is visible: on a
            2-core CPU the XLA step measured slower than the plain graph).
        strategy, logical_cpus: the `tfpretrain.training.distribute.get_strategy`
            arguments; with "multiworker" only the chief writes ``out_dir``.
        overwrite: bool, default False. ``out_dir`` holding a finished run is
            an error unless True; then that run is deleted first
            (`tfpretrain.training.callbacks.prepare_out_dir`). An interrupted
            run resumes either way.

    Returns a dict with the held-out masked-LM accuracy and perplexity, the
    first and last training accuracy, and training tokens/s.
    """
    from tfpretrain.models.bert import BERT_PRESETS, BertEncoder, BertMaskedLM, load_bert, masked_lm_dataset, save_bert
    from tfpretrain.text.masking import MaskedLMMasker

    distribution = get_strategy(strategy, logical_cpus)  # before anything touches the devices
    final_dir, out_dir = out_dir, worker_dir(out_dir, distribution)  # a multi-worker run's non-chief: a temp dir
    start_run(out_dir, preset, BERT_PRESETS, init_dir, steps, seed)
    with distribution.scope():  # variables must be created under the strategy
        if init_dir:
            encoder, tokenizer = load_bert(init_dir)
            log(f"Continuing from {init_dir}")
        else:
            tokenizer = new_tokenizer(text_paths, out_dir, vocabulary_size, lowercase, log)
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
    model, logs, summary = fit_language_model(
        lambda: BertMaskedLM(encoder), train, dev, out_dir=out_dir, steps=steps, steps_per_epoch=steps_per_epoch,
        batch_size=batch_size, sequence_length=sequence_length, learning_rate=learning_rate,
        warmup_fraction=warmup_fraction, jit_compile=jit_compile, distribution=distribution,
        description=f"a {encoder.num_layers} x {encoder.hidden_dim} encoder", verbose=verbose, log=log)
    result = {
        "val_accuracy": last_logged(logs, "val_accuracy"),
        "val_perplexity": last_logged(logs, "val_perplexity"),
        "first_epoch_accuracy": last_logged(logs, "accuracy", 0),
        "last_epoch_accuracy": last_logged(logs, "accuracy"),
        **summary,
    }
    save_bert(out_dir, encoder, tokenizer)  # every worker saves (collective reads), the chief into final_dir
    write_pretraining_record(out_dir, text_paths, preset, init_dir, result, sequence_length=sequence_length,
                             batch_size=batch_size, whole_word=whole_word, seed=seed, precision=precision,
                             jit_compile=jit_compile, strategy=strategy)
    remove_worker_dir(final_dir, distribution)
    log(f"Saved the encoder to {final_dir}")
    return result
