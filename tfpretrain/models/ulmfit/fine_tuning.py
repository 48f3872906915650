"""ULMFiT's optimiser: Adam (beta1 0.7, beta2 0.99) under the slanted triangular schedule, with discriminative rates.

`ulmfit_optimizer` builds it over the `layer_groups` of a language model or
classifier (`language_model_groups` regroups a language model's layers for
fine-tuning); the learning-rate constants are the ``tfpretrain ulmfit``
defaults.

Example:

>>> from tfpretrain.models.ulmfit import layer_groups, ulmfit_optimizer
>>> optimizer = ulmfit_optimizer(layer_groups(classifier), 0.01, total_steps=600)
>>> classifier.compile(optimizer=optimizer, loss=...)

References:
    Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
    Classification (sections 3.2 and 3.3).
"""

import keras

from tfpretrain.training.discriminative import DEFAULT_DECAY, discriminative_optimizer
from tfpretrain.training.schedules import SlantedTriangularLR

SCHEDULES = ("slanted", "constant")
ADAM_BETAS = (0.7, 0.99)  # the paper: "Adam with beta1 = 0.7 instead of the default 0.9 and beta2 = 0.99"
# Peak learning rates. Classifier: the paper's 0.01. Language models: 0.01 too, above the paper's 0.004 for LM
# fine-tuning: with EWT-sized general corpora most domain words are new (mean embedding) and must be learnt in
# stage 2. Measured on EWT train (small preset, 3 epochs): held-out perplexity 229 at 0.01, 340 at 0.003.
GENERAL_LM_LEARNING_RATE, DOMAIN_LM_LEARNING_RATE, CLASSIFIER_LEARNING_RATE = 1e-2, 1e-2, 1e-2


def check_schedule(schedule):
    """Raises a ValueError unless ``schedule`` is one of `SCHEDULES`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def _adam(learning_rate):
    return keras.optimizers.Adam(learning_rate, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1])


def ulmfit_optimizer(groups, learning_rate, total_steps, schedule="slanted", discriminative=True,
                     decay=DEFAULT_DECAY):
    """Adam (beta1 0.7, beta2 0.99) under the chosen schedule; with ``discriminative`` one rate per layer group.

    Args:
        groups: `layer_groups` (bottom first); used with ``discriminative``.
        learning_rate: float. The peak rate of the top group.
        total_steps: int. The length of the slanted triangular schedule.
        schedule: "slanted" (`SlantedTriangularLR`) or "constant".
        discriminative: bool. Group ``i`` from the top learns at
            ``learning_rate / decay**i`` (`discriminative_optimizer`).
        decay: float, default 2.6.
    """
    check_schedule(schedule)
    rate = SlantedTriangularLR(learning_rate, total_steps) if schedule == "slanted" else float(learning_rate)
    if discriminative:
        return discriminative_optimizer(_adam, groups, rate, decay)
    return _adam(rate)


def language_model_groups(groups):
    """LM fine-tuning's groups: the embedding, tied to the output layer, moves up to the head's (top) group.

    As fastai's ``awd_lstm_lm_split`` (ULMFiT's reference code): the top rate
    lets the rows of the domain's new words, which all start at the mean
    embedding, move apart; at ``rate / decay**num_layers`` they barely would.
    The classifier keeps the embedding at the bottom.
    """
    return groups[1:-1] + [groups[0] + groups[-1]]
