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

from asc_core.errors import UserError


def make_strategy(strategy="none", devices=None, communication="auto"):
    """Builds the strategy named by the config.

    Args:
        strategy: ``"none"``, ``"mirrored"`` or ``"multiworker"``.
        devices: list of device names for ``mirrored`` or None (every local GPU, or the CPU).
            Several ``/cpu:N`` names split the CPU into that many logical devices (only
            possible before TensorFlow has started).
        communication: ``"auto"``, ``"ring"`` or ``"nccl"`` collective implementation for
            ``multiworker``.

    Returns:
        a ``tf.distribute.Strategy``.
    """
    if strategy == "none":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        cpus = [d for d in devices or [] if "cpu" in d.lower()]
        if len(cpus) > 1:
            # Several CPU replicas (tests, demos): split the CPU into logical devices first.
            try:
                split_logical_cpus(len(cpus))
            except RuntimeError:
                raise UserError(
                    f"distribute.devices {devices}: {len(cpus)} CPU devices need logical CPUs, "
                    "which can only be configured before TensorFlow starts; start a new process"
                ) from None
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
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is None or len(current) != count:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    return [f"/cpu:{i}" for i in range(count)]


def prepare_for_multiworker(model, dataset):
    """Works around two Keras 3 bugs with ``MultiWorkerMirroredStrategy`` (TensorFlow backend).

    1. ``TensorFlowTrainer._maybe_symbolic_build`` builds a model created under a strategy by
       reducing a *distributed* batch with ``strategy.reduce``, which fails under
       ``MultiWorkerMirroredStrategy`` ("Attempt to convert a value (PerReplica...) to a
       Tensor"). The same symbolic build is done here from a plain local batch, and the
       per-call build is turned off for this model instance.
    2. ``reduce_per_replica`` reduces the scalar step logs with ``strategy.reduce("MEAN", v,
       axis=0)`` in multi-worker mode, which fails for scalars ("Invalid reduction dimension 0
       for input with 0 dimensions"); scalars are reduced with ``axis=None`` instead.

    Call it inside ``strategy.scope()``, after ``compile``.
    """
    _patch_multiworker_reduce()
    batch = next(iter(dataset.take(1)))
    model._symbolic_build(data_batch=batch)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _patch_multiworker_reduce():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_keras_asc_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=0 if v.shape.rank else None), values
            )
        return original(values, strategy, reduction)

    reduce_per_replica._keras_asc_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
