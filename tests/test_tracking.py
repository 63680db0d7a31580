"""W&B logging (resume, exactly-once epochs, sync hint, names, artifacts) and the optional extras.

The W&B unit tests run the logger against a recording stand-in for the ``wandb`` module (the
calls it makes); tests/test_training.py reads a real offline run's files back.
"""

import math
import os
import sys
import types

import pytest

from asc_core.extras import MissingExtraError
from asc_core.extras import require
from keras_asc.training.wandb_logging import WandbLogger
from keras_asc.training.wandb_logging import device_rows
from keras_asc.training.wandb_logging import sync_command


class FakeRun:
    def __init__(self, calls, kwargs):
        self.calls = calls
        self.kwargs = kwargs
        self.name = kwargs["name"]
        self.summary = {}
        self.logged = []
        self.artifacts = []
        self.finished = False
        self.settings = types.SimpleNamespace(sync_file="")  # no offline file to wait for

    def define_metric(self, name, step_metric=None):
        self.calls.append(("define_metric", name, step_metric))

    def log(self, row, step=None):
        self.logged.append((step, dict(row)))

    def log_artifact(self, artifact, aliases=()):
        self.artifacts.append((artifact, list(aliases)))

    def finish(self):
        self.finished = True


def fake_wandb_module():
    """A ``wandb`` stand-in that records ``init`` calls and the runs it returns."""
    module = types.ModuleType("wandb")
    module.runs = []
    module.calls = []

    module.starting_step = 0

    def init(**kwargs):
        run = FakeRun(module.calls, kwargs)
        run.starting_step = module.starting_step
        module.runs.append(run)
        return run

    class Artifact:
        def __init__(self, name, type, metadata=None):  # noqa: A002 (wandb's signature)
            self.name, self.type, self.metadata, self.files = name, type, metadata, []

        def add_file(self, path):
            self.files.append(path)

    module.init = init
    module.Settings = lambda **kwargs: kwargs
    module.errors = types.SimpleNamespace(UsageError=RuntimeError)
    module.Table = lambda columns, data: {"columns": columns, "data": data}
    module.Image = lambda path: {"image": path}
    module.Artifact = Artifact
    return module


@pytest.fixture
def fake_wandb(monkeypatch):
    module = fake_wandb_module()
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def epoch_row(epoch):
    row = {"epoch": epoch, "loss": 1.0 / epoch, "val_loss": 2.0 / epoch}
    for device in ("a", "s6"):
        row[f"val_loss_{device}"] = 0.5 + epoch
        row[f"val_accuracy_{device}"] = 0.1 * epoch
    return row


def logger_for(run_dir, history=(), mode="offline"):
    return WandbLogger(
        mode=mode, project="p", name="multi_icl-seed-0", run_dir=str(run_dir), run_id="abcd-s0",
        config={"seed": 0}, history=history,
    )  # fmt: skip


def train_epochs(logger, epochs):
    """What fit does to the logger: on_epoch_end with the epoch's logs (0-based epochs)."""
    for epoch in epochs:
        row = epoch_row(epoch + 1)
        row.pop("epoch")
        logger.on_epoch_end(epoch, row)


@pytest.mark.parametrize("server_steps, backfilled", [(2, [3]), (1, [2, 3])])
def test_online_resume_continues_the_same_run_with_every_epoch_once(
    fake_wandb, tmp_path, server_steps, backfilled
):
    first = logger_for(tmp_path, mode="online")
    first.start()
    train_epochs(first, [0, 1])
    # Killed after epoch 3 was committed (history.json has it); the server kept the rows up to
    # `server_steps` (W&B writes asynchronously): a resumed run starts after them.
    fake_wandb.starting_step = server_steps + 1
    history = [epoch_row(e) for e in (1, 2, 3)]
    second = logger_for(tmp_path, history=history, mode="online")
    second.start()
    train_epochs(second, [3])
    second.finish({"best": 0.5, "best_epoch": 4})

    runs = fake_wandb.runs
    assert [(r.kwargs["id"], r.kwargs["resume"]) for r in runs] == [("abcd-s0", "allow")] * 2
    assert all(r.kwargs["name"] == "multi_icl-seed-0" for r in runs)
    assert [step for step, _ in runs[1].logged] == [*backfilled, 4]
    server = [step for step, _ in runs[0].logged][:server_steps] + [s for s, _ in runs[1].logged]
    assert server == [1, 2, 3, 4]  # every epoch once
    for run in runs:
        for step, row in run.logged:
            assert row["epoch"] == step and row["loss"] == pytest.approx(1.0 / step)
    assert runs[1].summary == {"best": 0.5, "best_epoch": 4} and runs[1].finished


def test_offline_resume_logs_only_the_epochs_the_earlier_files_lack(tmp_path):
    """Real wandb, offline: the first start's file holds epoch 1; epochs 2 and 3 come next."""
    pytest.importorskip("wandb")
    from keras_asc.training.wandb_logging import offline_epochs
    from keras_asc.training.wandb_logging import read_offline_records
    from keras_asc.training.wandb_logging import record_items

    first = logger_for(tmp_path, history=[epoch_row(1)])
    first.start()
    first.finish()
    other = logger_for(tmp_path / "other", history=[epoch_row(1)])  # another run's folder
    other.start()
    other.finish()
    assert offline_epochs(str(tmp_path), "abcd-s0") == {1}
    assert offline_epochs(str(tmp_path), "nothing") == set()
    second = logger_for(tmp_path, history=[epoch_row(e) for e in (1, 2, 3)])
    second.start()
    second.finish()
    pieces = []
    for folder in sorted(os.listdir(tmp_path / "wandb")):
        if folder.startswith("offline-run-"):
            (name,) = [n for n in os.listdir(tmp_path / "wandb" / folder) if n.endswith(".wandb")]
            records = read_offline_records(str(tmp_path / "wandb" / folder / name))
            history = [r.history.item for r in records if r.WhichOneof("record_type") == "history"]
            pieces.append([record_items(items)["epoch"] for items in history])
    assert pieces == [[1], [2, 3]]


def test_finish_waits_for_the_offline_file_to_end_the_run(tmp_path):
    """A real offline file ends with ``exit``; cut before that record, the run is not finished."""
    pytest.importorskip("wandb")
    from keras_asc.training.wandb_logging import read_offline_records
    from keras_asc.training.wandb_logging import wait_for_offline_exit

    logger = logger_for(tmp_path, history=[epoch_row(1)])
    logger.start()
    path = logger.run.settings.sync_file
    logger.finish()
    kinds = [r.WhichOneof("record_type") for r in read_offline_records(path)]
    assert "history" in kinds and "exit" in kinds  # finish() returned after the file was out
    data = open(path, "rb").read()
    cut = tmp_path / "cut.wandb"
    for size in range(len(data), 0, -1):  # the longest prefix without the exit record
        cut.write_bytes(data[:size])
        if "exit" not in [r.WhichOneof("record_type") for r in read_offline_records(str(cut))]:
            break
    assert "history" in [r.WhichOneof("record_type") for r in read_offline_records(str(cut))]
    assert wait_for_offline_exit(path, timeout=0.0)
    assert not wait_for_offline_exit(str(cut), timeout=0.2)
    assert not wait_for_offline_exit(str(tmp_path / "missing.wandb"), timeout=0.0)


def test_per_device_table_each_epoch_and_metrics_against_the_epoch(fake_wandb, tmp_path):
    logger = logger_for(tmp_path)
    logger.start()
    train_epochs(logger, [0])
    (step, row), = fake_wandb.runs[0].logged  # fmt: skip
    assert row["val_devices"] == {
        "columns": ["device", "family", "accuracy", "log_loss"],
        "data": [["a", "real", 0.1, 1.5], ["s6", "unseen", 0.1, 1.5]],
    }
    assert ("define_metric", "*", "epoch") in fake_wandb.calls


def test_finish_logs_the_model_artifact_device_table_and_confusion_image(fake_wandb, tmp_path):
    from keras_asc.evaluation.metrics import scene_metrics

    model_path = tmp_path / "model.keras"
    model_path.write_bytes(b"model")
    labels = [0, 1, 1, 2]
    probabilities = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]
    metrics = scene_metrics(labels, probabilities, [0, 0, 8, 8], class_names=("x", "y", "z"))
    logger = logger_for(tmp_path)
    logger.start()
    run = fake_wandb.runs[0]
    logger.finish({"best": 0.4, "best_epoch": 2}, model_path=str(model_path), metrics=metrics)
    (artifact, aliases), = run.artifacts  # fmt: skip
    assert (artifact.name, artifact.type, aliases) == ("model-abcd-s0", "model", ["final"])
    assert artifact.files == [str(model_path)] and artifact.metadata["best_epoch"] == 2
    # Device a: both clips right with p = 0.8; s6: one wrong (p = 0.2 for the truth), one right.
    assert run.summary["final/devices"]["data"] == [
        ["a", "real", 1.0, pytest.approx(-math.log(0.8))],
        ["s6", "unseen", 0.5, pytest.approx(-(math.log(0.2) + math.log(0.8)) / 2)],
    ]
    image = run.summary["final/confusion"]["image"]
    assert os.path.getsize(image) > 1000 and image.endswith(".png")


def test_offline_run_prints_where_it_is_and_the_sync_command(fake_wandb, tmp_path, capsys):
    logger = logger_for(tmp_path)
    logger.start()
    logger.finish()
    out = capsys.readouterr().out
    command = f"wandb sync {tmp_path}/wandb/offline-run-*-abcd-s0"
    assert sync_command(str(tmp_path), "abcd-s0") == command
    assert out.splitlines() == [
        f"W&B offline run multi_icl-seed-0 (id abcd-s0) in {tmp_path}/wandb; upload it with: "
        + command,
        f"W&B offline files kept; upload with: {command}",
    ]


def test_online_and_disabled_runs_print_no_sync_hint(fake_wandb, tmp_path, capsys):
    logger = logger_for(tmp_path, mode="online")
    logger.start()
    logger.finish()
    logger_for(tmp_path, mode="disabled").start()
    assert capsys.readouterr().out == ""
    assert len(fake_wandb.runs) == 1


def test_device_rows_skip_devices_without_clips():
    assert device_rows({"val_loss_b": 1.0, "val_accuracy_b": 0.5, "val_loss": 3.0}) == [
        ["b", "real", 0.5, 1.0]
    ]


# === Optional extras: one clear message naming the extra ===


def test_missing_wandb_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(MissingExtraError) as info:
        logger_for(tmp_path).start()
    assert str(info.value) == (
        "wandb.mode 'offline' needs the wandb package: pip install 'keras-asc[wandb]'; "
        "or --set wandb.mode=disabled"
    )
    logger_for(tmp_path, mode="disabled").start()  # disabled never imports it


def test_training_without_wandb_stops_before_writing_anything(monkeypatch, tmp_path):
    from keras_asc.config import resolve_config
    from keras_asc.training import runner

    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(runner, "check_inputs", lambda config: None)  # no data needed here
    config = resolve_config(
        {"data": {"path": str(tmp_path / "data")}, "model": {"preset": "passt_tiny"}}
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'keras-asc\[wandb\]'; or --set"):
        runner.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "module, purpose, extra",
    [
        ("wandb", "wandb.mode 'online'", "wandb"),
        ("matplotlib", "plotting", "plots"),
        ("tensorboard", "viewing", "tensorboard"),
        ("torch", "the oracle", "oracle"),
    ],
)
def test_require_names_the_extra(monkeypatch, module, purpose, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"^{purpose} needs the {module} package: "
                       rf"pip install 'keras-asc\[{extra}\]'$"):  # fmt: skip
        require(module, purpose)


def test_plots_without_matplotlib_name_the_extra(monkeypatch, tmp_path):
    from keras_asc.evaluation import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'keras-asc\[plots\]'"):
        plots.plot_confusion_matrix([[1, 0], [0, 1]], ["x", "y"], str(tmp_path / "c.png"))
    assert not os.listdir(tmp_path)


def test_evaluation_wandb_log_without_wandb_names_the_extra(monkeypatch):
    from keras_asc.evaluation.evaluate import log_to_wandb

    monkeypatch.setitem(sys.modules, "wandb", None)
    run = types.SimpleNamespace(config={"wandb": {"mode": "offline"}})
    with pytest.raises(MissingExtraError, match=r"pip install 'keras-asc\[wandb\]'"):
        log_to_wandb(run, {"metrics": {}})


def test_extras_are_declared_and_not_required():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0] for dep in project["dependencies"]}
    assert not names & {"wandb", "matplotlib", "tensorboard", "torch"}
    extras = project["optional-dependencies"]
    assert extras["wandb"][0].startswith("wandb") and extras["plots"][0].startswith("matplotlib")
    assert extras["tensorboard"][0].startswith("tensorboard")
    assert "keras-asc[wandb,plots,tensorboard]" in extras["dev"]
    from asc_core.extras import EXTRAS

    assert set(EXTRAS.values()) <= set(extras)
