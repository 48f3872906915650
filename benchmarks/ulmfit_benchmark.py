"""ULMFiT on SST-2: from scratch vs ULMFiT with 1,000 labels, ULMFiT with all labels, and three ablations.

Stages (`tfpretrain.pipelines.ulmfit_language_model` and `ulmfit_classifier`, AWD-LSTM ``--preset``,
default "small"):

1. general language model on UD English EWT train text (``--general-epochs``);
2. domain language model on the SST-2 training sentences (all 67,349, without
   their labels: the paper's semi-supervised setting), ``--domain-epochs``;
3. classifiers scored on SST-2 dev (872):
   (a) from scratch, the first ``--labels`` (1,000) training examples;
   (b) ULMFiT on the same examples (gradual unfreezing, discriminative rates,
       slanted triangular rate);
   (c) ULMFiT on all labelled examples (``--all-label-passes`` passes over
       them, spread over the same number of epochs: gradual unfreezing then
       moves on every ``1 / epochs`` of the data), beside two references on
       the same data and steps: plain fine-tuning of the same language model
       (no gradual unfreezing, one rate) and the classifier from scratch;
   and ablations of (b): without gradual unfreezing, without discriminative
   rates, with a constant rate.

Every 1,000-label run is repeated over ``--seeds`` (the classifier's seed:
weights of the head, dropout, data order), mean and spread printed. Language
models are trained once and reused (``--work`` keeps them between calls: a
finished stage is skipped, an interrupted one resumes). Writes
benchmarks/results/ulmfit.json (``--quick``: ulmfit_quick.json).

    python benchmarks/ulmfit_benchmark.py [--quick] [--seeds 0 1 2] [--runs a b c ablations]
"""

import argparse
import json
import pathlib
import statistics

from common import DATA, RESULTS, Timer, machine

RUNS = ("a", "b", "c", "ablations")
ABLATIONS = {
    "b_no_gradual_unfreezing": {"gradual_unfreezing": False},
    "b_no_discriminative": {"discriminative": False},
    "b_constant_rate": {"schedule": "constant"},
}


def write_lines(lines, path):
    path.write_text("".join(line.rstrip("\n") + "\n" for line in lines), encoding="utf-8")
    return path


def prepare_data(work, quick):
    """Text files for the language models and TSV slices for --quick, in the work directory (never the repo)."""
    from tfpretrain.text.readers import read_text
    from tfpretrain.text.task_readers import read_classification_tsv

    sst2_train = DATA / "sst2" / "train.tsv"
    texts = [example.texts[0] for example in read_classification_tsv(sst2_train)]
    general = [str(DATA / "ud_english_ewt" / "train.conllu")]
    train = sst2_train
    if quick:
        general = [str(write_lines(list(read_text(general[0]))[:1500], work / "ewt_quick.txt"))]
        with open(sst2_train, encoding="utf-8") as f:
            train = write_lines([line for _, line in zip(range(2001), f)], work / "sst2_train_quick.tsv")
        texts = texts[:2000]
    domain = write_lines(texts, work / "sst2_train_text.txt")
    return general, [str(domain)], str(train), str(DATA / "sst2" / "dev.tsv")


def language_model(name, text, work, log, **settings):
    """A finished language-model directory in the work directory (trained now, or reused)."""
    from tfpretrain.models.ulmfit import read_config
    from tfpretrain.pipelines import ulmfit
    from tfpretrain.pipelines.ulmfit_language_model import pretrain_lm

    out = work / name
    if ulmfit.is_finished(str(out)):
        log(f"== {name}: reusing the finished language model in {out}")
        result = read_config(str(out))["result"]
        return str(out), result, result["train_seconds"]
    with Timer() as timer:
        result = pretrain_lm(text, str(out), log=log, **settings)
    log(f"== {name}: {json.dumps(result)} ({timer.seconds:.0f} s)")
    return str(out), result, timer.seconds


def summary(rows):
    accuracies = [row["scores"]["accuracy"] for row in rows]
    return {"accuracy_mean": statistics.mean(accuracies),
            "accuracy_stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "accuracies": accuracies, "seconds_mean": statistics.mean(row["seconds"] for row in rows)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--labels", type=int, default=1000, help="labelled examples of (a), (b) and the ablations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="classifier seeds of the 1,000-label runs")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--general-epochs", type=int, default=3)
    parser.add_argument("--domain-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6, help="classifier epochs (5 layer groups unfreeze in 5)")
    parser.add_argument("--all-label-passes", type=float, default=1.0, help="(c): passes over all labels in all")
    parser.add_argument("--work", default=str(RESULTS / "ulmfit_work"), help="language models and classifiers")
    parser.add_argument("--quick", action="store_true", help="tiny model and slices: checks the script (~2 min)")
    args = parser.parse_args()

    from tfpretrain.models.ulmfit import read_config
    from tfpretrain.pipelines import ulmfit
    from tfpretrain.pipelines.ulmfit_classifier import train_classifier

    work = pathlib.Path(args.work + ("_quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    preset = "tiny" if args.quick else args.preset
    labels = 300 if args.quick else args.labels
    seeds = args.seeds[:1] if args.quick else args.seeds
    epochs = 4 if args.quick else args.epochs
    general, domain, train_path, dev_path = prepare_data(work, args.quick)
    lm = dict(sequence_length=70, batch_size=32, seed=0, verbose=2)
    classifier = dict(epochs=epochs, batch_size=32, verbose=2 if not args.quick else 0, log=log)

    report = {"machine": machine(), "settings": {**vars(args), "preset": preset, "labels": labels, "seeds": seeds,
                                                 "epochs": epochs, "lm": lm}, "language_models": {}, "runs": {}}
    needs_lm = any(run in args.runs for run in ("b", "c", "ablations"))
    if needs_lm:
        general_dir, result, seconds = language_model("general_lm", general, work, log, preset=preset,
                                                      epochs=1 if args.quick else args.general_epochs, **lm)
        report["language_models"]["general"] = {"result": result, "seconds": seconds, "text": general}
        domain_dir, result, seconds = language_model("domain_lm", domain, work, log, init_dir=general_dir,
                                                     epochs=1 if args.quick else args.domain_epochs, **lm)
        report["language_models"]["domain"] = {"result": result, "seconds": seconds, "text": domain}

    def classify(name, lm_dir, seed, **options):
        out = work / f"{name}_seed{seed}"
        if ulmfit.is_finished(str(out)):
            log(f"== {name} (seed {seed}): reusing {out}")
            config = read_config(str(out))
            return {"settings": options, "scores": config["result"], "seconds": config["result"]["train_seconds"]}
        with Timer() as timer:
            scores = train_classifier(lm_dir, train_path, dev_path, str(out), seed=seed, **classifier, **options)
        log(f"== {name} (seed {seed}): dev accuracy {scores['accuracy']:.4f} ({timer.seconds:.0f} s)")
        return {"settings": options, "scores": scores, "seconds": timer.seconds}

    jobs = []  # (name, lm_dir, options, seeds)
    if "a" in args.runs:
        jobs.append(("a_scratch", None, {"from_scratch": True, "preset": preset, "max_train_examples": labels}, seeds))
    if "b" in args.runs:
        jobs.append(("b_ulmfit", domain_dir, {"max_train_examples": labels}, seeds))
    if "ablations" in args.runs:
        for name, options in ABLATIONS.items():
            jobs.append((name, domain_dir, {"max_train_examples": labels, **options}, seeds))
    if "c" in args.runs:
        from tfpretrain.text.task_readers import read_classification_tsv

        num_train = len(read_classification_tsv(train_path))
        steps = max(1, round(args.all_label_passes * num_train / classifier["batch_size"] / epochs))
        jobs.append(("c_ulmfit_all_labels", domain_dir, {"steps_per_epoch": steps}, seeds[:1]))
        jobs.append(("c_plain_finetuning_all_labels", domain_dir,
                     {"steps_per_epoch": steps, "gradual_unfreezing": False, "discriminative": False}, seeds[:1]))
        jobs.append(("c_scratch_all_labels", None, {"steps_per_epoch": steps, "from_scratch": True, "preset": preset},
                     seeds[:1]))
    for name, lm_dir, options, run_seeds in jobs:
        rows = [classify(name, lm_dir, seed, **options) for seed in run_seeds]
        report["runs"][name] = {"rows": rows, **summary(rows)}
        (RESULTS / ("ulmfit_quick.json" if args.quick else "ulmfit.json")).write_text(
            json.dumps(report, indent=2, default=str))

    print(f"\nSST-2 dev accuracy ({len(seeds)} seed(s) for the {labels}-label runs; {preset} AWD-LSTM)")
    for name, row in report["runs"].items():
        print(f"  {name:30s} {100 * row['accuracy_mean']:6.2f} % +- {100 * row['accuracy_stdev']:4.2f}  "
              f"({', '.join(f'{100 * a:.1f}' for a in row['accuracies'])}; {row['seconds_mean']:.0f} s per run)")
    if "a_scratch" in report["runs"] and "b_ulmfit" in report["runs"]:
        gain = report["runs"]["b_ulmfit"]["accuracy_mean"] - report["runs"]["a_scratch"]["accuracy_mean"]
        print(f"  ULMFiT - from scratch ({labels} labels): {100 * gain:+.2f} points")
    if "c_scratch_all_labels" in report["runs"]:
        for name in ("c_ulmfit_all_labels", "c_plain_finetuning_all_labels"):
            gain = report["runs"][name]["accuracy_mean"] - report["runs"]["c_scratch_all_labels"]["accuracy_mean"]
            print(f"  {name} - from scratch (all labels): {100 * gain:+.2f} points")
    for name in ABLATIONS:
        if name in report["runs"] and "b_ulmfit" in report["runs"]:
            change = report["runs"][name]["accuracy_mean"] - report["runs"]["b_ulmfit"]["accuracy_mean"]
            print(f"  {name} vs b_ulmfit: {100 * change:+.2f} points")
    for stage, row in report["language_models"].items():
        print(f"  {stage} LM: validation perplexity {row['result']['val_perplexity']:.1f}, "
              f"{row['result']['train_tokens_per_second']:.0f} training tokens/s, {row['seconds']:.0f} s")
    print(f"Machine: {report['machine']}")


if __name__ == "__main__":
    main()
