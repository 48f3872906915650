"""Gradual unfreezing (ULMFiT): train the top layer group first, then one more group per epoch."""

import keras


class GradualUnfreezing(keras.callbacks.Callback):
    """Sets ``trainable`` so that epoch ``e`` trains the top ``1 + e // epochs_per_group`` groups.

    Epoch 0 trains only the top group (the classifier head), epoch 1 the top
    two, and so on until every group trains. The flags are set at the start
    of each epoch from the epoch number alone, so a run that
    `keras.callbacks.BackupAndRestore` resumes at epoch ``k`` freezes exactly
    what an uninterrupted run froze at epoch ``k``.

    Keras traces the train step once, reading the trainable variables then;
    whenever the flags change this callback makes ``fit`` trace it again
    (``model.make_train_function(force=True)``). The optimizer must know
    every variable from the start: the callback builds it when training
    begins, from the variables that are trainable then, so all layers of the
    groups must be trainable when ``fit`` starts (the callback checks). When training ends every group is
    trainable again.

    Frozen layers get no gradient and no update. (A frozen
    `keras.layers.BatchNormalization` also stops updating its statistics;
    ULMFiT's batch norms are in the head, which never freezes.)

    Args:
        layer_groups: list of lists of layers, bottom first, top (head) last
            — e.g. `tfpretrain.models.ulmfit.layer_groups(model)`.
        epochs_per_group: int. Epochs between unfreezing one group and the
            next (1 in the paper).

    Example:

    >>> groups = [[model.get_layer("embedding")], [model.get_layer("lstm")], [model.get_layer("head")]]
    >>> model.fit(data, epochs=3, callbacks=[GradualUnfreezing(groups)])  # doctest: +SKIP

    References:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification", ACL 2018, section 3.3 (gradual unfreezing).
    """

    def __init__(self, layer_groups, epochs_per_group=1):
        super().__init__()
        self.layer_groups = [list(group) for group in layer_groups]
        if not self.layer_groups or not all(self.layer_groups):
            raise ValueError("layer_groups must be a non-empty list of non-empty lists of layers, bottom first")
        if int(epochs_per_group) < 1:
            raise ValueError(f"epochs_per_group must be at least 1, got {epochs_per_group}")
        self.epochs_per_group = int(epochs_per_group)

    def num_trainable_groups(self, epoch):
        """How many groups, counted from the top, train in epoch ``epoch`` (0-based)."""
        return min(len(self.layer_groups), 1 + int(epoch) // self.epochs_per_group)

    def trainable_flags(self, epoch):
        """One bool per group (bottom first): whether it trains in epoch ``epoch``."""
        first_trainable = len(self.layer_groups) - self.num_trainable_groups(epoch)
        return [index >= first_trainable for index in range(len(self.layer_groups))]

    def _layers(self):
        return [layer for group in self.layer_groups for layer in group]

    def on_train_begin(self, logs=None):
        frozen = [layer.name for layer in self._layers() if not layer.trainable]
        if frozen:
            raise ValueError(
                f"GradualUnfreezing found layers {frozen} frozen when fit started; fit builds the optimizer "
                "only for variables that are trainable then, so they could never be unfrozen. Leave every "
                "layer of the groups trainable (the callback freezes them itself) and compile again")
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            # Without a distribution strategy Keras builds the optimizer when it first traces the
            # train step, which is after on_epoch_begin has frozen the lower groups: build it now.
            optimizer.build(self.model.trainable_variables)

    def on_epoch_begin(self, epoch, logs=None):
        if self._set_flags(self.trainable_flags(epoch)):
            self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        if self._set_flags([True] * len(self.layer_groups)):
            # The next fit must not reuse a train step traced with frozen layers.
            self.model.make_train_function(force=True)

    def _set_flags(self, flags):
        changed = False
        for group, trainable in zip(self.layer_groups, flags):
            for layer in group:
                if layer.trainable != trainable:
                    layer.trainable = trainable
                    changed = True
        return changed


__all__ = ["GradualUnfreezing"]
