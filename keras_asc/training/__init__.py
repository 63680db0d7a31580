"""Training: the runner behind ``scripts/train.py``, its callbacks and strategies.

Submodules are imported by full path (``keras_asc.training.runner`` ...): importing this package
imports nothing heavy.

* :mod:`~keras_asc.training.runner`: :func:`train` (one resumable run), :func:`train_seeds`;
  the run directory it writes is :mod:`keras_asc.run_dir`.
* :mod:`~keras_asc.training.callbacks`: learning-rate schedules, per-device validation, NaN
  guard, checkpointing, TensorBoard scalars.
* :mod:`~keras_asc.training.wandb_logging`: W&B (offline by default).
* :mod:`~keras_asc.training.distribute`: ``tf.distribute`` strategies.
"""
