"""Tests of the DIR builders micirp and multi-dirs (Surrey names, microphone table, e2e)."""

import dataclasses
import io
import json
import os
import shutil
import struct
import warnings

import numpy as np
import pytest
import soundfile
import soxr
from scipy import signal

from asc_core.errors import UserError
from asc_core.errors import run_cli
from asc_core.microphones import load_microphones
from tfrecords_builder import ir_processing as irp
from tfrecords_builder import micirp
from tfrecords_builder import multi_dirs as md
from tfrecords_builder.__main__ import main as builder_main
from tfrecords_builder.micirp import MicIRPProcessing
from tfrecords_builder.surrey_names import parse_surrey_path
from tfrecords_builder.surrey_names import select_files
from tfrecords_builder.surrey_processing import SurreyProcessing

SR = 32000


# === Helpers ===


def _wav_bytes(data, rate, subtype="PCM_24", extra_chunk=None):
    """WAV bytes; ``extra_chunk=(id, payload)`` is inserted before ``data`` (odd sizes padded)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, subtype=subtype, format="WAV")
    raw = buffer.getvalue()
    if extra_chunk is None:
        return raw
    chunk_id, payload = extra_chunk
    chunk = chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    at = raw.index(b"data", 12)
    raw = raw[:at] + chunk + raw[at:]
    return raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:]


def _write(path, data, rate, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(_wav_bytes(data, rate, **kwargs))


def _read_records(out):
    import tensorflow as tf

    from keras_asc.data.schema import parse_dir_example

    info = json.load(open(os.path.join(out, "info.json"), encoding="utf-8"))
    files = [os.path.join(out, s) for s in info["shards"]]
    records = []
    for raw in tf.data.TFRecordDataset(files):
        parsed = parse_dir_example(raw)
        rec = {k: v.numpy() for k, v in parsed.items()}
        for key, value in rec.items():
            if isinstance(value, bytes):
                rec[key] = value.decode("utf-8")
        records.append(rec)
    return info, records


def _shard_bytes(out):
    info = json.load(open(os.path.join(out, "info.json"), encoding="utf-8"))
    return [open(os.path.join(out, s), "rb").read() for s in info["shards"]]


def _vintage_ir(rng, rate, length, delay):
    """A MicIRP-like IR: a resonant, low-passed pulse at ``delay`` with a reflection."""
    b1, a1 = signal.iirpeak(2500, 1.5, fs=rate)
    b2, a2 = signal.butter(3, 9000, fs=rate)
    x = np.zeros(length)
    x[delay] = 1.0
    x[delay + int(0.003 * rate)] = 0.2
    ir = signal.lfilter(b2, a2, signal.lfilter(b1, a1, x) + 0.3 * x)
    ir += 1e-5 * rng.standard_normal(length)
    return ir / np.max(np.abs(ir))


# === MicIRP fixtures and tests ===


MICIRP_FILES = (  # relative path, rate, length, delay, peak
    ("B&O_BM2.wav", 44100, 16450, 80, 1.0),
    ("IR_Meazzi.wav", 44100, 22050, 4, 1.0),
    ("sub/Doremi_.wav", 48000, 17000, 100, 1.0),
    ("Altec_670A.wav", 44100, 16481, 70, 0.128),
)


@pytest.fixture(scope="module")
def micirp_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("micirp_src")
    sources = {}
    for i, (rel, rate, length, delay, peak) in enumerate(MICIRP_FILES):
        ir = peak * _vintage_ir(np.random.default_rng(i), rate, length, delay)
        # Odd-sized FLLR/JUNK chunks, as the real files carry.
        chunk = (b"FLLR", bytes(4005)) if not rel.startswith("IR_") else (b"JUNK", bytes(27))
        _write(str(root / rel), ir, rate, extra_chunk=chunk)
        sources[rel] = soundfile.read(str(root / rel), dtype="float32")[0]
    return root, sources


@pytest.fixture(scope="module")
def micirp_built(micirp_source, tmp_path_factory):
    root, _ = micirp_source
    out = tmp_path_factory.mktemp("micirp_out") / "micirp"
    micirp.build(str(root), str(out))
    return out


def test_micirp_end_to_end(micirp_source, micirp_built):
    root, sources = micirp_source
    info, records = _read_records(micirp_built)
    names = [r["name"] for r in records]
    assert names == sorted(rel for rel, *_ in MICIRP_FILES)  # sorted recursive glob
    assert info["num_examples"] == 4 and info["builder"] == "micirp" and info["set"] == "micirp"
    assert info["counts"]["source_sample_rate"] == {"44100": 3, "48000": 1}
    by_name = {rel: (rate, length) for rel, rate, length, _, _ in MICIRP_FILES}
    for rec in records:
        rate, length = by_name[rec["name"]]
        assert rec["set"] == "micirp"
        assert rec["sample_rate"] == SR and rec["source_sample_rate"] == rate
        assert rec["num_samples"] == round(length * SR / rate) == rec["ir"].shape[0]
        assert rec["microphone"] == rec["name"].split("/")[-1][:-4]
        assert rec["pattern"] == "" and rec["distance_cm"] == -1 and rec["diaphragm_count"] == -1
        # Raw level kept: the resampled source times the filter gain, nothing else.
        expected = soxr.resample(sources[rec["name"]], rate, SR, quality="HQ") * (rate / SR)
        np.testing.assert_allclose(rec["ir"], expected, atol=2e-6)
        assert rec["peak"] == pytest.approx(np.max(np.abs(rec["ir"])))
    item = {i["name"]: i for i in info["items"]}["Altec_670A.wav"]
    assert item["source_peak"] == pytest.approx(0.128, abs=1e-6)
    assert item["source_num_samples"] == 16481
    from asc_core.writer import md5_file

    assert info["source_checksums"] == {
        rel: md5_file(os.path.join(root, rel)) for rel, *_ in MICIRP_FILES
    }
    assert info["processing"]["normalize"] == "none"
    assert info["processing"]["resample_gain"] == "filter"


def test_micirp_keeps_the_frequency_response(micirp_source, micirp_built):
    _, sources = micirp_source
    _, records = _read_records(micirp_built)
    # Up to 12 kHz: an IR whose peak is 4 samples into the file (the IR_* batch) loses the
    # resampler's pre-ringing before t=0, which costs up to ~0.1-0.3 dB near 14 kHz.
    freqs = np.linspace(50, 12000, 200)
    for rec in records:
        rate = rec["source_sample_rate"]
        _, h_src = signal.freqz(sources[rec["name"]], worN=freqs, fs=rate)
        _, h_out = signal.freqz(rec["ir"], worN=freqs, fs=SR)
        diff = 20 * np.log10(np.abs(h_out) / np.abs(h_src))
        assert np.max(np.abs(diff)) < 0.1, rec["name"]


def test_micirp_normalisation_gain_and_rate_options(micirp_source, micirp_built, tmp_path):
    root, sources = micirp_source
    _, raw = _read_records(micirp_built)
    micirp.build(str(root), str(tmp_path / "peak"), processing=MicIRPProcessing(normalize="peak"))
    micirp.build(
        str(root), str(tmp_path / "energy"), processing=MicIRPProcessing(normalize="energy")
    )
    micirp.build(
        str(root), str(tmp_path / "signal"), processing=MicIRPProcessing(resample_gain="signal")
    )
    micirp.build(str(root), str(tmp_path / "r441"), processing=MicIRPProcessing(sample_rate=44100))
    info441, at441 = _read_records(tmp_path / "r441")
    assert info441["sample_rate"] == 44100
    for rec in at441:
        assert rec["sample_rate"] == 44100
        if rec["source_sample_rate"] == 44100:  # no rate change: the source samples, untouched
            np.testing.assert_array_equal(rec["ir"], sources[rec["name"]])
    (info, peak), (_, energy), (_, sig) = (
        _read_records(tmp_path / n) for n in ("peak", "energy", "signal")
    )
    assert info["processing"]["normalize"] == "peak"
    for r, p, e, s in zip(raw, peak, energy, sig):
        assert np.max(np.abs(p["ir"])) == pytest.approx(1.0) and p["peak"] == pytest.approx(1.0)
        assert np.sum(e["ir"].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
        np.testing.assert_allclose(p["ir"] * np.max(np.abs(r["ir"])), r["ir"], atol=1e-6)
        np.testing.assert_allclose(s["ir"] * r["source_sample_rate"] / SR, r["ir"], atol=2e-6)


def test_micirp_is_deterministic(micirp_source, micirp_built, tmp_path):
    root, _ = micirp_source
    again = tmp_path / "again"
    micirp.build(str(root), str(again))
    assert _shard_bytes(again) == _shard_bytes(micirp_built)
    first = json.load(open(micirp_built / "info.json"))
    second = json.load(open(again / "info.json"))
    assert first == second


def _files(files):
    """A setup that writes ``{relative path: (samples, rate) or bytes}`` into the source."""

    def setup(src):
        for rel, content in files.items():
            if isinstance(content, bytes):
                os.makedirs(os.path.dirname(src / rel), exist_ok=True)
                (src / rel).write_bytes(content)
            else:
                _write(str(src / rel), *content)

    return setup


_GOOD_MICIRP = {"Good.wav": (np.hanning(64), 44100)}

# case -> (setup of the source folder, build keyword arguments, message)
MICIRP_BAD_INPUTS = {
    "no wav files": (_files({}), {}, r"^source .*src holds no \.wav files; expected the MicIRP"),
    "source not a folder": (shutil.rmtree, {}, r"^source .*src is not a folder"),
    "stereo file": (
        _files({"Stereo_Mic.wav": (np.full((500, 2), 0.25), 44100)}),
        {},
        r"Stereo_Mic\.wav has 2 channels; expected mono",
    ),
    "rate below the target": (
        _files({"Low_Rate.wav": (np.hanning(64), 16000)}),
        {},
        r"Low_Rate\.wav has sample rate 16000 Hz; expected at least 32000 Hz",
    ),
    "truncated file": (
        _files({"Cut.wav": _wav_bytes(np.hanning(2000), 44100)[:-1500]}),
        {},
        r"Cut\.wav is truncated",
    ),
    "silent file": (_files({"Zero.wav": (np.zeros(100), 44100)}), {}, r"Zero\.wav is silent"),
    "not audio": (
        _files({"Broken.wav": b"RIFF\x10\x00\x00\x00WAVEnot audio"}),
        {},
        r"Broken\.wav cannot be decoded",
    ),
    "every file skipped": (
        _files({"Broken.wav": b"junk"}),
        {"on_error": "skip"},
        r"^no usable IRs under source .*src: all 1 files were skipped \(first: .*Broken\.wav",
    ),
    "sample_rate 0": (
        _files(_GOOD_MICIRP),
        {"processing": {"sample_rate": 0}},
        r"^sample_rate must be > 0 Hz, got 0$",
    ),
    "unknown normalize": (
        _files(_GOOD_MICIRP),
        {"processing": {"normalize": "loud"}},
        r"^normalize 'loud' is not valid; expected one of none, peak, energy$",
    ),
    "unknown resample_gain": (
        _files(_GOOD_MICIRP),
        {"processing": {"resample_gain": "x"}},
        r"^resample_gain 'x' is not valid; expected one of filter, signal$",
    ),
    "shards 0": (_files(_GOOD_MICIRP), {"shards": 0}, r"^shards must be at least 1, got 0$"),
}


@pytest.mark.parametrize("case", sorted(MICIRP_BAD_INPUTS))
def test_micirp_bad_input_one_clear_error(case, tmp_path):
    setup, kwargs, message = MICIRP_BAD_INPUTS[case]
    src = tmp_path / "src"
    os.makedirs(src)
    setup(src)
    kwargs = dict(kwargs)
    with pytest.raises(UserError, match=message):
        if "processing" in kwargs:
            kwargs["processing"] = MicIRPProcessing(**kwargs["processing"])
        micirp.build(str(src), str(tmp_path / "out"), **kwargs)
    assert set(os.listdir(tmp_path)) <= {"src"}  # no output, no temporary folder, no lock


def test_micirp_downmix_averages_the_channels(tmp_path):
    stereo = tmp_path / "stereo"
    _write(str(stereo / "Stereo_Mic.wav"), np.full((500, 2), 0.25) * [1.0, 0.5], 44100)
    micirp.build(str(stereo), str(tmp_path / "o3"), processing=MicIRPProcessing(downmix=True))
    _, (rec,) = _read_records(tmp_path / "o3")
    expected = soxr.resample(np.full(500, 0.1875, np.float32), 44100, SR) * (44100 / SR)
    np.testing.assert_allclose(rec["ir"], expected, atol=1e-6)


def test_micirp_skip_reports_bad_files(micirp_source, tmp_path):
    root, _ = micirp_source
    src = tmp_path / "src"
    for rel, *_ in MICIRP_FILES:
        os.makedirs((src / rel).parent, exist_ok=True)
        (src / rel).write_bytes((root / rel).read_bytes())
    (src / "Broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot audio")
    with pytest.raises(UserError, match=r"Broken\.wav cannot be decoded"):
        micirp.build(str(src), str(tmp_path / "raise"))
    out = tmp_path / "skip"
    micirp.build(str(src), str(out), on_error="skip")
    info, records = _read_records(out)
    assert len(records) == 4 and info["num_examples"] == 4
    assert [s["item"] for s in info["skipped"]] == ["Broken.wav"]
    assert "cannot be decoded" in info["skipped"][0]["reason"]
    assert (out / "skipped.tsv").read_text().splitlines()[1].startswith("dirs\tBroken.wav\t")


def test_micirp_count_warning_only_for_the_real_looking_set():
    real = list(micirp.KNOWN_NAMES)
    assert len(real) == 66 and len(set(real)) == 66
    assert micirp.check_count(real) is None
    message = micirp.check_count(real[:-2] + ["IR_Crystal"])
    assert message.startswith("found 65 MicIRP IRs; the reference set has 66")
    assert "missing: Toshiba_TypeK_HPF, Toshiba_TypeK_flat" in message
    assert "not in the reference set: IR_Crystal" in message
    assert micirp.check_count(real[:8]) is None  # a small corpus is not "the real set"
    assert micirp.check_count(real[:25] + [f"x{i}" for i in range(30)]) is None


def test_micirp_warns_but_builds_a_partial_real_set(tmp_path):
    src = tmp_path / "src"
    for name in micirp.KNOWN_NAMES[:21]:
        _write(str(src / f"{name}.wav"), np.hanning(32) * 0.5, 48000)
    with pytest.warns(UserWarning, match="found 21 MicIRP IRs; the reference set has 66"):
        micirp.build(str(src), str(tmp_path / "out"))
    info, records = _read_records(tmp_path / "out")
    assert len(records) == 21 and info["warnings"][0].startswith("found 21 MicIRP IRs")


def test_micirp_cli(micirp_source, tmp_path, capsys):
    root, _ = micirp_source
    out = tmp_path / "cli"
    argv = ["micirp", "--source", str(root), "--out", str(out), "--normalize", "peak"]
    assert run_cli(builder_main, argv) == 0
    info, records = _read_records(out)
    assert info["processing"]["normalize"] == "peak" and len(records) == 4
    argv = ["micirp", "--source", str(tmp_path / "no"), "--out", str(tmp_path / "x")]
    assert run_cli(builder_main, argv) == 2
    assert "error: --source" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# === Surrey names ===


@pytest.mark.parametrize(
    "path, expected",
    [
        (
            "Microphone_Impulse_Responses/Normalised_IRs/AKGC414Bidirect_125cm/24bit/"
            "AKGC414Bidirect_125cm_90Deg.wav",
            ("AKGC414Bidirect", 125, 90, "", "normalised", 24),
        ),
        (
            "Normalised_IRs/SchoepsCMC6_MK2H_KA40_5m/32bit/SchoepsCMC6_MK2H_KA40_5m_355Deg_1.wav",
            ("SchoepsCMC6_MK2H_KA40", 500, 355, "1", "normalised", 32),
        ),
        (
            "ShureSM58_125cm_Normalised_IRs/IRs/ShureSM58_125cm_5Deg.wav",
            ("ShureSM58", 125, 5, "", "normalised", None),
        ),
        ("Raw_IRs/RoyerR121_50cm/24bit/IR_0Deg.wav", ("RoyerR121", 50, 0, "", "raw", 24)),
        ("loose/ShureSM57_50cm_270Deg.wav", ("ShureSM57", 50, 270, "", "", None)),
        ("RodeNTG8_125cm/RodeNTG8_125cm_0Deg.WAV", ("RodeNTG8", 125, 0, "", "", None)),
    ],
)
def test_parse_surrey_path(path, expected):
    name = parse_surrey_path(path)
    assert name.path == path
    got = (name.config, name.distance_cm, name.angle_deg, name.name_variant, name.ir_type)
    assert got + (name.bit_depth,) == expected


@pytest.mark.parametrize(
    "path, message",
    [
        ("Normalised_IRs/AKGC414Omni_50cm/24bit/readme.wav", "malformed Surrey IR name"),
        ("Normalised_IRs/AKGC414Omni_50cm/24bit/AKGC414Omni_50cm_90.wav", "malformed"),
        ("Normalised_IRs/AKGC414Omni_50cm/24bit/AKGC414Omni_50cm_360Deg.wav", "outside"),
        ("Normalised_IRs/Misc/24bit/IR_90Deg.wav", "neither a folder"),
        ("Normalised_IRs/AKGC414Omni_50cm/AKGC414Omni_125cm_0Deg.wav", "folder says AKGC414Omni"),
        ("Normalised_IRs/AKGC414Omni_0.5cm/AKGC414Omni_0.5cm_0Deg.wav", "whole number"),
    ],
)
def test_malformed_surrey_names_name_the_file(path, message):
    with pytest.raises(UserError, match=message) as err:
        parse_surrey_path(path)
    assert str(err.value).startswith(path + ":")


def _names(*paths):
    return [parse_surrey_path(p) for p in paths]


def test_select_files_bit_depth_and_type():
    names = _names(
        "N/Normalised_IRs/A1Omni_50cm/24bit/A1Omni_50cm_0Deg.wav",
        "N/Normalised_IRs/A1Omni_50cm/32bit/A1Omni_50cm_0Deg.wav",
        "N/Normalised_IRs/A1Omni_50cm/32bit/A1Omni_50cm_5Deg.wav",
        "N/Normalised_IRs/A1Omni_50cm/24bit/A1Omni_50cm_10Deg.wav",
        "N/Raw_IRs/A1Omni_50cm/24bit/A1Omni_50cm_0Deg.wav",
    )
    picked, stats = select_files(names, bit_depth=24)
    assert [n.path.split("/", 3)[3] for n in picked] == [
        "24bit/A1Omni_50cm_0Deg.wav",
        "32bit/A1Omni_50cm_5Deg.wav",
        "24bit/A1Omni_50cm_10Deg.wav",
    ]
    assert stats == {"ir_type": "normalised", "duplicates_dropped": 1, "other_depth_used": 1}
    picked, stats = select_files(names, bit_depth=32)
    assert [n.bit_depth for n in picked] == [32, 32, 24]
    assert stats["other_depth_used"] == 1
    picked, stats = select_files(names, ir_type="raw")
    assert [n.path for n in picked] == ["N/Raw_IRs/A1Omni_50cm/24bit/A1Omni_50cm_0Deg.wav"]
    with pytest.raises(UserError, match=r"no raw IRs found \(IR types present: untyped\)"):
        select_files(_names("X_50cm/X_50cm_0Deg.wav"), ir_type="raw")


def test_select_files_rejects_two_copies_at_one_depth():
    names = _names("a/Q_50cm/Q_50cm_0Deg.wav", "b/Q_50cm/Q_50cm_0Deg.wav")
    with pytest.raises(UserError, match=r"a/Q_50cm/Q_50cm_0Deg.wav and b/.* are the same IR"):
        select_files(names)


# === Microphone table ===


def test_metadata_join():
    table = load_microphones()
    name = parse_surrey_path("Normalised_IRs/SchoepsCMC6_MK2H_KA40_5m/24bit/x_45Deg_1.wav")
    meta = md.record_metadata(name, md.lookup_microphone(table, name))
    assert meta == {
        "microphone": "SchoepsCMC6_MK2H",
        "pattern": "omni",
        "variant": "KA40+1",
        "distance_cm": 500,
        "angle_deg": 45,
        "transducer": "condenser",
        "diaphragm_size": "small",
        "address": "end",
        "diaphragm_count": 1,
    }
    name = parse_surrey_path("Normalised_IRs/AKGC414Hyper_50cm/24bit/AKGC414Hyper_50cm_0Deg.wav")
    meta = md.record_metadata(name, md.lookup_microphone(table, name))
    assert (meta["microphone"], meta["pattern"], meta["diaphragm_count"]) == (
        "AKGC414",
        "hypercardioid",
        2,
    )
    unknown = parse_surrey_path("Normalised_IRs/Mystery_50cm/24bit/Mystery_50cm_0Deg.wav")
    with pytest.raises(
        UserError,
        match=r"Mystery_50cm_0Deg\.wav: microphone configuration "
        r"'Mystery' is not in the microphone table",
    ):
        md.lookup_microphone(table, unknown)


# === multi-dirs fixtures and tests ===

RATE48 = 48000
LATENCY48 = 480  # 10 ms system latency in every file
FIG8_LAG48 = 144  # a room reflection 3 ms after the direct sound
SURREY_LAYOUT = (  # folder relative to the root, file prefix, config, distance_cm, suffix
    ("Normalised_IRs/AKGC414Bidirect_50cm/24bit", "AKGC414Bidirect_50cm", 50, ""),
    ("ShureSM58_125cm_Normalised_IRs/IRs", "ShureSM58_125cm", 125, ""),
    ("Normalised_IRs/SchoepsCMC6_MK2H_KA40_5m/24bit", "SchoepsCMC6_MK2H_KA40_5m", 500, "_1"),
)
ANGLES = (0, 90, 180)


def _delay48(distance_cm):
    # Multiples of 3 so that the 32 kHz onset is a whole sample.
    return LATENCY48 + 3 * round(distance_cm / 100 / 343.0 * RATE48 / 3)


def _surrey_ir(distance_cm, angle, fig8, rng, length=9600):
    """0.2-s Surrey-like IR at 48 kHz; a figure-8 at 90 deg hears the reflection, not the source."""
    b, a = signal.butter(2, [80, 12000], btype="band", fs=RATE48)
    pulse = signal.lfilter(b, a, np.r_[1.0, np.zeros(599)])
    pulse /= np.max(np.abs(pulse))
    x = 1e-4 * rng.standard_normal(length)
    d = _delay48(distance_cm)
    direct = 0.02 if (fig8 and angle == 90) else (1.0 if angle == 0 else 0.6)
    x[d : d + 600] += direct * pulse
    x[d + FIG8_LAG48 : d + FIG8_LAG48 + 600] += 0.3 * pulse
    return 0.5 * x


@pytest.fixture(scope="module")
def surrey_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("surrey_src") / "Microphone_Impulse_Responses"
    for i, (folder, prefix, distance, suffix) in enumerate(SURREY_LAYOUT):
        for angle in ANGLES:
            rng = np.random.default_rng([i, angle])
            ir = _surrey_ir(distance, angle, prefix.startswith("AKG"), rng)
            _write(str(root / folder / f"{prefix}_{angle}Deg{suffix}.wav"), ir, RATE48)
            if prefix.startswith("AKG") and angle == 0:  # one IR also has a 32-bit float copy
                folder32 = folder.replace("24bit", "32bit")
                _write(str(root / folder32 / f"{prefix}_0Deg.wav"), ir, RATE48, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def surrey_built(surrey_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("surrey_out") / "multi"
    md.build(str(surrey_source), str(out), workers=0)
    return out


def test_multi_dirs_end_to_end(surrey_source, surrey_built):
    info, records = _read_records(surrey_built)
    assert info["builder"] == "multi-dirs" and info["set"] == "multi"
    assert info["num_examples"] == len(records) == 9
    assert info["selection"] == {
        "wav_files": 10,
        "ignored_files": 0,
        "bit_depth": 24,
        "ir_type": "normalised",
        "duplicates_dropped": 1,
        "other_depth_used": 0,
    }
    assert info["counts"]["microphone_distance_cm"] == {
        "AKGC414": {"50": 3},
        "SchoepsCMC6_MK2H": {"500": 3},
        "ShureSM58": {"125": 3},
    }
    assert info["counts"]["pattern"] == {"bidirectional": 3, "cardioid": 3, "omni": 3}
    # Records are ordered by config, distance, angle.
    assert [(r["microphone"], r["angle_deg"]) for r in records[:3]] == [
        ("AKGC414", 0),
        ("AKGC414", 90),
        ("AKGC414", 180),
    ]
    assert records[0]["name"] == (
        "Normalised_IRs/AKGC414Bidirect_50cm/24bit/AKGC414Bidirect_50cm_0Deg.wav"
    )
    table = load_microphones()
    for rec in records:
        assert rec["set"] == "multi" and rec["sample_rate"] == SR
        assert rec["source_sample_rate"] == RATE48
        assert rec["num_samples"] == 1024 == rec["ir"].shape[0]
        assert rec["peak"] == pytest.approx(1.0)
        name = parse_surrey_path(rec["name"])
        row = table[name.config]
        assert (rec["pattern"], rec["transducer"], rec["address"]) == (
            row.pattern,
            row.transducer,
            row.address,
        )
        assert (rec["distance_cm"], rec["angle_deg"]) == (name.distance_cm, name.angle_deg)
        assert rec["variant"] == ("KA40+1" if "KA40" in rec["name"] else "")
    for _, prefix, distance, _ in SURREY_LAYOUT:
        group = info["group_onsets"][f"{prefix[: prefix.rindex('_')]}_{distance}cm"]
        # The resampler smears the pulse's sharp start over a sample either side.
        assert abs(group["onset"] - _delay48(distance) * 2 // 3) <= 1
    assert len(info["source_checksums"]) == 9
    assert info["processing"]["window"] == {"kind": "kaiser", "beta": 2.0, "mode": "half"}


def test_multi_dirs_window_parity(surrey_source, surrey_built):
    """A stored IR is the resampled source cut at the group onset, Kaiser-tapered, peak-normed."""
    info, records = _read_records(surrey_built)
    rec = next(r for r in records if r["name"].startswith("ShureSM58") and r["angle_deg"] == 90)
    audio, _ = soundfile.read(str(surrey_source / rec["name"]), dtype="float32")
    ir = soxr.resample(audio, RATE48, SR, quality="HQ").astype(np.float64) * 1.5
    onset = info["group_onsets"]["ShureSM58_125cm"]["onset"]
    expected = ir[onset - 16 : onset - 16 + 1024] * irp.ir_window(1024, 2.0, 16, "half")
    expected /= np.max(np.abs(expected))
    np.testing.assert_allclose(rec["ir"], expected, atol=1e-6)
    # The direct sound sits just after the pre-roll; the pre-roll holds only noise and the
    # resampler's pre-ringing of the sharp onset (under 1 % of the energy).
    energy = rec["ir"].astype(np.float64) ** 2
    assert np.sum(energy[:16]) < 0.01 * np.sum(energy)
    assert np.argmax(np.abs(rec["ir"])) < 16 + 20


def test_group_onset_keeps_the_figure8_null_aligned(surrey_source, surrey_built, tmp_path):
    _, grouped = _read_records(surrey_built)
    md.build(
        str(surrey_source),
        str(tmp_path / "file"),
        processing=SurreyProcessing(onset="file"),
        workers=0,
    )
    info, per_file = _read_records(tmp_path / "file")
    assert info["processing"]["onset"]["mode"] == "file"
    null = [
        i for i, r in enumerate(grouped) if r["microphone"] == "AKGC414" and r["angle_deg"] == 90
    ][0]
    lag = FIG8_LAG48 * 2 // 3
    # Group mode: the reflection stays 96 samples after the pre-roll, as at the other angles.
    assert np.argmax(np.abs(grouped[null]["ir"])) >= 16 + lag - 2
    # File mode: the reflection is taken for the onset.
    assert np.argmax(np.abs(per_file[null]["ir"])) < 16 + 20
    others = [i for i, r in enumerate(grouped) if i != null]
    for i in others:  # everywhere else the two modes agree to a sample or two of onset
        assert (
            abs(
                int(np.argmax(np.abs(grouped[i]["ir"]))) - int(np.argmax(np.abs(per_file[i]["ir"])))
            )
            <= 2
        )


def test_multi_dirs_options(surrey_source, surrey_built, tmp_path):
    md.build(
        str(surrey_source),
        str(tmp_path / "o"),
        bit_depth=32,
        processing=SurreyProcessing(
            window="full", kaiser_beta=0.0, length=512, pre_roll=0, normalize="energy"
        ),
        workers=0,
    )
    md.build(
        str(surrey_source),
        str(tmp_path / "r16"),
        processing=SurreyProcessing(sample_rate=16000),
        workers=0,
    )
    info16, at16 = _read_records(tmp_path / "r16")
    assert info16["sample_rate"] == 16000 and {r["sample_rate"] for r in at16} == {16000}
    assert {r["num_samples"] for r in at16} == {1024}
    onset16 = info16["group_onsets"]["ShureSM58_125cm"]["onset"]
    assert abs(onset16 - _delay48(125) // 3) <= 1
    info, records = _read_records(tmp_path / "o")
    assert records[0]["name"] == (
        "Normalised_IRs/AKGC414Bidirect_50cm/32bit/AKGC414Bidirect_50cm_0Deg.wav"
    )
    assert info["selection"]["bit_depth"] == 32 and info["selection"]["other_depth_used"] == 5
    for rec in records:
        assert rec["num_samples"] == 512
        assert np.sum(rec["ir"].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
    _, base = _read_records(surrey_built)
    # Same source IR, a rectangular cut from the onset: its first 512 samples match the default
    # build's samples 16.. once the taper and level are divided out.
    window = irp.ir_window(1024, 2.0, 16, "half")[16 : 16 + 512]
    ratio = (base[1]["ir"][16 : 16 + 512] / window) / records[1]["ir"]
    assert np.std(ratio) < 1e-3 * abs(np.mean(ratio))


@pytest.mark.slow  # each spawned worker imports keras_asc, i.e. TensorFlow (~10-20 s)
def test_multi_dirs_is_deterministic_across_workers(surrey_source, surrey_built, tmp_path):
    md.build(str(surrey_source), str(tmp_path / "w2"), workers=2, shards=2)
    md.build(str(surrey_source), str(tmp_path / "w0"), workers=0, shards=2)
    assert _shard_bytes(tmp_path / "w2") == _shard_bytes(tmp_path / "w0")
    _, two = _read_records(tmp_path / "w2")
    _, one = _read_records(surrey_built)
    assert sorted(r["name"] for r in two) == sorted(r["name"] for r in one)


def _copy_tree(src, dst):
    for dirpath, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            with open(os.path.join(dirpath, f), "rb") as a, open(os.path.join(dst, rel), "wb") as b:
                b.write(a.read())


_MYSTERY = "Mystery_50cm/Mystery_50cm_0Deg.wav"
_RODE = "Normalised_IRs/RodeK2Omni_50cm/24bit/RodeK2Omni_50cm_"
_GOOD_SURREY = {_RODE + "0Deg.wav": (np.hanning(99), RATE48)}

# case -> (files of the source, build keyword arguments, message)
MULTI_DIRS_BAD_INPUTS = {
    "no wav files": (
        {},
        {},
        r"^source .*src holds no \.wav files; expected the Surrey microphone IRs",
    ),
    "malformed name": (
        {_RODE + "notes.wav": (np.zeros(96), RATE48)},
        {},
        r"RodeK2Omni_50cm_notes\.wav: malformed Surrey IR name",
    ),
    "unknown microphone": (
        {_MYSTERY: (np.hanning(99), RATE48)},
        {},
        r"'Mystery' is not in the microphone table",
    ),
    "nothing left after selection": (
        {_MYSTERY: (np.hanning(99), RATE48)},
        {"on_error": "skip"},
        r"^no usable IRs under source .*src: 1 \.wav files, none left after parsing and "
        r"selection \(first problem: .*'Mystery' is not in the microphone table",
    ),
    "other source rate": (
        {_RODE + "0Deg.wav": (np.hanning(99), 44100)},
        {},
        r"RodeK2Omni_50cm_0Deg\.wav has sample rate 44100 Hz; expected 48000 Hz",
    ),
    "stereo file": (
        {_RODE + "5Deg.wav": (np.zeros((960, 2)), RATE48)},
        {},
        r"RodeK2Omni_50cm_5Deg\.wav has 2 channels; expected mono",
    ),
    "every file skipped": (
        {_RODE + "5Deg.wav": (np.zeros((960, 2)), RATE48)},
        {"on_error": "skip"},
        r"^no usable IRs under source .*src: all 1 files were skipped \(first: .*2 channels",
    ),
    "missing microphone table": (
        _GOOD_SURREY,
        {"microphones": "nope.csv"},
        r"nope\.csv: cannot read the microphone table",
    ),
    # The eight parameter checks, named by their keyword arguments.
    "length": (_GOOD_SURREY, {"length": 0}, r"^length must be > 0, got 0$"),
    "pre_roll": (
        _GOOD_SURREY,
        {"length": 16, "pre_roll": 16},
        r"^pre_roll must be in \[0, length\), got 16$",
    ),
    "kaiser_beta": (_GOOD_SURREY, {"kaiser_beta": -1.0}, r"^kaiser_beta must be >= 0, got -1\.0$"),
    "onset_threshold_db": (
        _GOOD_SURREY,
        {"onset_threshold_db": 3.0},
        r"^onset_threshold_db must be <= 0, got 3\.0$",
    ),
    "onset_noise_factor": (
        _GOOD_SURREY,
        {"onset_noise_factor": -0.5},
        r"^onset_noise_factor must be >= 0, got -0\.5$",
    ),
    "onset_lookback": (
        _GOOD_SURREY,
        {"onset_lookback": -1},
        r"^onset_lookback must be >= 0, got -1$",
    ),
    "shards": (_GOOD_SURREY, {"shards": 0}, r"^shards must be at least 1, got 0$"),
    "sample_rate": (_GOOD_SURREY, {"sample_rate": 0}, r"^sample_rate must be > 0 Hz, got 0$"),
    "onset mode": (
        _GOOD_SURREY,
        {"onset": "late"},
        r"^onset 'late' is not valid; expected one of group, file$",
    ),
    "window mode": (
        _GOOD_SURREY,
        {"window": "box"},
        r"^window 'box' is not valid; expected one of half, full$",
    ),
}
_SURREY_OPTIONS = {f.name for f in dataclasses.fields(SurreyProcessing)}


def test_parameter_errors_name_kwargs_in_the_library_and_flags_on_the_command_line():
    from tfrecords_builder.ir_set import ParameterError

    err = ParameterError("{pre_roll} must be in [0, {length}), got {0}", 16)
    assert str(err) == "pre_roll must be in [0, length), got 16"
    assert err.flags() == "--pre-roll must be in [0, --length), got 16"
    odd = ParameterError("{source} {0} is not a folder", "/tmp/{x}")  # values stay verbatim
    assert (str(odd), odd.flags()) == (
        "source /tmp/{x} is not a folder",
        "--source /tmp/{x} is not a folder",
    )
    assert isinstance(err, UserError)


@pytest.mark.parametrize("case", sorted(MULTI_DIRS_BAD_INPUTS))
def test_multi_dirs_bad_input_one_clear_error(case, tmp_path):
    files, kwargs, message = MULTI_DIRS_BAD_INPUTS[case]
    src = tmp_path / "src"
    os.makedirs(src)
    _files(files)(src)
    options = {k: v for k, v in kwargs.items() if k in _SURREY_OPTIONS}
    kwargs = {k: v for k, v in kwargs.items() if k not in _SURREY_OPTIONS}
    if "microphones" in kwargs:
        kwargs["microphones"] = str(tmp_path / kwargs["microphones"])
    with pytest.raises(UserError, match=message):
        processing = SurreyProcessing(**options)
        md.build(str(src), str(tmp_path / "out"), processing=processing, workers=0, **kwargs)
    assert set(os.listdir(tmp_path)) == {"src"}  # no output, no temporary folder, no lock


def test_multi_dirs_skip_reports_each_bad_file(surrey_source, tmp_path):
    src = tmp_path / "src"
    _copy_tree(surrey_source, src)
    bad = {
        "Normalised_IRs/" + _MYSTERY.replace("/", "/24bit/"): (np.zeros(960), RATE48),
        _RODE + "0Deg.wav": (np.zeros(960), 44100),
        _RODE + "notes.wav": (np.zeros(96), RATE48),
        _RODE + "5Deg.wav": (np.zeros((960, 2)), RATE48),
    }
    _files(bad)(src)
    out = tmp_path / "skip"
    md.build(str(src), str(out), on_error="skip", workers=0)
    info, records = _read_records(out)
    assert len(records) == 9
    reasons = {s["item"]: s["reason"] for s in info["skipped"]}
    assert set(reasons) == set(bad)
    assert (
        "'Mystery' is not in the microphone table"
        in reasons["Normalised_IRs/Mystery_50cm/24bit/Mystery_50cm_0Deg.wav"]
    )
    assert "has sample rate 44100 Hz; expected 48000 Hz" in reasons[_RODE + "0Deg.wav"]
    assert "has 2 channels; expected mono" in reasons[_RODE + "5Deg.wav"]


def test_multi_dirs_user_table_and_any_source_rate(tmp_path):
    # A user table that knows the microphone; a 44.1 kHz file passes with source_rate=0.
    only = tmp_path / "only"
    _write(str(only / _MYSTERY), np.hanning(99), RATE48)
    _write(str(only / "Mystery_50cm/Mystery_50cm_5Deg.wav"), np.hanning(99), 44100)
    table = tmp_path / "mics.csv"
    table.write_text(
        "config,microphone,pattern,transducer,diaphragm_size,diaphragm_count,"
        "address\nMystery,MysteryMic,omni,dynamic,,,end\n"
    )
    processing = SurreyProcessing(source_rate=0)
    md.build(
        str(only), str(tmp_path / "o3"), microphones=str(table), processing=processing, workers=0
    )
    info, records = _read_records(tmp_path / "o3")
    assert [(r["microphone"], r["angle_deg"], r["source_sample_rate"]) for r in records] == [
        ("MysteryMic", 0, 48000),
        ("MysteryMic", 5, 44100),
    ]
    assert records[0]["diaphragm_size"] == "" and records[0]["diaphragm_count"] == -1


def test_multi_dirs_cli(surrey_source, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "multi-dirs",
        "--source",
        str(surrey_source),
        "--out",
        str(out),
        "--workers",
        "0",
        "--pre-roll",
        "8",
        "--length",
        "256",
        "--onset-threshold-db",
        "-30",
    ]
    assert run_cli(builder_main, argv) == 0
    info, records = _read_records(out)
    assert info["processing"]["pre_roll"] == 8 and {r["num_samples"] for r in records} == {256}
    assert info["processing"]["onset"]["threshold_db"] == -30.0
    argv = [
        "multi-dirs",
        "--source",
        str(surrey_source),
        "--out",
        str(out),
        "--microphones",
        str(tmp_path / "nope.csv"),
    ]
    assert run_cli(builder_main, argv) == 2
    assert "cannot read the microphone table" in capsys.readouterr().err
    # The command line names the flags where the library names keyword arguments.
    argv = ["multi-dirs", "--source", str(surrey_source), "--out", str(out)]
    assert run_cli(builder_main, [*argv, "--length", "16", "--pre-roll", "16"]) == 2
    assert capsys.readouterr().err == "error: --pre-roll must be in [0, --length), got 16\n"
    assert run_cli(builder_main, [*argv, "--shards", "0"]) == 2
    assert capsys.readouterr().err == "error: --shards must be at least 1, got 0\n"
    assert len(_read_records(out)[1]) == 9  # the failed run left the earlier output alone


# === The project's synthetic corpus ===


@pytest.fixture(scope="module")
def synthetic_corpus(tmp_path_factory):
    from tfrecords_builder.synthetic import generate_corpus

    out = tmp_path_factory.mktemp("synthetic") / "raw"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tiny corpus must not look like a broken real set
        manifest = generate_corpus(str(out), size="tiny", seed=0)
    return out, manifest


@pytest.mark.slow
def test_builders_on_the_synthetic_corpus(synthetic_corpus, tmp_path):
    raw, manifest = synthetic_corpus
    micirp.build(str(raw / "micirp"), str(tmp_path / "micirp"))
    info, records = _read_records(tmp_path / "micirp")
    files = {f["name"]: f for f in manifest["micirp"]["files"]}
    assert sorted(r["name"] for r in records) == sorted(files)
    for rec in records:
        f = files[rec["name"]]
        assert rec["source_sample_rate"] == f["sample_rate"]
        assert rec["num_samples"] == round(f["num_samples"] * SR / f["sample_rate"])

    md.build(str(raw / "Microphone_Impulse_Responses"), str(tmp_path / "multi"), workers=0)
    info, records = _read_records(tmp_path / "multi")
    surrey = manifest["surrey"]
    assert len(records) == surrey["num_measurements"]
    truth = {(f["config"], f["distance_cm"], f["angle_deg"]): f for f in surrey["files"]}
    for rec in records:
        name = parse_surrey_path(rec["name"])
        f = truth[(name.config, name.distance_cm, name.angle_deg)]
        assert (rec["microphone"], rec["pattern"]) == (f["microphone"], f["pattern"])
        assert rec["num_samples"] == 1024
    for key, group in info["group_onsets"].items():
        config, distance = key.rsplit("_", 1)
        f = next(
            f
            for f in surrey["files"]
            if f["config"] == config and f"{f['distance_cm']}cm" == distance
        )
        assert abs(group["onset"] - f["onset_sample"] * SR / RATE48) <= 2, key


# === Free space ===

# builder -> (its source and finished-build fixtures, CLI arguments besides --source/--out)
FREE_SPACE = {
    "micirp": ("micirp_source", "micirp_built", []),
    "multi-dirs": ("surrey_source", "surrey_built", ["--workers", "0"]),
}


@pytest.mark.parametrize("builder", sorted(FREE_SPACE))
def test_free_space_is_checked_with_the_bytes_it_writes(
    builder, request, tmp_path, monkeypatch, capsys
):
    """The bytes planned from the sources are those of the shards built before; one byte less
    free than that (plus the metadata margin) is one message, exit 2, nothing written."""
    import shutil

    from asc_core import writer

    source_fixture, built_fixture, extra = FREE_SPACE[builder]
    source = request.getfixturevalue(source_fixture)
    source = source[0] if isinstance(source, tuple) else source
    built = request.getfixturevalue(built_fixture)
    capsys.readouterr()  # the fixture's own build (when this test runs first) shows progress
    info = json.loads((built / "info.json").read_text())
    needed = sum(os.path.getsize(built / name) for name in info["shards"]) + writer.METADATA_BYTES
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed - 1))
    out = tmp_path / "new" / "dirs"
    code = run_cli(builder_main, [builder, "--source", str(source), "--out", str(out), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: not enough free space for --out {out}: the {builder} build writes "
        f"{needed / 1e9:.2f} GB ({needed} bytes), but only {(needed - 1) / 1e9:.2f} GB "
        f"({needed - 1} bytes) is free in {tmp_path}; expected free space for the whole build "
        "(nothing was written)\n"
    )
    assert os.listdir(tmp_path) == []
