"""One ``.tflite`` file per model: raw strings in, tags, labels, answers or vectors out (TFLite builtins + tf-text ops).

A serving module (`TaggingModule`, a BERT / GPT classifier module, the BERT
tagger, question-answering or embedding module of `tfpretrain.export.serving`)
gives its raw-text graph at batch size 1
(``module.tflite_function()``); `convert` freezes its variables into constants
(a Keras LSTM reads its weights inside a while loop, which the TFLite runtime
cannot do with resource variables), names the outputs, and converts with
TFLite builtins only, the tensorflow-text ops (tokenisers, byte splitting,
ragged-to-dense) staying as the custom ops `tensorflow_text.tflite_registrar`
registers; no Flex / ``SELECT_TF_OPS``. ``quantize="dynamic"`` stores weights
as int8 (dynamic-range quantisation).

`export_tflite` runs the conversion in a subprocess (the converter leaks
memory on every call) and checks the file runs before it appears. `TfliteModel`
runs a file with the ``ai_edge_litert`` interpreter.

Example:

>>> export_tflite("runs/upos", "upos.tflite", quantize="dynamic")
>>> TfliteModel("upos.tflite")(["The cat sat ."])[0]["tags"]
array([b'DET', b'NOUN', b'VERB', b'PUNCT'], dtype=object)
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

QUANTIZATIONS = (None, "dynamic")


def convert(function, quantize=None):
    """Converts a batch-1 `tf.function` (one input signature, dict outputs) to ``.tflite`` bytes."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    names = sorted(concrete.structured_outputs)  # the order of the frozen function's flat outputs
    holder = tf.Module()
    holder.serve = tf.function(lambda *args: dict(zip(names, frozen(*args))),
                               input_signature=concrete.structured_input_signature[0])
    with tempfile.TemporaryDirectory() as directory:  # through a SavedModel: keeps the input and output names
        tf.saved_model.save(holder, directory, signatures={"serving_default": holder.serve.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = True  # the tensorflow-text ops; `TfliteModel` checks every op resolves
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def export_tflite(model_dir, path, quantize=None, timeout=1800):
    """Writes ``path`` (atomically) from a model directory, converting in a subprocess; returns ``path``.

    The file is checked before it is renamed into place: it must load with the
    tensorflow-text op registrar and answer a sample text.

    Raises:
        ValueError: the model cannot be exported to TFLite (the message says why),
            or the conversion failed (with the converter's last lines).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    staging = f"{path}.tmp-{os.getpid()}"
    command = [sys.executable, "-m", "tfpretrain.export.tflite", os.fspath(model_dir), staging]
    if quantize:
        command += ["--quantize", quantize]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            if result.returncode == 2 and lines:
                raise ValueError(lines[-1])
            raise ValueError("TFLite conversion failed:\n" + "\n".join(lines[-15:]))
        TfliteModel(staging).check()
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


class TfliteModel:
    """Runs a ``.tflite`` file written by `export_tflite`, one text at a time (the file's batch size is 1).

    Uses ``ai_edge_litert.interpreter.InterpreterWithCustomOps`` with
    `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` and the default
    XNNPACK delegate, which re-plans when the next text has another length
    (BERT files: 2-5x faster on 2 CPU cores; the CharCNN tagger 1.3x). A
    file the delegate cannot plan (a tagger exported before the CRF ran on
    at least two steps: XNNPACK rejects the empty tensor of a one-word
    text) falls back to the builtin kernels for good, the failed text
    answered again there; ``uses_xnnpack`` says which runs.

    ``num_threads`` (default: every core this process may use, as
    TensorFlow does; LiteRT's own default is one) is the interpreter's
    thread count: MiniLM at batch 1 on 2 cores, 3.9 ms with 2 against 5.1 ms.

    Calling it with a list of texts (a string or bytes, or a tuple of them for
    models with several inputs, in the order of ``input_names``) returns one
    dict of numpy outputs per text, shaped as the SavedModel's batch rows.
    """

    def __init__(self, path, num_threads=None):
        import tensorflow_text as tf_text
        from ai_edge_litert import interpreter as litert

        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such .tflite file")
        if num_threads is None:  # LiteRT's default is one thread; TensorFlow (the SavedModel) uses every core
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

        def interpreter(resolver):
            return litert.InterpreterWithCustomOps(
                model_path=os.fspath(path), custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
                experimental_op_resolver_type=resolver, num_threads=int(num_threads))

        def runner(resolver):
            self.interpreter = interpreter(resolver)
            return self.interpreter.get_signature_runner("serving_default")

        try:
            self._runner = runner(litert.OpResolverType.AUTO)
            details = self.interpreter.get_signature_list()["serving_default"]
        except (RuntimeError, ValueError, KeyError) as error:
            raise ValueError(f"{path} is not a .tflite file written by tfpretrain export --tflite: {error}") from None
        self.uses_xnnpack = True
        self._without_xnnpack = lambda: runner(litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.input_names = ordered_inputs(details["inputs"])
        self.output_names = list(details["outputs"])

    def run_one(self, text):
        """Outputs for one text (or tuple of texts): each array with a leading batch axis of 1.

        A choice model takes ``(context, choice_0, choice_1, ...)`` (or
        ``(context, [choice_0, ...])``).
        """
        if not isinstance(text, (str, bytes, tuple, list)):
            raise TypeError(f"expected a text (str or bytes) or a tuple of texts, got {type(text).__name__}")
        parts = (text,) if isinstance(text, (str, bytes)) else tuple(text)
        last = len(self.input_names) - 1
        if self.input_names[-1] == "choices" and len(parts) > last + 1:
            parts = parts[:last] + (list(parts[last:]),)
        if len(parts) != len(self.input_names):
            raise ValueError(f"this model takes {len(self.input_names)} texts per input "
                             f"({', '.join(self.input_names)}); got {len(parts)}")
        inputs = {name: np.array([to_bytes(part)], dtype=object) if isinstance(part, (str, bytes))
                  else np.array([[to_bytes(p) for p in part]], dtype=object)
                  for name, part in zip(self.input_names, parts)}
        return {name: np.asarray(value) for name, value in self._run(inputs).items()}

    def _run(self, inputs):
        try:
            return self._runner(**inputs)
        except RuntimeError as error:
            if not self.uses_xnnpack or "XNNPack" not in str(error):
                raise
            self._runner, self.uses_xnnpack = self._without_xnnpack(), False  # see the class docstring
            return self._runner(**inputs)

    def check(self):
        """Runs the file once on empty strings, each input at its declared shape (every op must resolve)."""
        details = self._runner.get_input_details()
        self._run({name: np.full(detail["shape"], b"", dtype=object) for name, detail in details.items()})

    def __call__(self, texts):
        return [self.run_one(text) for text in texts]


def to_bytes(text):
    """``text`` as UTF-8 bytes: bytes unchanged (invalid UTF-8 included), a str encoded (lone surrogates, as
    Python decodes undecodable command-line bytes, back to those bytes)."""
    if isinstance(text, bytes):
        return text
    if isinstance(text, np.bytes_):
        return bytes(text)
    try:
        return str(text).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no undecodable byte gives: not text any reader made
        return str(text).encode("utf-8", "replace")


#: How multi-text inputs are ordered (predict reads tab-separated fields in this order).
INPUT_ORDER = ("text", "texts", "text_a", "text_b", "question", "context", "choices")


def ordered_inputs(names):
    """Input names in `INPUT_ORDER` (unknown names last)."""
    return sorted(names, key=lambda name: INPUT_ORDER.index(name) if name in INPUT_ORDER else len(INPUT_ORDER))


def _main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="convert a model directory to .tflite (run by export_tflite)")
    parser.add_argument("model_dir")
    parser.add_argument("path")
    parser.add_argument("--quantize", default=None)
    args = parser.parse_args(argv)
    from tfpretrain.export.serving import serving_module

    try:
        module = serving_module(args.model_dir)[0]
        if not hasattr(module, "tflite_function"):
            raise ValueError(f"{args.model_dir}: TFLite export covers taggers, BERT / GPT classifiers, BERT QA "
                             f"and BERT embeddings; this {type(module).__name__} exports to a SavedModel only "
                             "(tfpretrain export --name)")
        data = convert(module.tflite_function(), args.quantize)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with open(args.path, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
