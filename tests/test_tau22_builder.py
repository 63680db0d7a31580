"""tau22 builder: manifest counts, 1s/10s views, bad inputs, skip, kill, determinism."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from conftest import DEFAULT_RECORDINGS
from conftest import TAU_RATE
from conftest import tau_name
from conftest import tone
from conftest import tone_hz
from conftest import write_tau22

from asc_core import errors
from asc_core import vocab
from asc_core.errors import UserError
from keras_asc.data.schema import parse_audio_example
from tfrecords_builder import tau22
from tfrecords_builder.__main__ import main as builder_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_view(out, info, split, view):
    names = info["splits"][split]["views"][view]["shards"]
    files = [os.path.join(out, n) for n in names]
    return list(tf.data.TFRecordDataset(files).map(parse_audio_example).as_numpy_iterator())


def counts_of(records):
    table = {}
    for r in records:
        device, scene = r["device"].decode() or "unknown", r["scene"].decode() or "unknown"
        table.setdefault(device, {}).setdefault(scene, 0)
        table[device][scene] += 1
    return table


def _nonzero(table):
    return {d: {s: n for s, n in row.items() if n} for d, row in table.items() if any(row.values())}


def _peak_hz(x, rate=vocab.SAMPLE_RATE):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x)


# === The synthetic corpus ===


def test_synthetic_corpus_counts_match_manifest(synthetic_corpus, tmp_path):
    folder, manifest = synthetic_corpus
    out = tmp_path / "tau22"
    info = tau22.build(folder / manifest["tau22"]["root"], out, workers=2, progress=False)
    assert info["aliases"] == {"test": "evaluate"}
    assert set(info["splits"]) == {"train", "evaluate"}
    names = {}
    for split in ("train", "evaluate"):
        expected = manifest["tau22"]["splits"][split]
        clips = read_view(out, info, split, "1s")
        recordings = read_view(out, info, split, "10s")
        assert len(clips) == expected["num_clips"]
        assert len(recordings) == expected["num_recordings"]
        assert counts_of(clips) == _nonzero(expected["clips"])
        assert counts_of(recordings) == _nonzero(expected["recordings"])
        assert info["splits"][split]["views"]["1s"]["counts"] == _nonzero(expected["clips"])
        assert sorted(r["filename"].decode() for r in recordings) == expected["recording_keys"]
        assert {r["audio"].shape[0] for r in clips} == {32000}
        assert {r["audio"].shape[0] for r in recordings} == {320000}
        assert {r["location"].decode() for r in clips} == set(expected["locations"])
        names[split] = {r["filename"].decode() for r in clips}
    assert not names["train"] & names["evaluate"]  # splits disjoint
    assert info["incomplete_groups"] == 0 and info["skipped"] == []


def test_synthetic_unlabelled_evaluation_set(synthetic_corpus, tmp_path):
    folder, manifest = synthetic_corpus
    out = tmp_path / "eval23"
    info = tau22.build(folder / manifest["eval23"]["root"], out, workers=0, progress=False)
    assert list(info["splits"]) == ["test"] and list(info["splits"]["test"]["views"]) == ["1s"]
    assert info["splits"]["test"]["labelled"] is False
    records = read_view(out, info, "test", "1s")
    assert len(records) == manifest["eval23"]["num_files"]
    assert {r["filename"].decode() for r in records} == set(manifest["eval23"]["files"])
    for r in records:
        assert (r["scene"], r["scene_id"], r["device"], r["device_id"]) == (b"", -1, b"", -1)
        assert (r["city"], r["location"], r["segment_id"], r["index"]) == (b"", b"", -1, -1)
        assert r["audio"].shape == (32000,)
    assert info["splits"]["test"]["views"]["1s"]["counts"] == {
        "unknown": {"unknown": manifest["eval23"]["num_files"]}
    }


# === Views, labels, ordering ===


def test_views_labels_and_part_order(tiny_tau, tmp_path):
    split5 = tmp_path / "split5.csv"
    with open(split5, "w") as f:
        f.write("filename\tscene_label\n")
        for k in range(10):
            f.write(f"{tau_name('bus', 'paris', 21, 7, k, 'b')}\tbus\n")
    out = tmp_path / "out"
    info = tau22.build(tiny_tau.parent, out, split_files=[split5], workers=0, progress=False)
    assert info["source"]["root"] == str(tiny_tau)  # found one folder down
    assert set(info["splits"]) == {"train", "evaluate", "split5"}
    assert info["source"]["files"]["evaluation_setup/fold1_train.csv"]["rows"] == 30
    views = {
        (s, v): e["num_examples"] for s, i in info["splits"].items() for v, e in i["views"].items()
    }
    assert views == {
        ("train", "1s"): 30,
        ("train", "10s"): 3,
        ("evaluate", "1s"): 20,
        ("evaluate", "10s"): 2,
        ("split5", "1s"): 10,
        ("split5", "10s"): 1,
    }
    keys = {
        f"{sc}-{ci}-{lo}-{se}-{de}": r
        for r, (_, sc, ci, lo, se, de) in enumerate(DEFAULT_RECORDINGS)
    }
    for split in ("train", "evaluate", "split5"):
        clips = {r["filename"].decode(): r for r in read_view(out, info, split, "1s")}
        for rec in read_view(out, info, split, "10s"):
            key = rec["filename"].decode()
            r = keys[key]
            _, scene, city, loc, segment, device = DEFAULT_RECORDINGS[r]
            assert rec["audio"].shape == (320000,) and rec["index"] == -1
            assert (rec["scene"].decode(), rec["device"].decode()) == (scene, device)
            assert rec["scene_id"] == vocab.SCENES.index(scene)
            assert rec["device_id"] == vocab.DEVICES.index(device)
            assert (rec["city"].decode(), rec["location"].decode()) == (city, f"{city}-{loc}")
            assert rec["segment_id"] == segment
            for k in range(10):
                window = rec["audio"][k * 32000 : (k + 1) * 32000]
                assert _peak_hz(window) == pytest.approx(tone_hz(r, k), abs=1.5)  # in order
                clip = clips[tau_name(scene, city, loc, segment, k, device)]
                assert clip["index"] == k and clip["segment_id"] == segment
                assert clip["audio"].shape == (32000,)
                assert _peak_hz(clip["audio"]) == pytest.approx(tone_hz(r, k), abs=1.5)
                # Away from the joins the 10s view equals the separately resampled clip.
                np.testing.assert_allclose(window[2000:-2000], clip["audio"][2000:-2000], atol=2e-3)


def test_waveforms_are_stored_as_resampled_not_clipped(tiny_tau, tmp_path):
    """Both views hold exactly what the reference pipeline loads (``librosa.load(path,
    sr=32000)`` = soxr HQ), overshoot of a full-scale source included."""
    from asc_core import audio as audio_lib

    _, scene, city, loc, segment, device = DEFAULT_RECORDINGS[0]
    paths = [tiny_tau / tau_name(scene, city, loc, segment, k, device) for k in range(10)]
    square = np.where(np.sin(2 * np.pi * 3000.0 * np.arange(TAU_RATE) / TAU_RATE) >= 0, 1.0, -1.0)
    sf.write(paths[3], square * (1 - 2.0**-23), TAU_RATE, subtype="PCM_24")  # full scale
    out = tmp_path / "out"
    info = tau22.build(tiny_tau, out, workers=1, progress=False)
    clips = {r["filename"].decode(): r["audio"] for r in read_view(out, info, "train", "1s")}
    for k, path in enumerate(paths):
        expected, _ = audio_lib.read_audio(path, vocab.SAMPLE_RATE)
        np.testing.assert_array_equal(
            clips[tau_name(scene, city, loc, segment, k, device)], expected
        )
    overshoot = clips[tau_name(scene, city, loc, segment, 3, device)]
    assert np.abs(overshoot).max() > 1.3  # Gibbs overshoot of the square wave (1.34), kept
    raws = [audio_lib.read_audio(path)[0] for path in paths]
    (recording,) = [
        r
        for r in read_view(out, info, "train", "10s")
        if r["filename"].decode() == f"{scene}-{city}-{loc}-{segment}-{device}"
    ]
    np.testing.assert_array_equal(
        recording["audio"], audio_lib.resample(np.concatenate(raws), TAU_RATE, vocab.SAMPLE_RATE)
    )


def test_deterministic_bytes_for_any_worker_count(tiny_tau, tmp_path):
    outs = [tmp_path / "w0", tmp_path / "w2"]
    tau22.build(tiny_tau, outs[0], workers=0, shards=2, progress=False)
    tau22.build(tiny_tau, outs[1], workers=2, shards=2, progress=False)
    files = sorted(os.listdir(outs[0]))
    assert files == sorted(os.listdir(outs[1]))
    assert "train-1s.tfrecord-00001-of-00002" in files
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def _shard_filenames(out, info, split, view):
    """``[[filename of each record] per shard]`` in stored order."""
    return [
        [
            parse_audio_example(r)["filename"].numpy().decode()
            for r in tf.data.TFRecordDataset(os.path.join(out, name))
        ]
        for name in info["splits"][split]["views"][view]["shards"]
    ]


def test_shards_are_tf_framed_and_round_robin_in_planned_order(tiny_tau, tmp_path):
    out = tmp_path / "out"
    info = tau22.build(tiny_tau, out, workers=2, shards=3, progress=False)
    view = info["splits"]["train"]["views"]["1s"]
    records = [
        [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(out, name))]
        for name in view["shards"]
    ]
    assert [len(r) for r in records] == [10, 10, 10]
    for name, shard_records in zip(view["shards"], records):
        reference = tmp_path / f"tf-{name}"
        with tf.io.TFRecordWriter(str(reference)) as writer:  # TensorFlow's own framing
            for record in shard_records:
                writer.write(record)
        assert (out / name).read_bytes() == reference.read_bytes(), name
    # Record n of the planned order is in shard n % 3: the parts of a recording are spread.
    names = _shard_filenames(out, info, "train", "1s")
    planned = [names[n % 3][n // 3] for n in range(30)]
    tasks = [t for t in _planned_units(tiny_tau) if t[0] == "train"]
    assert planned == [c.filename for _, _, clips in tasks for c in clips]


def _planned_units(root):
    """``(split, key, clips)`` in build order, planned like ``tau22.build`` (seed 0)."""
    from asc_core.writer import ErrorPolicy
    from tfrecords_builder import csvutil
    from tfrecords_builder.tau22 import plan as tau22_plan
    from tfrecords_builder.tau22 import source as tau22_source

    policy = ErrorPolicy("raise")
    meta, _ = tau22_source.read_meta(str(root), policy)
    units = []
    for split, path, display in tau22_source.split_sources(str(root), []):
        if split == "test":
            continue
        _, rows = csvutil.read_tsv(path, ["filename"])
        clips = tau22_plan.plan_split(split, rows, display, str(root), meta, policy)
        groups, _ = tau22_plan.group_recordings(split, clips, display)
        units += [(split, key, unit) for key, unit in tau22_plan.work_units(clips, groups, 0)]
    return units


def test_skipped_records_shorten_their_shard_only(tiny_tau, tmp_path):
    clean = tau22.build(tiny_tau, tmp_path / "clean", workers=0, shards=2, progress=False)
    bad = tau_name("bus", "paris", 21, 7, 2, "b")
    sf.write(os.path.join(tiny_tau, bad), np.zeros((TAU_RATE, 2)), TAU_RATE)  # stereo
    outs = [tmp_path / "w0", tmp_path / "w2"]
    infos = [
        tau22.build(tiny_tau, out, workers=w, shards=2, on_error="skip", progress=False)
        for out, w in zip(outs, (0, 2))
    ]
    for name in sorted(os.listdir(outs[0])):  # byte-identical for any worker count
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    info = infos[1]
    assert [s["item"] for s in info["skipped"]] == [bad, "bus-paris-21-7-b"]
    for view, gone in (("1s", bad), ("10s", "bus-paris-21-7-b")):
        before = _shard_filenames(tmp_path / "clean", clean, "train", view)
        after = _shard_filenames(outs[1], info, "train", view)
        assert after == [[n for n in shard if n != gone] for shard in before]
        assert info["splits"]["train"]["views"][view]["num_examples"] == (29 if view == "1s" else 2)


# === Bad input ===


def _rewrite(path, transform):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(transform(text))


FIRST = "audio/airport-lisbon-1000-40000-3-a.wav"  # fold1_train.csv line 5


def _audio_path(root):
    return os.path.join(root, FIRST)


def _drop_row(root):
    os.remove(_audio_path(root))
    for name in ("meta.csv", "evaluation_setup/fold1_train.csv"):
        _rewrite(
            os.path.join(root, name),
            lambda t: "".join(line for line in t.splitlines(True) if FIRST not in line),
        )


def _drop_column(path, column):
    def drop(text):
        rows = [line.split("\t") for line in text.splitlines()]
        at = rows[0].index(column)
        return "".join("\t".join(r[:at] + r[at + 1 :]) + "\n" for r in rows)

    _rewrite(path, drop)


def _rename_device(root):
    shutil.rmtree(root)
    write_tau22(
        root, [("train", "bus", "paris", 21, 7, "d"), ("evaluate", "park", "helsinki", 5, 90, "a")]
    )


BAD_INPUTS = {
    "missing file": (
        lambda r: os.remove(_audio_path(r)),
        r"fold1_train\.csv line 5: listed file .*airport-lisbon-1000-40000-3-a\.wav "
        r"does not exist",
    ),
    "truncated wav": (
        lambda r: open(_audio_path(r), "r+b").truncate(20000),
        r"fold1_train\.csv line 5 \(audio/airport-lisbon-1000-40000-3-a\.wav\): "
        r"audio file .* is truncated",
    ),
    "non-audio file": (
        lambda r: open(_audio_path(r), "w").write("<html>not audio</html>"),
        r"line 5 \(audio/airport-.*-3-a\.wav\): audio file .* cannot be decoded",
    ),
    "stereo clip": (
        lambda r: sf.write(_audio_path(r), np.zeros((TAU_RATE, 2)), TAU_RATE),
        r"line 5 \(.*-3-a\.wav\): audio file .* has 2 channels; expected mono",
    ),
    "nan samples": (
        lambda r: sf.write(_audio_path(r), np.full(TAU_RATE, np.nan), TAU_RATE, subtype="FLOAT"),
        r"line 5 \(.*-3-a\.wav\): audio file .* contains 44100 NaN/Inf samples",
    ),
    "wrong rate": (
        lambda r: sf.write(_audio_path(r), tone(500, rate=48000), 48000),
        r"line 5 \(.*-3-a\.wav\): audio file .* has sample rate 48000 Hz; expected "
        r"44100 Hz",
    ),
    "wrong length": (
        lambda r: sf.write(_audio_path(r), tone(500, 0.5), TAU_RATE),
        r"line 5 \(.*-3-a\.wav\): audio file .* has 22050 frames .* expected 44100",
    ),
    "wrong delimiter": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_train.csv"), lambda t: t.replace("\t", ",")
        ),
        r"evaluation_setup/fold1_train\.csv line 1: header 'filename,scene_label' "
        r"is not TAB-separated",
    ),
    "missing column": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_evaluate.csv"),
            lambda t: t.replace("filename\t", "file\t", 1),
        ),
        r"fold1_evaluate\.csv line 1: missing column 'filename'",
    ),
    "duplicate row": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_train.csv"), lambda t: t + t.splitlines(True)[4]
        ),
        r"fold1_train\.csv line 32: duplicate row for "
        r"audio/airport-lisbon-1000-40000-3-a\.wav \(first at line 5\)",
    ),
    "unknown scene": (
        lambda r: [
            _rewrite(os.path.join(r, n), lambda t: t.replace("bus", "beach"))
            for n in ("meta.csv", "evaluation_setup/fold1_train.csv")
        ],
        r"fold1_train\.csv line 12 \(audio/beach-paris-21-7-0-b\.wav\): unknown scene 'beach'",
    ),
    "unknown device": (
        _rename_device,
        r"fold1_train\.csv line 2 \(audio/bus-paris-21-7-0-d\.wav\): unknown "
        r"device 'd'",
    ),
    "scene disagrees with meta": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_train.csv"),
            lambda t: t.replace("40000-3-a.wav\tairport", "40000-3-a.wav\tbus"),
        ),
        r"fold1_train\.csv line 5 .*scene_label 'bus' disagrees with meta\.csv line \d+ "
        r"\('airport'\)",
    ),
    "empty split": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_evaluate.csv"), lambda t: t.splitlines(True)[0]
        ),
        r"fold1_evaluate\.csv lists no files \(header only\)",
    ),
    "fewer than ten parts": (
        _drop_row,
        r"recording 'airport-lisbon-1000-40000-a' of split 'train' has 9 of "
        r"its 10 one-second parts \(missing index 3\)",
    ),
    "train overlaps evaluate": (
        lambda r: _rewrite(
            os.path.join(r, "evaluation_setup/fold1_evaluate.csv"),
            lambda t: t + f"{FIRST}\tairport\n",
        ),
        r"fold1_train\.csv line 5: audio/airport-lisbon-1000-40000-3-a\.wav is also in split "
        r"'evaluate'",
    ),
    "not in meta": (
        lambda r: _rewrite(
            os.path.join(r, "meta.csv"),
            lambda t: "".join(line for line in t.splitlines(True) if FIRST not in line),
        ),
        r"fold1_train\.csv line 5 \(audio/airport-lisbon-1000-40000-3-a\.wav\): file is not "
        r"listed in meta\.csv",
    ),
    "meta.csv without scene_label": (
        lambda r: _drop_column(os.path.join(r, "meta.csv"), "scene_label"),
        r"meta\.csv line 1: missing column 'scene_label'",
    ),
    "train split without any label": (
        lambda r: [
            os.remove(os.path.join(r, "meta.csv")),
            _drop_column(os.path.join(r, "evaluation_setup/fold1_train.csv"), "scene_label"),
        ],
        r"fold1_train\.csv: no row has a scene label .*expected a labelled training split",
    ),
    "no dataset folder": (
        lambda r: shutil.rmtree(r),
        r"no meta\.csv or evaluation_setup/ in it or one folder down",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_clear_error(case, tiny_tau, tmp_path):
    damage, message = BAD_INPUTS[case]
    damage(str(tiny_tau))
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        tau22.build(tiny_tau.parent, out, workers=0, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["source"]  # nothing that looks finished, no leftovers


def test_unwritable_or_foreign_output(tiny_tau, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"cannot write the output folder .*file/out"):
        tau22.build(tiny_tau, blocker / "out", workers=0, progress=False)
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(UserError, match=r"has no info\.json; refusing to replace"):
        tau22.build(tiny_tau, foreign, workers=0, progress=False)
    assert (foreign / "notes.txt").read_text() == "precious"


def test_cli_reports_error_with_exit_2(tiny_tau, tmp_path, capsys):
    from asc_core.errors import run_cli

    os.remove(_audio_path(str(tiny_tau)))
    code = run_cli(
        builder_main,
        ["tau22", "--source", str(tiny_tau), "--out", str(tmp_path / "o"), "--workers", "0"],
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: evaluation_setup/fold1_train.csv line 5: listed file")
    assert "Traceback" not in err


def test_disk_full_is_one_message_and_keeps_the_previous_build(tiny_tau, tmp_path, monkeypatch):
    import errno

    from asc_core import tfrecord_io

    out = tmp_path / "out"
    tau22.build(tiny_tau, out, workers=0, progress=False)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tfrecord_io, "_write_all", full)
    with pytest.raises(
        UserError,
        match=r"^the build of .*out failed \(No space left on device\); "
        r".*out is unchanged and the temporary folder was removed",
    ):
        tau22.build(tiny_tau, out, workers=0, progress=False)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "source"]


def _free_space(monkeypatch, free):
    usage = shutil.disk_usage(os.getcwd())
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: usage._replace(free=free, used=usage.total - free)
    )


def test_free_space_is_checked_with_the_exact_bytes_before_writing(
    tiny_tau, tmp_path, monkeypatch, capsys
):
    """The bytes the plan says it will write are the bytes of the shards it writes; one byte
    less free than that (plus the metadata margin) is one message with the numbers, exit 2,
    and nothing written."""
    from asc_core import writer
    from asc_core.errors import run_cli

    out = tmp_path / "out"
    info = tau22.build(tiny_tau, out, workers=0, progress=False)
    shard_bytes = sum(
        os.path.getsize(out / name)
        for split in info["splits"].values()
        for view in split["views"].values()
        for name in view["shards"]
    )
    needed = shard_bytes + writer.METADATA_BYTES
    shutil.rmtree(out)

    _free_space(monkeypatch, needed - 1)
    code = run_cli(
        builder_main,
        ["tau22", "--source", str(tiny_tau), "--out", str(out / "deeper"), "--workers", "0"],
    )
    assert code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"error: not enough free space for --out {re.escape(str(out))}/deeper: the tau22 build "
        rf"writes {needed / 1e9:.2f} GB \({needed} bytes\), but only {(needed - 1) / 1e9:.2f} GB "
        rf"\({needed - 1} bytes\) is free in {re.escape(str(tmp_path))}; expected free space "
        r"for the whole build \(nothing was written\)\n",
        err,
    ), err
    assert sorted(os.listdir(tmp_path)) == ["source"]

    _free_space(monkeypatch, needed)
    tau22.build(tiny_tau, out, workers=0, progress=False)
    assert (out / "info.json").is_file()


def test_write_failure_in_a_worker_is_one_line_exit_2(tiny_tau, tmp_path):
    """A real write failure in the worker processes (file-size limit, EFBIG at the system call,
    inherited by the workers): one line, exit 2, nothing left behind."""
    out = tmp_path / "out"
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (50000, 50000)); "
        f"sys.argv = ['x', 'tau22', '--source', {str(tiny_tau)!r}, '--out', {str(out)!r}, "
        "'--workers', '1', '--shards', '1']; "
        "from tfrecords_builder.__main__ import cli; cli()"
    )
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert re.fullmatch(
        r"error: the build of .*out failed \(File too large\); .*out is "
        r"unchanged and the temporary folder was removed; expected free space "
        r"and a writable output location\n",
        result.stderr,
    ), result.stderr
    assert sorted(os.listdir(tmp_path)) == ["source"]


# === --on-error skip ===


def test_on_error_skip_reports_every_item(tiny_tau, tmp_path, capsys):
    root = str(tiny_tau)
    sf.write(
        os.path.join(root, tau_name("bus", "paris", 21, 7, 2, "b")),
        np.zeros((TAU_RATE, 2)),
        TAU_RATE,
    )  # stereo: bus recording loses its 10s record
    _drop_row(root)  # airport recording: 9 parts
    os.remove(os.path.join(root, tau_name("park", "helsinki", 5, 90, 0, "a")))  # listed, missing
    out = tmp_path / "out"
    code = builder_main(
        ["tau22", "--source", root, "--out", str(out), "--on-error", "skip", "--workers", "0"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipped 5 item(s)" in printed and "skipped.tsv" in printed
    info = json.loads((out / "info.json").read_text())
    views = info["splits"]["train"]["views"]
    assert views["1s"]["num_examples"] == 28 and views["10s"]["num_examples"] == 1
    assert info["splits"]["evaluate"]["views"]["1s"]["num_examples"] == 19
    assert info["splits"]["evaluate"]["views"]["10s"]["num_examples"] == 1
    rows = (out / "skipped.tsv").read_text().splitlines()
    assert rows[0] == "split\titem\treason"
    items = sorted((r.split("\t")[0], r.split("\t")[1]) for r in rows[1:])
    assert items == sorted(
        [
            ("train", "airport-lisbon-1000-40000-a"),
            ("train", "audio/bus-paris-21-7-2-b.wav"),
            ("train", "bus-paris-21-7-b"),
            ("evaluate", "audio/park-helsinki-5-90-0-a.wav"),
            ("evaluate", "park-helsinki-5-90-a"),
        ]
    )
    reasons = "\n".join(rows)
    assert "has 2 channels; expected mono" in reasons and "missing index 3" in reasons
    assert "park-helsinki-5-90-0-a.wav does not exist" in reasons
    assert len(info["skipped"]) == 5 and info["incomplete_groups"] == 3
    keys = {g["key"] for g in info["splits"]["train"]["incomplete_groups"]}
    assert keys == {"airport-lisbon-1000-40000-a", "bus-paris-21-7-b"}
    records = read_view(out, info, "train", "1s")
    assert len(records) == 28  # the airport parts stay in the 1s view, nothing is padded
    assert sum(r["filename"].startswith(b"audio/airport") for r in records) == 9


# === A killed build ===


@pytest.mark.slow
def test_killed_build_leaves_nothing_finished_and_rerun_completes(tmp_path):
    root = tmp_path / "source"
    recordings = [("train", vocab.SCENES[i % 10], "lisbon", i, i, "a") for i in range(8)]
    recordings.append(("evaluate", "park", "helsinki", 5, 90, "b"))
    write_tau22(str(root), recordings)
    out = tmp_path / "out"
    tau22.build(root, out, shards=1, workers=0, progress=False)
    old_info = (out / "info.json").read_bytes()

    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfrecords_builder",
            "tau22",
            "--source",
            str(root),
            "--out",
            str(out),
            "--shards",
            "2",
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial = tmp_path / "out.incomplete"
    deadline = time.monotonic() + 120
    try:
        while not (partial.is_dir() and any(n.startswith("train-1s") for n in os.listdir(partial))):
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the build and its worker processes
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "info.json").read_bytes() == old_info  # the finished output is untouched
    assert not (partial / "info.json").exists()

    info = tau22.build(root, out, shards=2, workers=0, progress=False)
    assert not partial.exists() and not (tmp_path / "out.lock").exists()
    assert info["splits"]["train"]["views"]["1s"]["shards"] == [
        "train-1s.tfrecord-00000-of-00002",
        "train-1s.tfrecord-00001-of-00002",
    ]
    assert len(read_view(out, info, "train", "1s")) == 80
    assert sorted(os.listdir(tmp_path)) == ["out", "source"]


def _children(pid):
    """``{pid: command line}`` of the live (not zombie) child processes of ``pid`` (Linux)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = command
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_main_process_ends_its_workers(sig, tmp_path):
    """Only the build's main process gets the signal: its workers and the multiprocessing
    resource tracker must not outlive it; SIGTERM says so and cleans up like Ctrl-C."""
    root = tmp_path / "source"
    write_tau22(
        str(root),
        [("train", vocab.SCENES[i % 10], "lisbon", i, i, "a") for i in range(12)]
        + [("evaluate", "park", "helsinki", 5, 90, "b")],
    )
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    log = tmp_path / "stderr.txt"  # a file, not a pipe: an orphaned worker would hold a pipe
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tfrecords_builder",
                "tau22",
                "--source",
                str(root),
                "--out",
                str(out),
                "--workers",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            children = _children(proc.pid)
            workers = [p for p, c in children.items() if "spawn_main" in c]
            if len(workers) == 2 and any("resource_tracker" in c for c in children.values()):
                break
            assert proc.poll() is None, "the build ended before its workers were seen"
            assert time.monotonic() < deadline, children
            time.sleep(0.01)
        os.kill(proc.pid, sig)  # the main process only
        proc.wait(timeout=60)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [children[p] for p in children if _alive(p)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if sig == signal.SIGTERM:
        err = log.read_text()
        assert proc.returncode == 143
        assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
        assert sorted(os.listdir(tmp_path)) == ["source", "stderr.txt"]  # no temp folder, lock
    else:
        assert proc.returncode == -signal.SIGKILL


# === Builder infrastructure ===


def test_worker_pool_keeps_order_and_never_imports_tensorflow():
    from tfrecords_builder import parallel

    names = ["tensorflow", "keras", "asc_core.vocab", "sys"]
    assert list(parallel.ordered_map(parallel.module_loaded, names, workers=2, window=2)) == [
        False,
        False,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="invalid literal"):  # a worker's error reaches here
        list(parallel.ordered_map(int, ["1", "x", "3"], workers=1))


def _spawned_workers():
    """Pids of this process's live multiprocessing ``spawn`` workers (from ``/proc``)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if parent == os.getpid() and b"spawn_main" in command:
            pids.add(int(entry))
    return pids


def _new_workers(before, expected, timeout=10.0):
    """Spawned workers not in ``before``, polled until ``expected`` of them show or ``timeout``.

    A worker shows only once its command line does, and ``Process.start`` returns before that:
    read right after ``start()`` on a loaded machine, ``/proc/PID/cmdline`` was empty 44 times
    in 60 (it is, while the child is still in ``execve``). This test once saw 1 of 2 workers so.
    """
    deadline = time.monotonic() + timeout
    while len(started := _spawned_workers() - before) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return started


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_worker_pool_starts_its_workers_before_any_work():
    from tfrecords_builder import parallel

    before = _spawned_workers()
    with parallel.WorkerPool(2, warm=["asc_core.audio"]) as pool:
        started = _new_workers(before, 2)  # at creation, before any task
        assert len(started) == 2
        pids = list(pool.ordered_map(os.readlink, ["/proc/self"] * 16, window=2))
        loaded = list(
            pool.ordered_map(parallel.module_loaded, ["asc_core.audio", "tensorflow"] * 8, window=2)
        )
    assert {int(pid) for pid in pids} <= started  # the processes started first did the work
    assert loaded == [True, False] * 8  # the warm import happened in each worker
    assert not _spawned_workers() - before  # and they are gone after the pool
    with parallel.WorkerPool(0) as pool:  # in this process
        assert list(pool.ordered_map(int, ["4", "5"])) == [4, 5]
        assert list(pool.ordered_map(os.readlink, ["/proc/self"])) == [str(os.getpid())]
    with pytest.raises(UserError, match="bad plan"), parallel.WorkerPool(2):
        raise UserError("bad plan")  # an error before any task: the pool does not hold it up
    assert not _spawned_workers() - before  # its workers were ended, not left to start up


def test_interrupts_deferred_delivers_a_signal_at_the_end_of_the_block():
    steps = []
    with errors._sigterm_as_interrupt(), pytest.raises(errors.Terminated):
        with errors.interrupts_deferred():
            signal.raise_signal(signal.SIGTERM)
            steps.append("the block went on")
        steps.append("not reached")
    assert steps == ["the block went on"]
    assert signal.getsignal(signal.SIGTERM) is not errors._raise_terminated  # all restored


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_a_sigterm_while_workers_start_lets_them_start_then_kills_them(monkeypatch):
    """A worker whose start-up a signal cut in half printed an EOFError traceback after the
    build's `terminated`: the pool starts both workers, then kills them and re-raises."""
    from tfrecords_builder import parallel

    submit, submitted = parallel.ProcessPoolExecutor.submit, []

    def submit_then_sigterm(pool, *args):
        future = submit(pool, *args)  # starts a worker
        submitted.append(future)
        if len(submitted) == 1:
            signal.raise_signal(signal.SIGTERM)
        return future

    monkeypatch.setattr(parallel.ProcessPoolExecutor, "submit", submit_then_sigterm)
    before = _spawned_workers()
    with errors._sigterm_as_interrupt(), pytest.raises(errors.Terminated):
        parallel.WorkerPool(2)
    assert len(submitted) == 2  # the signal waited until both workers were started
    assert not _spawned_workers() - before


def test_concurrent_build_of_the_same_output_is_refused(tiny_tau, tmp_path):
    from asc_core.writer import OutputDir

    out = tmp_path / "out"
    with OutputDir(out, builder="tau22"):
        with pytest.raises(UserError, match=r"another build is writing .*out \(lock"):
            tau22.build(tiny_tau, out, workers=0, progress=False)
    assert not out.exists() and not (tmp_path / "out.incomplete").exists()
