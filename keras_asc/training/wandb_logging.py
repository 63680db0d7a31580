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
once: ``RUN_DIR/wandb/logged.json`` records the last epoch handed to W&B, and a resumed run
first logs the committed epochs after it (from ``history.json``; a kill between an epoch's
commit and its W&B row leaves such an epoch), then trains on. An offline run killed and resumed
leaves one ``offline-run-*-ID`` folder per start; ``wandb sync`` uploads them in order of start
time into the one run.

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
from asc_core.extras import require
from asc_core.vocab import DEVICE_GROUPS
from asc_core.vocab import DEVICES

DEVICE_COLUMNS = ["device", "family", "accuracy", "log_loss"]


def run_name(base, seed):
    """The display name of one seed's run: ``"<config name>-seed-<seed>"``."""
    return f"{base}-seed-{seed}"


def sync_command(run_dir, run_id):
    """The shell command that uploads every offline piece of the run ``run_id``."""
    return f"wandb sync {os.path.join(run_dir, 'wandb', f'offline-run-*-{run_id}')}"


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

    @property
    def marker(self):
        """``RUN_DIR/wandb/logged.json``: the W&B run id and the last epoch handed to it."""
        return os.path.join(self.run_dir, "wandb", "logged.json")

    def _logged_epoch(self):
        try:
            with open(self.marker, encoding="utf-8") as f:
                marker = json.load(f)
        except (OSError, ValueError):
            return 0
        if not isinstance(marker, dict) or marker.get("run_id") != self.run_id:
            return 0
        return int(marker.get("epoch", 0))

    def start(self):
        """Starts (or resumes) the W&B run and logs committed epochs it lacks; idempotent."""
        if self.mode == "disabled" or self.run is not None:
            return
        wandb = self._wandb = require("wandb", f"wandb.mode {self.mode!r}")
        os.makedirs(os.path.join(self.run_dir, "wandb"), exist_ok=True)
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
        logged = self._logged_epoch()
        for row in self.history:
            if row.get("epoch", 0) > logged:
                self._log_row(dict(row))

    def _log_row(self, row):
        """Logs one epoch's row (``epoch`` key, 1-based) and records it in :attr:`marker`."""
        from keras_asc.training.run_dir import atomic_write_json

        epoch = int(row["epoch"])
        rows = device_rows(row)
        if rows:
            row["val_devices"] = self._wandb.Table(columns=DEVICE_COLUMNS, data=rows)
        self.run.log(row, step=epoch)
        atomic_write_json(self.marker, {"run_id": self.run_id, "epoch": epoch})

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
        self.run.finish()
        self.run = None
        if self.mode == "offline":
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
