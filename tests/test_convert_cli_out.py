"""scripts/convert_passt_checkpoint.py: an unwritable --out is one clear error, found first."""

import os
import re

import pytest
from _fs import read_only

from asc_core.errors import run_cli
from keras_asc.cli.convert import main


def _in_read_only_folder(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    return tmp_path / "ro" / "passt.weights.h5"


def _under_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "passt.weights.h5"


OUT_BAD_INPUTS = {
    "--out in a read-only folder": (
        _in_read_only_folder,
        r"--out .*ro/passt\.weights\.h5: cannot write in .*ro "
        r"\(Permission denied\); expected a writable folder",
    ),
    "--out under a file": (
        _under_a_file,
        r"--out .*file/passt\.weights\.h5: cannot write in .*file \(.*\); "
        r"expected a writable folder",
    ),
}


@pytest.mark.parametrize("case", sorted(OUT_BAD_INPUTS))
def test_unwritable_out_one_clear_error(case, tmp_path, monkeypatch, capsys):
    make_out, message = OUT_BAD_INPUTS[case]
    out = make_out(tmp_path, monkeypatch)
    checkpoint = tmp_path / "passt.pt"
    checkpoint.write_bytes(b"never read: the output folder is checked first")
    before = sorted(os.listdir(tmp_path))
    assert run_cli(main, ["--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"error: {message}\n", err), err
    assert sorted(os.listdir(tmp_path)) == before
