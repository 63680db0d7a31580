"""The training runner: resolved config → data, model, optimizer → ``fit`` → run directory.

:func:`train` runs one seed into one run directory and resumes a killed run: started again with
the same command it reloads the last committed epoch (weights, optimizer state, schedule state,
seed-generator states, history, best metric) and continues to the configured epoch count. The
data of every epoch depend only on ``(seed, epoch)``, so a resumed run sees the same batches as
an uninterrupted one. :func:`train_seeds` runs several seeds and summarises them.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from asc_core.errors import UserError
from asc_core.files import WriteError
from asc_core.files import write_json
from asc_core.progress import keras_verbose
from asc_core.tfrecord import data_loss_error
from asc_core.vocab import SCENES
from keras_asc.config.loader import config_differences
from keras_asc.config.loader import save_config
from keras_asc.config.schema import SCHEMA
from keras_asc.config.schema import resolve_target
from keras_asc.data.pipeline import make_datasets
from keras_asc.run_dir import RunDirectory
from keras_asc.run_dir import remove_stale_temp_files
from keras_asc.run_dir import save_model_atomic
from keras_asc.run_dir import seed_run_dir
from keras_asc.training import callbacks as cb
from keras_asc.training.distribute import is_chief
from keras_asc.training.distribute import make_strategy
from keras_asc.training.distribute import prepare_for_multiworker
from keras_asc.training.options import TrainingOptions
from keras_asc.training.preflight import check_inputs
from keras_asc.training.wandb_logging import WandbLogger
from keras_asc.training.wandb_logging import require_wandb
from keras_asc.training.wandb_logging import run_name

# Keys that may change between a run and its resumption (they change no result).
RESUMABLE_CHANGES = ("training.epochs", "training.verbose", "wandb")


# === Builders (one per config section) ===


def build_model(config, sample_rate=None):
    """``SceneClassifier`` from the ``model``, ``loss``, ``augment`` and ``dirs`` sections.

    Args:
        config: the resolved config.
        sample_rate: int or None, the audio rate of the data (the frontend's and the DIRs' rate
            must match it); None: the frontend's default (32 kHz).

    Returns:
        an uncompiled ``SceneClassifier``; seeded from ``config["seed"]`` unless the config
        gives seeds.
    """
    from keras_asc.augment.augmenter import Augmenter
    from keras_asc.models.scene_classifier import SceneClassifier
    from keras_asc.models.scene_classifier import icl_task_kwargs
    from keras_asc.models.weights_cache import load_preset_weights

    model_cfg = dict(config["model"])
    preset = model_cfg.pop("preset")
    weights = model_cfg.pop("weights", None)
    frontend = dict(model_cfg.pop("frontend", None) or {})
    seed = config["seed"]
    # Seeded random layers (patchout, masks, fmax jitter, augmentations) make runs repeatable.
    frontend.setdefault("seed", seed)
    model_cfg.setdefault("seed", seed + 1)
    if sample_rate is not None:
        frontend.setdefault("sample_rate", sample_rate)
    dir_augmentation = None
    if config["dirs"] is not None:
        dir_augmentation = build_dir_augmentation(
            config["dirs"], seed + 3, sample_rate or frontend.get("sample_rate", 32000)
        )
    task_kwargs = {
        **icl_task_kwargs(**config["loss"]),
        "augmenter": Augmenter(dir_augmentation, seed=seed + 2, **config["augment"]),
    }
    # The config says which weights (model.weights: null is a random start), not the preset.
    model = SceneClassifier.from_preset(
        preset,
        load_weights=False,
        num_classes=len(SCENES),
        frontend=frontend,
        **model_cfg,
        **task_kwargs,
    )
    load_preset_weights(model, preset, weights, label="model.weights")
    return model


def build_dir_augmentation(dirs_cfg, seed, sample_rate):
    """``DirAugmentation`` over the IRs of ``dirs.sets`` (loaded at ``sample_rate``)."""
    from keras_asc.augment.dir_augmentation import DirAugmentation
    from keras_asc.data.dirs import load_dirs

    kwargs = dict(dirs_cfg)
    bank = load_dirs(
        kwargs.pop("sets"), sample_rate=sample_rate, max_ir_samples=kwargs.pop("max_ir_samples")
    )
    return DirAugmentation(
        irs=bank.irs, ir_labels=bank.microphone_ids, seed=seed, name="dir_augmentation", **kwargs
    )


def build_optimizer(optimizer_cfg):
    """The ``optimizer`` section's class (the schema's target: ``FusedAdam`` / ``FusedAdamW``)."""
    kwargs = dict(optimizer_cfg)
    name = kwargs.pop("name")
    return resolve_target(SCHEMA["optimizer"].options[name].target)(**kwargs)


def build_schedule(schedule_cfg, learning_rate):
    """The learning-rate schedule callback of the ``schedule`` section."""
    kwargs = dict(schedule_cfg)
    name = kwargs.pop("name")
    if name == "plateau":
        return cb.PlateauSchedule(**kwargs)
    if name == "cpjku":
        return cb.WarmupRampdownSchedule(**kwargs, base_learning_rate=learning_rate)
    return cb.ConstantSchedule()


# === One run ===


def training_targets(config):
    """``data.targets`` resolved: ``auto`` → ``dict`` (the model takes scene and device labels).

    ``scene`` (plain ``(waveform, scene_id)`` batches) only works without ICL or DIR
    augmentation; the model reports that with a clear error.
    """
    targets = config["data"]["targets"]
    return "dict" if targets == "auto" else targets


def _check_same_run(run_dir, config):
    """Refuses to resume a run directory that holds a run of another config."""
    from keras_asc.config.loader import read_config_file
    from keras_asc.config.loader import resolve_config

    if not os.path.isfile(run_dir.config):
        return
    previous = resolve_config(read_config_file(run_dir.config), source=run_dir.config)
    diffs = config_differences(previous, config, ignore=RESUMABLE_CHANGES)
    if diffs and run_dir.load_state() is None:
        # No epoch was committed (a start that failed before its first epoch): nothing to
        # resume, so the corrected config takes the folder over.
        print(f"{run_dir.path}: no finished epoch of the earlier config; starting this one there")
        return
    if diffs:
        raise UserError(
            f"--run-dir {run_dir.path} holds a run of another config (differs in "
            f"{', '.join(diffs)}); use another --run-dir or the same config to resume it"
        )


def _read_history(run_dir, epochs_done):
    import json

    if not os.path.isfile(run_dir.history_json):
        return []
    try:
        with open(run_dir.history_json, encoding="utf-8") as f:
            history = json.load(f)
        if not (isinstance(history, list) and all(isinstance(r, dict) for r in history)):
            raise ValueError("not a list of per-epoch objects")
    except ValueError as err:
        raise UserError(
            f"{run_dir.history_json}: not a valid history ({err}); expected the per-epoch JSON "
            f"list this run wrote; move {run_dir.path} away to start the run again"
        ) from None
    # history.json is written just before the state commit: drop rows of an uncommitted epoch.
    return [row for row in history if row.get("epoch", 0) <= epochs_done]


def train(config, run_dir, extra_callbacks=(), name=None):
    """Trains one run (one seed) into ``run_dir``, resuming it when it was interrupted.

    Args:
        config: dict, a resolved config (:func:`keras_asc.config.load_config`).
        run_dir: str, the run directory.
        extra_callbacks: Keras callbacks appended after the runner's own (tests, tools).
        name: str or None, the config's name (``multi_icl``): the W&B run is named
            ``<wandb.name or name>-seed-<seed>``; None: the run directory's name.

    Returns:
        dict summary: ``run_dir``, ``seed``, ``epochs``, ``monitor``, ``best``, ``best_epoch``,
        ``last`` (the last epoch's history row).

    Raises:
        UserError: bad data or weights paths, another config in ``run_dir``, or a NaN loss.
    """
    options = TrainingOptions(**config["training"])
    check_inputs(config)  # every missing input at once, before anything is written
    chief = is_chief()
    if chief and config["wandb"]["mode"] != "disabled":
        require_wandb(config["wandb"]["mode"])  # a missing extra, before anything is written
    run = RunDirectory(run_dir)
    if chief:
        try:
            run.create()
            remove_stale_temp_files(run.path)  # left by a killed run, wherever it was writing
            _check_same_run(run, config)
            save_config(config, run.config)
        except OSError as err:
            raise UserError(
                f"--run-dir {run.path}: cannot write {err.filename or run.path} "
                f"({err.strerror}); expected a writable folder with free space"
            ) from None
    state = run.load_state() if os.path.isdir(run.checkpoints) else None
    finished = _finished_summary(run, state, options)
    if finished is not None:
        # Nothing left to train: model.keras keeps its bytes and time stamp, so evaluations
        # cached beside it stay valid.
        if options.verbose:
            print(f"{run.path}: already trained for {options.epochs} epochs")
        return finished
    seed = config["seed"]
    keras.utils.set_random_seed(seed)
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()

    strategy = make_strategy(**config["distribute"])
    data = make_datasets(**{**config["data"], "targets": training_targets(config)}, seed=seed)
    steps = options.steps_per_epoch or data.steps_per_epoch
    with strategy.scope():
        model = build_model(config, sample_rate=data.sample_rate)
        optimizer = build_optimizer(config["optimizer"])
        model.compile(optimizer=optimizer, jit_compile=options.jit_compile)
        if config["distribute"]["strategy"] == "multiworker":
            prepare_for_multiworker(model, data.train_epoch(0, 1))
        schedule = build_schedule(config["schedule"], config["optimizer"]["learning_rate"])
        initial_epoch, history, best, best_epoch = 0, [], None, None
        if state is not None:
            run.restore(model, state)  # first: a damaged resume file changes nothing
            if chief:
                run.repair(state)
            schedule.set_state(state.get("schedule", {}))
            initial_epoch = int(state["epoch"])
            history = _read_history(run, initial_epoch)
            best, best_epoch = state.get("best"), state.get("best_epoch")
            if options.verbose:
                print(f"Resuming {run.path} after epoch {initial_epoch}/{options.epochs}")

    run_id = (state or {}).get("wandb_run_id") or _new_run_id(seed)
    try:
        validation = cb.DeviceValidation(data.eval)  # reads the evaluation labels once
    except tf.errors.DataLossError as err:
        raise data_loss_error(err, data.files) from None
    nan_guard = cb.NanGuard()
    checkpoint = cb.RunCheckpoint(
        run,
        monitor=options.monitor,
        mode=options.monitor_mode,
        history=history,
        best=best,
        best_epoch=best_epoch,
        schedule=schedule,
        validation=validation,
        extra_state={"seed": seed, "wandb_run_id": run_id, "steps_per_epoch": steps},
        write=chief,
    )
    wandb_cfg = dict(config["wandb"])
    base_name = wandb_cfg["name"] or name or os.path.basename(run.path)
    logger = WandbLogger(
        **{
            **wandb_cfg,
            "mode": wandb_cfg["mode"] if chief else "disabled",
            "name": run_name(base_name, seed),
        },
        run_dir=run.path,
        config=config,
        run_id=run_id,
        validation=validation,
        history=history,
    )
    logger.start()  # also when only the final save is left: it logs missing epochs first
    callbacks = [nan_guard, validation, schedule, checkpoint]
    if chief:
        callbacks.append(cb.TensorBoardLogger(run.tensorboard, validation=validation))
    callbacks += [logger, *extra_callbacks]

    if initial_epoch < options.epochs:
        try:
            model.fit(
                data.train_epochs(initial_epoch, options.epochs, steps),
                epochs=options.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                callbacks=callbacks,
                verbose=keras_verbose(options.verbose),  # no \r/ANSI bar in a log file
                shuffle=False,  # the dataset is shuffled per epoch, reproducibly
            )
        except WriteError as err:
            raise _write_failed(err, run, checkpoint) from None
        except tf.errors.DataLossError as err:
            raise data_loss_error(err, data.files) from None
    if nan_guard.diverged is not None:
        logger.finish({"diverged": True})
        epoch, batch, loss = nan_guard.diverged
        done = checkpoint.history[-1]["epoch"] if checkpoint.history else 0
        raise UserError(
            f"training stopped: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}; "
            f"{run.path} keeps the last good epoch ({done}). Lower optimizer.learning_rate "
            "(or check the data) and start again in a new --run-dir"
        )
    summary = _summary(run, seed, options, checkpoint)
    if chief:
        if options.final_weights == "best" and os.path.isfile(run.best_weights):
            run.load_best_weights(model)
        try:
            save_model_atomic(model, run.model)
            write_json(os.path.join(run.path, "summary.json"), summary)
        except WriteError as err:
            raise _write_failed(err, run, checkpoint) from None
    final_metrics = None
    if logger.run is not None:
        validation.set_model(model)
        validation.evaluate()  # the final model's per-device table and confusion matrix
        final_metrics = validation.metrics
    logger.finish(
        {"best": summary["best"], "best_epoch": summary["best_epoch"]},
        model_path=run.model,
        metrics=final_metrics,
    )
    return summary


def _write_failed(err, run, checkpoint):
    """The UserError for a run-directory file that could not be written (e.g. a full disk)."""
    state = run.load_state()
    done = state["epoch"] if state else 0
    return UserError(
        f"training stopped: cannot write {err.filename} ({err.strerror}); {run.path} keeps "
        f"the last good epoch ({done}). Free some space and run the same command again to "
        "resume"
    )


def _finished_summary(run, state, options):
    """The saved summary of a run that has trained all ``options.epochs`` (else None)."""
    summary_path = os.path.join(run.path, "summary.json")
    if state is None or int(state["epoch"]) < options.epochs:
        return None
    if not (os.path.isfile(run.model) and os.path.isfile(summary_path)):
        return None  # killed between the last epoch and the final save: finish it below
    import json

    with open(summary_path, encoding="utf-8") as f:
        return json.load(f)


def _new_run_id(seed):
    return f"{os.urandom(4).hex()}-s{seed}"


def _summary(run, seed, options, checkpoint):
    return {
        "run_dir": run.path,
        "seed": seed,
        "epochs": checkpoint.history[-1]["epoch"] if checkpoint.history else 0,
        "monitor": options.monitor,
        "best": checkpoint.best,
        "best_epoch": checkpoint.best_epoch,
        "last": checkpoint.history[-1] if checkpoint.history else {},
    }


# === Several seeds ===


def train_seeds(config, run_dir, num_seeds, extra_callbacks=(), name=None):
    """Runs seeds ``seed .. seed + num_seeds - 1`` into ``run_dir/seed-S`` and summarises them.

    ``name`` (the config's name; None: ``run_dir``'s name) names the W&B runs
    ``<name>-seed-<seed>`` and groups them.

    Writes ``run_dir/seeds.json``: per seed the best monitored value, plus the best seed and
    mean ± std (population) of the per-seed best values and of every final metric.

    Returns:
        dict, the content of ``seeds.json``.
    """
    if num_seeds < 1:
        raise UserError(f"--seeds {num_seeds}: expected at least 1")
    check_inputs(config)
    os.makedirs(run_dir, exist_ok=True)
    remove_stale_temp_files(run_dir)
    save_config(config, os.path.join(run_dir, "config.yaml"))
    runs = []
    name = name or os.path.basename(os.path.abspath(run_dir))
    for offset in range(num_seeds):
        seed_config = {**config, "seed": config["seed"] + offset}
        seed_config["wandb"] = {**config["wandb"], "group": config["wandb"].get("group") or name}
        seed_dir = seed_run_dir(run_dir, seed_config["seed"])
        runs.append(train(seed_config, seed_dir, extra_callbacks, name=name))
    summary = summarize_seeds(runs, config["training"]["monitor_mode"])
    write_json(os.path.join(run_dir, "seeds.json"), summary)
    return summary


def summarize_seeds(runs, mode="min"):
    """Best run and mean ± std over runs (the paper reports the best of three seeds)."""
    values = [r["best"] for r in runs if r["best"] is not None and math.isfinite(r["best"])]
    pick = min if mode == "min" else max
    best_run = None
    if values:
        best_value = pick(values)
        best_run = next(r for r in runs if r["best"] == best_value)
    finals = {}
    keys = sorted({k for r in runs for k in r["last"]} - {"epoch"})
    for key in keys:
        column = [r["last"][key] for r in runs if key in r["last"]]
        finals[key] = {"mean": float(np.mean(column)), "std": float(np.std(column))}
    return {
        "monitor": runs[0]["monitor"] if runs else None,
        "seeds": [
            {
                "seed": r["seed"],
                "best": r["best"],
                "best_epoch": r["best_epoch"],
                "run_dir": r["run_dir"],
            }
            for r in runs
        ],
        "best": None if best_run is None else {"seed": best_run["seed"], "value": best_run["best"]},
        "best_mean": float(np.mean(values)) if values else None,
        "best_std": float(np.std(values)) if values else None,
        "final": finals,
    }
