"""Tests of the synthetic corpus generator (tfrecords_builder.synthetic)."""

import argparse
import csv
import filecmp
import json
import os
import re

import numpy as np
import pytest
import soundfile as sf

from asc_core.errors import UserError
from asc_core.vocab import DEVICES
from asc_core.vocab import SCENES
from tfrecords_builder import synthetic
from tfrecords_builder.synthetic import generate_corpus
from tfrecords_builder.synthetic_devices import apply_device
from tfrecords_builder.synthetic_devices import device_ir
from tfrecords_builder.synthetic_mics import magnitude_db
from tfrecords_builder.synthetic_mics import polar_db
from tfrecords_builder.synthetic_mics import response_ir
from tfrecords_builder.synthetic_mics import sample_response
from tfrecords_builder.synthetic_scenes import location_params
from tfrecords_builder.synthetic_scenes import render_scene
from tfrecords_builder.synthetic_wav import chunk_ids

TAU = synthetic.TAU_ROOT
NAME_RE = re.compile(
    r"^audio/(?P<scene>[a-z_]+)-(?P<city>[a-z]+)-(?P<loc>\d+)-(?P<seg>\d+)-(?P<k>\d)-"
    r"(?P<device>a|b|c|s[1-6])\.wav$"
)


@pytest.fixture(scope="module")
def corpus(synthetic_corpus):
    """The session's tiny corpus (seed 0, see conftest.py) as `(folder, manifest)`; read only."""
    folder, manifest = synthetic_corpus
    return str(folder), manifest


def _read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    return [line.split("\t") for line in lines[:-1]]


def _all_files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def test_top_level_layout(corpus):
    out, manifest = corpus
    assert sorted(os.listdir(out)) == sorted(synthetic.TOP_LEVEL)
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f) == manifest
    tau = os.path.join(out, TAU)
    assert sorted(os.listdir(tau)) == ["README.md", "audio", "evaluation_setup", "meta.csv"]
    assert sorted(os.listdir(os.path.join(tau, "evaluation_setup"))) == [
        "fold1_evaluate.csv",
        "fold1_test.csv",
        "fold1_train.csv",
    ]


def test_csv_formats_and_names(corpus):
    out, manifest = corpus
    tau = os.path.join(out, TAU)
    meta = _read_tsv(os.path.join(tau, "meta.csv"))
    assert meta[0] == ["filename", "scene_label", "identifier", "source_label"]
    train = _read_tsv(os.path.join(tau, "evaluation_setup", "fold1_train.csv"))
    evaluate = _read_tsv(os.path.join(tau, "evaluation_setup", "fold1_evaluate.csv"))
    test = _read_tsv(os.path.join(tau, "evaluation_setup", "fold1_test.csv"))
    assert train[0] == ["filename", "scene_label"]
    assert evaluate[0] == ["filename", "scene_label"]
    assert test == [["filename"]] + [[row[0]] for row in evaluate[1:]]
    meta_rows = {row[0]: row for row in meta[1:]}
    assert len(meta_rows) == len(meta) - 1 == manifest["tau22"]["num_meta_rows"]
    for name, scene, identifier, device in meta[1:]:
        match = NAME_RE.match(name)
        assert match, name
        assert len(os.path.basename(name)[:-4].split("-")) == 6
        assert match["scene"] == scene and scene in SCENES
        assert identifier == f"{match['city']}-{match['loc']}"
        assert match["device"] == device
    for name, scene in train[1:] + evaluate[1:]:
        assert meta_rows[name][1] == scene
    # Files on disk are exactly the meta.csv rows.
    assert sorted("audio/" + f for f in os.listdir(os.path.join(tau, "audio"))) == sorted(meta_rows)
    # csv module with a tab dialect agrees (no quoting surprises).
    with open(os.path.join(tau, "meta.csv"), encoding="utf-8", newline="") as f:
        assert list(csv.reader(f, delimiter="\t")) == meta


def _split_rows(out, split):
    path = os.path.join(out, TAU, "evaluation_setup", f"fold1_{split}.csv")
    return [NAME_RE.match(row[0]) for row in _read_tsv(path)[1:]]


def test_manifest_counts_match_csvs(corpus):
    out, manifest = corpus
    for split in ("train", "evaluate"):
        section = manifest["tau22"]["splits"][split]
        clips = {d: {s: 0 for s in SCENES} for d in DEVICES}
        keys = set()
        for m in _split_rows(out, split):
            clips[m["device"]][m["scene"]] += 1
            keys.add(f"{m['scene']}-{m['city']}-{m['loc']}-{m['seg']}-{m['device']}")
        assert clips == section["clips"]
        assert section["num_clips"] == sum(sum(v.values()) for v in clips.values())
        assert sorted(keys) == section["recording_keys"]
        assert section["num_recordings"] == len(keys)
        recordings = section["recordings"]
        assert all(clips[d][s] == 10 * recordings[d][s] for d in DEVICES for s in SCENES)


def test_split_properties(corpus):
    out, manifest = corpus
    train = _split_rows(out, "train")
    evaluate = _split_rows(out, "evaluate")
    share_a = sum(m["device"] == "a" for m in train) / len(train)
    assert 0.6 <= share_a <= 0.8
    assert {m["device"] for m in train} == {"a", "b", "c", "s1", "s2", "s3"}
    assert {m["device"] for m in evaluate} == set(DEVICES)
    train_locations = {(m["city"], m["loc"]) for m in train}
    eval_locations = {(m["city"], m["loc"]) for m in evaluate}
    assert not train_locations & eval_locations
    # Location ids alone are unique too, and a location has one scene and one city.
    by_loc = {}
    for m in train + evaluate:
        by_loc.setdefault(m["loc"], set()).add((m["scene"], m["city"]))
    assert all(len(v) == 1 for v in by_loc.values())
    assert len({m["city"] for m in train + evaluate}) >= 6
    assert set(manifest["tau22"]["splits"]["train"]["cities"]) <= set(synthetic.CITIES)
    # Every recording has its ten 1-s parts.
    for rows in (train, evaluate):
        parts = {}
        for m in rows:
            key = m.group(0).rsplit("-", 2)[0]
            parts.setdefault((key, m["device"]), set()).add(int(m["k"]))
        assert all(v == set(range(10)) for v in parts.values())


def test_audio_format_and_continuity(corpus):
    out, _ = corpus
    tau = os.path.join(out, TAU)
    names = sorted(os.listdir(os.path.join(tau, "audio")))
    for name in names[:25]:
        info = sf.info(os.path.join(tau, "audio", name))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            44100,
            1,
            44100,
            "PCM_24",
        )
    # Parts of one recording come from one continuous signal: the jump at the joint is no larger
    # than typical sample-to-sample steps inside the parts.
    stem = names[0].rsplit("-", 2)[0]
    device = names[0].rsplit("-", 1)[1]
    parts = [sf.read(os.path.join(tau, "audio", f"{stem}-{k}-{device}"))[0] for k in range(10)]
    whole = np.concatenate(parts)
    steps = np.abs(np.diff(whole))
    joints = steps[np.arange(1, 10) * 44100 - 1]
    assert np.max(joints) < 6.0 * np.std(np.diff(parts[0])) + 1e-6
    assert 1e-3 < np.sqrt(np.mean(whole**2)) < 0.5


def test_eval23_set(corpus):
    out, manifest = corpus
    root = os.path.join(out, synthetic.EVAL23_ROOT)
    rows = _read_tsv(os.path.join(root, "evaluation_setup", "fold1_test.csv"))
    count = manifest["eval23"]["num_files"]
    assert rows == [["filename"]] + [[f"audio/{i}.wav"] for i in range(count)]
    assert sorted(os.listdir(os.path.join(root, "audio"))) == sorted(
        f"{i}.wav" for i in range(count)
    )
    assert not os.path.exists(os.path.join(root, "meta.csv"))
    info = sf.info(os.path.join(root, "audio", "0.wav"))
    assert (info.samplerate, info.frames, info.subtype) == (44100, 44100, "PCM_24")
    assert set(manifest["eval23"]["truth"]) == {f"audio/{i}.wav" for i in range(count)}


def test_micirp_files(corpus):
    out, manifest = corpus
    root = os.path.join(out, synthetic.MICIRP_ROOT)
    files = manifest["micirp"]["files"]
    assert sorted(os.listdir(root)) == sorted(f["name"] for f in files)
    assert {"B&O_BM2.wav", "Doremi_.wav"} <= set(os.listdir(root))
    rates = set()
    polarities = set()
    for entry in files:
        path = os.path.join(root, entry["name"])
        data, rate = sf.read(path)
        info = sf.info(path)
        assert (info.channels, info.subtype) == (1, "PCM_24")
        assert rate == entry["sample_rate"] and len(data) == entry["num_samples"]
        assert 0.34 <= len(data) / rate <= 0.5
        peak_index = int(np.argmax(np.abs(data)))
        assert peak_index == entry["peak_index"]
        assert np.max(np.abs(data)) == pytest.approx(entry["peak"], abs=1e-6)
        ids = chunk_ids(path)
        if entry["name"].startswith("IR_"):
            assert len(data) == rate // 2 and 2 <= peak_index <= 7
            assert ids[0] == "JUNK" and "LIST" in ids
        else:
            assert 62 <= peak_index <= 116
            assert ids.index("FLLR") == ids.index("data") - 1
        rates.add(rate)
        polarities.add(entry["polarity"])
    assert rates == {44100, 48000}
    assert polarities == {-1, 1}
    assert min(f["peak"] for f in files) < 0.5  # some files are not peak-normalised


def test_surrey_tree(corpus):
    out, manifest = corpus
    root = os.path.join(out, synthetic.SURREY_ROOT)
    files = manifest["surrey"]["files"]
    assert _all_files(root) == sorted(f["name"] for f in files)
    new_re = re.compile(
        r"^Normalised_IRs/(?P<config>\w+)_(?P<dist>50cm|125cm|5m)/(?P<bits>24|32)bit/"
        r"(?P=config)_(?P=dist)_(?P<angle>\d+)Deg(_\w+)?\.wav$"
    )
    old_re = re.compile(
        r"^(?P<config>\w+?)_(?P<dist>\d+)cm_Normalised_IRs/IRs/(?P=config)_(?P=dist)cm_"
        r"(?P<angle>\d+)Deg\.wav$"
    )
    layouts = set()
    for entry in files:
        m = new_re.match(entry["name"]) or old_re.match(entry["name"])
        assert m, entry["name"]
        assert int(m["angle"]) == entry["angle_deg"]
        assert m["config"] == entry["config"]
        layouts.add(entry["layout"])
    assert layouts == {"new", "old"}
    assert any(e["config"] != e["microphone"] for e in files)  # a multi-pattern config
    entry = files[0]
    data, rate = sf.read(os.path.join(root, entry["name"]))
    assert rate == 48000 and len(data) == 480000
    onset = entry["onset_sample"]
    assert np.max(np.abs(data[: onset - 10])) < 1e-4  # silence / noise floor before the IR
    assert np.max(np.abs(data[onset : onset + 200])) > 0.01


def test_surrey_polar_behaviour(corpus):
    out, manifest = corpus
    root = os.path.join(out, synthetic.SURREY_ROOT)
    energy = {}
    for e in manifest["surrey"]["files"]:
        if e["bit_depth"] == 24:
            data = sf.read(os.path.join(root, e["name"]))[0]
            energy[(e["config"], e["distance_cm"], e["angle_deg"])] = np.sum(data**2)
    # A cardioid is much weaker from behind than on axis; an omni much less so.
    card = energy[("RodeK2Cardioid", 125, 180)] / energy[("RodeK2Cardioid", 125, 0)]
    omni = energy[("RodeK2Omni", 125, 180)] / energy[("RodeK2Omni", 125, 0)]
    assert card < 0.1 < omni


def test_determinism_and_regeneration(corpus, tmp_path):
    out, manifest = corpus
    again = tmp_path / "again"
    assert generate_corpus(str(again), size="tiny", seed=0) == manifest
    files = _all_files(out)
    assert files == _all_files(str(again))
    match, mismatch, errors = filecmp.cmpfiles(out, str(again), files, shallow=False)
    assert mismatch == [] and errors == []
    # A folder the generator wrote is replaced in place; another seed gives other audio.
    other = generate_corpus(str(again), size="tiny", seed=1)
    assert other["seed"] == 1 and other != manifest
    assert sorted(os.listdir(tmp_path)) == ["again"]  # no temp folders left behind
    audio = os.path.join(TAU, "audio")
    assert sorted(os.listdir(os.path.join(out, audio))) != sorted(os.listdir(again / audio))
    assert not filecmp.cmp(
        os.path.join(out, "micirp", "Doremi_.wav"),
        again / "micirp" / "Doremi_.wav",
        shallow=False,
    )
    # A user's file inside a generated folder makes it foreign.
    (again / "extra.txt").write_text("user file")
    with pytest.raises(UserError, match=r"extra.txt"):
        generate_corpus(str(again), size="tiny", seed=5)
    assert (again / "extra.txt").read_text() == "user file"


def test_refuses_foreign_folder(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"notes.txt"):
        generate_corpus(str(foreign), size="tiny", seed=0)
    assert os.listdir(foreign) == ["notes.txt"]
    (foreign / "notes.txt").unlink()
    (foreign / "manifest.json").write_text('{"generator": "someone else"}')
    with pytest.raises(UserError, match=r"no synthetic manifest.json"):
        generate_corpus(str(foreign), size="tiny", seed=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"not a folder"):
        generate_corpus(str(tmp_path / "file"), size="tiny", seed=0)
    with pytest.raises(UserError, match=r"--size 'huge'"):
        generate_corpus(str(tmp_path / "x"), size="huge")
    with pytest.raises(UserError, match=r"--seed -1"):
        generate_corpus(str(tmp_path / "x"), seed=-1)
    assert not os.path.exists(tmp_path / "x")


def test_cli_arguments(corpus, monkeypatch, capsys):
    out, manifest = corpus
    calls = []

    def fake_generate(out_dir, size, seed, progress):
        calls.append((out_dir, size, seed, progress))
        return manifest

    parser = argparse.ArgumentParser()
    synthetic.add_arguments(parser)
    args = parser.parse_args(["--out", "some/dir", "--seed", "2", "--size", "small"])
    monkeypatch.setattr(synthetic, "generate_corpus", fake_generate)
    assert synthetic.run(args) == 0
    assert calls == [("some/dir", "small", 2, True)]
    train = manifest["tau22"]["splits"]["train"]["num_clips"]
    assert f"TAU22 train {train} / evaluate" in capsys.readouterr().out
    assert parser.parse_args(["--out", "d"]).size == "tiny"
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--size", "huge"])


# === Signal properties (no files) ===

_EDGES = np.geomspace(150.0, 16000.0, 25)


def _band_db(x, rate=44100, n_fft=2048):
    """Mean and std over frames of log band energies: `[48]` features of a clip."""
    starts = np.arange(0, len(x) - n_fft, n_fft // 2)
    frames = np.stack([x[s : s + n_fft] for s in starts]) * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    bands = np.stack(
        [power[:, (freqs >= lo) & (freqs < hi)].mean(axis=1) for lo, hi in zip(_EDGES, _EDGES[1:])],
        axis=1,
    )
    log = 10.0 * np.log10(bands + 1e-12)
    return np.concatenate([log.mean(axis=0), log.std(axis=0)])


def test_scenes_are_separable_by_band_energies():
    # Nearest centroid on standardised log band energies of 1-s clips, train and test from
    # different locations: far above the 10 % chance level, but not perfect (within-scene spread).
    rate = 44100
    feats = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    for scene_id, scene in enumerate(SCENES):
        for loc in range(6):
            split = "train" if loc < 4 else "test"
            location = location_params(np.random.default_rng([7, scene_id, loc]), scene)
            for seg in range(2):
                clip = render_scene(
                    np.random.default_rng([8, scene_id, loc, seg]), location, rate, rate
                )
                feats[split].append(_band_db(clip))
                labels[split].append(scene_id)
    train, test = np.array(feats["train"]), np.array(feats["test"])
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    y_train, y_test = np.array(labels["train"]), np.array(labels["test"])
    centroids = np.stack([train[y_train == c].mean(axis=0) for c in range(len(SCENES))])
    pred = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    accuracy = np.mean(pred == y_test)
    assert accuracy >= 0.6, accuracy


def _device_db(device, rate=44100):
    """Magnitude response (dB) of a device's linear part at the band centres."""
    ir = device_ir(device, rate)
    spectrum = np.abs(np.fft.rfft(ir, 1 << 15))
    freqs = np.fft.rfftfreq(1 << 15, 1.0 / rate)
    return 20.0 * np.log10(np.interp(np.array([100.0, 1000.0, 4000.0, 12000.0]), freqs, spectrum))


def test_devices_differ_and_unseen_devices_leave_the_training_range():
    rate = 44100
    location = location_params(np.random.default_rng(1), "street_traffic")
    source = render_scene(np.random.default_rng(2), location, 2 * rate, rate)
    recorded = {
        d: _band_db(apply_device(source, rate, d, np.random.default_rng(3)))[: len(_EDGES) - 1]
        for d in DEVICES
    }
    for i, d in enumerate(DEVICES):
        for e in DEVICES[i + 1 :]:
            diff = recorded[d] - recorded[e]
            # Level-independent colour difference of at least 1.5 dB RMS across bands.
            assert np.std(diff) > 1.5, (d, e, np.std(diff))
    # Bass relative to 1 kHz: every training device cuts it, the close ribbon s4 boosts it.
    bass = {d: _device_db(d)[0] - _device_db(d)[1] for d in DEVICES}
    assert max(bass[d] for d in ("b", "c", "s1", "s2", "s3")) < -1.0 < 1.0 < bass["s4"]


def test_minimum_phase_ir_matches_its_magnitude():
    rate = 48000
    params = sample_response(np.random.default_rng(0), "dynamic")
    ir = response_ir(rate, 1024, params, "cardioid", 45.0, 0.5)
    n_fft = 8192
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    target = magnitude_db(freqs, **params) + polar_db(freqs, "cardioid", 45.0, 0.5)
    got = 20.0 * np.log10(np.abs(np.fft.rfft(ir, n_fft)) + 1e-12)
    band = (freqs > 200.0) & (freqs < 16000.0)
    assert np.max(np.abs(got[band] - target[band])) < 1.0
    # Minimum phase: the energy is front-loaded (most of it in the first 2 ms).
    energy = np.cumsum(ir**2) / np.sum(ir**2)
    assert energy[int(0.002 * rate)] > 0.9


def test_polar_pattern_shapes():
    f = np.array([1000.0])
    assert polar_db(f, "omni", 180.0, 5.0)[0] == pytest.approx(0.0, abs=0.5)
    assert polar_db(f, "cardioid", 180.0, 5.0)[0] < -20.0
    assert polar_db(f, "bidirectional", 90.0, 5.0)[0] < -25.0
    assert polar_db(f, "cardioid", 90.0, 5.0)[0] == pytest.approx(-6.0, abs=1.0)
    # Proximity effect: a figure-8 at 50 cm has more bass than at 5 m.
    low = np.array([80.0])
    near, far = (polar_db(low, "bidirectional", 0.0, d)[0] for d in (0.5, 5.0))
    assert near > far + 4.0
