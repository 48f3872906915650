"""One harness that puts every tfpretrain layer through the same checks.

Modelled on keras-hub's ``TestCase.run_layer_test``: config round-trip, ``.keras``
save and reload with equal outputs, masking, one ``fit`` step and mixed precision.

Example:

    run_layer_test(
        tfpretrain.layers.ScalarMix,
        init_kwargs={"num_layers": 3},
        input_data=np.random.rand(2, 3, 5, 4).astype("float32"),
        expected_output_shape=(2, 5, 4),
    )
"""

import os
import tempfile

import keras
import numpy as np


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
    expected_output_shape=None,
    expected_output_dtype=None,
    mask=None,
    masked_input_index=0,
    output_mask_axes=(0, 1),
    run_training=True,
    run_mixed_precision=True,
    atol=1e-5,
):
    """Runs the shared checks on ``layer_cls(**init_kwargs)``.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: a numpy array, or a list of them, with a batch axis.
        expected_output_shape: shape of the (first) output, or None to skip.
        expected_output_dtype: dtype of the (first) output in float32, or None.
        mask: optional boolean array ``(batch, time)`` passed as ``mask=``. When
            given, the layer must support masking, and changing the values of
            ``input_data[masked_input_index]`` at masked steps must not change
            the outputs at unmasked steps.
        masked_input_index: which input the masking check perturbs.
        output_mask_axes: the (batch, time) axes of the output that the mask
            indexes, e.g. ``(0, 2)`` for a stack of layers ``(batch, layers, time, dim)``.
        run_training: run one ``fit`` step on a float output and check that the
            trainable weights move.
        run_mixed_precision: build the layer under ``mixed_float16`` with the
            float32 weights and check outputs are finite and close.
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

    # 2. Call in a functional model, shapes and dtype.
    model, feed = _functional_model(layer, input_data, mask)
    output = model(feed)
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
        target = np.ones((len(first_output), first_output[0].size), dtype="float32")
        train_model = keras.Model(model.inputs, flat_output)
        train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = [np.array(w) for w in layer.trainable_weights]
        history = train_model.fit(feed, target, epochs=1, batch_size=len(target), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        moved = [not np.allclose(b, np.array(w)) for b, w in zip(before, layer.trainable_weights)]
        assert any(moved), "no trainable weight changed after a fit step"

    # 6. Mixed precision: same weights, float16 compute, finite and close outputs.
    if run_mixed_precision:
        mp_layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
        mp_model, _ = _functional_model(mp_layer, input_data, mask)
        mp_model.set_weights(model.get_weights())
        for w in mp_layer.weights:
            assert keras.backend.standardize_dtype(w.dtype) == "float32", (
                f"variable {w.path} is not float32 under mixed precision"
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
