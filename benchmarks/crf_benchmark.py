"""Benchmarks `tfpretrain.layers.CRF` against tensorflow-addons' CRF functions.

Measures sentences per second, on this machine's CPU, for

- loss+grad: ``-mean(log_likelihood)`` and its gradient with respect to the
  potentials and the transition weights (ours: `CRF.log_likelihood`; tfa:
  ``tfa.text.crf_log_likelihood``), and
- decode: Viterbi decoding (ours: `CRF.decode`; tfa: ``tfa.text.crf_decode``),

at batch 32, sequence length 50 and 9 tags, once with every row full and once
with random lengths 10..50, each inside ``tf.function`` and inside
``tf.function(jit_compile=True)`` (XLA). Both sides see the same inputs and the
same transition matrix (our start/end transitions are 0, as tfa has none), and
the script checks that they agree before timing.

tensorflow-addons does not import under Keras 3 / TF 2.21, so its side runs in a
subprocess from its own virtualenv, ``benchmarks/.venv-tfa`` (``tensorflow-cpu
2.15`` + ``tensorflow-addons 0.23.0``), which this script creates on first use.

Usage (from the repository root, with the project's virtualenv active)::

    python benchmarks/crf_benchmark.py              # about 1 minute (+1-3 the first time, for the venv)
    python benchmarks/crf_benchmark.py --seconds 1  # quicker, noisier
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from common import machine

HERE = os.path.dirname(os.path.abspath(__file__))
TFA_VENV = os.path.join(HERE, ".venv-tfa")
TFA_REQUIREMENTS = ["tensorflow-cpu==2.15.*", "tensorflow-addons==0.23.0"]
BATCH_SIZE, SEQUENCE_LENGTH, NUM_TAGS = 32, 50, 9
LENGTH_SETTINGS = {"full": (SEQUENCE_LENGTH, SEQUENCE_LENGTH), "random": (10, SEQUENCE_LENGTH)}


def make_inputs(path, seed=0):
    """Writes the shared inputs (potentials, gold tags, lengths, transitions) to ``path``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {
        "potentials": rng.normal(size=(BATCH_SIZE, SEQUENCE_LENGTH, NUM_TAGS)).astype("float32"),
        "tag_ids": rng.integers(0, NUM_TAGS, size=(BATCH_SIZE, SEQUENCE_LENGTH)).astype("int32"),
        "transitions": (0.5 * rng.normal(size=(NUM_TAGS, NUM_TAGS))).astype("float32"),
    }
    for name, (low, high) in LENGTH_SETTINGS.items():
        arrays[f"lengths_{name}"] = rng.integers(low, high + 1, size=BATCH_SIZE).astype("int32")
    np.savez(path, **arrays)


def time_call(fn, args, seconds, repeats=5):
    """Best sentences/s over ``repeats`` windows of ``seconds / repeats`` each, after warm-up.

    The best window is the least disturbed by other processes on the machine.
    """
    for _ in range(10):
        fn(*args)
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / repeats:
            result = fn(*args)
            calls += 1
        result[0].numpy()  # the last call has finished
        rates.append(BATCH_SIZE * calls / (time.perf_counter() - start))
    return max(rates)


def worker(side, inputs_path, seconds):
    """Times one side and prints a JSON report on the last line of stdout."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import tensorflow as tf

    data = np.load(inputs_path)
    potentials = tf.constant(data["potentials"])
    tag_ids = tf.constant(data["tag_ids"])
    transitions = tf.Variable(data["transitions"])

    if side == "ours":
        import keras

        from tfpretrain.layers.crf import CRF

        crf = CRF(NUM_TAGS)
        crf.build((None, None, NUM_TAGS))
        crf.transitions.assign(data["transitions"])
        weights = crf.trainable_weights  # transitions, start, end

        def loss_and_grad(potentials, tag_ids, lengths):
            mask = tf.sequence_mask(lengths, tf.shape(potentials)[1])
            with tf.GradientTape() as tape:
                tape.watch(potentials)
                loss = -tf.reduce_mean(crf.log_likelihood(potentials, tag_ids, mask))
            return [loss] + tape.gradient(loss, [potentials] + weights)

        def decode(potentials, lengths):
            return crf.decode(potentials, tf.sequence_mask(lengths, tf.shape(potentials)[1]))

        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    else:
        # The peer, only ever imported here, inside benchmarks/.venv-tfa (TF 2.15); never by the package.
        import tensorflow_addons as tfa

        def loss_and_grad(potentials, tag_ids, lengths):
            with tf.GradientTape() as tape:
                tape.watch(potentials)
                log_likelihood, _ = tfa.text.crf_log_likelihood(potentials, tag_ids, lengths, transitions)
                loss = -tf.reduce_mean(log_likelihood)
            return [loss] + tape.gradient(loss, [potentials, transitions])

        def decode(potentials, lengths):
            return tfa.text.crf_decode(potentials, transitions, lengths)

        versions = {"tensorflow": tf.__version__, "tensorflow_addons": tfa.__version__}

    report = {"side": side, "versions": versions, "results": {}, "check": {}, "errors": {}}
    for setting in LENGTH_SETTINGS:
        lengths = tf.constant(data[f"lengths_{setting}"])
        for jit in (False, True):
            mode_fns = {
                "loss+grad": (tf.function(loss_and_grad, jit_compile=jit), (potentials, tag_ids, lengths)),
                "decode": (tf.function(decode, jit_compile=jit), (potentials, lengths)),
            }
            for mode, (fn, args) in mode_fns.items():
                key = f"{mode}|{setting}|{'xla' if jit else 'graph'}"
                try:
                    outputs = fn(*args)
                except Exception as error:  # tfa's likelihood does not compile with XLA
                    report["results"][key] = "n/a"
                    report["errors"][key] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
                    continue
                if not jit:  # the numbers both sides must agree on
                    if mode == "loss+grad":
                        report["check"][f"{key}|loss"] = float(outputs[0])
                        report["check"][f"{key}|grad_potentials"] = np.asarray(outputs[1]).tolist()
                    else:
                        mask = np.arange(SEQUENCE_LENGTH)[None] < data[f"lengths_{setting}"][:, None]
                        report["check"][f"{key}|tag_ids"] = np.where(mask, outputs[0], 0).tolist()
                        report["check"][f"{key}|best_scores"] = np.asarray(outputs[1]).tolist()
                report["results"][key] = time_call(fn, args, seconds)
    print(json.dumps(report))


def ensure_tfa_venv():
    """Creates ``benchmarks/.venv-tfa`` with tensorflow-addons unless it already imports."""
    python = os.path.join(TFA_VENV, "bin", "python")
    check = [python, "-c", "import tensorflow_addons"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if os.path.exists(python) and subprocess.run(check, capture_output=True, env=env).returncode == 0:
        return python
    print(f"Creating {TFA_VENV} with {' '.join(TFA_REQUIREMENTS)} (a few minutes, once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", TFA_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *TFA_REQUIREMENTS], check=True)
    subprocess.run(check, check=True, env=env)
    return python


def run_worker(python, side, inputs_path, seconds):
    command = [python, os.path.abspath(__file__), "--worker", side, "--inputs", inputs_path,
               "--seconds", str(seconds)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.path.dirname(HERE)}
    if side == "tfa":
        env.pop("PYTHONPATH")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"The {side} worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(ours, tfa):
    """Largest differences between the two sides' check values."""
    import numpy as np

    lines = []
    for key in sorted(ours["check"]):
        a, b = np.asarray(ours["check"][key]), np.asarray(tfa["check"][key])
        if a.dtype.kind in "iu":
            lines.append(f"  {key}: {np.mean(a == b):.2%} of tag ids equal")
        else:
            lines.append(f"  {key}: max |ours - tfa| = {np.max(np.abs(a - b)):.2e}")
    return lines


def _rate(rate):
    return f"{rate:,.0f}" if isinstance(rate, float) else rate


def _ratio(ours_rate, tfa_rate):
    both = isinstance(ours_rate, float) and isinstance(tfa_rate, float)
    return f"{ours_rate / tfa_rate:.2f}x" if both else "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement (default 3)")
    parser.add_argument("--worker", choices=("ours", "tfa"), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.inputs, args.seconds)
        return

    started = time.perf_counter()
    tfa_python = ensure_tfa_venv()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        inputs_path = os.path.join(tmp, "inputs.npz")
        make_inputs(inputs_path)
        ours = run_worker(sys.executable, "ours", inputs_path, args.seconds)
        tfa = run_worker(tfa_python, "tfa", inputs_path, args.seconds)

    print("CRF benchmark: tfpretrain.layers.CRF vs tensorflow-addons")
    print(f"machine: {machine()}")
    print(f"ours: tensorflow {ours['versions']['tensorflow']}, keras {ours['versions']['keras']} "
          f"(Python {platform.python_version()})")
    print(f"tfa:  tensorflow-cpu {tfa['versions']['tensorflow']}, "
          f"tensorflow-addons {tfa['versions']['tensorflow_addons']} (in {os.path.relpath(TFA_VENV)})")
    print(f"inputs: batch {BATCH_SIZE}, sequence length {SEQUENCE_LENGTH}, {NUM_TAGS} tags, "
          "float32; lengths 'full' = all 50, 'random' = uniform 10..50")
    print("loss+grad = -mean(log-likelihood) + gradient w.r.t. potentials and transitions "
          "(ours also w.r.t. its start/end transitions, which tfa lacks); decode = Viterbi")
    print("graph = inside tf.function; xla = inside tf.function(jit_compile=True); "
          f"best of 5 windows over {args.seconds:g} s per measurement")
    if load_before > 0.5:
        print(f"warning: load average {load_before:.2f} before the run; other processes may have "
              "slowed both sides")
    print("agreement (graph mode, same inputs and transitions):")
    print("\n".join(compare(ours, tfa)))
    print()
    header = ("mode", "lengths", "compile", "ours sent/s", "tfa sent/s", "ours/tfa")
    print(f"{header[0]:<10} {header[1]:<8} {header[2]:<7} {header[3]:>12} {header[4]:>12} {header[5]:>9}")
    for key, ours_rate in ours["results"].items():
        tfa_rate = tfa["results"][key]
        mode, setting, compiled = key.split("|")
        print(f"{mode:<10} {setting:<8} {compiled:<7} {_rate(ours_rate):>12} {_rate(tfa_rate):>12} "
              f"{_ratio(ours_rate, tfa_rate):>9}")
    print()
    for mode in ("loss+grad", "decode"):
        for setting in LENGTH_SETTINGS:
            ours_graph, ours_xla = (ours["results"][f"{mode}|{setting}|{c}"] for c in ("graph", "xla"))
            tfa_graph, tfa_xla = (tfa["results"][f"{mode}|{setting}|{c}"] for c in ("graph", "xla"))
            print(f"ratio {mode:<9} {setting:<6}: ours (xla) / tfa (graph) = {_ratio(ours_xla, tfa_graph)}; "
                  f"ours (graph) / tfa (graph) = {_ratio(ours_graph, tfa_graph)}; "
                  f"ours (xla) / tfa (xla) = {_ratio(ours_xla, tfa_xla)}")
    for key, error in {**ours["errors"], **tfa["errors"]}.items():
        print(f"n/a: {'ours' if key in ours['errors'] else 'tfa'} {key} failed: {error}")
    print(f"total time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
