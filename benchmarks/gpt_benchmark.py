"""GPT: EWT perplexity and RTE after transfer, then training and generation speed against keras-hub's GPT-2.

1. Pretraining (`tfpretrain.pipelines.pretrain_gpt`) on EWT train raw text
   for ``--steps`` steps, then the next-piece perplexity on EWT dev.
2. GPT transfer (`tfpretrain.pipelines.finetune`, task "pair" with
   ``[START] premise [DELIM] hypothesis [EXTRACT]`` inputs and the auxiliary
   LM loss) from that decoder to RTE; RTE dev accuracy.
3. Training tokens/s of tfpretrain's GptCausalLM against keras-hub's
   ``GPT2CausalLM`` built from a ``GPT2Backbone`` of the same size (both random
   init, the same pre-LN GPT-2 architecture, the same batches: EWT train raw
   text word-pieced with the vocabulary of step 1 and packed by
   `tfpretrain.models.gpt.causal_lm_dataset`, cached before timing). Plain
   ``tf.function`` and XLA. The contenders alternate over ``--rounds`` rounds
   (other jobs share the CPU), and the medians are compared.
4. Generation ms/token, greedy, batch 1, a ``--prompt-length`` prompt and
   ``--new-tokens`` new tokens: ours with the key/value cache, ours without
   (the whole prefix rerun per token), keras-hub's ``generate`` (cached).
   Both models hold the same weights (copied from keras-hub's), and their
   greedy tokens are checked equal.

Writes benchmarks/results/gpt.json (``--quick``: gpt_quick.json, a smoke run
of a few minutes with a tiny model).

    python benchmarks/gpt_benchmark.py [--quick] [--preset mini] [--steps 2000]
"""

import argparse
import collections
import json
import shutil
import statistics
import warnings

import numpy as np
from common import DATA, RESULTS, Timer, machine

EWT_TRAIN = DATA / "ud_english_ewt" / "train.conllu"
EWT_DEV = DATA / "ud_english_ewt" / "dev.conllu"


def sizes(preset):
    from tfpretrain.models.gpt import GPT_PRESETS

    config = GPT_PRESETS[preset]
    return {key: config[key] for key in ("num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                                         "max_sequence_length")}


def ours(vocabulary_size, preset, dropout=0.1):
    from tfpretrain.models.gpt import GptCausalLM, GptDecoder

    return GptCausalLM(GptDecoder(vocabulary_size=vocabulary_size, dropout=dropout, **sizes(preset)))


def keras_hub_model(vocabulary_size, preset, dropout=0.1):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary_size, dropout=dropout, **sizes(preset))
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def training_speed(args, tokenizer):
    """Median training tokens/s per contender over interleaved rounds."""
    import keras

    from tfpretrain.models.gpt import causal_lm_dataset

    data = causal_lm_dataset([str(EWT_TRAIN)], tokenizer, sequence_length=args.sequence_length,
                             batch_size=args.batch_size, seed=0).take(args.timed_steps + 2).cache()
    for _ in data:  # fill the cache before anything is timed
        pass
    contenders = {}
    for jit in (False, True):
        for library, build in (("tfpretrain", ours), ("keras-hub", keras_hub_model)):
            keras.utils.set_random_seed(0)
            model = build(tokenizer.vocabulary_size(), args.preset)
            if library == "tfpretrain":  # its defaults: next-token loss, accuracy, perplexity
                model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=jit)
            else:
                model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                              jit_compile=jit)
            model.fit(data.take(2), epochs=1, verbose=0)  # tracing, XLA compilation
            contenders[f"{library}, {'XLA' if jit else 'graph'}"] = model
    speeds = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, model in contenders.items():
            with Timer() as timer:
                model.fit(data.skip(2), epochs=1, verbose=0)
            speeds[name].append(args.timed_steps * args.batch_size * args.sequence_length / timer.seconds)
    results = {name: {"tokens_per_second": statistics.median(values), "rounds": values}
               for name, values in speeds.items()}
    for name, result in results.items():
        print(f"train  {name:24s} {result['tokens_per_second']:10,.0f} tokens/s (median of {args.rounds})", flush=True)
    ratios = {f"tfpretrain / keras-hub, {mode}": results[f"tfpretrain, {mode}"]["tokens_per_second"]
              / results[f"keras-hub, {mode}"]["tokens_per_second"] for mode in ("graph", "XLA")}
    for name, ratio in ratios.items():
        print(f"train  {name}: {ratio:.2f}x")
    return results, ratios


def generation_speed(args, vocabulary_size):
    """Median greedy ms/token: ours cached, ours uncached, keras-hub; same weights, same tokens."""
    import keras

    keras.utils.set_random_seed(0)
    hub = keras_hub_model(vocabulary_size, args.preset, dropout=0.0)
    hub.compile(sampler="greedy")
    model = ours(vocabulary_size, args.preset, dropout=0.0)  # no tokenizer: no stop token, all --new-tokens made
    model.decoder.set_weights([np.asarray(w).reshape(v.shape)  # the same variables in the same order
                               for w, v in zip(hub.backbone.weights, model.decoder.weights)])
    rng = np.random.default_rng(0)
    prompt = rng.integers(5, vocabulary_size, size=args.prompt_length).tolist()
    length = args.prompt_length + args.new_tokens
    token_ids = np.zeros((1, length), "int32")
    token_ids[0, : args.prompt_length] = prompt
    padding_mask = (np.arange(length) < args.prompt_length).astype("int32")[None]

    runs = {
        "tfpretrain, cached": lambda: model.generate([prompt], max_new_tokens=args.new_tokens)[0],
        "tfpretrain, uncached": lambda: model.generate([prompt], max_new_tokens=args.new_tokens, use_cache=False)[0],
        "keras-hub generate": lambda: np.asarray(hub.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None)["token_ids"])[0].tolist(),
    }
    outputs = {name: run() for name, run in runs.items()}  # tracing
    same = len({tuple(tokens) for tokens in outputs.values()}) == 1
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            with Timer() as timer:
                run()
            times[name].append(1000 * timer.seconds / args.new_tokens)
    results = {name: {"ms_per_token": statistics.median(values), "rounds": values} for name, values in times.items()}
    for name, result in results.items():
        print(f"generate {name:22s} {result['ms_per_token']:8.2f} ms/token "
              f"({args.prompt_length} + {args.new_tokens} tokens, batch 1, greedy)", flush=True)
    print(f"generate: the three produce the same greedy tokens: {same}")
    cached = results["tfpretrain, cached"]["ms_per_token"]
    ratios = {"uncached / cached": results["tfpretrain, uncached"]["ms_per_token"] / cached,
              "keras-hub / tfpretrain cached": results["keras-hub generate"]["ms_per_token"] / cached}
    for name, ratio in ratios.items():
        print(f"generate {name}: {ratio:.2f}x")
    return results, ratios, same


def pretrain_and_evaluate(args, work):
    """pretrain-gpt on EWT train, then perplexity on EWT dev (every window of the whole file)."""
    from tfpretrain.models.gpt import GptCausalLM, load_gpt
    from tfpretrain.pipelines import pretrain_gpt
    from tfpretrain.models.gpt import causal_lm_dataset

    out = work / "gpt"
    if out.exists() and not (out / "checkpoint").exists():
        shutil.rmtree(out)  # a finished earlier run: start over (an interrupted one resumes)
    with Timer() as timer:
        result = pretrain_gpt.run([str(EWT_TRAIN)], str(out), preset=args.lm_preset, steps=args.steps,
                                  vocabulary_size=args.vocabulary_size, sequence_length=args.sequence_length,
                                  batch_size=args.batch_size, learning_rate=args.learning_rate, verbose=0)
    decoder, tokenizer = load_gpt(str(out))
    model = GptCausalLM(decoder, tokenizer)
    model.compile()
    dev = causal_lm_dataset([str(EWT_DEV)], tokenizer, sequence_length=args.sequence_length,
                            batch_size=args.batch_size, shuffle_buffer=0, repeat=False)
    scores = model.evaluate(dev, verbose=0, return_dict=True)
    print(f"pretrain {args.lm_preset} for {result['steps']} steps ({timer.seconds / 60:.1f} min, "
          f"{result['train_tokens_per_second']:,.0f} tokens/s): held-out train perplexity "
          f"{result['val_perplexity']:.1f}; EWT dev perplexity {scores['perplexity']:.1f} "
          f"(next-piece accuracy {scores['accuracy']:.3f}, {tokenizer.vocabulary_size()} pieces)", flush=True)
    print(f"pretrain sample (greedy, empty prompt): {result['sample']!r}")
    return out, {"pretraining": result, "minutes": timer.seconds / 60, "ewt_dev_perplexity": scores["perplexity"],
                 "ewt_dev_accuracy": scores["accuracy"]}, tokenizer


def transfer_to_rte(args, gpt_dir, work):
    from tfpretrain.pipelines import finetune
    from tfpretrain.text.task_readers import read_pair_tsv

    out = work / "rte"
    if out.exists() and not (out / "checkpoint").exists():
        shutil.rmtree(out)
    with Timer() as timer:
        scores = finetune.run("pair", str(gpt_dir), str(DATA / "rte" / "train.tsv"), str(DATA / "rte" / "dev.tsv"),
                              str(out), epochs=args.rte_epochs, sequence_length=args.rte_sequence_length,
                              batch_size=args.batch_size, learning_rate=args.rte_learning_rate,
                              max_train_examples=args.rte_max_train, verbose=0)
    labels = collections.Counter(example.label for example in read_pair_tsv(str(DATA / "rte" / "dev.tsv")))
    majority = max(labels.values()) / sum(labels.values())
    print(f"transfer RTE dev accuracy {scores['accuracy']:.3f}, macro F1 {scores['macro_f1']:.3f} "
          f"({args.rte_epochs} epoch(s), {timer.seconds / 60:.1f} min; the majority class scores {majority:.3f})",
          flush=True)
    return {**scores, "majority_class_accuracy": majority, "minutes": timer.seconds / 60}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes (tiny sizes)")
    parser.add_argument("--preset", default="mini", help="size for the speed comparisons (GPT_PRESETS)")
    parser.add_argument("--lm-preset", default="mini", help="size of the pretrained decoder")
    parser.add_argument("--timed-steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (medians reported)")
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2000, help="pretraining steps on EWT train")
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--rte-epochs", type=int, default=3)
    parser.add_argument("--rte-sequence-length", type=int, default=256, help="RTE pairs are long: most fit 256")
    parser.add_argument("--rte-learning-rate", type=float, default=1e-4)
    parser.add_argument("--rte-max-train", type=int, default=None)
    args = parser.parse_args()
    if args.quick:
        args.preset = args.lm_preset = "tiny"
        args.timed_steps, args.rounds, args.new_tokens = 8, 2, 96
        args.steps, args.vocabulary_size, args.sequence_length = 200, 2000, 64
        args.rte_epochs, args.rte_max_train, args.rte_sequence_length = 1, 500, 128
    # Finite evaluation and timing datasets end on purpose.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

    work = RESULTS / ("gpt_quick_work" if args.quick else "gpt_work")
    work.mkdir(parents=True, exist_ok=True)
    gpt_dir, language_model, tokenizer = pretrain_and_evaluate(args, work)
    rte = transfer_to_rte(args, gpt_dir, work)
    train_results, train_ratios = training_speed(args, tokenizer)  # the pretraining vocabulary and its batches
    generate_results, generate_ratios, same_tokens = generation_speed(args, tokenizer.vocabulary_size())
    report = {
        "machine": machine(), "config": vars(args), "data": "UD English EWT train/dev raw text; RTE train/dev",
        "training": train_results, "training_ratios": train_ratios,
        "generation": generate_results, "generation_ratios": generate_ratios,
        "generation_same_tokens": same_tokens, "language_model": language_model, "rte": rte,
    }
    print(f"Machine: {report['machine']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("gpt_quick.json" if args.quick else "gpt.json")).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
