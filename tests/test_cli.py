"""The ``keras-asc`` console command: its registry, shipped configs by name, quiet start-up."""

import importlib.metadata
import importlib.util
import os
import subprocess
import sys

import pytest

from keras_asc import cli

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
# Lines TensorFlow's C++ code writes on start-up (absl, the CUDA stub, cpu_feature_guard).
CPP_LOG_PREFIXES = ("WARNING: All log messages before absl", "I0000 ", "W0000 ", "E0000 ")


def run(*argv, env=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_asc.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
        timeout=600,
    )


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("keras-asc") == "keras_asc.cli:cli"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_names_a_main(command):
    module_name = cli.COMMANDS[command][0]
    assert importlib.util.find_spec(module_name) is not None, module_name
    assert callable(importlib.import_module(module_name).main)


def test_every_script_is_a_registered_command():
    """scripts/*.py stay aliases of registered commands (same main function)."""
    modules = {module for module, _ in cli.COMMANDS.values()}
    for name in sorted(os.listdir(os.path.join(ROOT, "scripts"))):
        if name.endswith(".py"):
            text = open(os.path.join(ROOT, "scripts", name), encoding="utf-8").read()
            imported = [
                line.split()[1]
                for line in text.splitlines()
                if line.startswith("from keras_asc.") and line.endswith(" import main")
            ]
            assert len(imported) == 1 and imported[0] in modules, name


def test_unknown_config_name_lists_the_shipped_ones_quietly():
    result = run("train", "--config", "no_such_config")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one message, no traceback, no TF start-up lines
    assert lines[0].startswith("error: --config no_such_config: neither a file nor a shipped")
    assert " multi_icl," in lines[0] and "grid/lambda_0.5" in lines[0]


def test_verbose_shows_what_the_quiet_start_hides():
    quiet = run("train", "--config", "no_such_config")
    verbose = run("--verbose", "train", "--config", "no_such_config")
    assert verbose.returncode == quiet.returncode == 2
    assert not any(line.startswith(CPP_LOG_PREFIXES) for line in quiet.stderr.splitlines())
    assert verbose.stderr.endswith(quiet.stderr)  # the same error, after whatever TF logged


def test_unknown_command_is_an_argparse_error():
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2


def test_build_is_the_builders_command_line(tmp_path, capsys):
    # `keras-asc build ARGS` runs `python -m tfrecords_builder ARGS` (dispatched by module name,
    # like every command): the same report, here a user error with exit status 2.
    from asc_core.errors import run_cli
    from tfrecords_builder.__main__ import main as builder_main

    missing = str(tmp_path / "missing")
    assert cli.main(["build", "inspect", "--out", missing]) == 2
    ours = capsys.readouterr().err
    assert run_cli(builder_main, ["inspect", "--out", missing]) == 2
    assert ours == capsys.readouterr().err
    assert ours.startswith(f"error: {missing}/info.json does not exist") and ours.count("\n") == 1
