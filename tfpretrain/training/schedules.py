"""Learning-rate schedules."""

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


def bert_optimizer(learning_rate, total_steps, warmup_fraction=0.1, weight_decay=0.01, clipnorm=1.0):
    """AdamW with `LinearWarmupDecay`, no decay on biases and layer norms, as BERT fine-tuning uses."""
    optimizer = keras.optimizers.AdamW(
        LinearWarmupDecay(learning_rate, total_steps, int(warmup_fraction * total_steps)),
        weight_decay=weight_decay, epsilon=1e-6, clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "layer_norm", "LayerNorm"])
    return optimizer
