"""SlantedTriangularLR against Howard & Ruder's eq. (3), worked by hand and in plain Python."""

import math

import keras
import numpy as np
import pytest

from tfpretrain.training.schedules import SlantedTriangularLR


def paper_stlr(t, total_steps, max_lr, cut_frac=0.1, ratio=32):
    """Eq. (3) of the paper, literally, in Python floats (the oracle).

    Where ``T * cut_frac`` is not a whole number the paper's decay reaches ``p = 0``
    before ``T`` and would go on below it (to negative rates for long enough
    runs); the schedule stops at ``p = 0``, and so does the oracle.
    """
    cut = math.floor(total_steps * cut_frac)
    if t < cut:
        p = t / cut
    else:
        p = max(0.0, 1 - (t - cut) / (cut * (1 / cut_frac - 1)))
    return max_lr * (1 + p * (ratio - 1)) / ratio


def test_values_worked_by_hand():
    # T = 1000, cut_frac = 0.1 -> cut = 100; eta_max = 0.01, ratio = 32.
    schedule = SlantedTriangularLR(0.01, total_steps=1000, cut_frac=0.1, ratio=32)
    expected = {
        0: 0.01 / 32,  # p = 0: the lowest rate
        50: 0.01 * (1 + 0.5 * 31) / 32,  # p = 0.5 halfway up
        100: 0.01,  # p = 1 at the cut
        550: 0.01 * (1 + 0.5 * 31) / 32,  # p = 1 - 450 / 900 = 0.5 halfway down
        1000: 0.01 / 32,  # back to the lowest at T
    }
    for step, rate in expected.items():
        assert float(schedule(step)) == pytest.approx(rate, rel=1e-6), step


@pytest.mark.parametrize("total_steps,cut_frac,ratio", [(1000, 0.1, 32), (37, 0.2, 10), (250, 0.5, 4)])
def test_matches_the_paper_formula_at_every_step(total_steps, cut_frac, ratio):
    schedule = SlantedTriangularLR(2e-3, total_steps, cut_frac=cut_frac, ratio=ratio)
    steps = np.arange(total_steps + 1)
    got = keras.ops.convert_to_numpy(schedule(steps))  # vectorised over a tensor of steps
    want = [paper_stlr(int(t), total_steps, 2e-3, cut_frac, ratio) for t in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert int(np.argmax(got)) == math.floor(total_steps * cut_frac)


def test_after_the_end_and_very_short_runs():
    schedule = SlantedTriangularLR(0.01, total_steps=100)
    assert float(schedule(5000)) == pytest.approx(0.01 / 32)  # clipped, never negative
    short = SlantedTriangularLR(0.01, total_steps=5)  # 5 * 0.1 < 1: a one-step rise
    assert float(short(0)) == pytest.approx(0.01 / 32)
    assert float(short(1)) == pytest.approx(0.01)
    assert float(short(3)) < float(short(2)) < 0.01


def test_serialization_round_trip_inside_an_optimizer():
    schedule = SlantedTriangularLR(3e-3, total_steps=77, cut_frac=0.2, ratio=16)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, SlantedTriangularLR)
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(keras.optimizers.Adam(schedule)))
    inner = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    for step in (0, 10, 15, 40, 77):
        assert float(inner(step)) == pytest.approx(float(schedule(step)))


def test_drives_fit_step_by_step():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = SlantedTriangularLR(0.1, total_steps=20)
    model.compile(keras.optimizers.SGD(schedule), "mse")
    rates = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    x = np.ones((20, 2), "float32")
    model.fit(x, x[:, :1], batch_size=1, epochs=1, verbose=0, shuffle=False, callbacks=[Record()])
    np.testing.assert_allclose(rates, [paper_stlr(t, 20, 0.1) for t in range(20)], rtol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    ({"total_steps": 0}, "total_steps"), ({"total_steps": 10, "cut_frac": 1.0}, "cut_frac"),
    ({"total_steps": 10, "ratio": 0.5}, "ratio"),
])
def test_bad_arguments_say_what_is_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SlantedTriangularLR(0.01, **kwargs)
