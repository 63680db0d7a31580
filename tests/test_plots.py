"""Report figures and DIR response analysis: band arrays and valid PNG files (not pixels)."""

import os
import struct

import numpy as np
import pytest

from asc_core.errors import UserError
from keras_asc.cli import plot_dirs
from keras_asc.evaluation import dir_plots
from keras_asc.evaluation import metrics
from keras_asc.evaluation import plots

SR = 32000


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def write_dir_set(folder, irs_and_meta):
    """A DIR TFRecord folder (one shard) with the schema's encoder."""
    import tensorflow as tf

    from asc_core.example import encode_dir_example

    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, "dirs.tfrecord-00000-of-00001")) as writer:
        for ir, meta in irs_and_meta:
            writer.write(encode_dir_example(ir, source_sample_rate=48000, **meta))
    return folder


# === Responses and bands ===


def test_delta_response_is_flat_zero_db():
    irs = [np.r_[1.0, np.zeros(99)], np.r_[np.zeros(5), 1.0]]
    freqs, db = dir_plots.magnitude_responses(irs, SR, num_points=64)
    assert freqs.shape == (64,) and db.shape == (2, 64)
    assert freqs[0] == pytest.approx(20.0) and freqs[-1] == pytest.approx(16000.0)
    np.testing.assert_allclose(db, 0.0, atol=1e-9)
    # Without the 1 kHz reference the gain stays: 0.5 → -6.02 dB.
    _, db = dir_plots.magnitude_responses([0.5 * irs[0]], SR, num_points=8, reference_hz=None)
    np.testing.assert_allclose(db, 20 * np.log10(0.5), atol=1e-9)


def test_reference_modes_keep_or_remove_level_differences():
    irs = [np.r_[1.0, np.zeros(9)], np.r_[0.5, np.zeros(9)]]
    freqs, db = dir_plots.magnitude_responses(irs, SR, num_points=16, reference_hz=None)
    np.testing.assert_allclose(db[1] - db[0], 20 * np.log10(0.5), atol=1e-9)
    first = dir_plots.apply_reference(freqs, db, "first")
    np.testing.assert_allclose(first[0], 0.0, atol=1e-9)
    np.testing.assert_allclose(first[1], 20 * np.log10(0.5), atol=1e-9)
    np.testing.assert_allclose(dir_plots.apply_reference(freqs, db, "each"), 0.0, atol=1e-9)
    np.testing.assert_array_equal(dir_plots.apply_reference(freqs, db, "none"), db)
    with pytest.raises(ValueError, match="reference must be one of"):
        dir_plots.apply_reference(freqs, db, "max")


def test_two_tap_response_matches_analytic_comb():
    # h = [1, 1]: |H(f)| = 2 |cos(pi f / sr)|.
    freqs, db = dir_plots.magnitude_responses(
        [np.array([1.0, 1.0])], SR, num_points=50, f_max=12000, smoothing_octaves=0
    )
    expected = 20 * np.log10(2 * np.cos(np.pi * freqs / SR))
    expected -= 20 * np.log10(2 * np.cos(np.pi * 1000.0 / SR))
    np.testing.assert_allclose(db[0], expected, atol=2e-3)


def test_bands_are_quantiles_of_responses():
    db = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0], [4.0, 14.0]])
    bands = dir_plots.response_bands(db)
    np.testing.assert_allclose(bands["min"], [0, 10])
    np.testing.assert_allclose(bands["max"], [4, 14])
    np.testing.assert_allclose(bands["q10"], [0.4, 10.4])
    np.testing.assert_allclose(bands["q90"], [3.6, 13.6])
    np.testing.assert_allclose(bands["q25"], [1, 11])
    np.testing.assert_allclose(bands["q75"], [3, 13])
    np.testing.assert_allclose(bands["mean"], [2, 12])
    assert bands["count"] == 5


def test_single_response_bands_collapse_onto_it():
    db = np.array([[1.0, -2.0, 3.0]])
    bands = dir_plots.response_bands(db)
    for key in ("min", "max", "q10", "q90", "q25", "q75", "mean"):
        np.testing.assert_array_equal(bands[key], db[0])


def test_figure1_and_figure2_pngs(tmp_path):
    rng = np.random.default_rng(0)
    irs = [np.r_[1.0, 0.3 * rng.normal(size=200)] for _ in range(6)]
    freqs, db = dir_plots.magnitude_responses(irs, SR, num_points=128)
    path = dir_plots.plot_response_bands(freqs, dir_plots.response_bands(db), tmp_path / "f1.png")
    assert png_size(path)[0] > 100
    path = dir_plots.plot_angle_responses(freqs, db, [0, 30, 60, 90, 150, 180], tmp_path / "f2.png")
    assert png_size(path)[0] > 100
    assert sorted(os.listdir(tmp_path)) == ["f1.png", "f2.png"]  # no temp files left


# === Report figures ===


def small_report():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 120)
    probs = metrics.softmax(rng.normal(size=(120, 10)) + 3 * np.eye(10)[labels])
    devices = np.tile(np.arange(6), 20)  # s4-s6 absent
    return metrics.scene_metrics(labels, probs, devices)


def test_confusion_and_device_bars(tmp_path):
    report = small_report()
    path = plots.plot_confusion_matrix(
        report["confusion_matrix"], report["class_names"], tmp_path / "cm.png", title="t"
    )
    assert png_size(path)[1] > 100
    path = plots.plot_device_bars(report, tmp_path / "bars.png")
    assert png_size(path)[0] > 100
    names, values, families = plots.device_bar_values(report, "accuracy")
    assert names == ["A", "B", "C", "S1", "S2", "S3", "S4", "S5", "S6"]
    assert np.isnan(values[6:]).all() and not np.isnan(values[:6]).any()
    assert values[0] == pytest.approx(report["devices"]["a"]["accuracy"])
    assert families[3] == "simulated"


def test_normalize_rows_keeps_empty_rows_zero():
    rates = plots.normalize_rows([[1, 3], [0, 0]])
    np.testing.assert_allclose(rates, [[0.25, 0.75], [0.0, 0.0]])


# === Series selection and the plot_dirs CLI ===


def multi_meta(mic, pattern, distance, angle):
    return {
        "name": f"{mic}{pattern}_{distance}cm/{mic}_{distance}cm_{angle}Deg.wav",
        "set": "multi",
        "microphone": mic,
        "pattern": pattern,
        "distance_cm": distance,
        "angle_deg": angle,
    }


@pytest.fixture(scope="module")
def dir_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("dirs")
    rng = np.random.default_rng(2)
    entries = []
    for pattern in ("cardioid", "omni"):
        for distance in (50, 125):
            for angle in (180, 0, 90, 270):
                ir = np.r_[1.0, 0.2 * rng.normal(size=64)].astype(np.float32)
                entries.append((ir, multi_meta("RodeNT2A", pattern, distance, angle)))
    multi = write_dir_set(str(root / "multi"), entries)
    one = write_dir_set(
        str(root / "one"),
        [(np.r_[1.0, 0.5, 0.25].astype(np.float32), {"name": "m.wav", "set": "micirp"})],
    )
    return multi, one


def test_select_angle_series(dir_sets):
    _, records, rate = dir_plots.load_dir_records([dir_sets[0]])
    assert rate == SR and len(records) == 16
    chosen = dir_plots.select_angle_series(records, "rodent2a", 50, "cardioid")
    assert [records[i]["angle_deg"] for i in chosen] == [0, 90, 180]
    assert {records[i]["distance_cm"] for i in chosen} == {50}
    with pytest.raises(UserError, match=r"several patterns \(cardioid, omni\); choose one"):
        dir_plots.select_angle_series(records, "RodeNT2A", 50)
    with pytest.raises(UserError, match=r"several distances \(50 cm, 125 cm\)"):
        dir_plots.select_angle_series(records, "RodeNT2A", pattern="omni")
    with pytest.raises(UserError, match="--distance 75: RodeNT2A was measured at 50 cm, 125 cm"):
        dir_plots.select_angle_series(records, "RodeNT2A", 75, "omni")
    with pytest.raises(UserError, match="--mic U87: no IR of that microphone; the sets hold Rode"):
        dir_plots.select_angle_series(records, "U87", 50, "omni")


def test_plot_dirs_cli(dir_sets, tmp_path, capsys):
    from asc_core.errors import run_cli

    multi, one = dir_sets
    out = tmp_path / "fig1.png"
    assert run_cli(plot_dirs.main, ["--dirs", multi, one, "--out", str(out)]) == 0
    assert png_size(out)[0] > 100
    out2 = tmp_path / "fig2.png"
    argv = [
        "--dirs",
        multi,
        "--out",
        str(out2),
        "--mic",
        "RodeNT2A",
        "--pattern",
        "cardioid",
        "--distance",
        "50",
        "--smoothing",
        "1/3",
    ]
    assert run_cli(plot_dirs.main, argv) == 0
    assert png_size(out2)[0] > 100
    # A set with a single IR still plots, and says why the bands are one line.
    out3 = tmp_path / "one.png"
    assert run_cli(plot_dirs.main, ["--dirs", one, "--out", str(out3)]) == 0
    assert "m.wav is the only IR; the bands collapse onto it" in capsys.readouterr().out
    assert png_size(out3)[0] > 100
    # MicIRP-like IRs have no angles: a clear error, exit 2, nothing written.
    out4 = tmp_path / "bad.png"
    assert run_cli(plot_dirs.main, ["--dirs", one, "--out", str(out4), "--mic", "m"]) == 2
    assert "carry no angle" in capsys.readouterr().err
    assert not out4.exists()
    assert run_cli(plot_dirs.main, ["--dirs", str(tmp_path / "nope"), "--out", str(out4)]) == 2
    assert "DIR folder not found" in capsys.readouterr().err
