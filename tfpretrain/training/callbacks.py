"""Callbacks the training pipelines share: resumable checkpoints, logs, curves."""

import csv
import os
import time
import warnings

import keras


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


def training_callbacks(out_dir, verbose=True):
    """Checkpoint-and-resume, TensorBoard, CSV history and the curves PNG under ``out_dir``.

    ``BackupAndRestore`` saves at every epoch end; a run killed midway and started
    again with the same command resumes from the last completed epoch.
    """
    csv_path = os.path.join(out_dir, "history.csv")
    return [
        keras.callbacks.BackupAndRestore(os.path.join(out_dir, "checkpoint"), save_freq="epoch"),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")),
        keras.callbacks.CSVLogger(csv_path, append=True),
        TrainingCurves(csv_path, os.path.join(out_dir, "training_curves.png")),
    ]


def fit_resumable(model, train, validation, epochs, out_dir, verbose=1, log=print, steps_per_epoch=None,
                  callbacks=()):
    """``model.fit`` with `training_callbacks`; resumes when ``out_dir`` holds a checkpoint.

    ``steps_per_epoch`` is needed when ``train`` repeats forever (a streamed corpus).
    ``callbacks`` run after the standard ones (e.g. `GradualUnfreezing`).

    Returns ``(history, seconds)``, the wall-clock time of ``fit`` (validation included).
    """
    os.makedirs(out_dir, exist_ok=True)
    checkpoint = os.path.join(out_dir, "checkpoint")
    if os.path.isdir(checkpoint):
        log(f"Resuming from the checkpoint in {checkpoint}")
    started = time.perf_counter()
    with warnings.catch_warnings():
        # A streamed corpus has no known length: Keras learns it in the first epoch and warns.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=verbose,
                            steps_per_epoch=steps_per_epoch,
                            shuffle=False,  # the tf.data pipelines shuffle themselves
                            callbacks=training_callbacks(out_dir) + list(callbacks))
    return history, time.perf_counter() - started
