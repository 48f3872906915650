"""Choosing a ``tf.distribute`` strategy by name (``--strategy`` on the training commands)."""

import functools

import tensorflow as tf

STRATEGIES = ("default", "mirrored")


@functools.lru_cache(maxsize=None)
def get_strategy(name="default", logical_cpus=None):
    """Returns the strategy called ``name`` (the same object on every call: a second
    `MirroredStrategy` in one process breaks the collectives of the first).

    Args:
        name: "default" (no distribution: the current device) or "mirrored"
            (`tf.distribute.MirroredStrategy` over every visible GPU, or over
            the logical CPUs when there is no GPU).
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
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
