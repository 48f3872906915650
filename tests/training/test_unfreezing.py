"""GradualUnfreezing inside model.fit: flags epoch by epoch, frozen weights that stay put, resume."""

import os

import keras
import numpy as np
import pytest

from tfpretrain.training.discriminative import discriminative_optimizer
from tfpretrain.training.unfreezing import GradualUnfreezing

NAMES = ["embed", "lower", "upper", "head"]  # bottom first


def four_group_model():
    inputs = keras.Input((6,))
    hidden = inputs
    for name in NAMES[:-1]:
        hidden = keras.layers.Dense(8, activation="tanh", name=name)(hidden)
    hidden = keras.layers.BatchNormalization(name="head_norm")(hidden)
    outputs = keras.layers.Dense(2, name="head")(hidden)
    return keras.Model(inputs, outputs)


def groups_of(model):
    groups = [[model.get_layer(name)] for name in NAMES]
    groups[-1].insert(0, model.get_layer("head_norm"))
    return groups


def data(n=48):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, :1] > 0).astype("int32")[:, 0]


class Recorder(keras.callbacks.Callback):
    """Per epoch: each group's trainable flag at epoch begin, and its weights at begin and end."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups
        self.flags, self.begin, self.end = {}, {}, {}

    def weights(self):
        return [[keras.ops.convert_to_numpy(w).copy() for layer in group for w in layer.trainable_weights
                 or layer.weights] for group in self.groups]

    def on_epoch_begin(self, epoch, logs=None):
        self.flags[epoch] = [all(layer.trainable for layer in group) for group in self.groups]
        self.begin[epoch] = self.weights()

    def on_epoch_end(self, epoch, logs=None):
        self.end[epoch] = self.weights()


def moved(before, after):
    return [any(not np.array_equal(a, b) for a, b in zip(x, y)) for x, y in zip(before, after)]


def fit(model, epochs, callbacks, optimizer=None):
    model.compile(optimizer or keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data()
    return model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)


EXPECTED_FLAGS = {  # bottom first; one more group from the top each epoch
    0: [False, False, False, True],
    1: [False, False, True, True],
    2: [False, True, True, True],
    3: [True, True, True, True],
    4: [True, True, True, True],
}


@pytest.mark.parametrize("discriminative", [False, True])
def test_flags_epoch_by_epoch_and_frozen_weights_stay_put(discriminative):
    model = four_group_model()
    model(data()[0][:2])
    groups = groups_of(model)
    optimizer = discriminative_optimizer(keras.optimizers.Adam, groups, 0.01) if discriminative else None
    recorder = Recorder(groups)
    fit(model, 5, [GradualUnfreezing(groups), recorder], optimizer)
    assert recorder.flags == EXPECTED_FLAGS
    for epoch, flags in EXPECTED_FLAGS.items():
        # Exactly the trainable groups changed during the epoch; the frozen ones did not move at all.
        assert moved(recorder.begin[epoch], recorder.end[epoch]) == flags, epoch
    assert all(layer.trainable for group in groups for layer in group)  # restored after fit


def test_epochs_per_group_and_flag_helpers():
    callback = GradualUnfreezing([[1], [2], [3]], epochs_per_group=2)
    assert [callback.num_trainable_groups(epoch) for epoch in range(7)] == [1, 1, 2, 2, 3, 3, 3]
    assert callback.trainable_flags(2) == [False, True, True]


def test_resume_at_epoch_k_sets_the_flags_of_epoch_k(tmp_path):
    def run(backup, stop_after=None):
        keras.utils.set_random_seed(3)
        model = four_group_model()
        model(data()[0][:2])  # built before fit, as BackupAndRestore needs
        groups = groups_of(model)
        recorder = Recorder(groups)

        class Crash(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == stop_after:
                    raise RuntimeError("simulated crash")

        callbacks = [keras.callbacks.BackupAndRestore(backup), GradualUnfreezing(groups), recorder, Crash()]
        try:
            fit(model, 4, callbacks, discriminative_optimizer(keras.optimizers.Adam, groups, 0.01))
        except RuntimeError:
            pass
        return model, recorder

    _, first = run(os.path.join(tmp_path, "resumed"), stop_after=1)  # crashes after epoch 1's checkpoint
    assert sorted(first.flags) == [0, 1]
    resumed, second = run(os.path.join(tmp_path, "resumed"))
    assert sorted(second.flags) == [2, 3]  # resumed at epoch 2
    assert second.flags[2] == EXPECTED_FLAGS[2]
    assert moved(second.begin[2], second.end[2]) == EXPECTED_FLAGS[2]
    straight, _ = run(os.path.join(tmp_path, "straight"))  # the same training without a crash
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_a_layer_frozen_before_fit_is_an_error():
    model = four_group_model()
    model(data()[0][:2])
    groups = groups_of(model)
    model.get_layer("lower").trainable = False
    with pytest.raises(ValueError, match=r"found layers \['lower'\] frozen"):
        fit(model, 1, [GradualUnfreezing(groups)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="non-empty"):
        GradualUnfreezing([[]])
    with pytest.raises(ValueError, match="epochs_per_group"):
        GradualUnfreezing([[1]], epochs_per_group=0)
