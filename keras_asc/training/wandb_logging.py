"""Weights & Biases logging as a Keras callback (``pip install 'keras-asc[wandb]'``).

``mode="offline"`` (the default) writes the run under ``RUN_DIR/wandb/offline-run-*`` with no
network and no login and prints the ``wandb sync`` command that uploads it later;
``mode="online"`` needs a login (``WANDB_API_KEY`` or ``wandb login``); ``"disabled"`` does
nothing and never imports wandb.

Logged (``step`` = the epoch number, 1-based, as in ``history.json``):

- the resolved config (nested sections) as the run config;
- after every epoch the epoch's training logs (``loss``, ``ce_loss``, ``icl_*``, ``accuracy``,
  ``learning_rate``) and the validation metrics overall, per device and per device family
  (``val_loss_a`` ...), plus ``val_devices``: a table of accuracy and log-loss per device;
- at the end: the summary (``best``, ``best_epoch``), the final model's per-device table and
  confusion matrix image (``final/devices``, ``final/confusion``; the image needs
  ``keras-asc[plots]``) and ``model.keras`` as a ``model`` artifact.

Resuming: the W&B run id is stored in the run directory (``checkpoints/state.json``), so a
killed run started again continues the *same* W&B run. Every committed epoch reaches W&B exactly
once: a resumed run first logs the committed epochs (``history.json``) that W&B does not hold,
then trains on. What W&B holds is read, not remembered: W&B writes asynchronously, and a SIGKILL
loses the rows it had not yet written (measured: an offline run killed after two epochs kept
none of them). Online, the server's last step (``run.starting_step``) says it; offline, the
earlier starts' ``offline-run-*-ID/run-*.wandb`` files are read (:func:`offline_epochs`). An
offline run killed and resumed leaves one ``offline-run-*-ID`` folder per start; ``wandb sync``
uploads them in order of start time into the one run.

Keras integration: ``wandb.integration.keras.WandbMetricsLogger`` logs the in-memory epoch logs
under an implicit step and reads the learning rate from the optimizer at logging time, so it
can neither log an epoch again from ``history.json`` nor keep epoch numbers stable across a
resume; ``WandbModelCheckpoint`` saves a model every epoch, which the run directory already
does. This callback therefore logs with ``wandb.log`` itself, with the integration's layout
(an ``epoch`` x-axis for every metric).
"""

import json
import os

import keras

from asc_core.errors import UserError
from asc_core.extras import MissingExtraError
from asc_core.extras import require
from asc_core.vocab import DEVICE_GROUPS
from asc_core.vocab import DEVICES

DEVICE_COLUMNS = ["device", "family", "accuracy", "log_loss"]


def require_wandb(mode):
    """The ``wandb`` module, or one error naming the extra (and how to turn W&B off)."""
    try:
        return require("wandb", f"wandb.mode {mode!r}")
    except MissingExtraError as err:
        raise MissingExtraError(f"{err}; or --set wandb.mode=disabled") from None


def run_name(base, seed):
    """The display name of one seed's run: ``"<config name>-seed-<seed>"``."""
    return f"{base}-seed-{seed}"


def sync_command(run_dir, run_id):
    """The shell command that uploads every offline piece of the run ``run_id``."""
    return f"wandb sync {os.path.join(run_dir, 'wandb', f'offline-run-*-{run_id}')}"


OFFLINE_WRITE_TIMEOUT = 30.0  # seconds finish() waits for W&B to write the offline file


def read_offline_records(path):
    """The protobuf ``Record`` s of an offline ``run-*.wandb`` file, in order.

    The file is a LevelDB-style log (a 7-byte header, then 32 KiB blocks of chunks with a
    7-byte ``crc, length, type`` header each); a record cut short by a kill ends the list.
    """
    import struct

    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 or len(chunk) < length:
            break
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first, or middle/last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pending)
            except DecodeError:
                break
            records.append(record)
    return records


def record_items(items):
    """``{key: value}`` of a history row's or summary update's items (nested keys with ``/``)."""
    return {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in items}


def offline_epochs(run_dir, run_id):
    """The epochs that the offline files of W&B run ``run_id`` under ``run_dir`` hold."""
    import glob

    epochs = set()
    pattern = os.path.join(run_dir, "wandb", f"offline-run-*-{run_id}", "run-*.wandb")
    for path in glob.glob(pattern):
        for record in read_offline_records(path):
            if record.WhichOneof("record_type") == "history":
                epoch = record_items(record.history.item).get("epoch")
                if epoch is not None:
                    epochs.add(int(epoch))
    return epochs


def wait_for_offline_exit(path, timeout=OFFLINE_WRITE_TIMEOUT):
    """Waits until the offline file ``path`` ends the run (an ``exit`` record); True if it did.

    W&B's service process writes the file; a CI run under load once read a just-finished run's
    file without its history rows. A resume reads that file, and ``wandb sync`` uploads it, so
    the logger returns only once the run's last record is on disk.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        if os.path.isfile(path) and any(
            r.WhichOneof("record_type") == "exit" for r in read_offline_records(path)
        ):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def device_rows(flat):
    """``[device, family, accuracy, log_loss]`` rows of a flat metric dict (``val_loss_a`` ...).

    Devices without clips (no ``val_loss_<device>`` key) are left out.
    """
    family = {d: name for name, devices in DEVICE_GROUPS.items() for d in devices}
    return [
        [device, family.get(device, ""), flat[f"val_accuracy_{device}"], flat[f"val_loss_{device}"]]
        for device in DEVICES
        if f"val_loss_{device}" in flat
    ]


class WandbLogger(keras.callbacks.Callback):
    """Logs a training run to W&B.

    Args:
        mode: ``"offline"``, ``"online"`` or ``"disabled"``.
        project: str, the W&B project.
        entity: str or None, the W&B team or user.
        name: str or None, the run's display name (the runner sets ``<config>-seed-<seed>``).
        group: str or None, groups runs (e.g. the seeds of one config).
        tags: list of str.
        run_dir: str, the run directory (W&B writes ``run_dir/wandb``); set by the runner.
        config: dict, the resolved config to record; set by the runner.
        run_id: str or None, a stable id so a resumed run continues the same W&B run.
        validation: the runner's ``DeviceValidation`` callback (detailed metrics), or None.
        history: list of the committed epochs' rows (``history.json``) of a resumed run; those
            not yet logged are logged first.
    """

    def __init__(
        self,
        mode="offline",
        project="keras-asc",
        entity=None,
        name=None,
        group=None,
        tags=(),
        run_dir=None,
        config=None,
        run_id=None,
        validation=None,
        history=(),
    ):
        super().__init__()
        self.mode = mode
        self.project = project
        self.entity = entity
        self.name = name
        self.group = group
        self.tags = list(tags)
        self.run_dir = run_dir
        self.config = config
        self.run_id = run_id
        self.validation = validation
        self.history = list(history)
        self.run = None
        self._wandb = None

    def start(self):
        """Starts (or resumes) the W&B run and logs committed epochs it lacks; idempotent."""
        if self.mode == "disabled" or self.run is not None:
            return
        wandb = self._wandb = require_wandb(self.mode)
        os.makedirs(os.path.join(self.run_dir, "wandb"), exist_ok=True)
        held = set()
        if self.mode == "offline" and self.history:
            held = offline_epochs(self.run_dir, self.run_id)  # before this start adds a folder
        settings = wandb.Settings(
            console="off", silent=True, save_code=False, disable_git=True, x_disable_stats=True
        )
        try:
            self.run = wandb.init(
                mode=self.mode,
                dir=self.run_dir,
                project=self.project,
                entity=self.entity,
                name=self.name or os.path.basename(os.path.normpath(self.run_dir)),
                group=self.group,
                tags=self.tags,
                config=self.config,
                id=self.run_id,
                resume="allow",
                settings=settings,
                reinit="finish_previous",
            )
        except wandb.errors.UsageError as err:
            raise UserError(f"wandb.mode {self.mode!r}: {err}") from None
        # The Keras integration's layout: every metric against the epoch.
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        if self.mode == "offline":
            print(
                f"W&B offline run {self.run.name} (id {self.run_id}) in "
                f"{os.path.join(self.run_dir, 'wandb')}; upload it with: "
                f"{sync_command(self.run_dir, self.run_id)}",
                flush=True,
            )
        if self.mode == "online":  # the server holds the steps (= epochs) before this one
            held = set(range(1, int(getattr(self.run, "starting_step", 0) or 0)))
        for row in self.history:
            if row.get("epoch", 0) not in held:
                self._log_row(dict(row))

    def _log_row(self, row):
        """Logs one epoch's row (``epoch`` key, 1-based) at step = the epoch."""
        rows = device_rows(row)
        if rows:
            row["val_devices"] = self._wandb.Table(columns=DEVICE_COLUMNS, data=rows)
        self.run.log(row, step=int(row["epoch"]))

    def on_train_begin(self, logs=None):
        self.start()

    def on_epoch_end(self, epoch, logs=None):
        if self.run is None:
            return
        from keras_asc.training.callbacks import _is_number

        row = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        if self.validation is not None:
            row.update(self.validation.latest)
        row["epoch"] = epoch + 1
        self._log_row(row)

    def finish(self, summary=None, model_path=None, metrics=None):
        """Closes the run, after logging the summary, the final model and its evaluation.

        Args:
            summary: dict written into the run summary (e.g. ``best``, ``best_epoch``).
            model_path: str or None, ``model.keras``, logged as a ``model`` artifact.
            metrics: the final model's :func:`keras_asc.evaluation.metrics.scene_metrics`
                dict (per-device table and confusion image), or None.
        """
        if self.run is None:
            return
        wandb = self._wandb
        for key, value in (summary or {}).items():
            self.run.summary[key] = value
        if metrics is not None:
            from keras_asc.training.callbacks import flatten_metrics

            self.run.summary["final/devices"] = wandb.Table(
                columns=DEVICE_COLUMNS, data=device_rows(flatten_metrics(metrics))
            )
            image = self._confusion_image(metrics)
            if image is not None:
                self.run.summary["final/confusion"] = image
        if model_path is not None and os.path.isfile(model_path):
            artifact = wandb.Artifact(
                f"model-{self.run_id}", type="model", metadata=dict(summary or {})
            )
            artifact.add_file(model_path)
            self.run.log_artifact(artifact, aliases=["final"])
        sync_file = self.run.settings.sync_file if self.mode == "offline" else None
        self.run.finish()
        self.run = None
        if self.mode == "offline":
            if sync_file and not wait_for_offline_exit(sync_file):
                print(
                    f"note: W&B has not finished writing {sync_file} after "
                    f"{OFFLINE_WRITE_TIMEOUT:g} s",
                    flush=True,
                )
            print(f"W&B offline files kept; upload with: {sync_command(self.run_dir, self.run_id)}")

    def _confusion_image(self, metrics):
        """The confusion matrix as a ``wandb.Image`` (None, with a note, without matplotlib)."""
        try:
            require("matplotlib", "the W&B confusion image")
        except UserError as err:
            print(f"note: {err}")
            return None
        from keras_asc.evaluation.plots import plot_confusion_matrix

        path = os.path.join(self.run_dir, "wandb", "confusion-final.png")
        plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["class_names"], path, title="final model"
        )
        return self._wandb.Image(path)
