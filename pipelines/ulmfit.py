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
`run` skips finished stages. Stages 1 and 2 live in
`tfpretrain.pipelines.ulmfit_language_model`, stage 3 (with `evaluate` and
`predict`) in `tfpretrain.pipelines.ulmfit_classifier`; the library pieces
(tokenizer, datasets, models, directories, optimiser) in
`tfpretrain.models.ulmfit`.

Example:

>>> run(["ewt/train.conllu"], None, "sst2/train.tsv", "sst2/dev.tsv", "runs/ulmfit", max_train_examples=1000)
>>> from tfpretrain.pipelines.ulmfit_classifier import evaluate, predict
>>> evaluate("runs/ulmfit/classifier", "sst2/dev.tsv")["accuracy"]
>>> predict("runs/ulmfit/classifier", ["a gorgeous film"])[0]["label"]
'1'

References:
    Howard & Ruder, "Universal Language Model Fine-tuning for Text
    Classification", ACL 2018.
"""

import os

from tfpretrain.models.ulmfit import read_config
from tfpretrain.pipelines.ulmfit_classifier import train_classifier
from tfpretrain.pipelines.ulmfit_language_model import pretrain_lm
from tfpretrain.text.task_readers import read_classification_tsv

STAGES = ("general", "domain", "classifier")
STAGE_DIRS = {"general": "general_lm", "domain": "domain_lm", "classifier": "classifier"}
DOMAIN_TEXT_FILE = "domain_text.txt"  # run(): the training TSV's texts, when no domain text is given

__all__ = ["STAGES", "STAGE_DIRS", "is_finished", "run"]


def is_finished(directory):
    """Whether a stage's directory holds its finished model (``config.json`` with the ``result``)."""
    config = read_config(directory) if os.path.isdir(directory) else None
    return bool(config) and "result" in config


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
            results[stage] = read_config(dirs[stage])["result"]
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
