"""Choosing a ``tf.distribute`` strategy by name (``--strategy`` on the training commands)."""

import functools
import json
import os
import shutil

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


@functools.lru_cache(maxsize=None)
def get_strategy(name="default", logical_cpus=None):
    """Returns the strategy called ``name`` (the same object on every call: a second
    `MirroredStrategy` in one process breaks the collectives of the first).

    Args:
        name: "default" (no distribution: the current device), "mirrored"
            (`tf.distribute.MirroredStrategy` over every visible GPU, or over
            the logical CPUs when there is no GPU) or "multiworker"
            (`tf.distribute.MultiWorkerMirroredStrategy`: one process per
            machine, the cluster and this process's place in it read from the
            ``TF_CONFIG`` environment variable, see `read_tf_config`) or
            "tpu" (`tf.distribute.TPUStrategy` on the Cloud TPU VM or Colab
            TPU this process runs on, or the one ``TPU_NAME`` names;
            untested in this project's CI, which has no TPU).
        logical_cpus: when set, split the CPU into this many logical devices
            before TensorFlow initialises them, so that "mirrored" has replicas
            to mirror over on a CPU-only machine (used by the tests). Must be
            called before anything else touches the devices.

    Example:

    >>> strategy = get_strategy("mirrored", logical_cpus=2)
    >>> with strategy.scope():
    ...     model = build_model()
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        wanted = [tf.config.LogicalDeviceConfiguration()] * int(logical_cpus)
        current = tf.config.get_logical_device_configuration(cpu)
        if current is None or len(current) != len(wanted):
            try:
                tf.config.set_logical_device_configuration(cpu, wanted)
            except RuntimeError as error:
                raise ValueError(f"cannot split the CPU into {logical_cpus} logical devices once TensorFlow "
                                 f"has initialised them ({error}); pass logical_cpus before building anything") from None
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        read_tf_config()  # a clear error before TensorFlow reads it
        return _MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    Keras 3 (3.15) calls ``strategy.reduce("MEAN", batch)`` on the first
    (dict) batch before building the metrics, and ``reduce("MEAN", loss,
    axis=0)`` on each step's scalar logs; the collective implementation takes
    one tensor at a time and no axis 0 of a scalar (keras-team/keras#20329,
    #20585: Keras 3 ``fit`` under this strategy fails without this). Here each
    tensor is reduced alone, a scalar over the replicas.
    """

    def reduce(self, reduce_op, value, axis=None):
        parent = super()

        def reduce_one(tensor):
            rank = self.experimental_local_results(tensor)[0].shape.rank
            return parent.reduce(reduce_op, tensor, axis=None if rank == 0 else axis)

        return tf.nest.map_structure(reduce_one, value)


def read_tf_config():
    """The ``TF_CONFIG`` environment variable of a multi-worker run, parsed and checked.

    It names every worker of the cluster and this process's index, e.g.
    ``{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}``.
    Worker 0 is the chief: the one that writes the output directory.
    """
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(f"--strategy multiworker needs the TF_CONFIG environment variable (the cluster and this "
                         f"worker's index), which is not set; set it on each worker, e.g. {example}")
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task_type, index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is malformed ({type(error).__name__}: {error}): {text!r}; expected JSON like "
                         f"{example}") from None
    if not isinstance(workers, list) or not workers or task_type not in ("worker", "chief") or not (
            0 <= index < len(config["cluster"].get(task_type, []))):
        raise ValueError(f"TF_CONFIG: task {config['task']} is not in the cluster {config['cluster']}; expected "
                         f"JSON like {example}")
    return config


def is_chief(strategy):
    """Whether this process writes the run's output: always, except the non-chief workers of a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, index = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and index == 0
                                                        and "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(out_dir, strategy):
    """Where this process writes checkpoints, logs and its copy of the model: ``out_dir`` on the chief,
    ``out_dir/.worker-<index>`` on the other workers (the standard Keras multi-worker pattern: every worker
    saves, since saving is a collective, but only the chief's files are kept).

    A worker without a checkpoint of its own starts from a copy of the chief's
    (on a shared file system), so that every worker resumes from the same step.
    """
    path = _worker_path(out_dir, strategy)
    if path == out_dir:
        return out_dir
    chief_checkpoint = os.path.join(out_dir, "checkpoint")
    if not os.path.isdir(os.path.join(path, "checkpoint")) and os.path.isdir(chief_checkpoint):
        shutil.copytree(chief_checkpoint, os.path.join(path, "checkpoint"))
    os.makedirs(path, exist_ok=True)
    return path


def remove_worker_dir(out_dir, strategy):
    """Deletes a non-chief worker's `worker_dir` once the run has finished (the chief's ``out_dir`` is kept)."""
    path = _worker_path(out_dir, strategy)
    if path != out_dir:
        shutil.rmtree(path, ignore_errors=True)


def _worker_path(out_dir, strategy):
    return out_dir if is_chief(strategy) else os.path.join(out_dir, f".worker-{strategy.cluster_resolver.task_id}")


def _tpu_strategy():
    """`tf.distribute.TPUStrategy` on the local TPU (a TPU VM's /dev/accel*, Colab) or ``TPU_NAME``'s."""
    if not (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")
            or os.path.exists("/dev/vfio/0")):
        raise ValueError("--strategy tpu found no TPU: no /dev/accel0 (a Cloud TPU VM), no COLAB_TPU_ADDR and no "
                         "TPU_NAME environment variable; run on a TPU VM or set TPU_NAME, or use --strategy default")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
