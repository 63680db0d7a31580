"""The training runner: one epoch learns, run directory, resume after SIGKILL, NaN stop, W&B."""

import glob
import json
import math
import os
import subprocess
import sys

import _corpus
import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

import keras_asc  # noqa: F401  (registers the serializable classes for load_model)
from asc_core.errors import UserError
from asc_core.errors import run_cli
from keras_asc.cli.train import main
from keras_asc.config import load_config
from keras_asc.config import resolve_config
from keras_asc.data.pipeline import make_datasets
from keras_asc.training import callbacks as cb
from keras_asc.training.runner import build_model
from keras_asc.training.runner import summarize_seeds
from keras_asc.training.runner import train
from keras_asc.training.wandb_logging import read_offline_records
from keras_asc.training.wandb_logging import record_items

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("learnable"))
    _corpus.write_learnable_set(path, recordings_per_scene=4, eval_per_scene=3, seconds=2)
    return path


def tiny_config(data_path, seed=0, **sections):
    config = {
        "seed": seed,
        "data": {"path": data_path, "batch_size": 8},
        "model": {"preset": "passt_tiny", "frontend": {"freqm": 8, "timem": 4}},
        "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
        "schedule": {"name": "plateau", "patience": 2, "factor": 0.5},
        "training": {"epochs": 1, "verbose": 0},
        "wandb": {"mode": "disabled"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return resolve_config(config)


class InitialValidation(keras.callbacks.Callback):
    """Records the validation metrics of the untrained model."""

    def __init__(self, dataset):
        super().__init__()
        self.validation = cb.DeviceValidation(dataset)
        self.before = None

    def on_train_begin(self, logs=None):
        self.validation.set_model(self.model)
        self.before = self.validation.evaluate()


def tensorboard_scalars(folder, values=False):
    """``{tag: [step, ...]}`` (or ``[(step, value), ...]``) of the event files in ``folder``."""
    scalars = {}
    for event_file in sorted(glob.glob(os.path.join(folder, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                entry = (event.step, number) if values else event.step
                scalars.setdefault(value.tag, []).append(entry)
    return scalars


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """One uninterrupted 3-epoch run (W&B offline), shared by the tests that read its outputs."""
    os.environ.pop("WANDB_API_KEY", None)
    config = tiny_config(corpus, training={"epochs": 3}, wandb={"mode": "offline", "project": "t"})
    run_dir = str(tmp_path_factory.mktemp("reference") / "run")
    initial = InitialValidation(make_datasets(**config["data"]).eval)
    summary = train(config, run_dir, extra_callbacks=[initial])
    history = json.load(open(os.path.join(run_dir, "history.json")))
    return config, run_dir, initial.before, summary, history


def test_one_epoch_lowers_the_loss(reference):
    _, _, before, _, history = reference
    assert history[0]["val_loss"] < before["val_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_run_directory_contents(reference):
    config, run_dir, _, summary, history = reference
    assert [row["epoch"] for row in history] == [1, 2, 3]
    row = history[0]
    for device in ("a", "b", "c", "s1", "s6"):
        assert math.isfinite(row[f"val_loss_{device}"]) and 0 <= row[f"val_accuracy_{device}"] <= 1
    assert {"loss", "accuracy", "learning_rate", "val_loss_real", "val_loss_unseen"} <= set(row)
    assert row["learning_rate"] == pytest.approx(1e-3)
    with open(os.path.join(run_dir, "history.csv")) as f:
        header = f.readline().strip().split(",")
        assert len(f.readlines()) == 3
    assert header[0] == "epoch" and "val_loss_s6" in header
    best = min(history, key=lambda r: r["val_loss"])
    assert (summary["epochs"], summary["best"], summary["best_epoch"]) == (
        3, best["val_loss"], best["epoch"]
    )  # fmt: skip

    # The resolved config is saved beside the outputs and loads back unchanged.
    assert load_config(os.path.join(run_dir, "config.yaml")) == config
    state = json.load(open(os.path.join(run_dir, "checkpoints", "state.json")))
    assert (state["epoch"], state["optimizer_step"], state["steps_per_epoch"]) == (3, 15, 5)
    assert (state["best"], state["best_epoch"]) == (best["val_loss"], best["epoch"])
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == [
        "best.weights.h5", "last.weights.h5", "resume-0003.state.npz",
        "resume-0003.weights.h5", "state.json",
    ]  # fmt: skip
    assert not glob.glob(os.path.join(run_dir, "**", "*.tmp-*"), recursive=True)

    # model.keras is the final model: same outputs as the architecture + last weights.
    loaded = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    rebuilt = build_model(config)
    rebuilt.load_weights(os.path.join(run_dir, "checkpoints", "last.weights.h5"))
    x = np.random.default_rng(0).standard_normal((2, 32000)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0)["logits"], rebuilt.predict(x, verbose=0)["logits"], atol=1e-5
    )

    # TensorBoard: Keras' layout (train/ and validation/ overlay), one scalar per epoch.
    train_steps = tensorboard_scalars(os.path.join(run_dir, "tensorboard", "train"))
    val_steps = tensorboard_scalars(os.path.join(run_dir, "tensorboard", "validation"))
    assert {"epoch_loss", "epoch_learning_rate", "epoch_accuracy"} <= set(train_steps)
    assert all(steps == [1, 2, 3] for steps in train_steps.values())
    assert val_steps["epoch_loss"] == [1, 2, 3] and val_steps["epoch_loss_a"] == [1, 2, 3]
    assert val_steps["epoch_accuracy_s6"] == [1, 2, 3] and "epoch_dg" in val_steps
    assert not any(tag.startswith("epoch_val_") for tag in train_steps)
    lr = tensorboard_scalars(os.path.join(run_dir, "tensorboard", "train"), values=True)
    assert [v for _, v in lr["epoch_learning_rate"]] == pytest.approx(
        [row["learning_rate"] for row in history]
    )


def test_icl_run_logs_its_diagnostics(corpus, tmp_path):
    config = tiny_config(
        corpus,
        loss={"icl_weight": 0.05, "icl_target": "normalized"},
        training={"steps_per_epoch": 2},
    )
    run_dir = str(tmp_path / "run")
    train(config, run_dir)
    with open(os.path.join(run_dir, "history.csv")) as f:
        header = f.readline().strip().split(",")
    keys = {
        "ce_loss",
        "icl_loss",
        "icl_embedding_norm",
        "icl_cos_cls_dist",
        "icl_clip_share",
        "icl_distance_ratio",
        "icl_same_device_fraction",
        "icl_grad_share",
    }
    assert keys <= set(header)
    # ... and in TensorBoard's train/ folder, beside the loss.
    scalars = tensorboard_scalars(os.path.join(run_dir, "tensorboard", "train"))
    assert {f"epoch_{key}" for key in keys} <= set(scalars)
    assert scalars["epoch_icl_grad_share"] == [1]
    row = json.load(open(os.path.join(run_dir, "history.json")))[0]
    assert 0 < row["icl_same_device_fraction"] < 1 and 0 < row["icl_grad_share"] < 1
    loaded = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert loaded.auxiliary_loss.target == "normalized"
    assert loaded.auxiliary_loss_weight == 0.05


def test_wandb_offline_run_has_config_and_per_device_metrics(reference):
    _, run_dir, _, _, history = reference
    (wandb_file,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    records = read_offline_records(wandb_file)
    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_record.project == "t"
    wandb_config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    assert wandb_config["optimizer"]["learning_rate"] == 1e-3
    assert wandb_config["model"]["preset"] == "passt_tiny"
    logged = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            logged.append(record_items(record.history.item))
    assert [row["epoch"] for row in logged] == [1, 2, 3]
    for got, expected in zip(logged, history):
        for key in ("loss", "val_loss", "val_loss_a", "val_accuracy_s6", "learning_rate"):
            assert got[key] == pytest.approx(expected[key])
        assert got["val_devices/_type"] == "table-file"
    # The run dir is named "run" (no config name given): the W&B run is "run-seed-0", with the
    # id stored for a resume.
    state = json.load(open(os.path.join(run_dir, "checkpoints", "state.json")))
    assert (run_record.display_name, run_record.run_id) == ("run-seed-0", state["wandb_run_id"])
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update(record_items(record.summary.update))
    assert summary["best_epoch"] == state["best_epoch"]
    assert summary["final/devices"]["_type"] == "table-file"
    assert summary["final/confusion"]["_type"] == "image-file"
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    (artifact,) = [a for a in artifacts if a.type == "model"]  # (tables are artifacts too)
    assert (artifact.type, artifact.name) == ("model", f"model-{state['wandb_run_id']}")
    assert [entry.path for entry in artifact.manifest.contents] == ["model.keras"]


def wandb_history(run_dir):
    """``(run id, display name, [logged epochs])`` of each offline piece of a run, in order.

    A piece whose process was killed may hold nothing at all (W&B writes asynchronously; its
    service dies with the process): ``(None, None, [])``.
    """
    pieces = []
    for folder in sorted(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*"))):
        (wandb_file,) = glob.glob(os.path.join(folder, "run-*.wandb"))
        records = read_offline_records(wandb_file)
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        if not runs:
            pieces.append((None, None, []))
            continue
        (run_record,) = runs
        epochs = []
        for record in records:
            if record.WhichOneof("record_type") == "history":
                epochs.append(record_items(record.history.item)["epoch"])
        pieces.append((run_record.run_id, run_record.display_name, epochs))
    return pieces


@pytest.mark.slow
def test_wandb_offline_run_killed_and_resumed_keeps_one_run_and_every_epoch_once(
    reference, tmp_path
):
    config, _, _, _, _ = reference
    config_path = str(tmp_path / "multi_icl.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    run_dir = str(tmp_path / "multi_icl")  # the killed start names its W&B run after it
    run_killed(config_path, run_dir, epoch=2, batch=None)  # dies after epoch 2 is committed
    result = subprocess.run(
        [sys.executable, "scripts/train.py", "--config", config_path, "--run-dir", run_dir],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pieces = wandb_history(run_dir)
    state = json.load(open(os.path.join(run_dir, "checkpoints", "state.json")))
    assert len(pieces) == 2  # one folder per start, both of the one W&B run
    assert pieces[1][:2] == (state["wandb_run_id"], "multi_icl-seed-0")
    assert pieces[0][:2] in ((state["wandb_run_id"], "multi_icl-seed-0"), (None, None))
    # Whatever the killed start's file kept, the resumed start logged the rest: each epoch once.
    assert [epoch for _, _, epochs in pieces for epoch in epochs] == [1, 2, 3]
    command = f"wandb sync {run_dir}/wandb/offline-run-*-{state['wandb_run_id']}"
    assert result.stdout.count(f"upload with: {command}") == 1


def child_env():
    """The environment of a training subprocess: without this process's W&B service.

    ``wandb.init`` (the reference run) exports ``WANDB_SERVICE`` so that child processes share
    this process's W&B service; a killed child's run would then stay "in use" there, which a
    killed command started again from a shell never meets (its service dies with it).
    """
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}


def run_killed(config_path, run_dir, epoch, batch):
    code = (
        f"import sys; sys.path.insert(0, {TESTS!r}); import _corpus; "
        f"_corpus.train_until_killed({config_path!r}, {run_dir!r}, {epoch}, {batch})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, timeout=600
    )
    assert result.returncode == -9, result.stderr.decode()[-2000:]


def committed_epochs(run_dir):
    return json.load(open(os.path.join(run_dir, "checkpoints", "state.json")))["epoch"]


@pytest.mark.slow
def test_resume_after_kill_between_and_mid_epoch(reference, tmp_path):
    config, reference_dir, _, _, expected = reference
    config = {**config, "wandb": {**config["wandb"], "mode": "disabled"}}
    config_path = str(tmp_path / "config.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)

    run_dir = str(tmp_path / "run")
    run_killed(config_path, run_dir, epoch=1, batch=2)  # dies inside epoch 2
    assert committed_epochs(run_dir) == 1
    run_killed(config_path, run_dir, epoch=2, batch=None)  # resumes; dies after epoch 2 commits
    assert committed_epochs(run_dir) == 2
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    assert run_cli(main, ["--config", config_path, "--run-dir", run_dir]) == 0

    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    # Same data, weights, optimizer and random state: the same numbers as without interruption.
    for key in ("loss", "val_loss", "learning_rate", "val_loss_a"):
        np.testing.assert_allclose(
            [row[key] for row in history], [row[key] for row in expected], rtol=1e-4
        )
    state = json.load(open(os.path.join(run_dir, "checkpoints", "state.json")))
    assert (state["epoch"], state["optimizer_step"]) == (3, 15)
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == sorted(
        os.listdir(os.path.join(reference_dir, "checkpoints"))
    )
    # Starting the finished run again trains nothing more.
    assert run_cli(main, ["--config", config_path, "--run-dir", run_dir]) == 0
    assert len(json.load(open(os.path.join(run_dir, "history.json")))) == 3


class PoisonWeights(keras.callbacks.Callback):
    """Sets the first weight to NaN at the start of an epoch (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            variable = self.model.trainable_weights[0]
            variable.assign(np.full(variable.shape, np.nan, "float32"))


def test_nan_loss_stops_with_a_clear_message(corpus, tmp_path):
    config = tiny_config(corpus, training={"epochs": 3, "steps_per_epoch": 2})
    run_dir = str(tmp_path / "run")
    with pytest.raises(UserError) as info:
        train(config, run_dir, extra_callbacks=[PoisonWeights(1)])
    assert str(info.value) == (
        f"training stopped: the loss became nan at epoch 2, batch 1; {os.path.abspath(run_dir)} "
        "keeps the last good epoch (1). Lower optimizer.learning_rate (or check the data) and "
        "start again in a new --run-dir"
    )
    assert committed_epochs(run_dir) == 1
    assert len(json.load(open(os.path.join(run_dir, "history.json")))) == 1
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))


def test_run_dir_of_another_config_is_refused(corpus, tmp_path):
    config = tiny_config(corpus)
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    other = tiny_config(corpus, optimizer={"learning_rate": 1.0e-4}, training={"epochs": 9})
    with open(run_dir / "config.yaml", "w") as f:
        yaml.safe_dump(other, f)
    # A run with a finished epoch (a run dir without one may be taken over: test_preflight).
    os.makedirs(run_dir / "checkpoints")
    with open(run_dir / "checkpoints" / "state.json", "w") as f:
        json.dump({"version": 1, "epoch": 1}, f)
    with pytest.raises(UserError) as info:
        train(config, str(run_dir))
    assert str(info.value) == (
        f"--run-dir {run_dir} holds a run of another config (differs in "
        "optimizer.learning_rate); use another --run-dir or the same config to resume it"
    )


def test_cli_reports_bad_config_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {path: x}\nmodel: {preset: passt_tiny}\noptimizer: {betta: 0.9}\n")
    assert run_cli(main, ["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: optimizer.betta: unknown key")
    assert "Traceback" not in err and err.count("\n") == 1
    assert run_cli(main, ["--config", str(path), "--set", "optimizer"]) == 2
    assert "--set optimizer: expected KEY.PATH=VALUE" in capsys.readouterr().err


def test_seeds_cli_runs_each_seed_and_summarises(corpus, tmp_path, monkeypatch, capsys):
    from keras_asc.training import runner

    calls = []

    def fake_train(config, run_dir, extra_callbacks=(), name=None):
        calls.append((config["seed"], config["wandb"]["group"], name, run_dir))
        best = 1.0 + 0.1 * config["seed"]
        return {"run_dir": run_dir, "seed": config["seed"], "epochs": 1, "monitor": "val_loss",
                "best": best, "best_epoch": 1, "last": {"epoch": 1, "val_loss": best}}  # fmt: skip

    monkeypatch.setattr(runner, "train", fake_train)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(corpus, seed=5)))
    run_dir = tmp_path / "seeds"
    argv = ["--config", str(config_path), "--run-dir", str(run_dir), "--seeds", "3"]
    assert run_cli(main, argv) == 0
    # Grouped and named by the config (c.yaml): the runner names the W&B runs c-seed-S.
    assert calls == [(s, "c", "c", str(run_dir / f"seed-{s}")) for s in (5, 6, 7)]
    summary = json.load(open(run_dir / "seeds.json"))
    assert [s["seed"] for s in summary["seeds"]] == [5, 6, 7]
    assert summary["best"] == {"seed": 5, "value": 1.5}
    assert summary["best_mean"] == pytest.approx(1.6)
    assert summary["best_std"] == pytest.approx(np.std([1.5, 1.6, 1.7]))
    assert load_config(str(run_dir / "config.yaml"))["seed"] == 5
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["best"] == {"seed": 5, "value": 1.5}
    assert run_cli(main, argv[:-1] + ["0"]) == 2


def test_summarize_seeds_picks_by_mode():
    runs = [
        {"seed": s, "best": b, "best_epoch": 1, "run_dir": str(s), "monitor": "m",
         "last": {"epoch": 1, "val_loss": b}}
        for s, b in [(0, 1.2), (1, 1.0), (2, 1.4)]
    ]  # fmt: skip
    low = summarize_seeds(runs, "min")
    assert low["best"] == {"seed": 1, "value": 1.0}
    assert low["best_mean"] == pytest.approx(1.2)
    assert low["best_std"] == pytest.approx(0.163299, rel=1e-4)
    assert low["final"]["val_loss"]["mean"] == pytest.approx(1.2)
    assert summarize_seeds(runs, "max")["best"] == {"seed": 2, "value": 1.4}


def test_warmup_rampdown_factors_match_cpjku():
    factors = [cb.warmup_rampdown_factor(e, 3, 3, 10, 0.01) for e in range(25)]
    np.testing.assert_allclose(factors[:5], [0.0314, 0.1084, 0.5738, 1.0, 0.901], atol=5e-4)
    np.testing.assert_allclose(factors[5:13], 0.01 + 0.99 * np.arange(8, 0, -1) / 10, atol=1e-12)
    assert factors[13:] == [0.01] * 12


class FakeModel:
    def __init__(self, learning_rate):
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)


def test_plateau_schedule_halves_after_patience_and_resumes():
    schedule = cb.PlateauSchedule(patience=2, factor=0.5)
    schedule.set_model(FakeModel(1.0))
    rates = []
    for epoch, value in enumerate([1.0, 0.9, 0.95, 0.92, 0.91]):
        logs = {"val_loss": value}
        schedule.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
    # Epochs 2 and 3 do not improve on 0.9: the rate halves after epoch 3 (used from epoch 4).
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5]
    state = schedule.get_state()
    assert state == {"best": 0.9, "wait": 1, "cooldown_counter": 0}
    resumed = cb.PlateauSchedule(patience=2, factor=0.5)
    resumed.set_state(json.loads(json.dumps(state)))
    resumed.set_model(FakeModel(0.5))
    logs = {"val_loss": 0.93}
    resumed.on_epoch_end(6, logs)
    assert float(resumed.model.optimizer.learning_rate) == 0.25
