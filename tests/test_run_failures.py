"""Training: damaged resume files and shards, a full disk, SIGTERM, stale temp files.

Each bad input is one case of a declarative table (as in ``test_tau22_builder.py``): one clear
``UserError`` naming the file, nothing already written changed, no temporary file left.
"""

import errno
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

import _corpus
import _fs
import keras
import pytest

from asc_core.errors import UserError
from asc_core.errors import run_cli
from keras_asc import run_dir as run_dir_lib
from keras_asc.config import resolve_config
from keras_asc.data.pipeline import shard_problem
from keras_asc.training.runner import train

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
TRAIN_SHARD = "train-10s.tfrecord-00001-of-00002"
EVAL_SHARD = "evaluate-1s.tfrecord-00000-of-00001"
TEMP_NAME = re.compile(r"\.tmp-\d+")


def tiny_config(data_path, epochs, **training):
    return resolve_config(
        {
            "seed": 0,
            "data": {"path": str(data_path), "batch_size": 8},
            "model": {"preset": "passt_tiny", "frontend": {"freqm": 8, "timem": 4}},
            "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
            "schedule": {"name": "plateau", "patience": 2, "factor": 0.5},
            "training": {"epochs": epochs, "steps_per_epoch": 2, "verbose": 0, **training},
            "wandb": {"mode": "disabled"},
        }
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A data folder and a run directory that finished epoch 1 (resumable to epoch 2)."""
    folder = tmp_path_factory.mktemp("base")
    data, run = folder / "data", folder / "run"
    _corpus.write_learnable_set(str(data), recordings_per_scene=4, eval_per_scene=3, seconds=2)
    train(tiny_config(data, 1), str(run))
    return data, run


def _copy(base, tmp_path):
    """Copies of the base data and run; the run's config.yaml names the copied data."""
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(base[0], data)
    shutil.copytree(base[1], run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(base[0]), str(data)))
    return data, run


def _snapshot(run):
    """``{relative path: bytes}`` of what a failed resume must not change."""
    out = {}
    for folder, _, names in os.walk(run):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, run)
            if rel != "config.yaml" and not rel.startswith("tensorboard"):
                out[rel] = open(path, "rb").read()
    return out


def _temp_files(*roots):
    return [
        os.path.join(f, n)
        for root in roots
        for f, _, names in os.walk(root)
        for n in names
        if TEMP_NAME.search(n)
    ]


def _cut_last_record(data):
    """Writes an info.json with the true counts, then drops the train shard's last record."""
    counts = {
        name: shard_problem(str(data / name))[0]
        for name in ("train-10s.tfrecord-00000-of-00002", TRAIN_SHARD, EVAL_SHARD)
    }
    views = {
        "train": {"10s": counts["train-10s.tfrecord-00000-of-00002"] + counts[TRAIN_SHARD]},
        "evaluate": {"1s": counts[EVAL_SHARD]},
    }
    info = {
        "builder": "tau22",
        "splits": {
            s: {"views": {v: {"num_examples": n}}} for s, vs in views.items() for v, n in vs.items()
        },
    }
    (data / "info.json").write_text(json.dumps(info))
    offset, last = 0, 0
    with open(data / TRAIN_SHARD, "rb") as f:
        while header := f.read(12):
            last = offset
            offset += 16 + struct.unpack("<Q", header[:8])[0]
            f.seek(offset)
    _fs.truncate(data / TRAIN_SHARD, last)


def _disk_full(monkeypatch):
    """Every temporary file of the run directory fails like a full disk once written to."""
    real_open = open

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return Full(handle) if "w" in mode and ".tmp-" in os.fspath(path) else handle

    monkeypatch.setattr(run_dir_lib, "open", fake_open, raising=False)


def _state_without_epoch(run):
    path = run / "checkpoints" / "state.json"
    state = json.loads(path.read_text())
    del state["epoch"]
    path.write_text(json.dumps(state))


def _garbage_best_weights_at_the_end(run):
    """A run of ``final_weights: best`` that trained its epoch and stopped before model.keras
    (what the next start finishes), with a garbage best.weights.h5 (a new file: it may share
    its inode with other checkpoints)."""
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("final_weights: last", "final_weights: best"))
    (run / "model.keras").unlink()
    best = run / "checkpoints/best.weights.h5"
    best.unlink()
    best.write_bytes(b"garbage" * 99)


# Each case: (damage(data, run, monkeypatch), message regex[, training overrides of the resumed
# run; default: 2 epochs]).
BAD_INPUTS = {
    "garbage resume weights": (
        lambda d, r, m: (r / "checkpoints/resume-0001.weights.h5").write_bytes(b"garbage" * 99),
        r"resume-0001\.weights\.h5: cannot load the resume weights \(.*\); expected the resume "
        r"files this run wrote; move .*run away to start the run again from scratch",
    ),
    "truncated resume state": (
        lambda d, r, m: _fs.truncate(r / "checkpoints/resume-0001.state.npz", 1000),
        r"resume-0001\.state\.npz: cannot read the resume state \(.*\); expected the resume",
    ),
    "state.json without epoch": (
        lambda d, r, m: _state_without_epoch(r),
        r"state\.json: 'epoch' is None; expected the number of finished epochs",
    ),
    "truncated train shard": (
        lambda d, r, m: _fs.truncate(d / TRAIN_SHARD, os.path.getsize(d / TRAIN_SHARD) - 1000),
        r"train-10s\.tfrecord-00001-of-00002: truncated: the record at byte \d+ ends at byte "
        r"\d+, the file has \d+ bytes; expected a complete TFRecord shard",
    ),
    "truncated evaluate shard": (
        lambda d, r, m: _fs.truncate(d / EVAL_SHARD, 6),
        r"evaluate-1s\.tfrecord-00000-of-00001: truncated: the file ends inside the record "
        r"header at byte 0",
    ),
    "train shard cut at a record boundary": (
        lambda d, r, m: _cut_last_record(d),
        r"split 'train' view '10s' holds 39 records but info\.json records 40 "
        r"\(train-10s\.tfrecord-00000-of-00002: 20, train-10s\.tfrecord-00001-of-00002: 19\)",
    ),
    "bit-flipped train shard": (
        lambda d, r, m: _fs.flip_bit(d / TRAIN_SHARD, mask=0x10),
        r"train-10s\.tfrecord-00001-of-00002: corrupted record at byte \d+ \(data checksum "
        r"mismatch\); expected a complete TFRecord shard",
    ),
    "bit-flipped evaluate shard": (
        lambda d, r, m: _fs.flip_bit(d / EVAL_SHARD, 5000, mask=0x10),
        r"evaluate-1s\.tfrecord-00000-of-00001: corrupted record at byte \d+ \(data checksum",
    ),
    "train split without labels (info.json)": (
        lambda d, r, m: (d / "info.json").write_text(
            json.dumps(
                {
                    "builder": "tau22",
                    "splits": {
                        "train": {
                            "views": {"10s": {"num_examples": 40, "counts": {"a": {"unknown": 40}}}}
                        }
                    },
                }
            )
        ),
        r"data\.path .*data: 40 records of split 'train' view '10s' have no scene label "
        r"\(info\.json counts them under scene 'unknown'\); expected a labelled training split",
    ),
    "garbage history.json": (
        lambda d, r, m: (r / "history.json").write_text('{"epoch": 1'),
        r"history\.json: not a valid history \(.*\); expected the per-epoch JSON list this run "
        r"wrote",
    ),
    "garbage best weights at the end (final_weights: best)": (
        lambda d, r, m: _garbage_best_weights_at_the_end(r),
        r"best\.weights\.h5: cannot load the best epoch's weights \(.*\); expected the weights "
        r"this run saved at its best epoch \(training\.final_weights: best\), so .*model\.keras "
        r"was not written\. Restore the file, or delete it to finish with the last epoch's "
        r"weights, and run the same command again$",
        {"epochs": 1, "final_weights": "best"},
    ),
    "disk full at the checkpoint": (
        lambda d, r, m: _disk_full(m),
        r"training stopped: cannot write \S+ \(No space left on device\); .*run keeps the last "
        r"good epoch \(1\)\. Free some space and run the same command again to resume",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_resume_or_data_one_clear_error(case, base, tmp_path, monkeypatch):
    damage, message, *overrides = BAD_INPUTS[case]
    training = {"epochs": 2, **(overrides[0] if overrides else {})}
    data, run = _copy(base, tmp_path)
    damage(data, run, monkeypatch)
    before = _snapshot(run)
    with pytest.raises(UserError, match=message):
        train(tiny_config(data, training.pop("epochs"), **training), str(run))
    assert _snapshot(run) == before  # the last good epoch and the final model are untouched
    assert _temp_files(run, data) == []


def test_garbage_best_weights_remedy_finishes_with_the_last_epoch(base, tmp_path):
    """What the message advises works: without best.weights.h5 the same command finishes the
    run with the last epoch's weights."""
    data, run = _copy(base, tmp_path)
    _garbage_best_weights_at_the_end(run)
    config = tiny_config(data, 1, final_weights="best")
    with pytest.raises(UserError, match=r"best\.weights\.h5: cannot load"):
        train(config, str(run))
    assert not (run / "model.keras").exists()
    (run / "checkpoints/best.weights.h5").unlink()
    train(config, str(run))
    model = keras.saving.load_model(run / "model.keras")
    saved = [w.copy() for w in model.get_weights()]
    model.load_weights(run / "checkpoints/last.weights.h5")
    assert all((a == b).all() for a, b in zip(saved, model.get_weights(), strict=True))


def _subprocess_train(config_path, run, limit_bytes=0):
    """``scripts/train.py`` in a subprocess, optionally with files limited to ``limit_bytes``
    (writes past it fail with EFBIG at the system call, like a full disk, for HDF5 too)."""
    code = (
        "import resource, signal, sys; "
        f"sys.argv = ['train.py', '--config', {str(config_path)!r}, '--run-dir', {str(run)!r}]; "
        + (
            f"signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit("
            f"resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes})); "
            if limit_bytes
            else ""
        )
        + f"sys.path.insert(0, {os.path.join(ROOT, 'scripts')!r}); import runpy; "
        f"runpy.run_path({os.path.join(ROOT, 'scripts', 'train.py')!r}, run_name='__main__')"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=600)


def test_failed_checkpoint_write_stops_cleanly_without_a_crash(base, tmp_path):
    """A real write failure inside HDF5 (file-size limit): one message, exit 2, no SIGSEGV,
    the last good epoch kept, no temporary file; the same command then resumes."""
    data, run = _copy(base, tmp_path)
    config_path = tmp_path / "config.yaml"
    config_path.write_text((run / "config.yaml").read_text().replace("epochs: 1", "epochs: 2"))
    before = _snapshot(run)
    result = _subprocess_train(config_path, run, limit_bytes=100_000)  # weights: ~1.6 MB
    err = result.stderr.decode()
    assert result.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: training stopped: cannot write \S+\.(weights\.h5|npz|keras) "
        r"\(File too large\); .* keeps the last good epoch \(1\)\. Free some "
        r"space and run the same command again to resume",
        last,
    ), last
    assert "Traceback" not in err
    assert _snapshot(run) == before and _temp_files(run) == []
    result = _subprocess_train(config_path, run)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 2


class SigtermAt(keras.callbacks.Callback):
    """Sends this process SIGTERM after the first batch of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_training_like_ctrl_c_and_stale_temp_files_go(base, tmp_path, capsys):
    data, run = _copy(base, tmp_path)
    config = tiny_config(data, 2)
    code = run_cli(lambda argv: train(config, str(run), extra_callbacks=[SigtermAt(1)]))
    assert code == 143
    assert capsys.readouterr().err == "terminated\n"
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 1
    # What a kill in the middle of writes leaves: temp names of a process that is gone.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    left = [
        f"checkpoints/.tmp-{dead}-resume-0002.weights.h5",
        f".tmp-{dead}-model.keras",
        f"history.json.tmp-{dead}",
        f"checkpoints/resume-0002.state.npz.tmp-{dead}.npz",
        f"eval/evaluate/.tmp-{dead}-k3j_x9a1",
    ]
    kept = ["notes.tmp-draft", ".tmp-keep", f"history.json.tmp-{dead}.bak"]  # not our names
    for name in left + kept:
        os.makedirs(os.path.dirname(run / name), exist_ok=True)
        (run / name).write_bytes(b"partial")
    assert run_cli(lambda argv: train(config, str(run)) and 0) == 0
    assert json.loads((run / "checkpoints/state.json").read_text())["epoch"] == 2
    assert sorted(n for n in left + kept if (run / n).exists()) == sorted(kept)


def test_run_dir_under_a_file_is_one_clear_error(base, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        UserError,
        match=r"--run-dir .*file/run: cannot write .*file/run \(Not a "
        r"directory\); expected a writable folder with free space",
    ):
        train(tiny_config(base[0], 1), str(tmp_path / "file" / "run"))
    assert sorted(os.listdir(tmp_path)) == ["file"]
