"""Discriminative learning rates: per-group steps against the gradients, checkpoints, mixed precision."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.training.discriminative import (
    DiscriminativeOptimizer,
    discriminative_optimizer,
    group_variable_pattern,
)
from tfpretrain.training.schedules import SlantedTriangularLR

DECAY = 2.6


def three_layer_model(dtype=None):
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="tanh", name="bottom", dtype=dtype)(inputs)
    hidden = keras.layers.Dense(6, activation="tanh", name="middle", dtype=dtype)(hidden)
    outputs = keras.layers.Dense(1, name="top", dtype=dtype)(hidden)
    return keras.Model(inputs, outputs)


def groups_of(model):
    return [[model.get_layer("bottom")], [model.get_layer("middle")], [model.get_layer("top")]]


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def gradients(model, x, y):
    """d(mse)/d(variable) for every trainable variable, by GradientTape (the oracle)."""
    with tf.GradientTape() as tape:
        loss = keras.losses.mean_squared_error(y, model(x))
        loss = tf.reduce_mean(tf.cast(loss, "float32"))
    return {v.path: g.numpy() for v, g in zip(model.trainable_variables,
                                              tape.gradient(loss, model.trainable_variables))}


def snapshot(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def test_one_sgd_step_moves_each_group_by_its_rate():
    model = three_layer_model()
    x, y = data()
    optimizer = discriminative_optimizer(keras.optimizers.SGD, groups_of(model), 0.1, decay=DECAY)
    model.compile(optimizer, "mse")
    grads, before = gradients(model, x, y), snapshot(model)
    model.train_on_batch(x, y)
    after = snapshot(model)
    for depth, name in enumerate(["top", "middle", "bottom"]):
        for kind in ("kernel", "bias"):
            path = f"{name}/{kind}"
            step = after[path] - before[path]
            np.testing.assert_allclose(step, -0.1 / DECAY**depth * grads[path], rtol=1e-4, atol=2e-7,
                                       err_msg=path)
    # The effective rate (step / gradient) of adjacent groups differs by the decay.
    rates = []
    for name in ("bottom", "middle", "top"):
        grad = grads[f"{name}/kernel"]
        used = np.abs(grad) > 1e-4
        rates.append(np.median(-(after[f"{name}/kernel"] - before[f"{name}/kernel"])[used] / grad[used]))
    assert rates[2] == pytest.approx(0.1, rel=1e-3)
    assert rates[2] / rates[1] == pytest.approx(DECAY, rel=1e-3)
    assert rates[1] / rates[0] == pytest.approx(DECAY, rel=1e-3)
    assert optimizer.group_learning_rates() == pytest.approx([0.1, 0.1 / DECAY, 0.1 / DECAY**2])  # top first


def test_a_shared_schedule_is_read_at_the_global_step_while_a_group_is_frozen():
    model = three_layer_model()
    x, y = data()
    schedule = SlantedTriangularLR(0.05, total_steps=10, cut_frac=0.3)
    optimizer = discriminative_optimizer(keras.optimizers.SGD, groups_of(model), schedule, decay=DECAY)
    model.compile(optimizer, "mse")
    model.train_on_batch(x, y)  # builds the optimizer with every variable
    model.get_layer("bottom").trainable = False
    model.make_train_function(force=True)
    for step in range(1, 5):
        grads, before = gradients(model, x, y), snapshot(model)
        model.train_on_batch(x, y)
        after = snapshot(model)
        np.testing.assert_array_equal(after["bottom/kernel"], before["bottom/kernel"])  # frozen: no step
        for depth, name in enumerate(["top", "middle"]):
            rate = float(schedule(step)) / DECAY**depth
            np.testing.assert_allclose(after[f"{name}/kernel"] - before[f"{name}/kernel"],
                                       -rate * grads[f"{name}/kernel"], rtol=1e-4, atol=2e-7)
    assert int(optimizer.iterations) == 5
    assert float(optimizer.learning_rate) == pytest.approx(float(schedule(5)))


def test_group_rates_and_inner_optimizers():
    model = three_layer_model()
    optimizer = discriminative_optimizer(lambda rate: keras.optimizers.Adam(rate, beta_1=0.7, beta_2=0.99),
                                         groups_of(model), 0.01, decay=2.0)
    assert len(optimizer.optimizers) == 3
    assert sorted(optimizer.group_learning_rates()) == pytest.approx([0.0025, 0.005, 0.01])
    assert group_variable_pattern([model.get_layer("top")]) == "top/kernel|top/bias"
    flat = discriminative_optimizer(keras.optimizers.SGD, groups_of(model), 0.01, decay=1.0)
    assert flat.group_learning_rates() == pytest.approx([0.01] * 3)


def test_config_round_trip():
    model = three_layer_model()
    optimizer = discriminative_optimizer(keras.optimizers.Adam, groups_of(model),
                                         SlantedTriangularLR(0.01, 100), decay=DECAY)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, DiscriminativeOptimizer)
    assert len(restored.optimizers) == 3
    assert restored.multipliers == optimizer.multipliers
    assert sorted(restored.group_learning_rates()) == pytest.approx(sorted(optimizer.group_learning_rates()))


def run_fit(out_dir, epochs, stop_after=None, optimizer_factory=keras.optimizers.Adam):
    """Fits with BackupAndRestore; ``stop_after``: raise after that epoch's checkpoint (a crash)."""
    keras.utils.set_random_seed(7)
    model = three_layer_model()
    x, y = data(64)
    optimizer = discriminative_optimizer(optimizer_factory, groups_of(model),
                                         SlantedTriangularLR(0.02, epochs * 4), decay=DECAY)
    model.compile(optimizer, "mse")

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_after:
                raise RuntimeError("simulated crash")

    callbacks = [keras.callbacks.BackupAndRestore(os.path.join(out_dir, "checkpoint")), Crash()]
    try:
        history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    except RuntimeError:
        return None
    return model, history.epoch


def test_backup_and_restore_resumes_every_group_state(tmp_path):
    straight, epochs = run_fit(str(tmp_path / "straight"), epochs=3)
    assert epochs == [0, 1, 2]
    assert run_fit(str(tmp_path / "resumed"), epochs=3, stop_after=1) is None
    resumed, epochs = run_fit(str(tmp_path / "resumed"), epochs=3)  # a fresh model and optimizer
    assert epochs == [2]  # only the last epoch ran again
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 12
    for a, b in zip(straight.optimizer.optimizers, resumed.optimizer.optimizers):
        assert int(a.iterations) == int(b.iterations) == 12  # each group's own Adam step count
    for (path, a), b in zip(snapshot(straight).items(), snapshot(resumed).values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path)


def test_mixed_precision_wraps_in_a_loss_scale_optimizer():
    keras.config.set_dtype_policy("mixed_float16")
    model = three_layer_model()
    x, y = data()
    optimizer = discriminative_optimizer(keras.optimizers.SGD, groups_of(model), 0.1, decay=DECAY)
    model.compile(optimizer, "mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer is optimizer
    grads, before = gradients(model, x, y), snapshot(model)
    model.train_on_batch(x, y)
    after = snapshot(model)
    for depth, name in enumerate(["top", "middle", "bottom"]):
        path = f"{name}/kernel"
        assert after[path].dtype == np.float32
        np.testing.assert_allclose(after[path] - before[path], -0.1 / DECAY**depth * grads[path],
                                   rtol=2e-2, atol=2e-4, err_msg=path)


def test_errors_say_what_to_do():
    model = three_layer_model()
    with pytest.raises(ValueError, match="decay must be at least 1"):
        discriminative_optimizer(keras.optimizers.SGD, groups_of(model), 0.1, decay=0.5)
    with pytest.raises(ValueError, match="not built"):
        discriminative_optimizer(keras.optimizers.SGD, [[keras.layers.Dense(2)]], 0.1)
    with pytest.raises(ValueError, match="float rate"):
        discriminative_optimizer(lambda rate: keras.optimizers.SGD(SlantedTriangularLR(rate, 10)),
                                 groups_of(model), 0.1)
    with pytest.raises(ValueError, match="two layer groups"):
        discriminative_optimizer(keras.optimizers.SGD, [[model.get_layer("top")], [model.get_layer("top")]], 0.1)
    # A variable the optimizer was not built with: a clear error, not a KeyError inside the graph.
    model.get_layer("bottom").trainable = False
    optimizer = discriminative_optimizer(keras.optimizers.SGD, groups_of(model), 0.1)
    model.compile(optimizer, "mse")
    x, y = data()
    model.train_on_batch(x, y)
    model.get_layer("bottom").trainable = True
    model.make_train_function(force=True)
    with pytest.raises(ValueError, match="not one the optimizer was built with"):
        model.train_on_batch(x, y)
