"""Tagger accuracy with and without the pretrained BiLM, and training speed, on ../shared/data.

UPOS: UD English EWT train -> dev. NER: UNER English EWT dev.iob2, split by us
into its first 1,500 sentences (train) and the remaining 501 (dev); the BiLM is
pretrained on the raw text of EWT train (no dev sentences). Prints a table, the
with/without ratios, and writes benchmarks/results/tagger.json.

    python benchmarks/tagger_benchmark.py [--epochs 10] [--bilm-epochs 3] [--quick]
"""

import argparse
import json
import sys
import time

from common import DATA, RESULTS, machine, split_uner


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--bilm-epochs", type=int, default=3)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--quick", action="store_true", help="1 epoch each, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.epochs = args.bilm_epochs = 1
    from tfpretrain.pipelines import pretrain_bilm, train_tagger

    work = RESULTS / "tagger_work"
    work.mkdir(parents=True, exist_ok=True)
    quiet = dict(verbose=2, log=lambda *a: print(*a, flush=True))
    ewt_train, ewt_dev = DATA / "ud_english_ewt" / "train.conllu", DATA / "ud_english_ewt" / "dev.conllu"

    started = time.perf_counter()
    bilm_dir = work / "bilm"
    lm = pretrain_bilm.run([str(ewt_train)], str(bilm_dir), epochs=args.bilm_epochs, preset="small", **quiet)
    lm_seconds = time.perf_counter() - started

    uner_train, uner_dev = split_uner(work)
    runs = {}
    for task, (train, dev, fmt, column) in {
        "upos": (ewt_train, ewt_dev, "conllu", "upos"),
        "ner": (uner_train, uner_dev, "iob2", None),
    }.items():
        for variant, bilm in (("baseline", None), ("bilm", str(bilm_dir))):
            out = work / f"{task}_{variant}"
            t0 = time.perf_counter()
            scores = train_tagger.run(str(train), str(dev), str(out), format=fmt, column=column, bilm_dir=bilm,
                                      epochs=args.epochs, preset=args.preset, **quiet)
            scores["seconds"] = time.perf_counter() - t0
            runs[f"{task}_{variant}"] = scores

    report = {
        "machine": machine(),
        "data": {"upos": "UD English EWT train (12,544 sent.) -> dev (2,001)",
                 "ner": "UNER English EWT dev.iob2: first 1,500 sentences train, last 501 dev",
                 "bilm_text": "raw text of UD English EWT train"},
        "settings": {"epochs": args.epochs, "bilm_epochs": args.bilm_epochs, "tagger_preset": args.preset,
                     "bilm_preset": "small"},
        "bilm": {**lm, "seconds": lm_seconds},
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tagger.json").write_text(json.dumps(report, indent=2))
    print(f"\nMachine: {report['machine']}")
    print(f"BiLM (small, {args.bilm_epochs} epochs on EWT train text): held-out perplexity "
          f"{lm['heldout_perplexity']:.1f}, {lm['train_tokens_per_second']:.0f} tokens/s")
    print(f"{'task':6} {'metric':9} {'baseline':>9} {'+BiLM':>9} {'ratio':>7} {'tok/s base':>11} {'tok/s +BiLM':>12}")
    for task, metric in (("upos", "accuracy"), ("ner", "f1")):
        base, bilm = runs[f"{task}_baseline"], runs[f"{task}_bilm"]
        print(f"{task:6} {metric:9} {base[metric]:9.4f} {bilm[metric]:9.4f} {bilm[metric] / max(base[metric], 1e-9):7.3f} "
              f"{base['train_tokens_per_second']:11.0f} {bilm['train_tokens_per_second']:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
