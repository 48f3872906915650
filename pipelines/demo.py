"""The main job on embedded default data (``tfpretrain demo``, ``make demo``).

Writes the project's own data, pretrains a small BiLM, trains the tagger with
it, prints dev scores, saves the model, exports a SavedModel under
``saved_models/`` and a ``.tflite`` file, and tags a sample sentence with both.
"""

import json
import os
import shutil
import time

from tfpretrain.pipelines import default_data, export, pretrain_bilm, tag, train_tagger

SAMPLE = "Priya Castillo left Lisbon on Friday to join Brightwater Labs in Kyoto ."


def run(work_dir="runs/demo", export_root="saved_models", bilm_epochs=4, tagger_epochs=8, verbose=2, log=print):
    started = time.perf_counter()
    if os.path.isdir(work_dir):
        shutil.rmtree(work_dir)  # the demo always starts from scratch
    data_dir = os.path.join(work_dir, "data")
    os.makedirs(data_dir)
    train, dev = default_data.tagged_sentences()
    default_data.write_iob2(train, os.path.join(data_dir, "train.iob2"))
    default_data.write_iob2(dev, os.path.join(data_dir, "dev.iob2"))
    lines = default_data.write_unlabelled_text(os.path.join(data_dir, "unlabelled.txt"))
    log(f"[1/5] Wrote the default data to {data_dir}: {len(train)} train / {len(dev)} dev tagged "
        f"sentences, {lines} unlabelled lines")

    log("[2/5] Pretraining the bidirectional language model")
    bilm_dir = os.path.join(work_dir, "bilm")
    lm = pretrain_bilm.run([os.path.join(data_dir, "unlabelled.txt")], bilm_dir, epochs=bilm_epochs,
                           preset="small", verbose=verbose, log=log)

    log("[3/5] Training the tagger (CharCNN + word embedding -> BiLSTM + BiLM -> BiLSTM -> CRF)")
    tagger_dir = os.path.join(work_dir, "tagger")
    scores = train_tagger.run(os.path.join(data_dir, "train.iob2"), os.path.join(data_dir, "dev.iob2"),
                              tagger_dir, format="iob2", bilm_dir=bilm_dir, epochs=tagger_epochs,
                              preset="small", verbose=verbose, log=log)
    log("Dev scores: " + json.dumps({k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}))

    log("[4/5] Exporting a SavedModel and a .tflite file")
    path = export.run(tagger_dir, "demo_tagger", root=export_root)
    tflite_path = export.run_tflite(tagger_dir, os.path.join(work_dir, "tagger.tflite"))
    log(f"SavedModel written to {path}; TFLite file to {tflite_path} ({os.path.getsize(tflite_path):,} bytes)")

    log("[5/5] Tagging a sample sentence (the .tflite file gives the same tags)")
    result = tag.run(tagger_dir, [SAMPLE])[0]
    log(tag.format_conll([result]))
    on_device = tag.run(tflite_path, [SAMPLE])[0]
    log(f"TFLite tags {'equal' if on_device['tags'] == result['tags'] else 'DIFFER FROM'} the Keras model's")
    summary = {"language_model": lm, "dev": scores, "saved_model": path, "tflite": tflite_path, "sample": result,
               "seconds": round(time.perf_counter() - started, 1)}
    log(json.dumps({"dev_f1": round(scores["f1"], 4), "heldout_perplexity": lm["heldout_perplexity"],
                    "saved_model": path, "seconds": summary["seconds"]}))
    return summary
