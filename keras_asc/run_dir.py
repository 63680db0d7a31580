"""The run directory: its layout, how it is written and read, and how a killed run resumes.

The one home of that knowledge for training (:mod:`keras_asc.training.runner` writes it),
evaluation (:mod:`keras_asc.evaluation.runs` reads it) and the DIR generator
(:mod:`keras_asc.irgen.train` writes its own files into the same layout); below all three
packages, so none imports another for it.

Layout (``docs/design.md``)::

    RUN_DIR/config.yaml                     resolved config (after --set overrides)
    RUN_DIR/model.keras                     final model (written when training ends)
    RUN_DIR/checkpoints/best.weights.h5     weights of the best epoch (training.monitor)
    RUN_DIR/checkpoints/last.weights.h5     weights after the last finished epoch
    RUN_DIR/checkpoints/state.json          epoch, best metric, optimizer step, schedule and
                                            random-generator state, the resume files
    RUN_DIR/checkpoints/resume-EEEE.*       the resume point of epoch EEEE: model weights
                                            (.weights.h5) and optimizer + seed-generator
                                            variables (.state.npz)
    RUN_DIR/history.json, history.csv       one row per finished epoch
    RUN_DIR/tensorboard/{train,validation}/, RUN_DIR/wandb/
    RUN_DIR/eval/<split>/                   evaluation outputs (``docs/report_schema.md``)
    RUN_DIR/seed-S/                         with ``train.py --seeds``: one such run per seed

Crash safety: every file is written under a temporary name and renamed into place. The commit
point of an epoch is the rename of ``state.json``; it names the ``resume-EEEE`` files it belongs
to, which were completely written before it, and the previous epoch's resume files are deleted
only after it. A run killed at any moment therefore resumes from a consistent epoch: the last
one whose ``state.json`` was committed. ``last.weights.h5`` is a hard link to the committed
resume weights (a copy where links are not supported). The temporary files a kill leaves
behind, anywhere in the run directory, are removed when the run starts again
(:func:`remove_stale_temp_files`). A write that fails (a full disk) raises
:class:`asc_core.files.WriteError` naming the file, with its temporary file removed and the
committed files untouched; weights are built in memory first because HDF5 crashes the
interpreter after a failed write.
"""

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import zipfile

import numpy as np
import yaml

from asc_core.errors import UserError
from asc_core.files import atomic_write_bytes
from asc_core.files import atomic_write_text
from asc_core.files import replacing
from asc_core.files import write_json

STATE_VERSION = 1
CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.keras"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"
SEED_DIR = re.compile(r"^seed-(\d+)$")


def _weights_h5_bytes(model):
    """The bytes ``model.save_weights`` would write, built in memory.

    HDF5 does not survive a failed write: after ENOSPC it reports errors from object
    destructors and then crashes the interpreter (SIGSEGV) while closing the file. Built in
    memory, the file only reaches the disk through one plain Python write, whose failure is an
    ordinary ``OSError``. Returns None when this Keras has no in-memory store.
    """
    try:
        from keras.src.saving import saving_lib

        store = saving_lib.H5IOStore(io.BytesIO(), mode="w")
    except (ImportError, AttributeError, TypeError):
        return None
    buffer = store.path_or_io
    saving_lib._save_state(
        model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
    )
    store.close()
    return buffer


def save_weights_atomic(model, path):
    """``model.save_weights(path)`` through a temporary file and a rename.

    Raises:
        WriteError: the file cannot be written; the previous ``path`` is untouched.
    """
    buffer = _weights_h5_bytes(model)
    if buffer is not None:
        atomic_write_bytes(path, buffer.getbuffer())
        return
    with replacing(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


def save_model_atomic(model, path):
    """``model.save(path)`` (a ``.keras`` file) through a temporary file and a rename.

    Keras builds the weights inside the zip archive in memory, so a failed write is an
    ordinary ``OSError`` here too.

    Raises:
        WriteError: the file cannot be written; the previous ``path`` is untouched.
    """
    with replacing(path, suffix=".keras") as tmp:
        model.save(tmp)


# The temporary names this project writes inside a run directory, each carrying the writer's
# process id: ``.tmp-PID-<name>`` (Keras saves, evaluation reports) and ``<name>.tmp-PID``
# or ``<name>.tmp-PID.npz`` (JSON, CSV, YAML, resume arrays).
_TEMP_NAMES = (
    re.compile(r"^\.tmp-(?P<pid>\d+)-.+$"),
    re.compile(r"^.+\.tmp-(?P<pid>\d+)(\.npz)?$"),
)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(root):
    """Removes the temporary files a killed run left anywhere under ``root``.

    Only names this project writes (see ``_TEMP_NAMES``) whose process is gone are removed:
    a write still in progress in another live process keeps its file.

    Returns:
        the removed paths, sorted.
    """
    removed = []
    for folder, _, names in os.walk(root):
        for name in names:
            match = next((m for m in (p.match(name) for p in _TEMP_NAMES) if m), None)
            if match is None:
                continue
            pid = int(match.group("pid"))
            if pid != os.getpid() and _process_alive(pid):
                continue
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return sorted(removed)


def seed_generator_states(model):
    """The state variables of every ``keras.random.SeedGenerator`` in ``model``, in layer order."""
    states = []
    seen = set()
    for layer in [model] + list(model._flatten_layers(include_self=False)):
        for generator in getattr(layer, "_seed_generators", []):
            if id(generator.state) not in seen:
                seen.add(id(generator.state))
                states.append(generator.state)
    return states


class RunDirectory:
    """Paths, atomic writes and the resume state of one run.

    Args:
        path: str, the run directory (created if missing).
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.checkpoints = os.path.join(self.path, CHECKPOINTS_DIR)
        self.config = os.path.join(self.path, CONFIG_FILE)
        self.model = os.path.join(self.path, MODEL_FILE)
        self.best_weights = os.path.join(self.checkpoints, "best.weights.h5")
        self.last_weights = os.path.join(self.checkpoints, "last.weights.h5")
        self.state = os.path.join(self.checkpoints, "state.json")
        self.history_json = os.path.join(self.path, "history.json")
        self.history_csv = os.path.join(self.path, "history.csv")
        self.tensorboard = os.path.join(self.path, "tensorboard")
        self.wandb = os.path.join(self.path, "wandb")

    def create(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--run-dir {self.path}: exists and is not a folder")
        os.makedirs(self.checkpoints, exist_ok=True)

    def resume_paths(self, epoch):
        """(weights, state-npz) paths of the resume point after ``epoch`` finished epochs."""
        stem = os.path.join(self.checkpoints, f"resume-{epoch:04d}")
        return f"{stem}.weights.h5", f"{stem}.state.npz"

    # === Reading ===

    def load_state(self):
        """The committed ``state.json`` as a dict, or None for a fresh run directory."""
        if not os.path.isfile(self.state):
            return None
        try:
            with open(self.state, encoding="utf-8") as f:
                state = json.load(f)
        except ValueError as err:
            raise UserError(
                f"{self.state}: not valid JSON ({err}); the run cannot resume"
            ) from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise UserError(f"{self.state}: state version {version!r}; expected {STATE_VERSION}")
        if isinstance(state.get("epoch"), bool) or not isinstance(state.get("epoch"), int):
            raise UserError(
                f"{self.state}: 'epoch' is {state.get('epoch')!r}; expected the number of "
                "finished epochs (an integer); the run cannot resume"
            )
        return state

    def restore(self, model, state):
        """Loads the weights, optimizer and seed-generator variables of a committed state."""
        weights, arrays = self.resume_paths(state["epoch"])
        for path in (weights, arrays):
            if not os.path.isfile(path):
                raise UserError(f"{path}: missing resume file named by {self.state}")
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        remedy = (
            f"expected the resume files this run wrote; move {self.path} away to start "
            "the run again from scratch"
        )
        try:
            model.load_weights(weights)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"{weights}: cannot load the resume weights ({_first_line(err)}); {remedy}"
            ) from None
        try:
            with np.load(arrays, allow_pickle=False) as data:
                optimizer_values = [
                    data[f"optimizer_{i}"] for i in range(int(data["num_optimizer"]))
                ]
                seed_values = [data[f"seed_{i}"] for i in range(int(data["num_seed"]))]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise UserError(
                f"{arrays}: cannot read the resume state ({_first_line(err)}); {remedy}"
            ) from None
        _assign_all(optimizer.variables, optimizer_values, "optimizer", arrays)
        _assign_all(seed_generator_states(model), seed_values, "seed generator", arrays)

    def load_best_weights(self, model):
        """Loads ``best.weights.h5`` into ``model`` (``training.final_weights: best``).

        Raises:
            UserError: the file cannot be loaded (damaged, or of another model), naming it;
                ``model.keras`` is then not written.
        """
        try:
            model.load_weights(self.best_weights)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"{self.best_weights}: cannot load the best epoch's weights ({_first_line(err)}); "
                "expected the weights this run saved at its best epoch (training.final_weights: "
                f"best), so {self.model} was not written. Restore the file, or delete it to "
                "finish with the last epoch's weights, and run the same command again"
            ) from None

    # === Writing ===

    def commit_epoch(self, model, epoch, state):
        """Writes the resume point after ``epoch`` finished epochs, then commits ``state``.

        Args:
            model: the compiled model (weights, optimizer, seed generators are saved).
            epoch: int, number of finished epochs (1 after the first epoch).
            state: dict, JSON-able; ``epoch`` and ``version`` are set here.
        """
        weights, arrays = self.resume_paths(epoch)
        save_weights_atomic(model, weights)
        values = {}
        optimizer_vars = model.optimizer.variables
        for i, v in enumerate(optimizer_vars):
            values[f"optimizer_{i}"] = np.asarray(v.numpy())
        seeds = seed_generator_states(model)
        for i, v in enumerate(seeds):
            values[f"seed_{i}"] = np.asarray(v.numpy())
        values["num_optimizer"] = np.int64(len(optimizer_vars))
        values["num_seed"] = np.int64(len(seeds))
        with replacing(arrays, suffix=".npz") as tmp:
            np.savez(tmp, **values)

        previous = self.load_state()
        write_json(self.state, {**state, "version": STATE_VERSION, "epoch": epoch})
        # Committed. Everything below can be redone from the committed files.
        self._link(weights, self.last_weights)
        if previous is not None and previous["epoch"] != epoch:
            for path in self.resume_paths(previous["epoch"]):
                if os.path.exists(path):
                    os.remove(path)

    def repair(self, state):
        """Redoes the post-commit steps of ``state`` (a kill may have interrupted them)."""
        weights, _ = self.resume_paths(state["epoch"])
        self._link(weights, self.last_weights)
        for name in os.listdir(self.checkpoints):
            stale_resume = name.startswith("resume-") and not name.startswith(
                f"resume-{state['epoch']:04d}."
            )
            if stale_resume or ".tmp-" in name:
                os.remove(os.path.join(self.checkpoints, name))

    def _link(self, source, target):
        with replacing(target, suffix=".weights.h5") as tmp:
            os.remove(tmp)  # a link needs a free name
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)

    def write_history(self, history):
        """Writes ``history`` (list of per-epoch dicts) as JSON and CSV."""
        write_history(history, self.history_json, self.history_csv)


def default_run_dir(config_path, runs="runs"):
    """``runs/<config file stem>``: where a command trains when no ``--run-dir`` is given."""
    return os.path.join(runs, os.path.splitext(os.path.basename(os.fspath(config_path)))[0])


def seed_run_dir(run_dir, seed):
    """``RUN_DIR/seed-S``, the run of seed ``S`` of ``train.py --seeds``."""
    return os.path.join(os.fspath(run_dir), f"seed-{seed}")


def seed_dirs(path):
    """``path/seed-S`` folders (``scripts/train.py --seeds N`` writes them), sorted by seed."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return []
    found = [(int(m.group(1)), n) for n in os.listdir(path) if (m := SEED_DIR.match(n))]
    return [os.path.join(path, n) for _, n in sorted(found) if os.path.isdir(os.path.join(path, n))]


def eval_dir(run_dir, split):
    """``RUN_DIR/eval/<split>``, where a run's evaluation outputs go."""
    return os.path.join(os.fspath(run_dir), EVAL_DIR, split)


def read_run_config(run_dir):
    """The run's ``config.yaml`` as a dict (``{}`` when absent).

    Raises:
        UserError: the file is not YAML or not a mapping, naming it.
    """
    path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f)
        except yaml.YAMLError as err:
            detail = " ".join(line.strip() for line in str(err).splitlines())
            raise UserError(f"{path}: not valid YAML ({detail})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a mapping of config sections")
    return config


def write_history(history, json_path, csv_path):
    """Writes ``history`` (list of per-epoch dicts) as JSON and CSV (columns in first-seen
    order), each atomically."""
    write_json(json_path, history)
    keys = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: _csv_value(row.get(k)) for k in keys})
    atomic_write_text(csv_path, text.getvalue())


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _assign_all(variables, values, what, path):
    if len(variables) != len(values):
        raise UserError(
            f"{path}: holds {len(values)} {what} variables but the model has {len(variables)}; "
            "the run directory belongs to another model or optimizer"
        )
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise UserError(
                f"{path}: {what} variable {variable.path} has shape {tuple(variable.shape)} but "
                f"the saved one {tuple(value.shape)}; the run directory belongs to another model"
            )
        variable.assign(value)
