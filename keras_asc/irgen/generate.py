"""A DIR TFRecord set from a trained generator.

From the command line (:mod:`keras_asc.cli`)::

    python scripts/generate_dirs.py --run RUN_DIR --out data/tfrecords/generated_dirs \
        [--grid angles=0:360:5 distances=50,125,500] [--microphones my_mics.csv] \
        [--select RodeNT2ACardioid,ShureSM57] [--checkpoint PATH.weights.h5]

The output has the layout and schema of a measured DIR set (``docs/design.md``; written with
:class:`asc_core.writer.OutputDir`): ``dirs.tfrecord-*`` shards plus ``info.json``,
records with ``set = "generated"``, the microphone metadata of the condition, 1024 samples at
the training rate, peak-normalised like ``multi-dirs`` (``--normalize none`` keeps the raw
tanh output). :func:`keras_asc.data.dirs.load_dirs` reads it unchanged, so DIR augmentation uses
it through ``dirs.sets`` in a training config.

Conditions: every microphone configuration of ``--microphones`` (a CSV in the format of
``asc_core/data/surrey_microphones.csv``; default: ``RUN_DIR/microphones.csv``, the
configurations of the training set), optionally narrowed by ``--select``, at every distance and
angle of the grid (default: the distances and angles measured in the training DIR set). A
condition outside the trained range (a distance outside the trained span, or a
directivity/transducer/diaphragm combination the generator never saw) is generated with a
warning, recorded in ``info.json``.
"""

import os
import warnings

import numpy as np

from asc_core.errors import UserError
from keras_asc.irgen.condition_encoding import CONDITION_DIM
from keras_asc.irgen.condition_encoding import ConditionEncoder

BUILDER = "irgen-generate"
NORMALIZE = ("peak", "none")


class OutOfRangeWarning(UserWarning):
    """A generated condition lies outside what the generator was trained on."""


# === Run directory ===


def load_run(run_dir):
    """``(config, conditions)``: the resolved config and ``conditions.json`` of a run."""
    import json

    from keras_asc.irgen.config import load_irgen_config

    run_dir = os.fspath(run_dir)
    config_path = os.path.join(run_dir, "config.yaml")
    conditions_path = os.path.join(run_dir, "conditions.json")
    for path in (config_path, conditions_path):
        if not os.path.isfile(path):
            raise UserError(
                f"--run {run_dir}: {os.path.basename(path)} is missing; expected a run directory "
                "written by scripts/train_irgen.py"
            )
    config = load_irgen_config(config_path)
    with open(conditions_path, encoding="utf-8") as f:
        conditions = json.load(f)
    return config, conditions


def load_generator(run_dir, checkpoint=None):
    """The run's generator: ``RUN_DIR/generator.keras``, or the config's generator with the
    weights of ``checkpoint`` (a ``.weights.h5`` file, e.g. ``checkpoints/generator_last``).

    Raises:
        UserError: a missing file, or a checkpoint/model whose size differs from the run's
            config (names the file and the first differing setting).
    """
    import keras

    import keras_asc.irgen  # noqa: F401 - registers the classes for load_model
    from keras_asc.irgen.generator import DirGenerator

    config, conditions = load_run(run_dir)
    expected = DirGenerator(
        output_length=conditions["ir_length"], condition_dim=CONDITION_DIM, **config["generator"]
    )
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise UserError(f"--checkpoint {checkpoint}: file not found")
        expected.build((None, CONDITION_DIM))
        try:
            expected.load_weights(checkpoint)
        except (ValueError, KeyError) as err:
            raise UserError(
                f"--checkpoint {checkpoint} does not fit the generator of {run_dir}/config.yaml "
                f"(initial_channels {expected.initial_channels}, channels {expected.channels}, "
                f"kernel_size {expected.kernel_size}): it is a checkpoint of another size "
                f"({str(err).splitlines()[0][:200]})"
            ) from None
        return expected
    path = os.path.join(os.fspath(run_dir), "generator.keras")
    if not os.path.isfile(path):
        raise UserError(f"--run {run_dir}: generator.keras is missing (training did not finish)")
    generator = keras.saving.load_model(path)
    if not isinstance(generator, DirGenerator):
        raise UserError(f"{path} holds a {type(generator).__name__}, not a DirGenerator")
    want, have = expected.get_config(), generator.get_config()
    for key in (
        "output_length",
        "condition_dim",
        "initial_length",
        "initial_channels",
        "channels",
        "strides",
        "kernel_size",
        "condition_units",
    ):
        if want[key] != have[key]:
            raise UserError(
                f"{path}: {key} is {have[key]!r} but {run_dir}/config.yaml says {want[key]!r}; "
                "the checkpoint is of another size (from another run)"
            )
    return generator


def generate_irs(generator, conditions, batch_size=256):
    """``[N, L]`` float32 IRs for ``[N, 12]`` conditions (inference mode)."""
    conditions = np.asarray(conditions, np.float32)
    out = []
    for start in range(0, conditions.shape[0], batch_size):
        out.append(np.asarray(generator(conditions[start : start + batch_size], training=False)))
    if not out:
        return np.zeros((0, generator.output_length), np.float32)
    return np.concatenate(out).astype(np.float32)


# === Grid and microphones ===


def _int_values(text, key):
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ":" in part:
                bounds = [int(v) for v in part.split(":")]
                if len(bounds) not in (2, 3) or (len(bounds) == 3 and bounds[2] <= 0):
                    raise ValueError
                values.extend(range(*bounds))
            else:
                values.append(int(part))
        except ValueError:
            raise UserError(
                f"--grid {key}={text}: expected integers or ranges start:stop[:step] separated "
                "by commas (e.g. angles=0:360:5 distances=50,125,500)"
            ) from None
    return sorted(set(values))


def parse_grid(items, default_angles, default_distances):
    """``{"angles": [...], "distances_cm": [...]}`` from ``--grid`` items.

    Args:
        items: list of ``angles=SPEC`` / ``distances=SPEC`` strings (SPEC: comma-separated
            integers or ``start:stop[:step]`` ranges, stop excluded).
        default_angles, default_distances: used for a key that is not given.
    """
    grid = {"angles": list(default_angles), "distances_cm": list(default_distances)}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("angles", "distances"):
            raise UserError(f"--grid {item}: expected angles=SPEC or distances=SPEC")
        values = _int_values(value, key)
        if not values:
            raise UserError(f"--grid {item}: no values")
        if key == "angles":
            bad = [a for a in values if not 0 <= a < 360]
            if bad:
                raise UserError(f"--grid {item}: angle {bad[0]} is outside [0, 360) degrees")
            grid["angles"] = values
        else:
            bad = [d for d in values if d <= 0]
            if bad:
                raise UserError(f"--grid {item}: distance {bad[0]} cm is not positive")
            grid["distances_cm"] = values
    return grid


def load_microphone_rows(path, select=None):
    """Configurations of a microphone table, as metadata dicts (table order).

    Args:
        path: CSV in the ``surrey_microphones.csv`` format.
        select: None or a list of ``config`` tokens to keep.

    Raises:
        UserError: table problems (see ``load_microphones``), or a selected configuration that
            is not in the table.
    """
    from asc_core.microphones import load_microphones

    table = load_microphones(path)
    if select:
        unknown = [s for s in select if s not in table]
        if unknown:
            raise UserError(
                f"--select {unknown[0]}: no such microphone configuration in {path}; it has "
                f"{', '.join(table)}"
            )
        table = {k: table[k] for k in select}
    return [
        {
            "config": info.config,
            "microphone": info.microphone,
            "pattern": info.pattern,
            "variant": info.variant,
            "transducer": info.transducer,
            "diaphragm_size": info.diaphragm_size,
            "diaphragm_count": info.diaphragm_count,
            "address": info.address,
        }
        for info in table.values()
    ]


def range_problems(meta, trained, encoder):
    """Why a condition is outside the trained range (empty list: inside)."""
    problems = []
    lo, hi = trained["distance_range_cm"]
    if not lo <= meta["distance_cm"] <= hi:
        problems.append(f"distance {meta['distance_cm']} cm outside the trained {lo}-{hi} cm")
    key = list(encoder.category_key(meta))
    if key not in [list(k) for k in trained["categories"]]:
        directivity, transducer, size = key
        problems.append(f"untrained combination {directivity}/{transducer}/{size or 'no size'}")
    return problems


# === Writing ===


def generate_set(
    run_dir,
    out,
    grid=(),
    microphones=None,
    select=None,
    normalize="peak",
    batch_size=256,
    shards=1,
    checkpoint=None,
):
    """Writes a generated DIR set; see the module docstring. Returns the output path."""
    from asc_core.example import encode_dir_example
    from asc_core.writer import OutputDir

    if normalize not in NORMALIZE:
        raise UserError(f"--normalize {normalize!r}: expected one of {', '.join(NORMALIZE)}")
    config, conditions_info = load_run(run_dir)
    trained = conditions_info["trained"]
    encoder = ConditionEncoder(**config["encoding"])
    table_path = microphones or os.path.join(os.fspath(run_dir), "microphones.csv")
    rows = load_microphone_rows(table_path, select)
    grid = parse_grid(grid, conditions_info["set_angles_deg"], conditions_info["set_distances_cm"])
    generator = load_generator(run_dir, checkpoint)

    metas, encoded, warned = [], [], []
    for row in rows:
        problems = set()
        row_metas = [
            {**row, "distance_cm": distance, "angle_deg": angle}
            for distance in grid["distances_cm"]
            for angle in grid["angles"]
        ]
        encoded.append(encoder.encode_many(row_metas))  # a bad row fails before any warning
        for meta in row_metas:
            problems.update(range_problems(meta, trained, encoder))
        metas.extend(row_metas)
        if problems:
            message = (
                f"{row['config']}: outside the trained range ({'; '.join(sorted(problems))})"
                "; generating anyway"
            )
            warnings.warn(message, OutOfRangeWarning, stacklevel=2)
            warned.append({"config": row["config"], "problems": sorted(problems)})
    irs = generate_irs(generator, np.concatenate(encoded), batch_size)
    if normalize == "peak":
        peaks = np.max(np.abs(irs), axis=1, keepdims=True)
        irs = np.where(peaks > 0, irs / np.where(peaks > 0, peaks, 1.0), irs).astype(np.float32)

    sample_rate = conditions_info["sample_rate"]
    counts = {}
    with OutputDir(out, builder=BUILDER) as output:
        writer = output.sharded_writer("dirs", shards)
        for meta, ir in zip(metas, irs):
            folder = f"{meta['config']}_{meta['distance_cm']}cm"
            writer.write(
                encode_dir_example(
                    ir,
                    name=f"{folder}/{folder}_{meta['angle_deg']}Deg",
                    set="generated",
                    source_sample_rate=sample_rate,
                    sample_rate=sample_rate,
                    microphone=meta["microphone"],
                    pattern=meta["pattern"],
                    variant=meta["variant"],
                    distance_cm=meta["distance_cm"],
                    angle_deg=meta["angle_deg"],
                    transducer=meta["transducer"],
                    diaphragm_size=meta["diaphragm_size"],
                    address=meta["address"],
                    diaphragm_count=meta["diaphragm_count"],
                )
            )
            mic = counts.setdefault(meta["microphone"], {})
            mic[str(meta["distance_cm"])] = mic.get(str(meta["distance_cm"]), 0) + 1
        info = {
            "set": "generated",
            "sample_rate": sample_rate,
            "num_examples": writer.num_examples,
            "shards": list(writer.names),
            "shard_counts": list(writer.counts),
            "generator": {
                "run_dir": os.path.abspath(os.fspath(run_dir)),
                "checkpoint": os.path.abspath(checkpoint) if checkpoint else "generator.keras",
                "protocol": conditions_info.get("protocol"),
                "trained_on": conditions_info.get("data_path"),
            },
            "microphone_table": os.path.abspath(os.fspath(table_path)),
            "configurations": [row["config"] for row in rows],
            "grid": grid,
            "normalize": normalize,
            "encoding": encoder.get_config(),
            "out_of_range": warned,
            "counts": {"microphone_distance_cm": counts},
        }
        return output.finish(info)
