"""AWD-LSTM language-model training throughput: tfpretrain's against the plain Keras LSTM LM of the same size.

The peer is what a Keras user writes for a word-level LSTM LM:
``Embedding -> LSTM x num_layers -> Dense(vocabulary)`` with the same sizes
(default: the "small" preset, 200-dimensional embeddings, LSTMs of 400, 400 and
200 units) and no regularisation. tfpretrain's `AwdLstmLanguageModel` adds
embedding dropout, locked dropout, weight dropping (DropConnect on every
recurrent kernel, a fresh mask per batch), AR/TAR and the tied decoder; it is
also timed with every dropout at 0, to show what the regularisation costs.
fastai's AWD-LSTM needs PyTorch, which is not installed, so it is not a peer
here. All models get the same batches: UD English EWT train text through
`tfpretrain.models.ulmfit.word_lm_dataset` (vocabulary of the words seen at least twice,
sequence length 70, batch 32), cached in memory before timing. Each model is
timed as a plain ``tf.function`` (Keras' default on a CPU) and under XLA
(``jit_compile=True``), in rounds: every model trains ``--steps`` steps in
turn, ``--rounds`` times, so that models compared side by side see the same
load on a shared machine. Prints tokens/s (input words per second of ``fit``,
median over the rounds) and the ratios (medians of the per-round ratios);
writes benchmarks/results/awd_lstm.json.

With ``--quality-steps N`` the AWD-LSTM is then trained N steps on EWT train
and its perplexity measured on EWT dev (the words of dev outside the train
vocabulary count as ``[UNK]``).

    python benchmarks/awd_lstm_benchmark.py [--steps 10 --rounds 5] [--preset small] [--quality-steps 0]
    python benchmarks/awd_lstm_benchmark.py --quick
"""

import argparse
import json

import numpy as np

from common import DATA, RESULTS, Timer, machine


def batches(args):
    """The tokenizer and ``args.steps + args.warmup`` LM batches from EWT train, cached."""
    import tensorflow as tf

    from tfpretrain.models.ulmfit import WordTokenizer, build_word_vocabulary, word_lm_dataset

    train = [str(DATA / "ud_english_ewt" / "train.conllu")]
    tokenizer = WordTokenizer(build_word_vocabulary(train, min_count=2))
    dataset = word_lm_dataset(train, tokenizer, sequence_length=args.sequence_length, batch_size=args.batch_size,
                              split="all", seed=0)
    count = args.steps + args.warmup
    # A known cardinality: Keras 3.15's graph-mode fit counts one empty extra step in the epoch's mean loss
    # when a dataset of unknown length runs out.
    return tokenizer, dataset.take(count).cache().apply(tf.data.experimental.assert_cardinality(count))


def warm_up(model, data, args):
    """Trains ``args.warmup`` steps: tracing (and XLA compilation) happen here, untimed."""
    model.fit(data.take(args.warmup), epochs=1, verbose=0)


def tokens_per_second(model, data, args):
    """Times ``args.steps`` training steps; returns input words per second and the mean loss."""
    with Timer() as timer:
        history = model.fit(data.skip(args.warmup), epochs=1, verbose=0)
    return args.steps * args.batch_size * args.sequence_length / timer.seconds, float(history.history["loss"][-1])


def awd_lstm(vocabulary_size, args, jit_compile, dropouts=True):
    import keras

    from tfpretrain.models.ulmfit import AWD_LSTM_PRESETS, AwdLstmEncoder, AwdLstmLanguageModel

    config = dict(AWD_LSTM_PRESETS[args.preset])
    head = {}
    if not dropouts:
        config.update(embedding_dropout=0.0, input_dropout=0.0, hidden_dropout=0.0, weight_dropout=0.0)
        head = dict(output_dropout=0.0, activation_regularization=0.0, temporal_activation_regularization=0.0)
    model = AwdLstmLanguageModel(AwdLstmEncoder(vocabulary_size, **config), **head)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def plain_keras(vocabulary_size, args, jit_compile):
    import keras

    from tfpretrain.models.ulmfit import AWD_LSTM_PRESETS

    config = AWD_LSTM_PRESETS[args.preset]
    sizes = [config["hidden_dim"]] * (config["num_layers"] - 1) + [config["embedding_dim"]]
    model = keras.Sequential(
        [keras.Input((None,), dtype="int32"), keras.layers.Embedding(vocabulary_size, config["embedding_dim"])]
        + [keras.layers.LSTM(units, return_sequences=True) for units in sizes]
        + [keras.layers.Dense(vocabulary_size)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)
    return model


def quality(tokenizer, args):
    """Trains the AWD-LSTM ``args.quality_steps`` steps on EWT train; its EWT dev perplexity and the time taken."""
    import keras

    from tfpretrain.models.ulmfit import word_lm_dataset

    keras.utils.set_random_seed(0)
    model = awd_lstm(tokenizer.vocabulary_size(), args, jit_compile=args.quality_jit)
    train = word_lm_dataset([str(DATA / "ud_english_ewt" / "train.conllu")], tokenizer,
                            sequence_length=args.sequence_length, batch_size=args.batch_size, split="all", seed=0)
    dev = word_lm_dataset([str(DATA / "ud_english_ewt" / "dev.conllu")], tokenizer,
                          sequence_length=args.sequence_length, batch_size=args.batch_size, split="all",
                          repeat=False)
    before = model.evaluate(dev, verbose=0, return_dict=True)
    with Timer() as timer:
        model.fit(train, steps_per_epoch=args.quality_steps, epochs=1, verbose=0)
    after = model.evaluate(dev, verbose=0, return_dict=True)
    return {"steps": args.quality_steps, "train_seconds": timer.seconds,
            "dev_perplexity_before": before["perplexity"], "dev_perplexity": after["perplexity"],
            "dev_accuracy": after["accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every model in turn")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, XLA)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--sequence-length", type=int, default=70)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quality-steps", type=int, default=0, help="then train this many steps, dev perplexity")
    parser.add_argument("--quality-jit", action="store_true", help="train the quality run under XLA")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny preset, 3 timed steps")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.steps, args.rounds, args.warmup = "tiny", 3, 2, 1
        args.quality_steps = min(args.quality_steps, 5)

    import keras

    tokenizer, data = batches(args)
    for _ in data:  # fill the cache before anything is timed
        pass
    vocabulary_size = tokenizer.vocabulary_size()
    contenders = {}
    for jit in (False, True):
        mode = "XLA" if jit else "graph"
        for name, build in (
            (f"tfpretrain AWD-LSTM, {mode}", lambda: awd_lstm(vocabulary_size, args, jit)),
            (f"tfpretrain AWD-LSTM without dropouts, {mode}", lambda: awd_lstm(vocabulary_size, args, jit, False)),
            (f"plain Keras LSTM LM, {mode}", lambda: plain_keras(vocabulary_size, args, jit)),
        ):
            keras.utils.set_random_seed(0)
            contenders[name] = build()
            warm_up(contenders[name], data, args)
    # Rounds of every contender in turn: on a shared machine the load drifts, and models timed side by side
    # in a round see about the same load. Medians over the rounds; ratios are medians of per-round ratios.
    speeds = {name: [] for name in contenders}
    losses = {}
    for round_index in range(args.rounds):
        for name, model in contenders.items():
            speed, losses[name] = tokens_per_second(model, data, args)
            speeds[name].append(speed)
        print(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
            f"{name} {speed[-1]:,.0f}" for name, speed in speeds.items()), flush=True)
    results = {name: {"tokens_per_second": float(np.median(speeds[name])), "per_round": speeds[name],
                      "last_loss": losses[name]} for name in contenders}
    for name, result in results.items():
        print(f"{name:48s} {result['tokens_per_second']:10,.0f} tokens/s (median of {args.rounds} rounds)")

    def ratio(a, b):
        return float(np.median(np.array(speeds[a]) / np.array(speeds[b])))

    ratios = {}
    for mode in ("graph", "XLA"):
        peer = f"plain Keras LSTM LM, {mode}"
        for name in (f"tfpretrain AWD-LSTM, {mode}", f"tfpretrain AWD-LSTM without dropouts, {mode}"):
            ratios[f"{name} / {peer}"] = ratio(name, peer)
    ratios["tfpretrain AWD-LSTM, XLA / tfpretrain AWD-LSTM, graph"] = ratio(
        "tfpretrain AWD-LSTM, XLA", "tfpretrain AWD-LSTM, graph")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    report = {"machine": machine(), "config": vars(args), "vocabulary_size": vocabulary_size,
              "data": "UD English EWT train raw text", "results": results, "ratios": ratios}
    if args.quality_steps:
        report["quality"] = quality(tokenizer, args)
        q = report["quality"]
        print(f"AWD-LSTM ({args.preset}) after {q['steps']} steps ({q['train_seconds']:.0f} s): EWT dev "
              f"perplexity {q['dev_perplexity']:.1f} (untrained {q['dev_perplexity_before']:.0f}), "
              f"accuracy {q['dev_accuracy']:.3f}")
    print(f"Machine: {report['machine']}")
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "awd_lstm.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
