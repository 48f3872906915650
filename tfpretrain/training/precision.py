"""Mixed precision and XLA for the training pipelines (``--precision`` and ``--xla`` on every training command).

One place decides the Keras dtype policy of a run:

- `uses_precision` wraps a pipeline's ``run(..., out_dir, ..., precision=None)``:
  it resolves the precision (an explicit value, else the one the run in
  ``out_dir`` recorded, else float32), records it in ``out_dir/precision.json``
  before training, so that a resumed run trains as the interrupted one did,
  and sets the global Keras policy for the call only (restored afterwards).
  It first checks the run's numeric arguments, and a run that fails before
  writing anything else leaves no ``precision.json`` (nor a new, empty
  ``out_dir``) behind.
- Models are built under that policy: variables stay float32, layers compute
  in float16 / bfloat16, and our numerically delicate layers (CRF, softmax,
  layer norm, the LM heads' logits) compute in float32. With
  ``mixed_float16`` Keras 3's ``compile`` wraps the optimizer in a
  ``LossScaleOptimizer`` by itself.
- What a run saves reloads in float32: BERT, GPT and AWD-LSTM directories
  store the architecture without a dtype; ``.keras`` files (tagger, BiLM)
  are written from `float32_copy`.

Example:

>>> @uses_precision
... def run(out_dir, precision=None, jit_compile="auto"):
...     model = build_model()  # under the policy
...     model.compile(optimizer="adam", jit_compile=check_jit_compile(jit_compile))
"""

import contextlib
import functools
import inspect
import json
import os

from tfpretrain.models.model_dir import PRECISION_RECORD

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
XLA_MODES = {"auto": "auto", "on": True, "off": False}  # --xla value -> jit_compile


def check_precision(precision):
    """Returns ``precision`` if it is one of `PRECISIONS`; raises a ValueError naming the choices otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def check_jit_compile(jit_compile):
    """Returns ``jit_compile`` (True, False or "auto") for ``model.compile``; a ValueError for anything else.

    "auto" is Keras' own choice: XLA on a GPU unless a layer cannot be
    compiled (Keras' LSTM on a GPU, which then runs cuDNN) or a
    ``tf.distribute`` strategy is in use; never on a CPU.
    """
    if jit_compile != "auto" and not isinstance(jit_compile, bool):
        raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
    return jit_compile


def resolve_jit_compile(jit_compile):
    """``jit_compile`` as a bool: "auto" -> XLA whenever a GPU is visible, True and False as they are.

    For the models that always gain from XLA on a GPU (the transformers'
    pretraining, ULMFiT's LSTM loop); on a 2-core CPU the XLA train step
    measured slower than the plain graph.
    """
    if check_jit_compile(jit_compile) == "auto":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return jit_compile


def resolve_static_shapes(static_shapes, jit_compile):
    """``static_shapes`` (True, False or "auto") as a bool: "auto" -> on when ``jit_compile`` is True.

    Static shapes (`tfpretrain.text.buckets`) let XLA compile one program
    per length bucket instead of one per batch length; without XLA, padding
    to the batch's longest costs less.
    """
    if static_shapes == "auto":
        return jit_compile is True
    if not isinstance(static_shapes, bool):
        raise ValueError(f"static_shapes must be True, False or 'auto', got {static_shapes!r}")
    return static_shapes


@contextlib.contextmanager
def precision_scope(precision):
    """Sets the global Keras dtype policy to ``precision`` inside the block, restores the previous one after."""
    import keras

    check_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def recorded_precision(out_dir):
    """The precision recorded in ``out_dir/precision.json`` by an earlier run, or None."""
    path = os.path.join(out_dir, PRECISION_RECORD)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("precision")


def resolve_precision(out_dir, precision=None):
    """The precision a run in ``out_dir`` trains with; records it there.

    None means: what an earlier (interrupted) run in ``out_dir`` recorded,
    else float32. An explicit value that differs from the one a run with a
    checkpoint recorded is an error: the checkpoint's optimizer state (the
    loss scale of mixed_float16) would not match.
    """
    recorded = recorded_precision(out_dir)
    if precision is None:
        precision = recorded or "float32"
    check_precision(precision)
    if recorded and recorded != precision and os.path.isdir(os.path.join(out_dir, "checkpoint")):
        raise ValueError(f"{out_dir} holds a checkpoint trained with --precision {recorded} "
                         f"({os.path.join(out_dir, PRECISION_RECORD)}), not {precision}; resume with "
                         f"--precision {recorded} or choose a new --out")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, PRECISION_RECORD), "w", encoding="utf-8") as f:
        json.dump({"precision": precision}, f)
    return precision


def uses_precision(run):
    """Decorates a pipeline ``run`` that takes ``out_dir`` and ``precision=None``: see the module docstring.

    Before anything is written, the numeric arguments are checked
    (`tfpretrain.training.arguments.check_arguments`: ``epochs=0`` is a
    ValueError naming ``epochs``). A run that fails before it wrote anything
    but the precision record leaves ``out_dir`` as it found it: the record is
    removed again, and so are the folders the run created.
    """
    signature = inspect.signature(run)

    @functools.wraps(run)
    def wrapper(*args, **kwargs):
        from tfpretrain.training.arguments import check_arguments

        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check_arguments(**bound.arguments)
        out_dir = os.fspath(bound.arguments["out_dir"])
        if "overwrite" in bound.arguments:  # the --out rule: a finished run is refused, or removed with overwrite
            from tfpretrain.training.callbacks import prepare_out_dir

            prepare_out_dir(out_dir, bound.arguments["overwrite"])
        before = _snapshot(out_dir)
        bound.arguments["precision"] = resolve_precision(out_dir, bound.arguments["precision"])
        try:
            with precision_scope(bound.arguments["precision"]):
                return run(*bound.args, **bound.kwargs)
        except BaseException:
            _undo_record(out_dir, before)
            raise

    return wrapper


def _snapshot(out_dir):
    """What `_undo_record` needs: the folders of ``out_dir``'s path that do not exist yet, and its entries."""
    missing, path = [], os.path.abspath(out_dir)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    entries = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
    return missing, entries


def _undo_record(out_dir, before):
    """After a failed run: if it wrote nothing but a new precision record, removes it and the folders it made."""
    missing, entries = before
    if PRECISION_RECORD in entries or not os.path.isdir(out_dir):
        return  # an earlier run's record (a resumed run keeps it), or no folder at all
    try:
        if set(os.listdir(out_dir)) - entries != {PRECISION_RECORD}:
            return  # training started: the record belongs to what the run wrote
        os.remove(os.path.join(out_dir, PRECISION_RECORD))
        for path in missing:  # deepest first
            os.rmdir(path)
    except OSError:
        pass  # best effort: never hide the run's own error behind a clean-up error


def _float32_policies(config):
    """``config`` (a serialised Keras object) with every dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


def float32_copy(model):
    """``model`` rebuilt with float32 layers and the same weights (the model itself when it is float32 already).

    A ``.keras`` file stores each layer's dtype policy; saving this copy
    makes a mixed-precision run's model reload (and export) in float32.
    """
    import keras

    if model.dtype_policy.name == "float32":  # built under a float32 policy, as its layers were
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    with precision_scope("float32"):
        copy = keras.saving.deserialize_keras_object(config)
        if not copy.built:
            copy.build_from_config(config.get("build_config", {}))
    copy.set_weights(model.get_weights())
    return copy

