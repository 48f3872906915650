"""Discriminative fine-tuning: a lower learning rate for each lower group of layers (ULMFiT).

Built on `keras.optimizers.MultiOptimizer` (one inner optimizer per layer group,
so each group keeps its own Adam moments and step count, as PyTorch parameter
groups do). Two things `MultiOptimizer` does not do are added here:

- a step whose gradients cover only some of the variables (gradual
  unfreezing: frozen layers send no gradients) — `MultiOptimizer.apply`
  insists on one gradient per variable it was built with;
- one learning-rate schedule for all groups, read at the wrapper's global
  step and scaled per group. An inner optimizer's own step count stops while
  its group is frozen, so a schedule inside it would fall behind.

Checkpoints (`keras.callbacks.BackupAndRestore`, ``model.save_weights``) hold
every inner optimizer's variables; mixed precision wraps the whole optimizer in
a `keras.optimizers.LossScaleOptimizer`, as ``compile`` does by itself.
"""

import re

import keras
from keras import ops

DEFAULT_DECAY = 2.6  # Howard & Ruder: eta^(l-1) = eta^l / 2.6


@keras.saving.register_keras_serializable(package="tfpretrain")
class DiscriminativeOptimizer(keras.optimizers.MultiOptimizer):
    """A `MultiOptimizer` whose inner optimizers run one shared schedule, each scaled by a factor.

    At every step the wrapper computes ``learning_rate(iterations)`` (a float or
    a `LearningRateSchedule`, evaluated at the wrapper's own step count) and
    sets each inner optimizer's rate to it times that optimizer's factor
    before applying its gradients. Variables that receive no gradient in a
    step (frozen layers) are simply skipped. Most users want
    `discriminative_optimizer`, which builds this from layer groups.

    Args:
        optimizer_map: `keras.optimizers.OptimizerMap`. Variable path (or
            regex) -> inner optimizer; each inner optimizer must have a float
            learning rate (it is overwritten every step).
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
            The rate of a factor-1 group.
        multipliers: dict. ``optimizer_map`` key -> factor; an inner optimizer
            with no factor (the map's default optimizer, unless it is also
            under a key) gets 1.
        loss_scale_factor, name: as `keras.optimizers.MultiOptimizer`.

    Example:

    >>> optimizer_map = keras.optimizers.OptimizerMap(keras.optimizers.SGD(0.1))
    >>> optimizer_map["dense/.*"] = keras.optimizers.SGD(0.1)
    >>> optimizer = DiscriminativeOptimizer(optimizer_map, 0.1, {"dense/.*": 1 / 2.6})

    References:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018, section 3.2 (discriminative fine-tuning).
    """

    def __init__(self, optimizer_map, learning_rate, multipliers=None, loss_scale_factor=None, name=None):
        super().__init__(optimizer_map, loss_scale_factor=loss_scale_factor, name=name)
        multipliers = dict(multipliers or {})
        unknown = sorted(set(multipliers) - set(optimizer_map))
        if unknown:
            raise ValueError(f"multipliers has keys that optimizer_map lacks: {unknown}; "
                             f"use the optimizer_map keys ({sorted(optimizer_map)})")
        for optimizer in self.optimizers:
            if not isinstance(optimizer.learning_rate, keras.Variable):
                raise ValueError(f"inner optimizer {optimizer.name!r} has a learning-rate schedule (or a callable); "
                                 "give it a float rate and pass the schedule as learning_rate= here (one "
                                 "schedule for all groups, scaled by their multipliers)")
        self._base_learning_rate = learning_rate
        self.multipliers = multipliers
        self._factors = []  # one per inner optimizer, in self.optimizers order
        for optimizer in self.optimizers:
            keys = [key for key, value in optimizer_map.items() if value is optimizer]
            factors = {float(multipliers.get(key, 1.0)) for key in keys} or {1.0}
            if len(factors) > 1:
                raise ValueError(f"one inner optimizer is under keys {keys} with different multipliers "
                                 f"{sorted(factors)}; give each group its own optimizer")
            self._factors.append(factors.pop())

    @property
    def learning_rate(self):
        """The current rate of a factor-1 group (the top group)."""
        if isinstance(self._base_learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            return self._base_learning_rate(self.iterations)
        return self._base_learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError("the learning rate of a DiscriminativeOptimizer is fixed at construction "
                             "(learning_rate=, a float or a schedule)")

    def group_learning_rates(self):
        """The current learning rate of each inner optimizer, in `optimizers` order.

        `discriminative_optimizer` makes them top group first: ``[rate, rate / decay, ...]``.
        """
        base = ops.convert_to_numpy(self.learning_rate)
        return [float(base) * factor for factor in self._factors]

    def apply(self, grads, trainable_variables=None):
        if len(grads) == 0:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError("call optimizer.build(variables) before apply(grads) without variables")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
            self.built = True
        grouped = [[] for _ in self.optimizers]
        grads = [_summed_rows(grad) for grad in grads]
        for grad, variable in zip(grads, trainable_variables):
            index = self._var_to_optimizer_idx.get(self._var_key(variable))
            if index is None:
                raise ValueError(
                    f"variable {variable.path!r} is not one the optimizer was built with. Build the optimizer "
                    "while every layer is trainable (fit does so when no layer is frozen before it starts; "
                    "GradualUnfreezing freezes layers itself), or compile again after changing trainable flags")
            grouped[index].append((grad, variable))
        base = ops.cast(self.learning_rate, "float32")
        for optimizer, factor, pairs in zip(self.optimizers, self._factors, grouped):
            if pairs:
                optimizer.learning_rate = base * factor
                optimizer.apply([grad for grad, _ in pairs], [variable for _, variable in pairs])
        self._iterations.assign_add(1)

    def get_config(self):
        config = super().get_config()
        learning_rate = self._base_learning_rate
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            learning_rate = keras.optimizers.schedules.serialize(learning_rate)
        # The map's default optimizer is usually also the top group's: say so, or it would come
        # back as a separate copy (one more inner optimizer than the checkpoints hold).
        default = self._optimizer_map.default_optimizer
        default_key = next((key for key in self._optimizer_map if self._optimizer_map[key] is default), None)
        config.update(learning_rate=learning_rate, multipliers=dict(self.multipliers), default_key=default_key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config["learning_rate"], dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects)
        optimizer_map = keras.saving.deserialize_keras_object(config["optimizer_map"], custom_objects=custom_objects)
        default_key = config.pop("default_key", None)
        if default_key is not None:
            optimizer_map = keras.optimizers.OptimizerMap(
                optimizer_map[default_key], {key: optimizer_map[key] for key in optimizer_map})
        config["optimizer_map"] = optimizer_map
        return cls(**config)


def _summed_rows(grad):
    """An embedding's sparse gradient with each row once (the sum of its repeats), as a dense gradient has it.

    Keras' optimizers scatter sparse gradients row by row, so a token seen
    ``k`` times in a batch would enter Adam's second moment as ``k`` squared
    parts rather than one squared sum, and move by up to ``sqrt(k)`` times
    the learning rate.
    """
    import tensorflow as tf

    if not isinstance(grad, tf.IndexedSlices):
        return grad
    rows, position = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, grad.dense_shape)


def group_variable_pattern(layers):
    """A regex that fully matches the paths of the layers' variables and nothing else.

    Args:
        layers: list of built `keras.layers.Layer`.

    Example:

    >>> dense = keras.layers.Dense(2, name="head")
    >>> dense.build((None, 3))
    >>> group_variable_pattern([dense])
    'head/kernel|head/bias'
    """
    paths = [variable.path for layer in layers for variable in layer.weights]
    return "|".join(re.escape(path) for path in paths)


def discriminative_optimizer(optimizer_factory, layer_groups, learning_rate, decay=DEFAULT_DECAY):
    """An optimizer that trains group ``i`` from the top at ``learning_rate / decay**i``.

    One inner optimizer per group (from ``optimizer_factory``), all run by one
    schedule (`DiscriminativeOptimizer`). Variables outside every group train
    with the top group's optimizer at the full rate. Frozen layers are
    skipped, so this works with `GradualUnfreezing`; with
    ``decay=1`` every group trains at the same rate.

    Args:
        optimizer_factory: callable ``float -> keras.optimizers.Optimizer``,
            e.g. ``lambda rate: keras.optimizers.Adam(rate, beta_1=0.7, beta_2=0.99)``;
            called once per group. Gradient clipping (``clipnorm``) then
            applies per group.
        layer_groups: list of lists of built layers, bottom (embedding) first,
            head last — e.g. `tfpretrain.models.ulmfit.layer_groups(model)`.
        learning_rate: float or `LearningRateSchedule`: the top group's rate.
        decay: float >= 1. The factor between adjacent groups (2.6 in the paper).

    Returns:
        A `DiscriminativeOptimizer`.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> optimizer = discriminative_optimizer(keras.optimizers.SGD, [[model.layers[0]], [model.layers[1]]], 0.1)
    >>> [round(rate, 4) for rate in optimizer.group_learning_rates()]  # top group first
    [0.1, 0.0385]

    References:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018, section 3.2, eq. (2) and "we found it to
        work well to ... use eta^(l-1) = eta^l / 2.6".
    """
    if decay < 1:
        raise ValueError(f"decay must be at least 1 (lower groups learn more slowly; the paper uses 2.6), "
                         f"got {decay}")
    groups = [list(group) for group in layer_groups]
    return multi_rate_optimizer(optimizer_factory, groups, [1.0 / decay**depth for depth in
                                                           reversed(range(len(groups)))], learning_rate)


def multi_rate_optimizer(optimizer_factory, layer_groups, factors, learning_rate):
    """An optimizer that trains each group of layers at ``learning_rate`` times its own factor.

    The general form of `discriminative_optimizer`: one inner optimizer per
    group, all run by one schedule (`DiscriminativeOptimizer`). Fine-tuning
    a pretrained encoder uses it to give the task head (and a CRF) rates
    10-100x the encoder's (`tfpretrain.models.fine_tuning.fine_tuning_optimizer`).
    Variables outside every group train with the optimizer of the last
    factor-1 group (or the last group). Frozen layers are skipped.

    Args:
        optimizer_factory: callable ``float -> keras.optimizers.Optimizer``,
            called once per group.
        layer_groups: list of lists of built layers (weightless layers are ignored).
        factors: one positive float per group.
        learning_rate: float or `LearningRateSchedule`: the rate of a factor-1 group.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> optimizer = multi_rate_optimizer(keras.optimizers.SGD, [[model.layers[0]], [model.layers[1]]], [1.0, 20.0], 0.01)
    >>> [round(rate, 4) for rate in optimizer.group_learning_rates()]  # top group first
    [0.2, 0.01]
    """
    groups = [list(group) for group in layer_groups]
    factors = [float(factor) for factor in factors]
    if not groups:
        raise ValueError("layer_groups is empty; pass a list of lists of layers, bottom group first")
    if len(factors) != len(groups) or any(factor <= 0 for factor in factors):
        raise ValueError(f"need one positive factor per layer group; got {len(factors)} factors {factors} "
                         f"for {len(groups)} groups")
    unbuilt = [layer.name for group in groups for layer in group if not layer.built]
    if unbuilt:
        raise ValueError(f"layers {unbuilt} are not built yet, so their variables are unknown; call the "
                         "model on a batch (or model.build) before making the optimizer")
    initial = learning_rate
    if isinstance(initial, keras.optimizers.schedules.LearningRateSchedule):
        initial = float(ops.convert_to_numpy(initial(0)))
    seen = {}
    patterns = []
    for index, group in enumerate(groups):
        for layer in group:
            for variable in layer.weights:
                if variable.path in seen and seen[variable.path] != index:
                    raise ValueError(f"variable {variable.path!r} is in two layer groups; each layer "
                                     "belongs to one group")
                seen[variable.path] = index
        patterns.append(group_variable_pattern(group))
    weighted = [i for i, pattern in enumerate(patterns) if pattern]  # a weightless group needs no optimizer
    if not weighted:
        raise ValueError("no layer group has weights to train")
    default = max((i for i in weighted if factors[i] == 1.0), default=weighted[-1])
    optimizers = {i: optimizer_factory(float(initial) * factors[i]) for i in weighted}
    optimizer_map = keras.optimizers.OptimizerMap(optimizers[default])
    multipliers = {}
    for i in reversed(weighted):  # top group first, as `group_learning_rates` lists them
        optimizer_map[patterns[i]] = optimizers[i]
        multipliers[patterns[i]] = factors[i]
    return DiscriminativeOptimizer(optimizer_map, learning_rate, multipliers)


__all__ = ["DEFAULT_DECAY", "DiscriminativeOptimizer", "discriminative_optimizer", "group_variable_pattern",
           "multi_rate_optimizer"]
