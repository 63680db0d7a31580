"""asc_core.files: atomic writes (all or nothing, no leftovers) and the strict-JSON NaN policy."""

import errno
import json
import os
import re

import numpy as np
import pytest

from asc_core import files
from asc_core.errors import UserError


def _strict_load(text):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_policy_writes_nan_and_inf_as_null(tmp_path):
    data = {
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "minus_inf": -np.inf,
        "int": np.int64(3),
        "flag": np.bool_(True),
        "array": np.array([1.5, np.nan]),
        "tuple": (1, 2),
        7: "ä",
    }
    path = files.write_json(tmp_path / "r.json", data)
    text = open(path, encoding="utf-8").read()
    assert text.endswith("}\n") and '"7": "ä"' in text
    assert _strict_load(text) == {
        "nan": None,
        "inf": None,
        "minus_inf": None,
        "int": 3,
        "flag": True,
        "array": [1.5, None],
        "tuple": [1, 2],
        "7": "ä",
    }


def test_json_text_options_keep_the_layout():
    assert files.json_text({"b": 1, "a": [2]}, indent=1, sort_keys=True) == (
        '{\n "a": [\n  2\n ],\n "b": 1\n}\n'
    )


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".tmp-"))


def test_text_and_bytes_replace_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "a.txt"  # the folder is created
    files.atomic_write_text(path, "one\r\ntwo\n")
    assert path.read_bytes() == b"one\r\ntwo\n"  # newlines as given
    files.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _leftovers(path.parent) == []


def test_temporary_name_keeps_the_suffix_and_the_process_id(tmp_path):
    with files.replacing(tmp_path / "model.weights.h5", suffix=".weights.h5") as tmp:
        name = os.path.basename(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)
        assert re.fullmatch(rf"\.tmp-{os.getpid()}-model\..+\.weights\.h5", name)
        with open(tmp, "w") as f:
            f.write("new")
    assert (tmp_path / "model.weights.h5").read_text() == "new"


class _Boom(Exception):
    pass


def _raise(exc):
    raise exc


# (what fails, the exception raised, its type, message regex)
FAILURES = [
    (
        "a full disk in the block",
        lambda tmp: _raise(OSError(errno.ENOSPC, "No space left on device")),
        files.WriteError,
        r"cannot write .*report\.json \(No space left on device\); expected a writable folder "
        r"with free space",
    ),
    ("another error in the block", lambda tmp: _raise(_Boom("bad value")), _Boom, "bad value"),
]


@pytest.mark.parametrize(
    ("fail", "kind", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing(tmp_path, fail, kind, message):
    path = tmp_path / "report.json"
    path.write_text("previous")
    with pytest.raises(kind, match=message) as info:
        with files.replacing(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            fail(tmp)
    assert path.read_text() == "previous"
    assert _leftovers(tmp_path) == []
    if kind is files.WriteError:
        err = info.value
        assert isinstance(err, UserError) and isinstance(err, OSError)
        assert (err.errno, err.filename) == (errno.ENOSPC, str(path))


def test_an_unwritable_folder_is_one_write_error(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "report.json"  # its "folder" is a file
    with pytest.raises(files.WriteError, match=r"cannot write .*file/report\.json \(") as info:
        files.write_json(target, {"a": 1})
    assert info.value.filename == str(target)


def test_check_writable_names_the_option_and_folder(tmp_path):
    (tmp_path / "file").write_text("")
    files.check_writable(tmp_path / "new" / "out.json")  # creates the folder
    assert (tmp_path / "new").is_dir() and _leftovers(tmp_path / "new") == []
    with pytest.raises(UserError, match=r"--out .*file/x\.json: cannot write in .*file \("):
        files.check_writable(tmp_path / "file" / "x.json")
