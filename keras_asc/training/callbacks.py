"""Keras callbacks of the training runner: schedules, validation, NaN guard, checkpoints.

Callbacks run in list order at the end of an epoch and share one ``logs`` dict, so the runner
orders them: :class:`NanGuard`, :class:`DeviceValidation` (adds ``val_loss``/``val_accuracy``),
the learning-rate schedule (reads ``val_loss``), :class:`RunCheckpoint` (writes everything), then
the loggers (TensorBoard, W&B).
"""

import math
import time

import keras
import numpy as np

from asc_core.vocab import DEVICE_GROUPS
from asc_core.vocab import DEVICES
from keras_asc.evaluation.metrics import scene_metrics
from keras_asc.evaluation.metrics import softmax


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class PlateauSchedule(keras.callbacks.Callback):
    """Multiplies the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Keras' ``ReduceLROnPlateau`` with its state exposed (:meth:`get_state` / :meth:`set_state`)
    so a resumed run continues the same countdown. Logs ``learning_rate``: the rate used during
    the epoch that just ended.

    Args:
        monitor: str, the log key to watch (``val_loss``).
        factor: float in (0, 1), the reduction factor (paper: 0.5).
        patience: int, epochs without improvement before reducing (paper: 10).
        mode: ``"min"`` or ``"max"``.
        min_delta: float, the smallest change that counts as an improvement.
        cooldown: int, epochs to wait after a reduction before counting again.
        min_lr: float, lower bound of the learning rate.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.5,
        patience=10,
        mode="min",
        min_delta=0.0,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.mode = mode
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _learning_rate(self.model)
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best = float(value)
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                new_lr = max(logs["learning_rate"] * self.factor, self.min_lr)
                self.model.optimizer.learning_rate = new_lr
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.best = state["best"]
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


def warmup_rampdown_factor(epoch, warmup_epochs, rampdown_start, rampdown_epochs, last_value):
    """CPJKU's per-epoch learning-rate factor: exponential warm-up times linear ramp-down.

    ``exp(-5 (1 - clip(e, 0.5, W) / W)**2)`` for ``e < W`` (else 1), times 1 until
    ``rampdown_start``, then a linear ramp over ``rampdown_epochs`` epochs to ``last_value``.
    With (3, 3, 10, 0.01) the factors of epochs 0..4 are 0.031, 0.108, 0.574, 1.0, 0.901.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        phase = 1.0 - min(max(epoch, 0.5), warmup_epochs) / warmup_epochs
        warmup = math.exp(-5.0 * phase * phase)
    else:
        warmup = 1.0
    if epoch <= rampdown_start:
        rampdown = 1.0
    elif epoch - rampdown_start < rampdown_epochs:
        rampdown = last_value + (1.0 - last_value) * (
            (rampdown_epochs - epoch + rampdown_start) / rampdown_epochs
        )
    else:
        rampdown = last_value
    return warmup * rampdown


class ConstantSchedule(keras.callbacks.Callback):
    """Keeps the optimizer's learning rate and logs it; no state (subclasses set the rate from
    the epoch alone)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model)

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


class WarmupRampdownSchedule(ConstantSchedule):
    """Sets ``base_learning_rate * warmup_rampdown_factor(epoch, ...)`` at each epoch start.

    The CPJKU PaSST-on-TAU22 schedule (``exp_warmup_linear_down(3, 10, 3, 0.01)``): a function
    of the epoch alone, so resuming needs no state. Logs ``learning_rate``.

    Args:
        warmup_epochs: int, exponential warm-up length.
        rampdown_start: int, last epoch at the full rate.
        rampdown_epochs: int, length of the linear ramp-down.
        last_value: float, the final factor.
        base_learning_rate: float, the optimizer's configured rate (set by the runner).
    """

    def __init__(
        self,
        warmup_epochs=3,
        rampdown_start=3,
        rampdown_epochs=10,
        last_value=0.01,
        base_learning_rate=None,
    ):
        super().__init__()
        self.warmup_epochs = warmup_epochs
        self.rampdown_start = rampdown_start
        self.rampdown_epochs = rampdown_epochs
        self.last_value = last_value
        self.base_learning_rate = base_learning_rate

    def factor(self, epoch):
        return warmup_rampdown_factor(
            epoch, self.warmup_epochs, self.rampdown_start, self.rampdown_epochs, self.last_value
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.base_learning_rate * self.factor(epoch)


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    After ``fit`` returns, ``diverged`` is ``(epoch, batch, loss)`` or None; the runner turns it
    into an error message. Later callbacks see ``logs["loss"]`` as non-finite and skip saving.
    """

    def __init__(self):
        super().__init__()
        self.diverged = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (self._epoch, batch, float(loss))
            self.model.stop_training = True


class DeviceValidation(keras.callbacks.Callback):
    """Scene log-loss and accuracy on the validation clips, overall, per device and per family.

    Runs the model (inference mode) over ``dataset`` (elements
    ``(waveform, {"scene", "device"})`` or ``(waveform, scene)``) after every epoch and computes
    the metrics with
    :func:`keras_asc.evaluation.metrics.scene_metrics`. ``logs`` gets ``val_loss`` (mean
    log-loss) and ``val_accuracy``; :attr:`latest` holds the flat detailed dict
    (``val_loss_a`` ... ``val_loss_s6``, ``val_accuracy_<device>``, ``val_loss_real`` /
    ``val_loss_simulated`` / ``val_loss_unseen`` (means of the device values, the paper's
    Table 3), ``val_macro_accuracy``, ``val_dg``) for the run directory and the loggers.

    Args:
        dataset: ``tf.data.Dataset`` of the validation batches (fixed order).
    """

    def __init__(self, dataset):
        super().__init__()
        self.inputs = dataset.map(lambda x, y: x)
        scenes, devices = [], []
        for _, labels in dataset.as_numpy_iterator():
            if isinstance(labels, dict):
                scenes.append(labels["scene"])
                devices.append(labels["device"])
            else:
                scenes.append(labels)
                devices.append(np.full_like(labels, -1))
        self.scenes = np.concatenate(scenes)
        self.devices = np.concatenate(devices)
        self.latest = {}
        self.metrics = None  # the last evaluation's full scene_metrics dict
        self.seconds = 0.0
        self._predict = None

    def set_model(self, model):
        super().set_model(model)
        self._predict = None

    def evaluate(self):
        """Runs the model on the validation clips; returns the flat metric dict."""
        import tensorflow as tf

        start = time.perf_counter()
        if self._predict is None:
            # A local loop rather than model.predict: under a multi-worker strategy predict
            # shards the clips over the workers and the gathered order need not match the
            # labels; here every worker scores every clip, in dataset order.
            def logits_of(x):
                outputs = self.model(x, training=False)
                return outputs["logits"] if isinstance(outputs, dict) else outputs

            self._predict = tf.function(logits_of, reduce_retracing=True)
        logits = np.concatenate([self._predict(x).numpy() for x in self.inputs])
        self.metrics = scene_metrics(self.scenes, softmax(logits), self.devices)
        self.seconds = time.perf_counter() - start
        return flatten_metrics(self.metrics)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            self.latest = {}
            return
        self.latest = self.evaluate()
        logs["val_loss"] = self.latest["val_loss"]
        logs["val_accuracy"] = self.latest["val_accuracy"]


def flatten_metrics(metrics):
    """``scene_metrics`` output → flat ``{"val_loss": ..., "val_loss_a": ..., ...}`` (no Nones)."""
    flat = {
        "val_loss": metrics["overall"]["log_loss"],
        "val_accuracy": metrics["overall"]["accuracy"],
        "val_macro_accuracy": metrics["overall"]["macro_accuracy"],
        "val_dg": metrics["dg"],
    }
    for device in DEVICES:
        flat[f"val_loss_{device}"] = metrics["devices"][device]["log_loss"]
        flat[f"val_accuracy_{device}"] = metrics["devices"][device]["accuracy"]
    for group in DEVICE_GROUPS:
        flat[f"val_loss_{group}"] = metrics["groups"][group]["log_loss"]
        flat[f"val_accuracy_{group}"] = metrics["groups"][group]["accuracy"]
    return {k: float(v) for k, v in flat.items() if v is not None}


class RunCheckpoint(keras.callbacks.Callback):
    """Writes the run directory after every epoch: resume point, best weights, history.

    Args:
        run_dir: :class:`keras_asc.run_dir.RunDirectory`.
        monitor: str, the log key that picks the best epoch.
        mode: ``"min"`` or ``"max"``.
        history: list of the previous epochs' log dicts (resumed runs), extended in place.
        best: the best monitored value so far, or None.
        best_epoch: int or None.
        schedule: the learning-rate schedule callback (its state is saved).
        validation: the :class:`DeviceValidation` callback (detailed metrics), or None.
        extra_state: dict saved in ``state.json`` as is (e.g. the seed).
        write: bool, False on non-chief workers of a multi-worker run (they only compute).
    """

    def __init__(
        self,
        run_dir,
        monitor="val_loss",
        mode="min",
        history=None,
        best=None,
        best_epoch=None,
        schedule=None,
        validation=None,
        extra_state=None,
        write=True,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.mode = mode
        self.history = history if history is not None else []
        self.best = best
        self.best_epoch = best_epoch
        self.schedule = schedule
        self.validation = validation
        self.extra_state = dict(extra_state or {})
        self.write = write
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def _improved(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return  # diverged: keep the last good resume point
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if _is_number(v)})
        if self.validation is not None:
            row.update(self.validation.latest)
        if self._epoch_start is not None:
            row["epoch_seconds"] = time.perf_counter() - self._epoch_start
        self.history.append(row)
        value = row.get(self.monitor)
        if self.monitor not in row:
            raise KeyError(
                f"training.monitor {self.monitor!r} is not logged; logged keys: "
                f"{', '.join(sorted(row))}"
            )
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = float(value), epoch + 1
        if not self.write:
            return
        if improved:
            from keras_asc.run_dir import save_weights_atomic

            save_weights_atomic(self.model, self.run_dir.best_weights)
        self.run_dir.write_history(self.history)
        state = {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "mode": self.mode,
            "optimizer_step": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "learning_rate": _learning_rate(self.model),
            "schedule": self.schedule.get_state() if self.schedule is not None else {},
            **self.extra_state,
        }
        self.run_dir.commit_epoch(self.model, epoch + 1, state)


def _is_number(value):
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)


class _ScalarSummaries:
    """The part of ``tf.summary`` that :class:`TensorBoardLogger` uses, without ``tensorboard``.

    ``tf.summary.scalar`` is implemented by the ``tensorboard`` package; ``tf.summary.write``
    with the ``scalars`` plugin metadata writes the same event records and is TensorFlow core,
    so ``tensorboard`` is needed only to *view* the files (``keras-asc[tensorboard]``).
    """

    def __init__(self):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self.create_file_writer = tf.summary.create_file_writer
        self.record_if = tf.summary.record_if
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def scalar(self, name, data, step=None):
        tf = self._tf
        value = tf.constant(float(data), tf.float32)
        return tf.summary.write(name, value, step=step, metadata=self._metadata)


class TensorBoardLogger(keras.callbacks.TensorBoard):
    """``keras.callbacks.TensorBoard`` with the runner's detailed validation metrics.

    Keras' layout: ``log_dir/train`` holds the training logs (``epoch_loss``,
    ``epoch_accuracy``, ``epoch_learning_rate``, the ICL diagnostics ``epoch_icl_*`` ...) and
    ``log_dir/validation`` the validation metrics with the ``val_`` prefix removed
    (``epoch_loss``, ``epoch_loss_a`` ... ``epoch_dg``), so TensorBoard overlays train and
    validation curves of the same name. The step is the epoch number (1-based, as in
    ``history.json`` and W&B); the learning rate is the one used during the epoch.

    Args:
        log_dir: str, the folder (``RUN_DIR/tensorboard``).
        validation: the :class:`DeviceValidation` callback (detailed metrics), or None.
    """

    def __init__(self, log_dir, validation=None):
        super().__init__(log_dir=log_dir, write_graph=False, profile_batch=0)
        self.validation = validation
        self._summary_module = _ScalarSummaries()

    def _collect_learning_rate(self, logs):
        if "learning_rate" in logs:  # the schedule logged the rate of this epoch
            return logs
        return super()._collect_learning_rate(logs)

    def on_epoch_end(self, epoch, logs=None):
        row = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        if self.validation is not None:
            row.update(self.validation.latest)
        self._log_epoch_metrics(epoch + 1, row)
        for writer in self._writers.values():
            writer.flush()
