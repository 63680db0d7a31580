"""A training start that tells the next step: every missing input at once, before any write,
with absolute paths and the commands that make it; a failed start blocks no corrected one."""

import os

import _corpus
import pytest
import yaml

from asc_core.errors import UserError
from asc_core.errors import run_cli
from keras_asc.cli.train import main
from keras_asc.config import load_config
from keras_asc.training.preflight import check_inputs
from keras_asc.training.runner import train_seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI_ICL = os.path.join(ROOT, "configs", "multi_icl.yaml")


def test_the_design_card_command_lists_every_missing_input(tmp_path, monkeypatch, capsys):
    # The README's command, run from an empty folder: no TFRecords, no DIR set, and (with the
    # override) a weights file that is not there. One message names all three.
    monkeypatch.chdir(tmp_path)
    argv = ["--config", MULTI_ICL, "--set", "model.weights=weights/passt.weights.h5"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    raw, out = tmp_path / "data" / "raw", tmp_path / "data" / "tfrecords"
    assert err == (
        "error: cannot start training: 3 missing inputs (nothing was written)\n"
        f"  1. data.path {out / 'tau22'}: TFRecord folder not found\n"
        "     make it with:\n"
        f"       python -m tfrecords_builder download tau22 --to {raw}\n"
        "       python -m tfrecords_builder tau22 --source "
        f"{raw / 'TAU-urban-acoustic-scenes-2022-mobile-development'} --out {out / 'tau22'}\n"
        f"  2. dirs.sets {out / 'multi_dirs'}: DIR folder not found\n"
        "     make it with:\n"
        f"       python -m tfrecords_builder download multi-dirs --to {raw}\n"
        "       python -m tfrecords_builder multi-dirs --source "
        f"{raw / 'Microphone_Impulse_Responses'} --out {out / 'multi_dirs'}\n"
        f"  3. model.weights {tmp_path / 'weights' / 'passt.weights.h5'}: no such file\n"
        "     make it with:\n"
        "       python scripts/convert_passt_checkpoint.py --checkpoint "
        "passt-s-f128-p16-s10-ap.476-swa.pt --out "
        f"{tmp_path / 'weights' / 'passt.weights.h5'} --num-classes 10\n"
        "       (or set model.weights: audioset to download and convert the official checkpoint "
        "once into the weights cache)\n"
        "  The whole path from download to training, with sizes and times: docs/real_data.md\n"
    )
    assert os.listdir(tmp_path) == []  # no run directory, no config.yaml


def test_audioset_weights_not_yet_cached_are_a_note(tmp_path, monkeypatch):
    # model.weights: audioset (the shipped default) is no missing input (the start downloads
    # it), but the message says so, with the cache folder; the conftest's cache is empty.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "tfrecords" / "multi_dirs").mkdir(parents=True)
    with pytest.raises(UserError) as info:
        train_seeds(load_config(MULTI_ICL), str(tmp_path / "runs"), 3)
    message = str(info.value)
    assert message.startswith("cannot start training: 2 missing inputs (nothing was written)\n")
    assert f"dirs.sets {tmp_path}/data/tfrecords/multi_dirs: no dirs.tfrecord-* shards" in message
    cache = os.path.realpath(os.environ["KERAS_ASC_CACHE"])
    assert (
        f"  note: model.weights: audioset is not in the weights cache {cache} yet; the first "
        "start downloads about 330 MiB (internet needed) and converts it once\n"
    ) in message
    assert sorted(os.listdir(tmp_path)) == ["data"]  # train_seeds wrote nothing either


@pytest.mark.parametrize(
    "files, data_keys, message",
    [
        (
            ["train-10s.tfrecord-00000-of-00001"],
            {},
            r"data.path /\S+/tau22: no shards evaluate-1s.tfrecord-\*",
        ),
        (
            ["train-1s.tfrecord-00000-of-00001", "evaluate-1s.tfrecord-00000-of-00001"],
            {},
            r"data.path /\S+/tau22: no shards train-10s.tfrecord-\*",
        ),
        (
            ["train-1s.tfrecord-00000-of-00001"],
            {"train_view": "1s", "eval_split": "test"},
            r"data.path /\S+/tau22: no shards test-1s.tfrecord-\*",
        ),
    ],
)
def test_incomplete_tfrecord_folder(tmp_path, files, data_keys, message):
    folder = tmp_path / "tau22"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"")
    config = {"data": {"path": str(folder), **data_keys}, "model": {"preset": "passt_tiny"}}
    with pytest.raises(UserError, match=message) as info:
        check_inputs(config)
    assert str(info.value).startswith("cannot start training: 1 missing input (nothing")


def test_audioset_on_a_preset_without_weights_is_listed(tmp_path):
    config = {
        "data": {"path": str(tmp_path / "tau22")},
        "model": {"preset": "passt_tiny", "weights": "audioset"},
    }
    with pytest.raises(
        UserError,
        match=r"2 missing inputs[\s\S]*model.weights audioset: "
        r"preset 'passt_tiny' has no released weights",
    ):
        check_inputs(config)


def _tiny_config_file(path, data):
    path.write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "data": {"path": str(data), "batch_size": 8},
                "model": {"preset": "passt_tiny", "frontend": {"freqm": 8, "timem": 4}},
                "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
                "training": {"epochs": 1, "steps_per_epoch": 2, "verbose": 0},
                "wandb": {"mode": "disabled"},
            }
        )
    )
    return str(path)


def test_failed_start_then_corrected_command_succeeds(tmp_path, capsys):
    data = tmp_path / "tau22"
    _corpus.write_learnable_set(str(data), recordings_per_scene=2, eval_per_scene=1, seconds=2)
    config = _tiny_config_file(tmp_path / "tiny.yaml", data)
    run = tmp_path / "run"
    # 1. A wrong data path: refused before anything is written.
    wrong = ["--config", config, "--run-dir", str(run), "--set", f"data.path={tmp_path}/nope"]
    assert run_cli(main, wrong) == 2
    assert f"data.path {tmp_path}/nope: TFRecord folder not found" in capsys.readouterr().err
    assert not run.exists()
    # 2. A start that fails after the run directory was made (a batch larger than the data):
    #    it leaves config.yaml but no finished epoch.
    too_big = ["--config", config, "--run-dir", str(run), "--set", "data.batch_size=1000"]
    assert run_cli(main, too_big) == 2
    assert "data.batch_size 1000: larger than the 20 training windows" in capsys.readouterr().err
    assert (run / "config.yaml").is_file() and not (run / "checkpoints" / "state.json").exists()
    # 3. The corrected command takes the folder over and trains.
    assert run_cli(main, ["--config", config, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{run}: no finished epoch of the earlier config; starting this one there" in out
    assert f"done: 1 epochs in {run}" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["batch_size"] == 8
    assert (run / "model.keras").is_file()
