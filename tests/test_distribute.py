"""tf.distribute: MirroredStrategy parity with one device, and a two-worker MultiWorker epoch."""

import json
import os
import socket
import subprocess
import sys

import _corpus
import pytest
import yaml

from asc_core.errors import UserError
from keras_asc.config import resolve_config
from keras_asc.training.distribute import is_chief
from keras_asc.training.distribute import make_strategy

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("learnable"))
    _corpus.write_learnable_set(path, recordings_per_scene=2, eval_per_scene=2, seconds=1)
    return path


def python(code, env=None, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {TESTS!r}); {code}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def mirrored_parity(corpus, **kwargs):
    process = python(f"import _corpus; _corpus.mirrored_parity({corpus!r}, **{kwargs!r})")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["max_initial_difference"] == 0.0
    return result


def test_mirrored_over_two_cpus_matches_one_device(corpus):
    result = mirrored_parity(corpus)
    # Same global batch of 8 (4 per replica): the same loss and the same Adam step.
    assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-5)
    assert result["max_weight_change"] > 1e-4
    assert result["max_update_difference"] < 1e-5


def test_mirrored_icl_update_matches_one_device(corpus):
    # SGD: the update is lr * gradient, so an ICL term scaled differently from the CE (or
    # computed on each replica's half of the pairs) shows in it; Adam would normalise it away.
    result = mirrored_parity(corpus, icl_weight=0.5, optimizer="sgd")
    single, mirrored = result["single_logs"], result["mirrored_logs"]
    for key in ("loss", "ce_loss", "icl_loss", "icl_same_device_fraction"):
        assert mirrored[key] == pytest.approx(single[key], rel=1e-5), key
    assert single["icl_loss"] > 0
    assert result["max_weight_change"] > 1e-3
    assert result["max_update_difference"] < 1e-5 * max(1.0, result["max_weight_change"])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_multiworker_processes_finish_an_epoch(corpus, tmp_path):
    config = resolve_config(
        {
            "data": {"path": corpus, "batch_size": 8, "max_eval_examples": 8},
            "model": {"preset": "passt_tiny", "frontend": {"freqm": 8, "timem": 4}},
            "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
            "training": {"epochs": 1, "steps_per_epoch": 2, "verbose": 0},
            "wandb": {"mode": "disabled"},
            "distribute": {"strategy": "multiworker", "communication": "ring"},
        }
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        argv = ["--config", str(config_path), "--run-dir", str(run_dir)]
        processes.append(
            python(
                "from asc_core.errors import run_cli; from keras_asc.cli.train import main; "
                f"sys.exit(run_cli(main, {argv!r}))",
                env={"TF_CONFIG": json.dumps(tf_config)},
            )
        )
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err.decode()[-3000:]
    # Only the chief (worker 0) writes the run directory.
    history = json.load(open(run_dir / "history.json"))
    assert [row["epoch"] for row in history] == [1]
    state = json.load(open(run_dir / "checkpoints" / "state.json"))
    assert (state["epoch"], state["optimizer_step"]) == (1, 2)
    assert (run_dir / "model.keras").is_file()
    assert b"done: 1 epochs" in outputs[0][0] and b"done: 1 epochs" in outputs[1][0]


def test_strategy_errors_and_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    with pytest.raises(UserError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    worker = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker))
    assert not is_chief()
    worker["task"]["index"] = 0
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        is_chief()
    assert make_strategy("none").num_replicas_in_sync == 1
