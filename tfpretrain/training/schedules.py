"""Learning-rate schedules."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """BERT's schedule: linear warm-up from 0 to ``peak`` then linear decay to 0.

    Args:
        peak: float. The learning rate reached after warm-up.
        total_steps: int. Steps of the whole run; the rate is 0 from here on.
        warmup_steps: int. Steps of the warm-up (0: start at ``peak``).

    Example:

    >>> schedule = LinearWarmupDecay(5e-5, total_steps=1000, warmup_steps=100)
    >>> float(schedule(50)), float(schedule(100)), float(schedule(550))
    (2.5e-05, 5e-05, 2.5e-05)
    """

    def __init__(self, peak, total_steps, warmup_steps=0):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps; "
                             f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay = self.peak * (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        rate = ops.where(step < self.warmup_steps, warmup, decay)
        return ops.clip(rate, 0.0, self.peak)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def bert_adamw(learning_rate, weight_decay=0.01, clipnorm=1.0):
    """BERT's AdamW (epsilon 1e-6, each gradient clipped to norm ``clipnorm``), no decay on biases and layer norms.

    ``learning_rate``: a float or a `LearningRateSchedule`.
    """
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, epsilon=1e-6, clipnorm=clipnorm)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "layer_norm", "LayerNorm"])
    return optimizer


def bert_optimizer(learning_rate, total_steps, warmup_fraction=0.1, weight_decay=0.01, clipnorm=1.0):
    """`bert_adamw` with `LinearWarmupDecay`, as BERT pretraining and fine-tuning use (one rate for all weights)."""
    return bert_adamw(LinearWarmupDecay(learning_rate, total_steps, int(warmup_fraction * total_steps)),
                      weight_decay=weight_decay, clipnorm=clipnorm)


@keras.saving.register_keras_serializable(package="tfpretrain")
class SlantedTriangularLR(keras.optimizers.schedules.LearningRateSchedule):
    """ULMFiT's slanted triangular learning rate: a short linear rise, then a long linear decay.

    Howard & Ruder (2018), eq. (3), with ``T = total_steps`` and ``t`` the step::

        cut = floor(T * cut_frac)
        p   = t / cut                                    if t < cut
              1 - (t - cut) / (cut * (1 / cut_frac - 1)) otherwise
        lr  = max_lr * (1 + p * (ratio - 1)) / ratio

    The rate starts at ``max_lr / ratio``, reaches ``max_lr`` at step ``cut`` and
    returns to ``max_lr / ratio`` at step ``T``. ``p`` is clipped at 0, so the
    rate never falls below ``max_lr / ratio``: not after ``T``, and not in the
    last steps when ``T * cut_frac`` is not a whole number (the paper's decay
    then ends a little before ``T`` and would go on below, even to negative
    rates). When ``T * cut_frac < 1`` the rise takes one step.

    Args:
        max_lr: float. The peak learning rate (the paper's eta_max, 0.01).
        total_steps: int. ``T``, the number of training steps (epochs x
            updates per epoch).
        cut_frac: float in (0, 1). The fraction of steps spent rising (0.1).
        ratio: float >= 1. How much smaller the lowest rate is than
            ``max_lr`` (32).

    Example:

    >>> schedule = SlantedTriangularLR(0.01, total_steps=1000)
    >>> [round(float(schedule(t)), 8) for t in (0, 50, 100, 550, 1000)]
    [0.0003125, 0.00515625, 0.01, 0.00515625, 0.0003125]

    References:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018, section 3.2, eq. (3).
    """

    def __init__(self, max_lr, total_steps, cut_frac=0.1, ratio=32):
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        if not 0.0 < cut_frac < 1.0:
            raise ValueError(f"cut_frac must be in (0, 1) (the paper uses 0.1), got {cut_frac}")
        if ratio < 1:
            raise ValueError(f"ratio must be at least 1 (the paper uses 32), got {ratio}")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.cut_frac = float(cut_frac)
        self.ratio = float(ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        cut = float(max(1, math.floor(self.total_steps * self.cut_frac)))
        rising = step / cut
        falling = 1.0 - (step - cut) / (cut * (1.0 / self.cut_frac - 1.0))
        p = ops.clip(ops.where(step < cut, rising, falling), 0.0, 1.0)
        return self.max_lr * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "cut_frac": self.cut_frac,
                "ratio": self.ratio}
