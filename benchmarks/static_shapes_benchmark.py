"""XLA training time of the CRF tagger with dynamic batch shapes against static ones (length buckets).

The same tagger (``--preset``, default tiny) trains ``--epochs`` epochs on
the first ``--sentences`` sentences of UD English EWT train (UPOS tags; dev:
the first 200 of EWT dev) three ways, each in a fresh process (XLA's compile
cache would otherwise carry over): without XLA, with XLA on batches padded
to their longest sentence (``--static-shapes off``: a new program for most
batch shapes), and with XLA on static shapes (`tfpretrain.text.buckets`: one
program per length bucket). Prints wall seconds (compilation included, as a
user waits for it), dev accuracy and the static / dynamic ratio; writes
benchmarks/results/static_shapes.json.

    python benchmarks/static_shapes_benchmark.py [--sentences 800] [--epochs 3] [--preset tiny]
"""

import argparse
import json
import subprocess
import sys
import tempfile

from common import DATA, RESULTS, Timer, machine

SETTINGS = {"no XLA": (False, False), "XLA, dynamic shapes": (True, False), "XLA, static shapes": (True, True)}


def write_slice(source, target, num_sentences):
    with open(source, encoding="utf-8") as f:
        blocks = f.read().split("\n\n")[:num_sentences]
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n\n".join(blocks) + "\n\n")
    return target


def train_once(train, dev, out, epochs, preset, jit_compile, static_shapes):
    """One training run in this process; prints a JSON line of its seconds and dev accuracy."""
    from tfpretrain.pipelines import train_tagger

    with Timer() as timer:
        scores = train_tagger.run(train, dev, out, format="conllu", epochs=epochs, preset=preset,
                                  jit_compile=jit_compile, static_shapes=static_shapes, verbose=0,
                                  log=lambda *_: None)
    print(json.dumps({"seconds": timer.seconds, "accuracy": scores["accuracy"]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--one", nargs=3, metavar=("TRAIN", "DEV", "SETTING"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        train, dev, setting = args.one
        return train_once(train, dev, args.out, args.epochs, args.preset, *SETTINGS[setting])

    work = tempfile.mkdtemp(prefix="static_shapes_")
    train = write_slice(DATA / "ud_english_ewt" / "train.conllu", f"{work}/train.conllu", args.sentences)
    dev = write_slice(DATA / "ud_english_ewt" / "dev.conllu", f"{work}/dev.conllu", 200)
    results = {}
    for i, setting in enumerate(SETTINGS):
        output = subprocess.run(
            [sys.executable, __file__, "--one", train, dev, setting, "--out", f"{work}/run{i}",
             "--epochs", str(args.epochs), "--preset", args.preset],
            capture_output=True, text=True, check=True).stdout
        results[setting] = json.loads(output.strip().splitlines()[-1])
        print(f"{setting:22s} {results[setting]['seconds']:8.1f} s   dev accuracy {results[setting]['accuracy']:.4f}",
              flush=True)
    ratio = results["XLA, dynamic shapes"]["seconds"] / results["XLA, static shapes"]["seconds"]
    print(f"XLA with static shapes is {ratio:.2f}x faster than with dynamic shapes "
          f"({results['no XLA']['seconds'] / results['XLA, static shapes']['seconds']:.2f}x the no-XLA speed)")
    report = {"machine": machine(), "data": f"EWT train first {args.sentences} sentences, dev first 200 (UPOS)",
              "preset": args.preset, "epochs": args.epochs, "results": results,
              "static_over_dynamic_speedup": ratio}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "static_shapes.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
