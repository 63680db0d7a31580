"""Weights & Biases logging as a Keras callback (optional dependency, imported lazily).

``mode="offline"`` (the default) writes the run under ``RUN_DIR/wandb/offline-run-*`` with no
network and no login; ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later.
``mode="online"`` needs a login (``WANDB_API_KEY`` or ``wandb login``); ``"disabled"`` does
nothing and never imports wandb.

Logged: the resolved config (nested sections), and after every epoch the epoch's training logs
(``loss``, ``ce_loss``, ``icl_loss``, ``accuracy``, ``learning_rate``) and the validation
metrics overall, per device and per device family (``val_loss_a`` ...), with ``step`` = the
epoch number. A resumed run logs into the same W&B run id.
"""

import keras

from asc_core.errors import UserError


class WandbLogger(keras.callbacks.Callback):
    """Logs a training run to W&B.

    Args:
        mode: ``"offline"``, ``"online"`` or ``"disabled"``.
        project: str, the W&B project.
        entity: str or None, the W&B team or user.
        name: str or None, the run's display name (None: the run directory's name).
        group: str or None, groups runs (e.g. the seeds of one config).
        tags: list of str.
        run_dir: str, the run directory (W&B writes ``run_dir/wandb``); set by the runner.
        config: dict, the resolved config to record; set by the runner.
        run_id: str or None, a stable id so a resumed run continues the same W&B run.
        validation: the runner's ``DeviceValidation`` callback (detailed metrics), or None.
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
        self.run = None

    def start(self):
        """Starts (or resumes) the W&B run; a no-op when disabled."""
        if self.mode == "disabled" or self.run is not None:
            return
        try:
            import wandb
        except ImportError:
            raise UserError(
                f"wandb.mode {self.mode!r} needs the wandb package (pip install wandb); "
                "or set wandb.mode=disabled"
            ) from None
        import os

        os.makedirs(self.run_dir, exist_ok=True)
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

    def on_train_begin(self, logs=None):
        self.start()

    def on_epoch_end(self, epoch, logs=None):
        if self.run is None:
            return
        row = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if self.validation is not None:
            row.update(self.validation.latest)
        row["epoch"] = epoch + 1
        self.run.log(row, step=epoch + 1)

    def finish(self, summary=None):
        """Writes ``summary`` (dict) into the run summary and closes the run."""
        if self.run is None:
            return
        for key, value in (summary or {}).items():
            self.run.summary[key] = value
        self.run.finish()
        self.run = None
