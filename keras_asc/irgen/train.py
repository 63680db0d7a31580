"""Training the DIR generator GAN into a run directory.

From the command line (:mod:`keras_asc.cli`)::

    python scripts/train_irgen.py --config configs/irgen/small_cpu.yaml [--set k=v ...]
                                  [--run-dir runs/irgen_small] [--overwrite]

Run directory (``docs/irgen.md``; ``config.yaml``, ``checkpoints/`` and ``history.*`` in the
layout of :mod:`keras_asc.run_dir`)::

    RUN_DIR/config.yaml                resolved config (loadable again)
    RUN_DIR/generator.keras            the selected generator (training.checkpoint)
    RUN_DIR/discriminator.keras        the discriminator after the last epoch
    RUN_DIR/checkpoints/generator_{best,last}.weights.h5
    RUN_DIR/history.json, history.csv  losses and validation metrics per epoch
    RUN_DIR/holdout/{angles,distance,microphones,none}.tsv, holdout.json   file lists
    RUN_DIR/microphones.csv            the training set's microphone table
    RUN_DIR/conditions.json            the trained condition range and the data conventions
    RUN_DIR/summary.json               protocol, epochs, best epoch, validation MSE, minutes
"""

import json
import os
import time

import numpy as np

from asc_core.errors import UserError
from keras_asc.irgen import holdout as holdout_lib
from keras_asc.irgen.condition_encoding import CONDITION_DIM
from keras_asc.irgen.condition_encoding import ConditionEncoder
from keras_asc.irgen.config import save_irgen_config
from keras_asc.irgen.records import configuration_key
from keras_asc.irgen.records import load_dir_set
from keras_asc.irgen.records import microphone_rows
from keras_asc.irgen.records import write_microphone_table


def build_networks(config, output_length, sample_rate=32000):
    """``(generator, discriminator, gan)`` from a resolved config.

    Raises:
        UserError: the generator/discriminator sizes do not fit ``output_length`` (names the
            config keys).
    """
    from keras_asc.irgen.discriminator import DirDiscriminator
    from keras_asc.irgen.gan import DirGAN
    from keras_asc.irgen.generator import DirGenerator

    seed = config["seed"]
    try:
        generator = DirGenerator(
            output_length=output_length,
            condition_dim=CONDITION_DIM,
            seed=seed,
            **config["generator"],
        )
    except ValueError as err:
        raise UserError(
            f"generator: {err} (IRs of the DIR set have {output_length} samples)"
        ) from None
    try:
        discriminator = DirDiscriminator(
            input_length=output_length,
            condition_dim=CONDITION_DIM,
            seed=seed + 1000,
            **config["discriminator"],
        )
    except ValueError as err:
        raise UserError(f"discriminator: {err}") from None
    gan = DirGAN(generator, discriminator, sample_rate=sample_rate, **config["gan"])
    return generator, discriminator, gan


def make_optimizers(options, steps_per_epoch, generator_steps):
    """``(discriminator_optimizer, generator_optimizer)``: RMSprop with a staircase decay.

    The decay counts optimizer steps: the generator steps ``generator_steps`` times per batch.
    """
    import keras

    optimizers = []
    for updates in (1, generator_steps):
        schedule = keras.optimizers.schedules.ExponentialDecay(
            options["learning_rate"],
            decay_steps=options["decay_epochs"] * steps_per_epoch * updates,
            decay_rate=options["decay_rate"],
            staircase=True,
        )
        optimizers.append(
            keras.optimizers.RMSprop(schedule, rho=options["rho"], epsilon=options["epsilon"])
        )
    return tuple(optimizers)


def condition_range(records, encoder):
    """What the generator was trained on: distances, angles, category combinations, collisions.

    Args:
        records: the training records.
        encoder: :class:`ConditionEncoder`.

    Returns:
        JSON-able dict; ``collisions`` lists condition vectors shared by several configurations
        (the encoding cannot tell them apart, so the generator learns their average).
    """
    by_vector = {}
    for r in records:
        key = tuple(np.round(encoder.encode(r), 6).tolist())
        by_vector.setdefault(key, set()).add(configuration_key(r))
    shared = {}
    for configs in by_vector.values():
        if len(configs) > 1:
            names = tuple(sorted("/".join(c for c in key if c) for key in configs))
            shared[names] = shared.get(names, 0) + 1
    distances = sorted({r["distance_cm"] for r in records})
    return {
        "distances_cm": distances,
        "distance_range_cm": [distances[0], distances[-1]],
        "angles_deg": sorted({r["angle_deg"] for r in records}),
        "categories": sorted(list(k) for k in {encoder.category_key(r) for r in records}),
        "configurations": len({configuration_key(r) for r in records}),
        "collisions": [{"configurations": list(k), "conditions": v} for k, v in shared.items()],
    }


def _data_info(path):
    info_path = os.path.join(path, "info.json")
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: info[k] for k in ("builder", "set", "num_examples", "processing") if k in info}


def prepare(config):
    """Loads the DIR set, encodes it and splits it; returns a dict of everything training needs."""
    dirset = load_dir_set(config["data"]["path"])
    encoder = ConditionEncoder(**config["encoding"])
    conditions = encoder.encode_many(dirset.records)
    options = dict(config["holdout"])
    protocol = options.pop("protocol")
    validation_fraction = options.pop("validation_fraction")
    splits = holdout_lib.split_records(
        dirset.records,
        protocol,
        seed=config["seed"],
        validation_fraction=validation_fraction,
        **options,
    )
    return {
        "dirset": dirset,
        "encoder": encoder,
        "conditions": conditions,
        "splits": splits,
        "protocol": protocol,
        "holdout_params": options,
        "validation_fraction": validation_fraction,
    }


def _progress_callback(epochs, verbose):
    """Epoch-level progress (verbose 1) or one line per epoch (verbose 2) as a Keras callback."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = None
            if verbose == 1:
                from asc_core.progress import progress

                self.bar = progress(total=epochs, desc="irgen", unit="epoch")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = {
                k: logs[k]
                for k in ("d_loss", "g_loss", "mse", "val_mse", "val_lsd_db")
                if k in logs
            }
            if self.bar is not None:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
                self.bar.update(1)
            elif verbose == 2:
                text = " ".join(f"{k}={v:.5g}" for k, v in shown.items())
                print(f"epoch {epoch + 1}/{epochs} {text}", flush=True)

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _best_generator_callback(generator, folder, monitor):
    import keras

    from keras_asc.run_dir import save_weights_atomic

    class Callback(keras.callbacks.Callback):
        best = float("inf")
        best_epoch = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            save_weights_atomic(generator, os.path.join(folder, "generator_last.weights.h5"))
            if value is not None and np.isfinite(value) and value < self.best:
                self.best, self.best_epoch = float(value), epoch + 1
                save_weights_atomic(generator, os.path.join(folder, "generator_best.weights.h5"))

    return Callback()


def _history_rows(history):
    """Keras' ``History.history`` (key -> per-epoch list) as one row per epoch."""
    keys = sorted(history)
    epochs = len(history[keys[0]]) if keys else 0
    return [{"epoch": i + 1, **{k: float(history[k][i]) for k in keys}} for i in range(epochs)]


def train(config, run_dir, overwrite=False):
    """Trains the GAN of a resolved config into ``run_dir``; returns the summary dict."""
    import keras
    import tensorflow as tf

    from asc_core.files import write_json
    from keras_asc.run_dir import RunDirectory
    from keras_asc.run_dir import save_model_atomic

    summary_path = os.path.join(run_dir, "summary.json")
    if os.path.exists(summary_path) and not overwrite:
        raise UserError(
            f"--run-dir {run_dir} already holds a finished generator run ({summary_path}); "
            "choose another --run-dir or pass --overwrite"
        )
    start = time.time()
    data = prepare(config)
    dirset, splits, conditions = data["dirset"], data["splits"], data["conditions"]
    batch_size = config["data"]["batch_size"]
    train_idx = splits["train"]
    if train_idx.size < batch_size:
        raise UserError(
            f"data.batch_size {batch_size} is larger than the {train_idx.size} training IRs of "
            f"protocol {data['protocol']!r}; lower it"
        )
    layout = RunDirectory(run_dir)
    layout.create()
    save_irgen_config(config, layout.config)
    holdout_lib.write_holdout_lists(
        dirset.records,
        os.path.join(run_dir, "holdout"),
        seed=config["seed"],
        validation_fraction=data["validation_fraction"],
        **data["holdout_params"],
    )
    train_records = [dirset.records[i] for i in train_idx]
    write_microphone_table(
        microphone_rows(dirset.records), os.path.join(run_dir, "microphones.csv")
    )
    write_json(
        os.path.join(run_dir, "conditions.json"),
        {
            "protocol": data["protocol"],
            "data_path": os.path.abspath(dirset.path),
            "sample_rate": dirset.sample_rate,
            "ir_length": int(dirset.irs.shape[1]),
            "encoding": data["encoder"].get_config(),
            "trained": condition_range(train_records, data["encoder"]),
            "set_angles_deg": sorted({r["angle_deg"] for r in dirset.records}),
            "set_distances_cm": sorted({r["distance_cm"] for r in dirset.records}),
            "data_info": _data_info(dirset.path),
        },
    )

    keras.utils.set_random_seed(config["seed"])
    generator, discriminator, gan = build_networks(
        config, int(dirset.irs.shape[1]), dirset.sample_rate
    )
    steps_per_epoch = train_idx.size // batch_size
    gan.compile(
        *make_optimizers(config["optimizer"], steps_per_epoch, config["gan"]["generator_steps"])
    )
    train_ds = (
        tf.data.Dataset.from_tensor_slices((conditions[train_idx], dirset.irs[train_idx]))
        .shuffle(train_idx.size, seed=config["seed"], reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
    )
    val_idx = splits["validation"]
    val_ds = None
    if val_idx.size:
        val_ds = tf.data.Dataset.from_tensor_slices(
            (conditions[val_idx], dirset.irs[val_idx])
        ).batch(batch_size)
    options = config["training"]
    checkpoints = layout.checkpoints
    best = _best_generator_callback(generator, checkpoints, "val_mse")
    history = gan.fit(
        train_ds,
        validation_data=val_ds,
        epochs=options["epochs"],
        verbose=0,
        shuffle=False,  # the dataset shuffles itself (seeded)
        callbacks=[best, _progress_callback(options["epochs"], options["verbose"])],
    )
    layout.write_history(_history_rows(history.history))
    save_model_atomic(discriminator, os.path.join(run_dir, "discriminator.keras"))
    chosen = "last"
    if options["checkpoint"] == "best" and best.best_epoch is not None:
        generator.load_weights(os.path.join(checkpoints, "generator_best.weights.h5"))
        chosen = "best"
    save_model_atomic(generator, os.path.join(run_dir, "generator.keras"))
    val_mse = history.history.get("val_mse", [])
    summary = {
        "run_dir": os.path.abspath(run_dir),
        "protocol": data["protocol"],
        "epochs": options["epochs"],
        "steps_per_epoch": steps_per_epoch,
        "counts": {s: int(v.size) for s, v in splits.items()},
        "checkpoint": chosen,
        "best_epoch": best.best_epoch,
        "best_val_mse": best.best if best.best_epoch is not None else None,
        "first_val_mse": float(val_mse[0]) if val_mse else None,
        "last_val_mse": float(val_mse[-1]) if val_mse else None,
        "generator_parameters": int(generator.count_params()),
        "discriminator_parameters": int(discriminator.count_params()),
        "minutes": round((time.time() - start) / 60.0, 2),
    }
    write_json(summary_path, summary)
    return summary
