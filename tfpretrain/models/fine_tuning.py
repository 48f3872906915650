"""Fine-tuning a pretrained transformer with a task head: layer groups, one rate per group, the schedule.

A pretrained encoder (BERT) or decoder (GPT) and a freshly initialised head
should not learn at one rate: at the encoder's 5e-5 a task head and a CRF's
transition scores barely move in a few hundred steps, and the model
underfits. `fine_tuning_optimizer` gives the head and the CRF their own
peak rates (`HEAD_LEARNING_RATE`, `CRF_LEARNING_RATE`) under one schedule,
and can apply ULMFiT's discriminative rates to the encoder's groups.
`layer_groups` (embeddings, each block, head) are also the groups that
`tfpretrain.training.GradualUnfreezing` unfreezes one per epoch, top first.

The optimizer is BERT's AdamW (`tfpretrain.training.schedules.bert_adamw`)
per group, driven by `tfpretrain.training.multi_rate_optimizer`: one
implementation shared with ULMFiT's LSTM classifiers.

Example:

>>> model = build_token_tagger(encoder, tags, crf=True, constraint="BIO")
>>> optimizer = fine_tuning_optimizer(model, encoder, 5e-5, total_steps=339)
>>> [round(rate, 6) for rate in optimizer.group_learning_rates()]  # CRF, head, encoder blocks ...
[0.0, 0.0, 0.0, ...]

References:
    Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
    Classification (discriminative rates, slanted triangular schedule,
    gradual unfreezing). Sun et al. (2019). How to Fine-Tune BERT for Text
    Classification? (layer-wise decreasing rates for BERT).
"""

import re

from tfpretrain.layers.crf import CRF
from tfpretrain.training.discriminative import multi_rate_optimizer
from tfpretrain.training.schedules import LinearWarmupDecay, SlantedTriangularLR, bert_adamw

SCHEDULES = ("linear", "slanted")
# Peak rates of the task head and the CRF, chosen by measurement (README, "Fine-tuning a real checkpoint").
HEAD_LEARNING_RATE = 1e-3
CRF_LEARNING_RATE = 1e-2
WARMUP_FRACTION = 0.1

_BLOCK = re.compile(r"transformer_layer_(\d+)$")
_HEAD_OF_ENCODER = ("pooler",)  # trained only by heads that read [CLS]: grouped with the head
_TOP_OF_ENCODER = ("final_layer_norm",)  # pre-LN encoders' last norm: grouped with the top block


def check_schedule(schedule):
    """Raises a ValueError unless ``schedule`` is one of `SCHEDULES`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def layer_groups(model, encoder):
    """The layer groups of a fine-tuned task model, bottom first: embeddings, each block, head.

    Args:
        model: the task model (`tfpretrain.models.task_model.build_task_model`).
        encoder: its `BertEncoder` or `GptDecoder`.

    Returns:
        A list of lists of layers: the encoder's embedding layers, then each
        ``transformer_layer_i`` (the last with a pre-LN ``final_layer_norm``),
        then the head: the pooler and the model's own layers (CRF included).
    """
    blocks, embeddings, top, head = {}, [], [], []
    for layer in encoder.layers:
        if not layer.weights:
            continue
        match = _BLOCK.match(layer.name)
        if match:
            blocks[int(match.group(1))] = layer
        elif layer.name in _HEAD_OF_ENCODER:
            head.append(layer)
        elif layer.name in _TOP_OF_ENCODER:
            top.append(layer)
        else:
            embeddings.append(layer)
    if not blocks:
        raise ValueError(f"{encoder.name} has no transformer_layer_<i> blocks; layer_groups needs a "
                         "BertEncoder or GptDecoder")
    groups = [embeddings] + [[blocks[i]] for i in sorted(blocks)]
    groups[-1] += top
    head += [layer for layer in model.layers if layer is not encoder and layer.weights]
    return groups + [head]


def fine_tuning_optimizer(model, encoder, learning_rate, total_steps, head_learning_rate=HEAD_LEARNING_RATE,
                          crf_learning_rate=CRF_LEARNING_RATE, schedule="linear", warmup_fraction=WARMUP_FRACTION,
                          decay=1.0):
    """AdamW with one peak rate for the encoder, one for the head and one for a CRF, under one schedule.

    Args:
        model, encoder: the task model and its encoder (`layer_groups`).
        learning_rate: float. The encoder's peak rate (its top block's, with ``decay``).
        total_steps: int. Training steps of the whole run.
        head_learning_rate: float or None. The head's peak rate (None: ``learning_rate``).
        crf_learning_rate: float or None. A CRF layer's peak rate (None: the head's).
        schedule: "linear" (BERT's: linear warm-up over ``warmup_fraction``
            of the steps, then linear decay to 0, `LinearWarmupDecay`) or
            "slanted" (ULMFiT's `SlantedTriangularLR`, rising over 10% of the
            steps, ratio 32).
        warmup_fraction: float in [0, 1): "linear" only.
        decay: float >= 1. Discriminative fine-tuning: embeddings and block
            ``i`` learn at ``learning_rate / decay**depth``, depth 0 for the
            top block (1: every encoder group at ``learning_rate``).

    Returns:
        A `tfpretrain.training.DiscriminativeOptimizer`.
    """
    check_schedule(schedule)
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    if decay < 1:
        raise ValueError(f"decay must be at least 1 (lower layers learn more slowly), got {decay}")
    rates = {"learning_rate": learning_rate, "head_learning_rate": head_learning_rate,
             "crf_learning_rate": crf_learning_rate}
    bad = {name: rate for name, rate in rates.items() if rate is not None and not float(rate) > 0}
    if bad:
        raise ValueError(f"learning rates must be positive: {bad}")
    head_learning_rate = learning_rate if head_learning_rate is None else head_learning_rate
    crf_learning_rate = head_learning_rate if crf_learning_rate is None else crf_learning_rate
    groups = layer_groups(model, encoder)
    encoder_groups, head = groups[:-1], groups[-1]
    crf = [layer for layer in head if isinstance(layer, CRF)]
    head = [layer for layer in head if not isinstance(layer, CRF)]
    rate_groups = encoder_groups + [head] + ([crf] if crf else [])
    factors = [1.0 / decay**depth for depth in reversed(range(len(encoder_groups)))]
    factors += [head_learning_rate / learning_rate] + ([crf_learning_rate / learning_rate] if crf else [])
    if schedule == "slanted":
        rate = SlantedTriangularLR(learning_rate, max(1, int(total_steps)))
    else:
        total_steps = max(1, int(total_steps))
        rate = LinearWarmupDecay(learning_rate, total_steps, int(warmup_fraction * total_steps))
    return multi_rate_optimizer(bert_adamw, rate_groups, factors, rate)


__all__ = ["CRF_LEARNING_RATE", "HEAD_LEARNING_RATE", "SCHEDULES", "WARMUP_FRACTION", "check_schedule",
           "fine_tuning_optimizer", "layer_groups"]
