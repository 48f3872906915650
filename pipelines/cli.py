"""The ``tfpretrain`` command line (also ``python -m tfpretrain``).

Each command is one pair of functions, side by side: ``add_<command>`` declares
its options and ``run_<command>`` calls its job in `tfpretrain.pipelines`
(``set_defaults(run=...)`` joins them). Choices shared with the library
(precisions, XLA modes, data formats, tasks) are the library's own
constants. TensorFlow is imported only once a command
runs, so ``--help`` is instant.

Numeric options are checked by argparse itself (`tfpretrain.training.arguments`:
``--epochs 0`` is a usage error, exit 2). A user's mistake (a bad path or file,
a bad value) ends in one line, ``tfpretrain COMMAND: error: ...``, and exit 2;
any other exception in one line naming it, and exit 1. TensorFlow's native log
lines (``I0000 ...``) are dropped from stderr; ``--verbose`` (before or after
the command) shows them and the traceback of an error.
"""

import argparse
import contextlib
import inspect
import json
import os
import sys
import traceback

from tfpretrain.models.model_dir import TASKS
from tfpretrain.pipelines.console import NativeLogFilter, error_message, is_user_error
from tfpretrain.text.readers import FORMATS
from tfpretrain.training.arguments import (non_negative_float, non_negative_int, positive_float, positive_int,
                                           probability)
from tfpretrain.training.precision import PRECISIONS, XLA_MODES

# Choices whose library constants sit in modules that import TensorFlow: tests/pipelines/test_cli.py checks
# that they equal tfpretrain.models.gpt.generation.SAMPLERS, tfpretrain.models.bert.embedder's
# and tfpretrain.models.fine_tuning.SCHEDULES.
SAMPLERS = ("greedy", "top_k", "top_p")
LAYER_COMBINATIONS = ("last", "second_to_last", "sum_last_four", "concat_last_four")  # the CLI offers no scalar_mix
SENTENCE_POOLINGS = ("mean", "cls")
FINE_TUNING_SCHEDULES = ("linear", "slanted")  # tfpretrain.models.fine_tuning.SCHEDULES


def _column(value):
    """--column: a CoNLL-U field or header name, or a 0-based index."""
    if value is None:
        return None
    return int(value) if str(value).lstrip("-").isdigit() else value


def _verbosity():
    """Progress bars on a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


def _keywords(args, *functions):
    """The parsed options whose names are parameters of ``functions`` (the option's dest is the parameter's name)."""
    names = {name for function in functions for name in inspect.signature(function).parameters}
    return {name: value for name, value in vars(args).items() if name in names}


def _texts(args):
    """The TEXT arguments, else one text per line of stdin (a leading BOM dropped, CRLF accepted).

    Stdin is read as bytes: a line that is not valid UTF-8 stays `bytes` and still gets its own answer
    (the graphs take bytes; the answers show them decoded with ``errors="replace"``).
    """
    if args.text:
        return args.text
    data = sys.stdin.buffer.read()
    lines = data[3:].split(b"\n") if data.startswith(b"\xef\xbb\xbf") else data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    texts = []
    for line in lines:
        line = line.rstrip(b"\r")
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(line)
    return texts


# ---------------------------------------------------------------------------
# Options several commands share


def _add_data_format(parser, required=True):
    parser.add_argument("--format", choices=FORMATS, required=required,
                        help="conll (CoNLL-2003 columns), iob2 (UNER tab-separated) or conllu")
    parser.add_argument("--column", type=_column, default=None,
                        help="tag column: a CoNLL-U field name (upos, xpos, ...) or a 0-based index")


def _add_accelerator(parser, bucketed=False):
    """--precision and --xla, the same on every training command; --static-shapes on those that bucket by length."""
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="Keras dtype policy: float32, or float16 / bfloat16 compute with float32 weights "
                             "(default: what the run in --out recorded, else float32)")
    parser.add_argument("--xla", choices=tuple(XLA_MODES), default="auto",
                        help="compile the train step with XLA (auto: on with a GPU; on 2 CPU cores XLA measured slower)")
    if bucketed:
        parser.add_argument("--static-shapes", choices=tuple(XLA_MODES), default="auto",
                            help="pad every batch to a length bucket and batch size, so that XLA compiles a "
                                 "few shapes and TPUs get static ones (auto: on when XLA is on)")


def _accelerator_options(args):
    """The ``precision=`` and ``jit_compile=`` (and ``static_shapes=``) keywords of the training jobs."""
    options = dict(precision=args.precision, jit_compile=XLA_MODES[args.xla])
    if getattr(args, "static_shapes", None) is not None:
        options.update(static_shapes=XLA_MODES[args.static_shapes])
    return options


def _add_strategy(parser, cluster=False):
    strategies = ("default", "mirrored") + (("multiworker", "tpu") if cluster else ())
    parser.add_argument("--strategy", choices=strategies, default="default",
                        help="tf.distribute strategy: mirrored trains data-parallel on every GPU "
                             "(or on --logical-cpus CPU devices)" + (
                                 "; multiworker: one process per machine, the cluster in TF_CONFIG; tpu: "
                                 "TPUStrategy on the local TPU or TPU_NAME's (untested here)" if cluster else ""))
    parser.add_argument("--logical-cpus", type=positive_int, default=None, metavar="N",
                        help="split the CPU into N logical devices (to try --strategy mirrored without a GPU)")


def _add_overwrite(parser):
    parser.add_argument("--overwrite", action="store_true",
                        help="when --out holds a finished run, delete it and train afresh (without: an error; "
                             "an interrupted run resumes either way)")


def _training_options(args, function):
    """A training job's keywords: the options named like its parameters, accelerator settings and verbosity."""
    return {**_keywords(args, function), **_accelerator_options(args), "verbose": _verbosity()}


# ---------------------------------------------------------------------------
# ELMo-style BiLM and the CRF tagger


def add_pretrain_bilm(commands):
    p = commands.add_parser("pretrain-bilm", help="pretrain a bidirectional LSTM language model on raw text")
    p.add_argument("--text", dest="text_paths", nargs="+", required=True, metavar="FILE",
                   help="plain text (one sentence or paragraph per line) or CoNLL-U files ('# text =' lines)")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--preset", default="small", help="tiny, small, elmo_small or elmo_original")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-length", dest="sequence_length", type=positive_int, default=64, help="tokens kept per line")
    p.add_argument("--min-count", type=non_negative_int, default=2, help="rarer words map to [UNK]")
    _add_accelerator(p, bucketed=True)
    p.add_argument("--seed", type=non_negative_int, default=0)
    _add_overwrite(p)
    p.set_defaults(run=run_pretrain_bilm)


def run_pretrain_bilm(args):
    from tfpretrain.pipelines import pretrain_bilm

    print(json.dumps(pretrain_bilm.run(**_training_options(args, pretrain_bilm.run))))


def add_train_tagger(commands):
    p = commands.add_parser("train-tagger", help="train a CRF sequence tagger (optionally on a pretrained encoder "
                                                 "or BiLM)")
    p.add_argument("--train", dest="train_path", required=True, metavar="FILE")
    p.add_argument("--dev", dest="dev_path", required=True, metavar="FILE")
    _add_data_format(p)
    p.add_argument("--encoder", dest="encoder_dir", metavar="DIR",
                   help="a pretrained directory whose layers feed the tagger: BERT (import-hf, pretrain-bert, "
                        "finetune; frozen, features computed once) or a BiLM (pretrain-bilm)")
    p.add_argument("--layers", choices=("last", "second_to_last", "sum_last_four", "concat_last_four", "scalar_mix"),
                   default="last", help="which encoder layers make a word's features (default: last; "
                                        "concat_last_four is the BERT paper's best feature-based NER setup)")
    p.add_argument("--inject", choices=("input", "top"), default="input",
                   help="input: features join the word and character vectors (ELMo, flair); top: after the first "
                        "BiLSTM (TagLM)")
    p.add_argument("--subword-pooling", choices=("first", "mean"), default="first",
                   help="a word's features from its first word piece or the mean of its pieces")
    p.add_argument("--no-char-cnn", dest="use_chars", action="store_false", help="leave out the character CNN")
    p.add_argument("--no-word-embeddings", dest="use_words", action="store_false",
                   help="leave out the trained word embeddings")
    p.add_argument("--fine-tune-encoder", action="store_true",
                   help="train the encoder too (no feature cache; slower)")
    p.add_argument("--encoder-learning-rate", type=positive_float, default=5e-5,
                   help="the encoder's rate with --fine-tune-encoder")
    p.add_argument("--sequence-length", type=positive_int, default=None,
                   help="word pieces per sentence (default: the encoder's maximum, up to 512)")
    p.add_argument("--cache", choices=("auto", "memory", "disk"), default="auto",
                   help="where the frozen features are kept (auto: memory when they take at most half of it)")
    p.add_argument("--cache-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                   help="the learning rate decays to 0 over the epochs (cosine) or stays "
                        "(default: cosine with a BERT --encoder, else constant)")
    p.add_argument("--bilm", dest="bilm_dir", metavar="DIR", help="a directory written by pretrain-bilm")
    p.add_argument("--bilm-mode", dest="language_model_mode", choices=("top", "scalar_mix"), default="top",
                   help="top: TagLM (LM top layer after the first BiLSTM); scalar_mix: ELMo at the input")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--preset", default="small", help="tiny, small or base")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--learning-rate", type=positive_float, default=None,
                   help="Adam's peak rate (default: 1e-3 with a BERT --encoder, else 3e-3)")
    p.add_argument("--constraint", choices=("auto", "none", "BIO", "IOBES"), default="auto",
                   help="forbid invalid tag transitions in the CRF (auto: from the tag set)")
    _add_accelerator(p, bucketed=True)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    _add_overwrite(p)
    p.set_defaults(run=run_train_tagger)


def run_train_tagger(args):
    from tfpretrain.pipelines import train_tagger

    options = _training_options(args, train_tagger.run)
    options["constraint"] = None if args.constraint == "none" else args.constraint
    print(json.dumps(train_tagger.run(**options)))


# ---------------------------------------------------------------------------
# BERT and GPT: pretraining, generation, import, fine-tuning, embeddings


def _add_transformer_pretraining(parser, kind, presets):
    """The options pretrain-bert and pretrain-gpt share."""
    parser.add_argument("--text", dest="text_paths", nargs="+", required=True, metavar="FILE",
                        help="plain text (one sentence or paragraph per line) or CoNLL-U files; streamed")
    parser.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    parser.add_argument("--preset", default="tiny", help=presets)
    parser.add_argument("--init", dest="init_dir", metavar="DIR",
                        help=f"continue pretraining this {kind} directory (keeps its vocabulary)")
    parser.add_argument("--steps", type=positive_int, default=1000)
    parser.add_argument("--steps-per-epoch", type=positive_int, default=None,
                        help="steps between held-out evaluations and checkpoints (default min(steps, 500))")
    parser.add_argument("--vocabulary-size", type=positive_int, default=8000)
    parser.add_argument("--cased", dest="lowercase", action="store_false",
                        help="keep case and accents (default: lower-case)")
    parser.add_argument("--sequence-length", type=positive_int, default=128)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--learning-rate", type=positive_float, default=5e-4)
    _add_accelerator(parser)
    _add_strategy(parser, cluster=True)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    _add_overwrite(parser)


def add_pretrain_bert(commands):
    p = commands.add_parser("pretrain-bert", help="pretrain a BERT encoder with masked-LM on raw text")
    _add_transformer_pretraining(p, "BERT", "tiny, mini, small, medium, base or large")
    p.add_argument("--whole-word", action="store_true", help="mask all pieces of a word together")
    p.set_defaults(run=run_pretrain_bert)


def run_pretrain_bert(args):
    from tfpretrain.pipelines import pretrain_bert

    print(json.dumps(pretrain_bert.run(**_training_options(args, pretrain_bert.run))))


def add_pretrain_gpt(commands):
    p = commands.add_parser("pretrain-gpt", help="pretrain a GPT decoder (next-word-piece prediction) on raw text")
    _add_transformer_pretraining(p, "GPT", "tiny, mini, small or base (12 x 768, GPT-1's size)")
    p.set_defaults(run=run_pretrain_gpt)


def run_pretrain_gpt(args):
    from tfpretrain.pipelines import pretrain_gpt

    print(json.dumps(pretrain_gpt.run(**_training_options(args, pretrain_gpt.run))))


def add_generate(commands):
    p = commands.add_parser("generate", help="continue prompts with a GPT directory (arguments, or stdin lines)")
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR", help="a GPT directory (pretrain-gpt)")
    p.add_argument("prompt", nargs="*", metavar="PROMPT")
    p.add_argument("--max-new-tokens", type=positive_int, default=30,
                   help="word pieces to add at most (stops at [SEP])")
    p.add_argument("--sampler", choices=SAMPLERS, default="greedy")
    p.add_argument("--k", type=positive_int, default=10, help="top_k: sample among the k likeliest pieces")
    p.add_argument("--p", type=probability, default=0.9, help="top_p: sample within this probability mass")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--no-cache", dest="use_cache", action="store_false",
                   help="recompute the whole prefix for every token (slow; the reference for the key/value cache)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.set_defaults(run=run_generate)


def run_generate(args):
    from tfpretrain.pipelines import generate

    prompts = args.prompt or [line.rstrip("\n") for line in sys.stdin]
    for prompt, text in zip(prompts, generate.run(prompts=prompts, **_keywords(args, generate.run))):
        print(json.dumps({"prompt": prompt, "generated": text}, ensure_ascii=False))


def add_import_hf(commands):
    p = commands.add_parser("import-hf", help="import a Hugging Face BERT directory (config.json, "
                                              "model.safetensors, vocab.txt)")
    p.add_argument("--from", dest="from_dir", required=True, metavar="DIR")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    p.set_defaults(run=run_import_hf)


def run_import_hf(args):
    from tfpretrain.pipelines import import_hf

    print(json.dumps(import_hf.run(**_keywords(args, import_hf.run))))


def add_finetune(commands):
    p = commands.add_parser("finetune", help="fine-tune a BERT directory (classify, pair, qa, tag) or a GPT "
                                             "directory (classify, pair, similarity, choice)")
    p.add_argument("--task", required=True, choices=TASKS,
                   help="classify: TSV label<TAB>text; pair, similarity: TSV sentence1<TAB>sentence2<TAB>label; "
                        "qa: SQuAD v1.1 JSON; tag: --format files; choice: TSV "
                        "context<TAB>choice_0<TAB>...<TAB>choice_k<TAB>label (label = index of the right choice)")
    p.add_argument("--init", dest="init_dir", required=True, metavar="DIR",
                   help="a BERT directory (import-hf or pretrain-bert) or a GPT directory (pretrain-gpt)")
    p.add_argument("--train", dest="train_path", required=True, metavar="FILE")
    p.add_argument("--dev", dest="dev_path", required=True, metavar="FILE")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    p.add_argument("--format", choices=FORMATS + ("tsv",), default=None,
                   help="tag: conll, iob2 or conllu (default: from the file name, else iob2); classify / pair: tsv")
    p.add_argument("--column", type=_column, default=None,
                   help="tag: the tag column (CoNLL-U field name or 0-based index); classify / pair: the label "
                        "column (header name or index)")
    p.add_argument("--crf", action="store_true", help="tag: a CRF layer on top (BERT-CRF)")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--learning-rate", type=positive_float, default=None,
                   help="the encoder's peak learning rate (default 1e-4)")
    p.add_argument("--head-learning-rate", type=positive_float, default=None,
                   help="the task head's peak learning rate (default 1e-3)")
    p.add_argument("--crf-learning-rate", type=positive_float, default=None,
                   help="tag --crf: the CRF's peak learning rate (default 1e-2)")
    p.add_argument("--schedule", choices=FINE_TUNING_SCHEDULES, default=None,
                   help="linear: BERT's warm-up then linear decay (default); slanted: ULMFiT's slanted triangle")
    p.add_argument("--warmup", type=non_negative_float, default=None,
                   help="linear schedule: the fraction of the steps spent warming up (default 0.1)")
    p.add_argument("--discriminative", action="store_true",
                   help="ULMFiT's discriminative rates: each encoder group (embeddings, each block) learns "
                        "--decay times more slowly than the one above")
    p.add_argument("--decay", type=positive_float, default=None, help="with --discriminative (default 2.6)")
    p.add_argument("--gradual-unfreezing", action="store_true",
                   help="train only the head in the first epoch, then unfreeze one more group per epoch, top first")
    p.add_argument("--keep-last", dest="keep_best", action="store_false",
                   help="save the last epoch's model (default: the epoch with the best dev score)")
    p.add_argument("--sequence-length", type=positive_int, default=None)
    p.add_argument("--doc-stride", type=positive_int, default=None, help="qa: overlap step of context windows")
    p.add_argument("--max-query-length", type=positive_int, default=None, help="qa: question pieces kept (default 64)")
    p.add_argument("--max-answer-length", type=positive_int, default=None, help="qa: longest answer in word pieces")
    p.add_argument("--max-train-examples", type=positive_int, default=None,
                   help="use only the first N training examples")
    p.add_argument("--lm-loss-weight", type=non_negative_float, default=None,
                   help="GPT: weight of the auxiliary language-model loss (default 0.5; 0: off)")
    _add_accelerator(p, bucketed=True)
    _add_strategy(p)
    p.add_argument("--seed", type=non_negative_int, default=0)
    _add_overwrite(p)
    p.set_defaults(run=run_finetune)


def run_finetune(args):
    from tfpretrain.pipelines import finetune

    if args.crf and args.task != "tag":
        raise ValueError(f"--crf is for --task tag, not {args.task}")
    if args.task == "qa" and (args.format or args.column is not None):
        raise ValueError("--format and --column are not for --task qa (SQuAD v1.1 JSON)")
    options = {name: value for name, value in _training_options(args, finetune.run).items()
               if value is not None or name in ("precision",)}  # unset options: the task's defaults
    if args.task == "qa" and options.get("static_shapes") == "auto":
        options.pop("static_shapes")
    if args.task != "tag":
        options.pop("crf", None)
    print(json.dumps(finetune.run(**options)))


def add_embed(commands):
    p = commands.add_parser("embed", help="contextual word and sentence vectors from a BERT directory")
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--combination", default="last", choices=LAYER_COMBINATIONS, help="which layers make a word vector")
    p.add_argument("--sentence-pooling", choices=SENTENCE_POOLINGS, default="mean")
    p.add_argument("--sequence-length", type=positive_int, default=128)
    p.add_argument("--out", metavar="FILE.npz", help="write the vectors here instead of JSON lines")
    p.set_defaults(run=run_embed)


def run_embed(args):
    from tfpretrain.pipelines import embed

    results = embed.embed_texts(texts=_texts(args), **_keywords(args, embed.embed_texts))
    if args.out:
        embed.save_npz(args.out, results)
        print(json.dumps({"out": args.out, "texts": len(results)}))
        return
    for result in results:
        print(json.dumps(embed.to_json(result), ensure_ascii=False, allow_nan=False))


# ---------------------------------------------------------------------------
# ULMFiT


def add_ulmfit(commands):
    p = commands.add_parser("ulmfit", help="ULMFiT: general LM -> domain LM -> classifier (each stage resumable)")
    p.add_argument("--general-text", nargs="+", metavar="FILE",
                   help="general-domain text or CoNLL-U files (stage general)")
    p.add_argument("--domain-text", nargs="+", metavar="FILE",
                   help="target-domain text (stage domain); default: the texts of --train, labels dropped")
    p.add_argument("--train", dest="train_path", required=True, metavar="FILE", help="TSV label<TAB>text (SST-2)")
    p.add_argument("--dev", dest="dev_path", required=True, metavar="FILE")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                   help="writes OUT/general_lm, OUT/domain_lm, OUT/classifier")
    p.add_argument("--stage", choices=("general", "domain", "classifier", "all"), default="all",
                   help="run one stage alone (it reads the earlier stages' directories under --out)")
    p.add_argument("--preset", default="small", help="AWD-LSTM size: tiny, small or paper (400 / 1150 / 3 layers)")
    p.add_argument("--general-epochs", type=positive_int, default=3)
    p.add_argument("--general-steps-per-epoch", type=positive_int, default=None)
    p.add_argument("--domain-epochs", type=positive_int, default=2)
    p.add_argument("--domain-steps-per-epoch", type=positive_int, default=None)
    p.add_argument("--sequence-length", type=positive_int, default=70, help="language-model BPTT length in words")
    p.add_argument("--lm-batch-size", type=positive_int, default=32)
    p.add_argument("--general-learning-rate", type=positive_float, default=None)
    p.add_argument("--domain-learning-rate", type=positive_float, default=None)
    p.add_argument("--min-count", type=non_negative_int, default=2, help="rarer words map to [UNK]")
    p.add_argument("--max-vocabulary-size", type=positive_int, default=60000)
    p.add_argument("--epochs", type=positive_int, default=6, help="classifier epochs")
    p.add_argument("--steps-per-epoch", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--learning-rate", type=positive_float, default=0.01, help="classifier peak rate (of the top group)")
    p.add_argument("--decay", type=positive_float, default=2.6, help="discriminative rates: each lower group's divisor")
    p.add_argument("--max-train-examples", type=positive_int, default=None,
                   help="use only the first N labelled examples")
    p.add_argument("--no-gradual-unfreezing", dest="gradual_unfreezing", action="store_const", const=False,
                   default=None, help="ablation: train every group from epoch 1")
    p.add_argument("--no-discriminative", dest="discriminative", action="store_const", const=False, default=None,
                   help="ablation: one learning rate for every group")
    p.add_argument("--schedule", choices=("slanted", "constant"), default="slanted",
                   help="slanted triangular learning rates, or a constant rate (ablation)")
    p.add_argument("--from-scratch", action="store_true", help="baseline: the classifier from random weights, no LM")
    p.add_argument("--dropout-scale", type=non_negative_float, default=1.0, help="multiplies every dropout rate")
    p.add_argument("--column", type=_column, default=None, help="the label column (header name or index)")
    _add_accelerator(p, bucketed=True)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.set_defaults(run=run_ulmfit)


def run_ulmfit(args):
    from tfpretrain.pipelines import ulmfit, ulmfit_classifier

    stages = ulmfit.STAGES if args.stage == "all" else [args.stage]
    options = {**_keywords(args, ulmfit.run, ulmfit_classifier.train_classifier, ulmfit_classifier.ClassifierOptions),
               **_accelerator_options(args),
               "verbose": _verbosity()}
    print(json.dumps(ulmfit.run(stages=stages, **options)))


# ---------------------------------------------------------------------------
# Any model directory: evaluate, tag, export, predict


def add_evaluate(commands):
    p = commands.add_parser("evaluate", help="score a tagger or a fine-tuned model; the last line is JSON")
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR")
    p.add_argument("--data", dest="data_path", required=True, metavar="FILE")
    _add_data_format(p, required=False)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args):
    from tfpretrain.pipelines import evaluate

    print(json.dumps(evaluate.run(**_keywords(args, evaluate.run))))


def add_tag(commands):
    p = commands.add_parser("tag", help="tag raw text (arguments, or one text per line on stdin)")
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--json", action="store_true", help="one JSON object per text instead of CoNLL lines")
    p.set_defaults(run=run_tag)


def run_tag(args):
    from tfpretrain.pipelines import tag

    results = tag.run(args.model_dir, _texts(args))
    if not args.json:
        print(tag.format_conll(results))
        return
    for result in results:
        print(json.dumps(result, ensure_ascii=False, allow_nan=False))


def add_export(commands):
    p = commands.add_parser("export", help="export a model: a SavedModel under ROOT/NAME/VERSION (TF Serving), "
                                           "or one .tflite file (--tflite)")
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR")
    p.add_argument("--name", help="the SavedModel's name (a folder under --root)")
    p.add_argument("--version", type=non_negative_int, default=None, help="default: the next free version")
    p.add_argument("--root", default="saved_models")
    p.add_argument("--ids-only", dest="ids_only_signature", action="store_true",
                   help="a SavedModel with only the token-id signature (no tensorflow-text ops needed to serve)")
    p.add_argument("--tflite", metavar="FILE", help="write one .tflite file (any tagger or classifier, QA, BERT embeddings) instead")
    p.add_argument("--quantize", choices=("dynamic",), default=None,
                   help="with --tflite: int8 weights (dynamic-range quantisation)")
    p.set_defaults(run=run_export)


def run_export(args):
    from tfpretrain.pipelines import export

    if bool(args.tflite) == bool(args.name):
        raise ValueError("give --name NAME (a SavedModel) or --tflite FILE (one .tflite file)")
    if args.quantize and not args.tflite:
        raise ValueError("--quantize applies to --tflite")
    if args.ids_only_signature and args.tflite:
        raise ValueError("--ids-only applies to a SavedModel (--name), not to --tflite")
    if args.tflite:
        print(export.run_tflite(args.model_dir, args.tflite, quantize=args.quantize))
    else:
        print(export.run(**_keywords(args, export.run)))


def add_predict(commands):
    p = commands.add_parser("predict", help="answers of a model directory, a SavedModel version directory or a "
                                            ".tflite file, one JSON line per input")
    p.add_argument("--model", dest="path", required=True, metavar="PATH")
    p.add_argument("text", nargs="*", metavar="TEXT",
                   help="inputs; default: one per line on stdin (several texts per input: tab-separated)")
    p.set_defaults(run=run_predict)


def run_predict(args):
    from tfpretrain.pipelines import predict

    for answer in predict.run(args.path, _texts(args)):
        print(json.dumps(answer, ensure_ascii=False, allow_nan=False))


def add_demo(commands):
    p = commands.add_parser("demo", help="the main job on embedded default data (about 3 minutes on 2 cores)")
    p.add_argument("--work-dir", default="runs/demo")
    p.add_argument("--export-root", default="saved_models")
    p.set_defaults(run=run_demo)


def run_demo(args):
    from tfpretrain.pipelines import demo

    demo.run(args.work_dir, args.export_root, verbose=_verbosity())


COMMANDS = (add_pretrain_bilm, add_train_tagger, add_pretrain_bert, add_pretrain_gpt, add_generate, add_import_hf,
            add_finetune, add_embed, add_ulmfit, add_evaluate, add_tag, add_export, add_predict, add_demo)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfpretrain", description="Transfer-learning recipes for NLP on TensorFlow / Keras 3.")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    for command in commands.choices.values():  # also after the command: tfpretrain tag ... --verbose
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


VERBOSE_HELP = "show TensorFlow's native log lines (I0000 ..., oneDNN, CUDA probing) and tracebacks"

def main(argv=None):
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (by args.run)
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(NativeLogFilter())
        return _run(args, verbose)


def _run(args, verbose):
    """Runs the command; one line on stderr for any error, a traceback only with --verbose."""
    try:
        args.run(args)
    except KeyboardInterrupt:
        print(f"tfpretrain {args.command}: interrupted; run the same command again to resume from the "
              "last checkpoint.", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (every error ends as one line; --verbose adds the traceback)
        if verbose:
            traceback.print_exc()
        if is_user_error(error):
            print(f"tfpretrain {args.command}: error: {error_message(error)}", file=sys.stderr)
            return 2
        print(f"tfpretrain {args.command}: error: unexpected {type(error).__name__}: {error_message(error)} "
              f"(this is a bug; run again with --verbose for the traceback and please report it)", file=sys.stderr)
        return 1
    return 0
