"""The shared test harnesses: one for every tfpretrain layer, one for every string-to-tensor function.

``run_layer_test`` is modelled on keras-hub's ``TestCase.run_layer_test``: config round-trip,
weight counts, ``.keras`` save and reload with equal outputs, masking, one ``fit`` step that
moves every trainable weight, and mixed precision (sublayers included).

``run_preprocessing_test`` checks that a preprocessing function gives one result called
directly, on single examples, inside ``tf.data`` (mapped then batched, batched then mapped) and
after a SavedModel round-trip.

Example:

    run_layer_test(
        tfpretrain.layers.ScalarMix,
        init_kwargs={"num_layers": 3},
        input_data=np.random.rand(2, 3, 5, 4).astype("float32"),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 5, 4),
    )
    run_preprocessing_test(tokenizer, ["The cat sat.", "Dogs"], example_fn=lambda t: tokenizer(t[None])[0])
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _to_numpy(x):
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_numpy(v) for v in x]
    return keras.ops.convert_to_numpy(x)


def _first(x):
    if isinstance(x, dict):
        return x[sorted(x)[0]]
    if isinstance(x, (list, tuple)):
        return x[0]
    return x


def _functional_model(layer, input_data, mask):
    """Wraps ``layer`` in a functional model taking ``input_data`` (and ``mask``)."""
    inputs = [
        keras.Input(shape=np.shape(x)[1:], dtype=str(np.asarray(x).dtype), batch_size=None)
        for x in _as_list(input_data)
    ]
    call_args = inputs if isinstance(input_data, (list, tuple)) else inputs[0]
    if mask is not None:
        mask_input = keras.Input(shape=np.shape(mask)[1:], dtype="bool")
        outputs = layer(call_args, mask=mask_input)
        return keras.Model(inputs + [mask_input], outputs), _as_list(input_data) + [mask]
    return keras.Model(inputs, layer(call_args)), _as_list(input_data)


def _assert_close(a, b, atol, rtol=1e-5, msg=""):
    for x, y in zip(_as_list(_to_numpy(a)), _as_list(_to_numpy(b))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol, err_msg=msg)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    *,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    expected_output_shape=None,
    expected_output_dtype=None,
    mask=None,
    masked_input_index=0,
    output_mask_axes=(0, 1),
    run_training=True,
    run_mixed_precision=True,
    unmoved_weights=None,
    atol=1e-5,
):
    """Runs the shared checks on ``layer_cls(**init_kwargs)``.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: a numpy array, or a list of them, with a batch axis.
        expected_num_trainable_weights: how many trainable weights the built layer has
            (sublayers included).
        expected_num_non_trainable_weights: how many non-trainable weights it has.
        expected_output_shape: shape of the (first) output, or None to skip.
        expected_output_dtype: dtype of the (first) output in float32, or None.
        mask: optional boolean array ``(batch, time)`` passed as ``mask=``. When
            given, the layer must support masking, and changing the values of
            ``input_data[masked_input_index]`` at masked steps must not change
            the outputs at unmasked steps.
        masked_input_index: which input the masking check perturbs.
        output_mask_axes: the (batch, time) axes of the output that the mask
            indexes, e.g. ``(0, 2)`` for a stack of layers ``(batch, layers, time, dim)``.
        run_training: run one ``fit`` step on a float output and check that every
            trainable weight moves.
        run_mixed_precision: build the layer under ``mixed_float16`` with the
            float32 weights; check that every sublayer inherits that policy and
            that the outputs are finite and close.
        unmoved_weights: ``{weight path suffix: reason}`` for trainable weights that
            by design get no gradient in the fit step; every other one must move.
        atol: tolerance for equal outputs after reload.
    """
    # 1. Config round-trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config, f"get_config() of {layer_cls.__name__} misses '{key}'"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config, "config does not round-trip"

    # A layer revived frozen stays frozen once built (sublayers included).
    frozen = layer_cls.from_config({**config, "trainable": False})
    _functional_model(frozen, input_data, mask)
    trainable_left = [v.path for v in frozen.weights if v.trainable]
    assert not trainable_left, f"frozen {layer_cls.__name__} has trainable variables {trainable_left}"

    # 2. Call in a functional model: weight counts, shapes and dtype.
    model, feed = _functional_model(layer, input_data, mask)
    output = model(feed)
    assert len(layer.trainable_weights) == expected_num_trainable_weights, (
        f"{layer_cls.__name__} has {len(layer.trainable_weights)} trainable weights, expected "
        f"{expected_num_trainable_weights}: {[w.path for w in layer.trainable_weights]}"
    )
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
        f"{layer_cls.__name__} has {len(layer.non_trainable_weights)} non-trainable weights, expected "
        f"{expected_num_non_trainable_weights}: {[w.path for w in layer.non_trainable_weights]}"
    )
    if expected_output_shape is not None:
        assert tuple(_first(output).shape) == tuple(expected_output_shape), (
            f"output shape {tuple(_first(output).shape)} != {tuple(expected_output_shape)}"
        )
    if expected_output_dtype is not None:
        assert keras.backend.standardize_dtype(_first(output).dtype) == expected_output_dtype

    # 3. .keras save and reload give equal outputs.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    _assert_close(output, reloaded(feed), atol=atol, msg="outputs differ after .keras reload")

    # 4. Masking: values at masked steps never reach unmasked outputs.
    if mask is not None:
        assert layer.supports_masking, f"{layer_cls.__name__} must set supports_masking"
        perturbed = list(feed)
        x = np.array(perturbed[masked_input_index])
        noise_shape = x.shape
        rng = np.random.default_rng(0)
        if np.issubdtype(x.dtype, np.integer):
            noise = rng.integers(1, max(2, int(x.max()) + 1), size=noise_shape).astype(x.dtype)
        else:
            noise = rng.normal(size=noise_shape).astype(x.dtype) * 3.0
        step_mask = np.asarray(mask)
        expand = step_mask.reshape(step_mask.shape + (1,) * (x.ndim - step_mask.ndim))
        perturbed[masked_input_index] = np.where(expand, x, noise)
        out_a = _to_numpy(_first(output))
        out_b = _to_numpy(_first(model(perturbed)))
        keep_shape = [1] * out_a.ndim
        for axis, size in zip(output_mask_axes, step_mask.shape):
            keep_shape[axis] = size
        keep = np.broadcast_to(step_mask.reshape(keep_shape), out_a.shape)
        np.testing.assert_allclose(
            out_a[keep], out_b[keep], atol=1e-5, err_msg="masked steps leak into unmasked outputs"
        )

    # 5. One fit step moves every trainable weight.
    if run_training and layer.trainable_weights:
        # Flattened so that the loss sees every output value, masked or not.
        flat_output = keras.layers.Reshape((-1,))(_first(model.outputs))
        first_output = _to_numpy(_first(output))
        # Random targets (a seed no test uses for inputs): a constant target gives layer-normalised
        # outputs no gradient at all.
        target_shape = (len(first_output), first_output[0].size)
        target = np.random.default_rng(20240917).normal(size=target_shape).astype("float32")
        train_model = keras.Model(model.inputs, flat_output)
        train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = [np.array(w) for w in layer.trainable_weights]
        history = train_model.fit(feed, target, epochs=1, batch_size=len(target), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        unmoved_weights = unmoved_weights or {}
        for suffix in unmoved_weights:
            assert any(w.path.endswith(suffix) for w in layer.trainable_weights), (
                f"unmoved_weights names {suffix!r}, which is no trainable weight of {layer_cls.__name__}"
            )
        stuck = [
            w.path for b, w in zip(before, layer.trainable_weights)
            if np.array_equal(b, np.array(w)) and not any(w.path.endswith(s) for s in unmoved_weights)
        ]
        assert not stuck, f"trainable weights of {layer_cls.__name__} unchanged after a fit step: {stuck}"

    # 6. Mixed precision: same weights, float16 compute, finite and close outputs.
    if run_mixed_precision:
        mp_layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
        mp_model, _ = _functional_model(mp_layer, input_data, mask)
        mp_model.set_weights(model.get_weights())
        for w in mp_layer.weights:
            assert keras.backend.standardize_dtype(w.dtype) == "float32", (
                f"variable {w.path} is not float32 under mixed precision"
            )
        # keras-hub's run_precision_test walks sublayers the same way (Keras has no public walk).
        for sublayer in mp_layer._flatten_layers(include_self=False):
            if isinstance(sublayer, (keras.layers.Softmax, keras.layers.InputLayer)):
                continue  # Keras computes softmax in float32 on purpose
            assert sublayer.dtype_policy.name == "mixed_float16", (
                f"sublayer {sublayer.name} of {layer_cls.__name__} has dtype policy "
                f"{sublayer.dtype_policy.name}, not the layer's mixed_float16"
            )
        mp_output = _to_numpy(_first(mp_model(feed)))
        ref = _to_numpy(_first(model(feed)))  # weights may have moved in the fit step
        assert np.all(np.isfinite(mp_output.astype("float32"))), "non-finite output in float16"
        if np.issubdtype(ref.dtype, np.floating):
            scale = max(1.0, float(np.max(np.abs(ref))))
            np.testing.assert_allclose(
                mp_output.astype("float32"), ref, atol=2e-2 * scale, rtol=2e-2,
                err_msg="mixed_float16 output far from float32",
            )
        else:
            agreement = float(np.mean(mp_output == ref))
            assert agreement > 0.95, f"mixed_float16 integer outputs agree on only {agreement:.1%}"
    return layer


# --- Preprocessing ----------------------------------------------------------------------------------


def _is_ragged(x):
    return isinstance(x, tf.RaggedTensor)


def _as_batch_tensor(x):
    """A batch input as a tensor: Python strings and numbers become a ``tf.constant``."""
    if isinstance(x, (tf.Tensor, tf.RaggedTensor)):
        return x
    return tf.constant(x)


def _batch_spec(x):
    """The ``tf.function`` input spec of batch input ``x`` with an unknown batch size."""
    if _is_ragged(x):
        return tf.RaggedTensorSpec([None] + x.shape[1:].as_list(), x.dtype, x.ragged_rank, x.row_splits.dtype)
    return tf.TensorSpec([None] + x.shape[1:].as_list(), x.dtype)


def _listed(x):
    """A leaf as nested Python lists (ragged or dense), for comparing rows of any length."""
    if _is_ragged(x):
        return x.to_list()
    if isinstance(x, list):
        return x
    return np.asarray(x).tolist()


def _leaf_pairs(actual, expected, path=""):
    """``(path, actual leaf, expected leaf)`` down ``actual``'s dicts and tuples (``expected``'s leaves may be lists)."""
    if isinstance(actual, dict):
        assert set(actual) == set(expected), f"{path or 'output'}: keys {sorted(actual)} != {sorted(expected)}"
        for key in sorted(actual):
            yield from _leaf_pairs(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(actual, (tuple, list)):
        assert len(actual) == len(expected), f"{path or 'output'}: {len(actual)} parts != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            yield from _leaf_pairs(a, e, f"{path}[{i}]")
    else:
        yield path, actual, expected


def _assert_same(actual, expected, what):
    """``actual`` equals ``expected`` leaf by leaf: values, shapes and raggedness."""
    for path, a, e in _leaf_pairs(actual, expected):
        where = f"{what}{f' {path}' if path else ''}"
        if _is_ragged(a) or _is_ragged(e):
            assert _listed(a) == _listed(e), f"{where}: {_listed(a)} != {_listed(e)}"
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e), err_msg=where)


def _zero_padded_stack(rows):
    """Stacks dense ``rows`` padded (0 or b"") to the longest on each axis, as ``padded_batch`` does."""
    arrays = [np.asarray(r) for r in rows]
    shape = np.max([a.shape for a in arrays], axis=0) if arrays[0].ndim else ()
    fill = b"" if arrays[0].dtype.kind in "OS" else 0  # strings pad with b"", as in tf.data
    out = np.full((len(arrays),) + tuple(shape), fill, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[(i,) + tuple(slice(0, n) for n in a.shape)] = a
    return out


def _collate(examples, like):
    """Per-example outputs gathered into a batch shaped like the direct output ``like``."""
    columns = [list(column) for column in zip(*[tf.nest.flatten(e) for e in examples])]
    leaves = []
    for column, reference in zip(columns, tf.nest.flatten(like)):
        if _is_ragged(reference):
            leaves.append(tf.ragged.constant([_listed(r) for r in column], dtype=reference.dtype,
                                             ragged_rank=reference.ragged_rank))
        else:
            leaves.append(_zero_padded_stack(column))
    return tf.nest.pack_sequence_as(like, leaves)


def _batching(dataset, output):
    """``dataset.batch`` when every element has one shape, ``ragged_batch`` for ragged outputs, else padded."""
    specs = tf.nest.flatten(dataset.element_spec)
    if any(_is_ragged(leaf) for leaf in tf.nest.flatten(output)):
        return dataset.ragged_batch
    if all(spec.shape.is_fully_defined() for spec in specs if isinstance(spec, tf.TensorSpec)):
        return dataset.batch
    return dataset.padded_batch


def run_preprocessing_test(
    fn,
    inputs,
    expected=None,
    *,
    example_fn=None,
    with_index=False,
    batch_size=None,
    num_parallel_calls=None,
    track=(),
    run_saved_model=True,
):
    """Checks that the batch function ``fn`` gives one result however it is run.

    ``fn(batch)`` is called directly on ``inputs``; the same result (row by row) must come from
    (1) ``example_fn`` called eagerly on each example, (2) ``example_fn`` in ``Dataset.map`` on
    single examples, then batched (``batch``, ``padded_batch`` or ``ragged_batch``, whichever the
    outputs need), (3) ``fn`` in ``Dataset.map`` after batching by ``batch_size``, and (4) ``fn``
    in a ``tf.Module``'s ``tf.function`` saved as a SavedModel and reloaded (``tensorflow_text``
    imported, so its ops are registered). Dense outputs of different lengths are compared
    zero-padded, as ``padded_batch`` pads them.

    Args:
        fn: a function from a batch (strings or ids, a leading batch axis) to a tensor, or a
            dict or tuple of them, dense or ragged.
        inputs: the batch: a list of strings, an array, a ragged tensor, or a tuple of these
            (passed to ``fn`` as separate arguments).
        expected: the direct result (nested lists or arrays), or None to skip that check.
        example_fn: the same function for one example without a batch axis; None when ``fn``
            accepts single examples itself.
        with_index: pass each example's index in ``inputs`` as a last argument: ``0`` (the
            first index) for the direct call, a scalar to ``example_fn``, a vector of the
            batch's indices inside ``Dataset.map``, as ``MaskedLMMasker`` takes them.
        batch_size: batch size of the dataset checks; None for one batch of all of ``inputs``.
        num_parallel_calls: passed to both ``Dataset.map`` calls.
        track: objects ``fn`` uses that hold TF resources (lookup tables, variables), attached
            to the saved ``tf.Module`` so that they are saved with it; ``fn`` itself is
            attached when it (or a bound method's owner) is a Keras layer or ``tf.Module``.
        run_saved_model: whether to run the SavedModel round-trip.

    Returns:
        The direct result of ``fn(inputs)``.

    Example:

        run_preprocessing_test(tokenizer, ["The cat sat.", "Dogs"], expected=[[3, 4, 5, 6], [9]],
                               example_fn=lambda line: tokenizer(line[None])[0])
    """
    batch = tuple(_as_batch_tensor(x) for x in (inputs if isinstance(inputs, tuple) else (inputs,)))
    size = int(batch[0].shape[0])
    batch_size = batch_size or size
    example_fn = example_fn or fn
    index = (0,) if with_index else ()

    direct = fn(*batch, *index)
    if expected is not None:
        _assert_same(direct, expected, "direct call != expected")

    def rows(start, stop):
        return tf.nest.map_structure(lambda x: x[start:stop], direct)

    # 1. Each example called eagerly.
    examples = [example_fn(*(x[i] for x in batch), *((i,) if with_index else ())) for i in range(size)]
    _assert_same(_collate(examples, direct), direct, "each example called directly != the batch")

    # 2. Mapped on single examples, then batched.
    dataset = tf.data.Dataset.from_tensor_slices(batch if len(batch) > 1 else batch[0])
    if with_index:
        dataset = dataset.enumerate()
        mapped = dataset.map(lambda i, x: example_fn(*(x if len(batch) > 1 else (x,)), i),
                             num_parallel_calls=num_parallel_calls)
    else:
        mapped = dataset.map(lambda *x: example_fn(*x), num_parallel_calls=num_parallel_calls)
    for k, got in enumerate(_batching(mapped, direct)(batch_size)):
        _assert_same(got, rows(k * batch_size, (k + 1) * batch_size), f"mapped then batched, batch {k}")

    # 3. Batched, then mapped.
    batched = (dataset.ragged_batch if any(_is_ragged(x) for x in batch) else dataset.batch)(batch_size)
    if with_index:
        batched = batched.map(lambda i, x: fn(*(x if len(batch) > 1 else (x,)), i),
                              num_parallel_calls=num_parallel_calls)
    else:
        batched = batched.map(lambda *x: fn(*x), num_parallel_calls=num_parallel_calls)
    for k, got in enumerate(batched):
        _assert_same(got, rows(k * batch_size, (k + 1) * batch_size), f"batched then mapped, batch {k}")

    # 4. A SavedModel round-trip.
    if run_saved_model:
        import tensorflow_text  # noqa: F401  (registers the ops a reloaded graph may use)

        specs = [_batch_spec(x) for x in batch] + ([tf.TensorSpec([], tf.int64)] if with_index else [])
        module = tf.Module()
        owner = getattr(fn, "__self__", fn)  # a bound method's layer
        module.tracked = [owner, *track] if isinstance(owner, (tf.Module, keras.Layer)) else list(track)
        module.serve = tf.function(lambda *x: fn(*x), input_signature=specs)
        with tempfile.TemporaryDirectory() as tmp:
            tf.saved_model.save(module, tmp)
            reloaded = tf.saved_model.load(tmp)
            served = reloaded.serve(*batch, *(tf.constant(0, tf.int64) for _ in index))
        _assert_same(served, direct, "SavedModel round-trip != direct call")
    return direct
