"""``tf.distribute`` strategies for the ``distribute:`` config section.

* ``none``: the default strategy (one device).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over ``devices`` (None: every local GPU, or
  the CPU). The configured ``data.batch_size`` is the *global* batch, split across replicas, so
  the loss and the learning rate mean the same as on one device.
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``; the cluster comes from the
  ``TF_CONFIG`` environment variable of each worker process (the standard TensorFlow way:
  ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``).
  Every worker runs the same command; only the chief (worker 0) writes the run directory.
"""

import json
import os

import tensorflow as tf

from keras_asc.errors import UserError


def make_strategy(strategy="none", devices=None, communication="auto"):
    """Builds the strategy named by the config.

    Args:
        strategy: ``"none"``, ``"mirrored"`` or ``"multiworker"``.
        devices: list of device names for ``mirrored`` (e.g. ``["/cpu:0", "/cpu:1"]``) or None.
        communication: ``"auto"``, ``"ring"`` or ``"nccl"`` collective implementation for
            ``multiworker``.

    Returns:
        a ``tf.distribute.Strategy``.
    """
    if strategy == "none":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if strategy == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "distribute.strategy 'multiworker' needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}})'
            )
        implementations = {
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }
        if communication not in implementations:
            raise UserError(
                f"distribute.communication {communication!r}: expected one of "
                f"{', '.join(implementations)}"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementations[communication]
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise UserError(
        f"distribute.strategy {strategy!r}: expected one of none, mirrored, multiworker"
    )


def is_chief():
    """True unless this process is a non-chief worker of a ``TF_CONFIG`` cluster."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        config = json.loads(raw)
    except ValueError:
        raise UserError(f"TF_CONFIG is not valid JSON: {raw!r}") from None
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


def split_logical_cpus(count):
    """Splits the physical CPU into ``count`` logical devices (before TensorFlow starts).

    Lets ``mirrored`` run on a CPU-only machine (tests, demos). Must be called before any
    TensorFlow op runs.
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [f"/cpu:{i}" for i in range(count)]
