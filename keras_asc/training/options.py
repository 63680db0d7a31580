"""Options of the training loop (the ``training:`` config section)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """How long to train, what to monitor and how to report.

    Args:
        epochs: int, total number of epochs; a resumed run continues up to this count.
        steps_per_epoch: int or None. None: one pass over the training set per epoch (with
            device-balanced sampling: ``number of training examples // batch_size``).
        monitor: str, the per-epoch log key that picks ``best.weights.h5`` (``val_loss`` is the
            mean log-loss over the validation clips; ``val_accuracy``, ``val_loss_real``, ...).
        monitor_mode: ``"min"`` or ``"max"``.
        verbose: 0 (silent), 1 (progress bar per epoch) or 2 (one line per epoch).
        final_weights: weights stored in ``model.keras`` at the end (what ``scripts/evaluate.py``
            scores): ``"last"`` (the last epoch) or ``"best"`` (``best.weights.h5``, the epoch
            with the best ``monitor`` value, i.e. chosen on the validation split).
        jit_compile: bool, XLA-compile the train step.
        deterministic: bool, enable TensorFlow op determinism (bitwise-reproducible resumes at
            some speed cost).
    """

    epochs: int = 250
    steps_per_epoch: int | None = None
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    verbose: int = 1
    final_weights: str = "last"
    jit_compile: bool = False
    deterministic: bool = False
