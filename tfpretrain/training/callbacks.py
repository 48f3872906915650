"""What the training pipelines share: the ``--out`` folder rule, resumable fit, logs, curves.

`prepare_out_dir` decides what a training command may do with its ``--out``
folder (resume an interrupted run, refuse to overwrite a finished one unless
asked); `fit_resumable` trains with a checkpoint per epoch and, started again
after a kill, continues exactly where the checkpoint left off: the weights,
the optimizer's slots and step (hence the learning-rate schedule), and the
data position, so that it ends with the weights of an uninterrupted run.
"""

import csv
import json
import os
import shutil
import time
import warnings

import keras

CHECKPOINT_DIR = "checkpoint"  # keras.callbacks.BackupAndRestore's folder under --out
CHECKPOINT_WEIGHTS = "epoch-{epoch}.weights.h5"  # one file per epoch, see ResumableBackup
CHECKPOINT_METADATA = "training_metadata.json"
HISTORY_FILE = "history.csv"


class TrainingCurves(keras.callbacks.Callback):
    """Plots every logged metric per epoch into a PNG, from the CSV history.

    Reads the CSV written by `keras.callbacks.CSVLogger` (which appends across
    resumed runs), so the picture covers the whole training, not only the part
    since the last restart.

    Args:
        csv_path: str. The CSVLogger file.
        png_path: str. Where to write the figure.
    """

    def __init__(self, csv_path, png_path):
        super().__init__()
        self.csv_path = csv_path
        self.png_path = png_path

    def on_epoch_end(self, epoch, logs=None):
        plot_history_csv(self.csv_path, self.png_path)


def read_history_csv(path):
    """Returns ``{metric: [(epoch, value), ...]}``, keeping the last row of each epoch."""
    if not os.path.exists(path):
        return {}
    by_epoch = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            by_epoch[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            if key == "epoch" or value in ("", "NA", None):  # CSVLogger writes NA for metrics it lacks
                continue
            history.setdefault(key, []).append((epoch + 1, float(value)))
    return history


def plot_history_csv(csv_path, png_path):
    """Writes one panel per metric (train and ``val_`` curves together)."""
    # A bare Figure (no pyplot): it renders with Agg without switching the process-wide backend,
    # which would stop a notebook's inline plots.
    from matplotlib.figure import Figure

    history = read_history_csv(csv_path)
    names = sorted({k[4:] if k.startswith("val_") else k for k in history} - {"learning_rate"})
    if not names:
        return
    fig = Figure(figsize=(4 * len(names), 3.2))
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, style in ((name, "-o"), ("val_" + name, "--s")):
            if key in history:
                epochs, values = zip(*history[key])
                ax.plot(epochs, values, style, label=key, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)


def finished_run(out_dir):
    """The `ModelKind` of the model a finished run saved in ``out_dir``, or None (no folder, or no finished model).

    A run is finished when ``out_dir`` holds a model directory this project
    writes (`tfpretrain.models.model_dir.model_kind`): every command saves its
    model only once training has ended, and removes its checkpoint then.
    """
    from tfpretrain.models.model_dir import model_kind

    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir) or os.path.isdir(os.path.join(out_dir, CHECKPOINT_DIR)):
        return None
    try:
        return model_kind(out_dir)
    except ValueError:
        return None


def is_run_dir(out_dir):
    """Whether ``out_dir`` holds a training run of this project: a finished model, a checkpoint or a history."""
    out_dir = os.fspath(out_dir)
    return bool(finished_run(out_dir)) or any(
        os.path.exists(os.path.join(out_dir, name)) for name in (CHECKPOINT_DIR, HISTORY_FILE))


def prepare_out_dir(out_dir, overwrite=False):
    """Applies the ``--out`` rule of every training command before it writes anything.

    An interrupted run (a checkpoint, no finished model) is left as it is:
    the same command resumes it. A finished run is never trained over: without
    ``overwrite`` this raises, naming the folder; with ``overwrite`` the old
    run's folder is removed (model, checkpoint, ``history.csv``, logs, curves),
    so the new run starts afresh and its history holds only its own epochs.
    A folder that holds no run of this project is never removed.

    Args:
        out_dir: str or path-like. The command's ``--out``.
        overwrite: bool, default False. ``--overwrite``.

    Raises:
        FileExistsError: ``out_dir`` holds a finished run and ``overwrite`` is False.

    Example:

    >>> from tfpretrain.training.callbacks import prepare_out_dir
    >>> prepare_out_dir("runs/tagger", overwrite=True)  # doctest: +SKIP
    """
    out_dir = os.fspath(out_dir)
    kind = finished_run(out_dir)
    if kind and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a finished run ({kind.describe()}); it is not trained over. "
            "Give a new --out, or --overwrite to delete it and train afresh")
    if overwrite and os.path.isdir(out_dir) and is_run_dir(out_dir):
        shutil.rmtree(out_dir)


def checkpoint_weights(out_dir, epoch):
    """The weights file of the checkpoint after ``epoch`` epochs in ``out_dir``."""
    return os.path.join(os.fspath(out_dir), CHECKPOINT_DIR, CHECKPOINT_WEIGHTS.format(epoch=epoch))


def resumed_epoch(out_dir):
    """The epoch a run in ``out_dir`` resumes at: the epochs its checkpoint holds (0: no checkpoint)."""
    try:
        with open(os.path.join(os.fspath(out_dir), CHECKPOINT_DIR, CHECKPOINT_METADATA), encoding="utf-8") as f:
            epoch = int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return epoch if os.path.exists(checkpoint_weights(out_dir, epoch)) else 0


def _replace_atomically(path, write):
    """Calls ``write(partial)`` and then renames ``partial`` to ``path``: a kill leaves the old file or the new one."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, f"partial.{name}")  # same extension: Keras and NumPy check it
    write(partial)
    os.replace(partial, path)


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose checkpoint survives a kill at any instant, random state included.

    Keras writes its checkpoint in place: a run killed while the weights file
    is being written leaves a truncated file (``bad object header``) that no
    restart can open, and one killed between the weights and the epoch file
    resumes one epoch early with the later weights. Here each epoch's
    checkpoint goes to new files, ``epoch-N.weights.h5`` (weights and
    optimizer) and ``seed_states.N.npz`` (the state of the layers'
    `keras.random.SeedGenerator`\ s, i.e. the dropout masks, which Keras does
    not keep), each written under a temporary name and renamed; only then is
    ``training_metadata.json`` replaced, atomically, by one naming epoch N, and
    the files of older epochs deleted. Whenever the run dies, the metadata
    names an epoch whose files are complete.

    The weights are restored by `restore_checkpoint` (``fit_resumable`` calls
    it before training, to refuse a checkpoint of another run clearly); this
    callback restores the epoch and the random state.

    Args:
        backup_dir: str. The checkpoint folder (``OUT/checkpoint``).
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch")

    def _seed_states(self):
        return [v for v in self.model.variables if "seed_generator_state" in v.path]

    def _seed_path(self, epoch):
        return os.path.join(self.backup_dir, f"seed_states.{epoch}.npz")

    def _load_model(self):
        epoch = resumed_epoch(os.path.dirname(self.backup_dir))
        if not epoch:
            return
        self.model._initial_epoch = epoch
        if os.path.exists(self._seed_path(epoch)):
            import numpy as np

            with np.load(self._seed_path(epoch)) as saved:
                states = self._seed_states()
                if len(saved.files) == len(states):
                    for index, variable in enumerate(states):
                        variable.assign(saved[f"state_{index}"])

    def _save_model(self):
        import numpy as np

        os.makedirs(self.backup_dir, exist_ok=True)
        epoch = self._current_epoch
        states = {f"state_{index}": keras.ops.convert_to_numpy(variable.value)
                  for index, variable in enumerate(self._seed_states())}
        _replace_atomically(self._seed_path(epoch), lambda path: np.savez(path, **states))
        weights = checkpoint_weights(os.path.dirname(self.backup_dir), epoch)
        _replace_atomically(weights, lambda path: self.model.save_weights(path, overwrite=True))

        def write_metadata(path):
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"epoch": epoch, "batch": 0}, f)

        _replace_atomically(os.path.join(self.backup_dir, CHECKPOINT_METADATA), write_metadata)
        keep = {os.path.basename(self._seed_path(epoch)), os.path.basename(weights), CHECKPOINT_METADATA}
        for name in os.listdir(self.backup_dir):
            if name.startswith(("seed_states.", "epoch-")) and name not in keep:
                os.remove(os.path.join(self.backup_dir, name))


def training_callbacks(out_dir, verbose=True, before_checkpoint=()):
    """TensorBoard, CSV history, the curves PNG, ``before_checkpoint`` and checkpoint-and-resume under ``out_dir``.

    `ResumableBackup` saves at every epoch end; a run killed midway and started
    again with the same command resumes from the last completed epoch. It runs
    last, after the epoch's ``history.csv`` row is written: a run killed between
    the two then redoes the epoch and writes the row again (`read_history_csv`
    keeps the last row of an epoch), where the other order could lose the row
    of an epoch the checkpoint holds. ``before_checkpoint`` (`KeepBest`)
    runs before it for the same reason.
    """
    csv_path = os.path.join(out_dir, HISTORY_FILE)
    return [
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")),
        keras.callbacks.CSVLogger(csv_path, append=True),
        TrainingCurves(csv_path, os.path.join(out_dir, "training_curves.png")),
        *before_checkpoint,
        ResumableBackup(os.path.join(out_dir, CHECKPOINT_DIR)),
    ]


class KeepBest(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best ``monitor`` score and puts them back when training ends.

    A user expects a fine-tune to save its best model, not its last. After
    each epoch that improves on the best ``monitor`` (a ``logs`` key such as
    ``val_accuracy`` or ``val_entity_f1``; ties keep the earlier epoch), the
    weights go to ``best.weights.h5`` and then the epoch and score to
    ``best.json`` in ``directory`` (the run's checkpoint folder, so an
    interrupted run resumes knowing its best epoch; run it before
    `ResumableBackup`, as ``fit_resumable(keep_best=...)`` does). When training ends the
    best weights are loaded unless the last epoch was the best.
    ``best_epoch`` and ``best_score`` say which (epochs counted from 1).

    Args:
        directory: str. Where the best weights are kept.
        monitor: str. The ``logs`` key to maximise.

    Example:

    >>> keep = KeepBest("runs/sst2/checkpoint", "val_accuracy")
    >>> fit_resumable(model, train, dev, 3, "runs/sst2", keep_best=keep)  # doctest: +SKIP
    >>> keep.best_epoch, keep.best_score  # doctest: +SKIP
    (2, 0.871)
    """

    WEIGHTS, STATE = "best.weights.h5", "best.json"

    def __init__(self, directory, monitor):
        super().__init__()
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.best_epoch = None
        self.best_score = None
        self._last_epoch = None

    def on_train_begin(self, logs=None):
        try:
            with open(os.path.join(self.directory, self.STATE), encoding="utf-8") as f:
                state = json.load(f)
            self.best_epoch, self.best_score = int(state["epoch"]), float(state["score"])
        except (OSError, ValueError, KeyError, TypeError):
            self.best_epoch = self.best_score = None

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch + 1
        score = (logs or {}).get(self.monitor)
        if score is None:
            raise ValueError(f"KeepBest monitors {self.monitor!r}, which the epoch's logs lack "
                             f"({', '.join(sorted(logs or {}))}); pass validation data with that metric")
        score = float(score)
        if self.best_score is not None and not score > self.best_score:
            return
        os.makedirs(self.directory, exist_ok=True)
        _replace_atomically(os.path.join(self.directory, self.WEIGHTS), self.model.save_weights)

        def write_state(path):
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"epoch": epoch + 1, "score": score, "monitor": self.monitor}, f)

        _replace_atomically(os.path.join(self.directory, self.STATE), write_state)
        self.best_epoch, self.best_score = epoch + 1, score

    def on_train_end(self, logs=None):
        if self.best_epoch is not None and self.best_epoch != self._last_epoch:
            self.model.load_weights(os.path.join(self.directory, self.WEIGHTS))


def build_optimizer(model):
    """Builds ``model``'s optimizer on the variables its train step updates, if it is not built yet.

    Keras' TensorFlow train step updates ``model.trainable_weights``; left
    to itself, `keras.callbacks.BackupAndRestore` builds the optimizer on
    ``model.trainable_variables`` before restoring. The two differ for a model
    that leaves some weights out of training (`tfpretrain.models.bert.BertMaskedLM`
    leaves out the pooler), and then the saved slots do not fit and Keras
    skips restoring the optimizer. Built here, the optimizer holds the same
    variables when the checkpoint is saved and when it is restored.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_weights)


def restore_checkpoint(model, out_dir):
    """Loads the checkpoint in ``out_dir`` into ``model`` (weights and optimizer), or says it is another run's.

    Raises:
        FileExistsError: the checkpoint's weights or optimizer slots do not
            fit ``model`` (a different command, preset or data wrote it); the
            message says how to proceed.
    """
    path = checkpoint_weights(out_dir, resumed_epoch(out_dir))
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError) as error:
            problem = str(error).strip().splitlines()[0][:200]
    skipped = [str(w.message).strip() for w in caught if "loading" in str(w.message) or "Skipping" in str(w.message)]
    if problem is None and skipped:
        problem = skipped[0].splitlines()[0][:200]
    if problem is not None:
        raise FileExistsError(
            f"{out_dir} holds the checkpoint of a different run (its saved weights do not fit this model: "
            f"{problem}). Give a new --out, or --overwrite to delete that run and train afresh") from None


def data_at_epoch(train, epoch, steps_per_epoch=None):
    """``train`` positioned where an uninterrupted ``fit`` would read it at the start of ``epoch``.

    Without ``steps_per_epoch``, Keras starts a new iterator over ``train``
    every epoch, and a seeded ``shuffle`` reshuffles at each new iterator
    (each draws the next seed): the epochs already trained are read through
    once more (data only, no training), so that the next iterator shuffles as
    epoch ``epoch`` did. Keras (3.15, ``EpochIterator._enumerate_iterator``)
    also starts one iterator it never reads at the end of each epoch over a
    dataset of known length; that one is started here too, or the resumed
    epochs would take the orders of the skipped iterators (a test in
    ``tests/training/test_resume.py`` checks this against ``fit``).
    With ``steps_per_epoch`` (a repeating stream) Keras keeps one iterator
    across epochs: the batches already trained are skipped (read and dropped,
    so random masking and shuffling advance as they did). A finite dataset
    of known length read ``steps_per_epoch`` at a time is refused (no
    command trains so).
    """
    if not epoch:
        return train
    if steps_per_epoch:
        if int(train.cardinality()) >= 0:  # known and finite (a stream's is unknown, a repeated one's infinite)
            raise ValueError("steps_per_epoch is for a repeating dataset here: resuming a finite one read "
                             "in pieces would not see the batches an uninterrupted run sees")
        return train.skip(epoch * steps_per_epoch)
    known_length = int(train.cardinality()) >= 0
    for _ in range(epoch):
        for _ in train:
            pass
        if known_length:
            iter(train)  # the iterator Keras starts and drops at the end of the epoch
    return train


def fit_resumable(model, train, validation, epochs, out_dir, verbose=1, log=print, steps_per_epoch=None,
                  callbacks=(), keep_best=None):
    """``model.fit`` with `training_callbacks`; resumes exactly when ``out_dir`` holds a checkpoint.

    A run killed after an epoch's checkpoint and started again with the same
    arguments ends with the weights an uninterrupted run ends with: the
    checkpoint restores the weights, the optimizer's slots and step (the
    learning-rate schedule continues), Keras' epoch counter, and
    `data_at_epoch` puts the data where the killed run left it. A checkpoint
    that does not fit ``model`` is refused (`restore_checkpoint`). Without a
    checkpoint the run starts afresh and a stale ``history.csv`` (of a run
    killed after training, before it saved its model) is removed, so the
    history holds each epoch once.

    ``steps_per_epoch`` is needed when ``train`` repeats forever (a streamed corpus).
    ``callbacks`` run after the standard ones (e.g. `GradualUnfreezing`);
    ``keep_best``, a `KeepBest`, runs before the checkpoint (`training_callbacks`).
    ``model`` must be built and compiled; ``train``'s shuffling must be
    seeded (the pipelines pass ``seed``).

    Returns ``(history, seconds)``: the wall-clock time of the training
    steps of the epochs this call ran (validation and the end-of-epoch
    callbacks left out, so that examples per second compare with a plain
    training loop).

    Example:

    >>> from tfpretrain.training import fit_resumable
    >>> history, seconds = fit_resumable(model, train, dev, epochs=3, out_dir="runs/x")  # doctest: +SKIP
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    build_optimizer(model)
    epoch = resumed_epoch(out_dir)
    if epoch:
        log(f"Resuming from the checkpoint in {os.path.join(out_dir, CHECKPOINT_DIR)} (after epoch {epoch})")
        restore_checkpoint(model, out_dir)
        train = data_at_epoch(train, epoch, steps_per_epoch)
    elif os.path.exists(os.path.join(out_dir, HISTORY_FILE)):
        os.remove(os.path.join(out_dir, HISTORY_FILE))
    clock = _TrainingClock()
    with warnings.catch_warnings():
        # A streamed corpus has no known length: Keras learns it in the first epoch and warns.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=verbose,
                            steps_per_epoch=steps_per_epoch,
                            shuffle=False,  # the tf.data pipelines shuffle themselves
                            callbacks=[clock] + training_callbacks(
                                out_dir, before_checkpoint=[keep_best] if keep_best is not None else [])
                            + list(callbacks))
    return history, clock.seconds


class _TrainingClock(keras.callbacks.Callback):
    """Seconds spent in training steps: from each epoch's start to its validation (or its end)."""

    def __init__(self):
        super().__init__()
        self.seconds, self._started = 0.0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def _stop(self):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()
