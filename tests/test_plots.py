"""Report figures and DIR response analysis: band arrays, and what each figure draws.

The figures are checked through their matplotlib objects (recorded by the ``drawn_figures``
fixture as they are saved: axes, lines, bars, texts, titles) and through their pixels (two
different inputs give different images).
"""

import os
import struct

import numpy as np
import pytest
from matplotlib.colors import to_rgba

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


def pixels(path):
    """RGBA pixels of a PNG (after checking that it is one)."""
    import matplotlib.image

    png_size(path)
    return matplotlib.image.imread(path)


def assert_images_differ(path_a, path_b):
    """Same image size (same layout), different pixels: the drawn content differs."""
    a, b = pixels(path_a), pixels(path_b)
    assert a.shape == b.shape and (a != b).any()


def texts(ax):
    return [t.get_text() for t in ax.texts]


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


def test_figure1_draws_the_bands_and_the_mean(tmp_path, drawn_figures):
    rng = np.random.default_rng(0)
    irs = [np.r_[1.0, 0.3 * rng.normal(size=200)] for _ in range(6)]
    freqs, db = dir_plots.magnitude_responses(irs, SR, num_points=128)
    bands = dir_plots.response_bands(db)
    path = dir_plots.plot_response_bands(freqs, bands, tmp_path / "f1.png")
    (figure,) = drawn_figures
    (ax,) = figure.axes
    assert ax.get_title() == "6 impulse responses" and ax.get_xscale() == "log"
    (mean,) = ax.get_lines()
    np.testing.assert_allclose(mean.get_xdata(), freqs)
    np.testing.assert_allclose(mean.get_ydata(), bands["mean"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["100 %", "80 %", "50 %", "mean"]
    # The three bands, outermost first: each polygon spans its quantiles.
    assert len(ax.collections) == 3
    for band, (low, high) in zip(ax.collections, [("min", "max"), ("q10", "q90"), ("q25", "q75")]):
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx(bands[low].min()) and y.max() == pytest.approx(
            bands[high].max()
        )
    # Other responses, another image; the same ones, the same image.
    again = dir_plots.plot_response_bands(freqs, bands, tmp_path / "again.png")
    # Response 5 replaced by a copy of response 0: same extremes (same axes), other quantiles.
    other = dir_plots.response_bands(db[[0, 0, 1, 2, 3, 4]])
    other = dir_plots.plot_response_bands(freqs, other, tmp_path / "o.png")
    np.testing.assert_array_equal(pixels(again), pixels(path))
    assert_images_differ(other, path)
    assert sorted(os.listdir(tmp_path)) == ["again.png", "f1.png", "o.png"]  # no temp files left


def test_figure2_draws_one_curve_per_angle_in_angle_order(tmp_path, drawn_figures):
    rng = np.random.default_rng(0)
    irs = [np.r_[1.0, 0.3 * rng.normal(size=200)] for _ in range(6)]
    freqs, db = dir_plots.magnitude_responses(irs, SR, num_points=128)
    angles = [90, 0, 180, 30, 150, 60]
    path = dir_plots.plot_angle_responses(freqs, db, angles, tmp_path / "f2.png", title="mic")
    (figure,) = drawn_figures
    ax, colorbar = figure.axes
    assert ax.get_title() == "mic" and colorbar.get_ylabel() == "angle [°]"
    lines = ax.get_lines()
    order = np.argsort(angles)  # drawn from 0° up
    assert len(lines) == 6
    for line, i in zip(lines, order):
        np.testing.assert_allclose(line.get_ydata(), db[i])
    colours = [tuple(line.get_color()) for line in lines]
    assert len(set(colours)) == 6  # one colour per angle
    flipped = tmp_path / "flip.png"
    dir_plots.plot_angle_responses(freqs, db, angles[::-1], flipped, title="mic")
    assert_images_differ(flipped, path)


# === Report figures ===


def small_report():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 120)
    probs = metrics.softmax(rng.normal(size=(120, 10)) + 3 * np.eye(10)[labels])
    devices = np.tile(np.arange(6), 20)  # s4-s6 absent
    return metrics.scene_metrics(labels, probs, devices)


def test_confusion_matrix_draws_rates_and_counts(tmp_path, drawn_figures):
    report = small_report()
    matrix, names = np.asarray(report["confusion_matrix"]), report["class_names"]
    path = plots.plot_confusion_matrix(matrix, names, tmp_path / "cm.png", title="t")
    (figure,) = drawn_figures
    ax, colorbar = figure.axes
    assert ax.get_title() == "t" and colorbar.get_ylabel() == "fraction of true class"
    np.testing.assert_allclose(ax.images[0].get_array(), plots.normalize_rows(matrix))
    assert texts(ax) == [str(int(v)) for v in matrix.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(names)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(names)
    other = plots.plot_confusion_matrix(matrix.T, names, tmp_path / "cm2.png", title="t")
    assert_images_differ(other, path)


def test_device_bars_draw_every_device_by_family(tmp_path, drawn_figures):
    report = small_report()
    path = plots.plot_device_bars(report, tmp_path / "bars.png", title="run 1")
    (figure,) = drawn_figures
    assert figure.get_suptitle() == "run 1"
    accuracy_ax, loss_ax = figure.axes
    names, values, families = plots.device_bar_values(report, "accuracy")
    assert names == ["A", "B", "C", "S1", "S2", "S3", "S4", "S5", "S6"]
    assert np.isnan(values[6:]).all() and not np.isnan(values[:6]).any()
    assert values[0] == pytest.approx(report["devices"]["a"]["accuracy"])
    assert families[3] == "simulated"
    for ax, metric, scale in ((accuracy_ax, "accuracy", 100.0), (loss_ax, "log_loss", 1.0)):
        _, values, families = plots.device_bar_values(report, metric)
        bars = ax.patches
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        np.testing.assert_allclose([b.get_height() for b in bars], np.nan_to_num(values * scale))
        colours = {f: plots.FAMILY_COLOURS[f] for f in families}
        for bar, family in zip(bars, families):
            assert bar.get_facecolor() == pytest.approx(to_rgba(colours[family]))
        assert texts(ax) == ["n/a"] * 3  # S4-S6 absent
        # One dashed line per family with data (unseen has none here), at the family mean.
        means = sorted(float(y) for c in ax.collections for y in c.get_segments()[0][:, 1][:1])
        expected = sorted(
            report["groups"][f][metric] * scale
            for f in ("real", "simulated")
            if report["groups"][f][metric] is not None
        )
        assert means == pytest.approx(expected)
    # A model that does worse on device A: another image.
    worse = small_report()
    worse["devices"]["a"]["accuracy"] /= 2
    other = plots.plot_device_bars(worse, tmp_path / "worse.png", title="run 1")
    assert_images_differ(other, path)


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


def test_plot_dirs_cli(dir_sets, tmp_path, capsys, drawn_figures):
    from asc_core.errors import run_cli

    multi, one = dir_sets
    out = tmp_path / "fig1.png"
    assert run_cli(plot_dirs.main, ["--dirs", multi, one, "--out", str(out)]) == 0
    png_size(out)
    (ax,) = drawn_figures[-1].axes
    assert ax.get_title() == "micirp, multi: 17 IRs"
    assert ax.get_ylabel() == "magnitude [dB re each IR at 1 kHz]" and len(ax.collections) == 3
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
    png_size(out2)
    ax = drawn_figures[-1].axes[0]
    assert ax.get_title() == "RodeNT2A cardioid at 50 cm, 0–180°"
    assert len(ax.get_lines()) == 3  # 0, 90 and 180°; 270° is past --max-angle
    first = ax.get_lines()[0]  # the 0° curve is the 0 dB reference at 1 kHz
    level = np.interp(np.log(1000.0), np.log(first.get_xdata()), first.get_ydata())
    assert level == pytest.approx(0.0, abs=1e-9)
    # A set with a single IR still plots, and says why the bands are one line.
    out3 = tmp_path / "one.png"
    assert run_cli(plot_dirs.main, ["--dirs", one, "--out", str(out3)]) == 0
    assert "m.wav is the only IR; the bands collapse onto it" in capsys.readouterr().out
    png_size(out3)
    (ax,) = drawn_figures[-1].axes
    assert ax.get_title() == "micirp: 1 IRs"
    for band in ax.collections:  # collapsed: each band's polygon encloses no area
        y = band.get_paths()[0].vertices[:, 1]
        assert np.ptp(y) == pytest.approx(np.ptp(ax.get_lines()[0].get_ydata()))
    # MicIRP-like IRs have no angles: a clear error, exit 2, nothing written.
    out4 = tmp_path / "bad.png"
    assert run_cli(plot_dirs.main, ["--dirs", one, "--out", str(out4), "--mic", "m"]) == 2
    assert "carry no angle" in capsys.readouterr().err
    assert not out4.exists()
    assert run_cli(plot_dirs.main, ["--dirs", str(tmp_path / "nope"), "--out", str(out4)]) == 2
    assert "DIR folder not found" in capsys.readouterr().err
