"""The microphone table: the shipped one, bad tables, and the wheel that carries it."""

import fnmatch
import os
import subprocess
import sys
import zipfile

import pytest

from asc_core import microphones
from asc_core.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shipped_microphone_table_matches_the_reference():
    table = microphones.load_microphones()
    assert len(table) == 39
    mics = {}
    for row in table.values():
        mics.setdefault(row.microphone, set()).add(row.transducer)
        assert row.unverified, row.config  # nothing was checked against the paper's table
        assert row.diaphragm_count in (1, 2)
    assert len(mics) == 25
    assert all(len(t) == 1 for t in mics.values())
    kinds = [next(iter(t)) for t in mics.values()]
    assert (kinds.count("condenser"), kinds.count("dynamic"), kinds.count("ribbon")) == (14, 8, 3)
    suffixes = {
        "Omni": "omni",
        "Cardioid": "cardioid",
        "Hyper": "hypercardioid",
        "Bidirect": "bidirectional",
    }
    multi = {
        row.microphone
        for row in table.values()
        if any(row.config == row.microphone + s for s in suffixes)
    }
    assert len(multi) == 7
    for row in table.values():
        suffix = row.config[len(row.microphone) :]
        if suffix in suffixes:
            assert row.pattern == suffixes[suffix], row.config
            assert "pattern" not in row.unverified
    assert table["SchoepsCMC6_MK2H_KA40"].variant == "KA40"
    assert table["SennheiserMD441"].diaphragm_size == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("config,microphone\nA,A\n", "lacks the column"),
        ("# only a comment\n", "is empty"),
        (
            microphones.MICROPHONE_COLUMNS[0] + ",microphone,pattern,transducer,diaphragm_size,"
            "diaphragm_count,address\nA,A,fig8,ribbon,ribbon,1,side\n",
            ":2: pattern 'fig8'",
        ),
        (
            "config,microphone,pattern,transducer,diaphragm_size,diaphragm_count,address\n"
            "A,A,omni,condenser,small,two,end\n",
            ":2: diaphragm_count 'two'",
        ),
        (
            "config,microphone,pattern,transducer,diaphragm_size,diaphragm_count,address\n"
            "# c\nA,A,omni,condenser,small,1,end\nA,A,omni,condenser,small,1,end\n",
            ":4: config 'A' is listed twice",
        ),
        (
            "config,microphone,pattern,transducer,diaphragm_size,diaphragm_count,address\n"
            "A,A,omni,condenser\n",
            ":2: wrong number of fields",
        ),
    ],
)
def test_bad_microphone_tables(tmp_path, text, message):
    path = tmp_path / "mics.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        microphones.load_microphones(path)
    assert str(path) in str(err.value)
    with pytest.raises(UserError, match="cannot read the microphone table"):
        microphones.load_microphones(tmp_path / "missing.csv")


def _package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-data"]


def test_package_data_names_every_data_file():
    # Every file in a package's data/ folder is matched by that package's package-data globs
    # (so the wheel carries it), and every glob matches a file.
    package_data = _package_data()
    for package in ("asc_core", "tfrecords_builder"):
        folder = os.path.join(REPO, package, "data")
        files = sorted(f"data/{name}" for name in os.listdir(folder))
        globs = package_data.get(package, [])
        assert files, folder
        for name in files:
            assert any(fnmatch.fnmatch(name, g) for g in globs), f"{package}/{name} not in {globs}"
        for g in globs:
            assert any(fnmatch.fnmatch(name, g) for name in files), (
                f"{package}: {g} matches nothing"
            )
    default = os.path.relpath(microphones.DEFAULT_MICROPHONES, REPO).replace(os.sep, "/")
    assert default == "asc_core/data/surrey_microphones.csv"


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_tables(tmp_path):
    # The wheel built from the tracked files holds the data files where the code looks for them.
    tracked = (
        subprocess.run(
            [
                "git",
                "ls-files",
                "-z",
                "asc_core",
                "keras_asc",
                "tfrecords_builder",
                "configs",
                "pyproject.toml",
                "setup.py",
                "README.md",
                "LICENSE",
            ],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    source = tmp_path / "source"
    for name in filter(None, tracked):
        path = os.path.join(REPO, name)
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(path):
            os.symlink(os.readlink(path), target)
        elif os.path.isfile(path):  # a file deleted in the working tree is not built
            target.write_bytes(open(path, "rb").read())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("asc_core/data/surrey_microphones.csv", "tfrecords_builder/data/checksums.tsv"):
        assert path in names
