"""inspect command: tables from info.json, --json, --verify against the records, broken outputs."""

import json
import os

import _fs
import numpy as np
import pytest

from asc_core.errors import UserError
from asc_core.example import encode_dir_example
from asc_core.writer import BUILDER_VERSION
from asc_core.writer import OutputDir
from tfrecords_builder import inspect_cmd
from tfrecords_builder import tau22
from tfrecords_builder.__main__ import main as builder_main


@pytest.fixture
def built(tiny_tau, tmp_path):
    out = tmp_path / "out"
    tau22.build(tiny_tau, out, workers=0, progress=False)
    return out


def test_table_and_counts(built, capsys):
    assert builder_main(["inspect", "--out", str(built)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert f"builder tau22 {BUILDER_VERSION}, sample rate 32000 Hz" in text
    rows = {
        tuple(line.split()[:2]): line.split()
        for line in lines
        if line.split()[:1] in (["train"], ["evaluate"]) and len(line.split()) == 8
    }
    # split view records shards samples seconds hours MiB
    assert rows[("train", "1s")][2:6] == ["30", "1", "32000", "1"]
    assert rows[("train", "10s")][2:6] == ["3", "1", "320000", "10"]
    assert rows[("evaluate", "10s")][2:7] == ["2", "1", "320000", "10", "0.006"]
    assert "test: same files as evaluate (not written twice)" in text
    assert "skipped items: 0; incomplete 10s recordings: 0" in text
    start = lines.index("evaluate 1s: records per scene × device")
    assert lines[start + 1].split() == ["scene", "a", "s4", "total"]
    assert lines[start + 3].split() == ["metro", "0", "10", "10"]
    assert lines[start + 4].split() == ["park", "10", "0", "10"]
    assert lines[start + 5].split() == ["total", "10", "10", "20"]


def test_json_and_verify(built, capsys):
    assert builder_main(["inspect", "--out", str(built), "--json", "--verify"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["sample_rate"] == 32000
    views = {(d["split"], d["view"]): d for d in report["datasets"]}
    assert set(views) == {
        ("train", "1s"),
        ("train", "10s"),
        ("evaluate", "1s"),
        ("evaluate", "10s"),
    }
    assert views[("train", "1s")]["counts"] == {
        "a": {"airport": 10},
        "b": {"bus": 10},
        "s1": {"tram": 10},
    }
    assert views[("train", "10s")]["min_samples"] == views[("train", "10s")]["max_samples"]
    assert views[("train", "10s")]["hours"] == pytest.approx(30 / 3600)


def test_verify_detects_tampering(built):
    info_path = built / "info.json"
    info = json.loads(info_path.read_text())
    info["splits"]["train"]["views"]["1s"]["num_examples"] = 31
    info_path.write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"train-1s holds 30 records; info\.json says 31"):
        inspect_cmd.inspect(built, verify=True)
    os.remove(built / "evaluate-10s.tfrecord-00000-of-00001")
    with pytest.raises(UserError, match=r"shard evaluate-10s\.tfrecord-00000-of-00001 .* missing"):
        inspect_cmd.inspect(built)


DAMAGED_SHARDS = {
    "truncated shard": (
        lambda path: _fs.truncate(path, -100),
        r"train-10s\.tfrecord-00000-of-00001: truncated: the record at "
        r"byte \d+ ends at byte \d+, the file has \d+ bytes",
    ),
    "bit-flipped shard": (
        _fs.flip_bit,
        r"train-10s\.tfrecord-00000-of-00001: corrupted record at byte "
        r"\d+ \(data checksum mismatch\)",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_SHARDS))
def test_verify_names_a_damaged_shard(case, built):
    damage, message = DAMAGED_SHARDS[case]
    damage(built / "train-10s.tfrecord-00000-of-00001")
    with pytest.raises(UserError, match=message + r"; expected a complete TFRecord shard"):
        inspect_cmd.inspect(built, verify=True)


def test_not_an_output_folder(tmp_path):
    with pytest.raises(UserError, match=r"info\.json does not exist; expected a finished"):
        inspect_cmd.inspect(tmp_path)


def test_dir_set_summary(tmp_path, capsys):
    out = tmp_path / "dirs"
    with OutputDir(out, builder="micirp") as output:
        writer = output.sharded_writer("dirs", 1)
        for i, n in enumerate((100, 300)):
            writer.write(
                encode_dir_example(
                    np.ones(n), name=f"m{i}.wav", set="micirp", source_sample_rate=44100
                )
            )
        output.finish(
            {
                "set": "micirp",
                "sample_rate": 32000,
                "num_examples": 2,
                "shards": writer.names,
                "counts": {"source_sample_rate": {"44100": 2}},
            }
        )
    assert builder_main(["inspect", "--out", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "builder micirp" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("dirs"))
    assert row[:3] == ["dirs", "-", "2"]
    assert "0.006 (mean)" in text  # (100 + 300) / 2 samples at 32 kHz
    assert any(line.split() == ["44100", "2"] for line in text.splitlines())
