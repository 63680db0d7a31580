"""scripts/predict.py: windows, resampling, downmix, batching, table/JSON output and bad files."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from asc_core.errors import run_cli
from asc_core.vocab import SCENES
from keras_asc.cli import predict as predict_cli
from keras_asc.inference import predict

RATE = 32000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny scene classifier saved as a run directory and five audio files."""
    from keras_asc.models.scene_classifier import SceneClassifier

    root = tmp_path_factory.mktemp("predict")
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    # Larger head weights give distinct class probabilities (random init is near uniform).
    kernel = model.head_dense.kernel
    kernel.assign(kernel.numpy() * 40.0)
    run_dir = root / "run"
    run_dir.mkdir()
    model.save(str(run_dir / "model.keras"))

    rng = np.random.default_rng(0)
    t16 = np.arange(3 * 16000) / 16000
    files = {
        # name: (data [frames(, channels)], rate)
        "a16k.wav": (
            0.3 * np.sin(2 * np.pi * 500 * t16) + 0.05 * rng.standard_normal(t16.size),
            16000,
        ),
        "b44k.wav": (0.1 * rng.standard_normal(int(2.5 * 44100)), 44100),
        "c48k_stereo.flac": (
            np.stack([0.2 * rng.standard_normal(96100), 0.05 * rng.standard_normal(96100)], 1),
            48000,
        ),
        "d_short.wav": (0.2 * rng.standard_normal(int(0.5 * 44100)), 44100),
        "e_long.wav": (0.1 * rng.standard_normal(25 * RATE), RATE),
    }
    paths = {}
    for name, (data, rate) in files.items():
        path = root / name
        sf.write(str(path), data.astype(np.float32), rate, subtype="PCM_24")
        paths[name] = str(path)
    return {"model": model, "run_dir": str(run_dir), "paths": paths, "root": root}


def manual_probabilities(model, path, hop_seconds=1.0):
    """Independent reference: soundfile + soxr + explicit windows + softmax mean."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ").astype(np.float32)
    if mono.size < RATE:
        windows = [np.concatenate([mono, np.zeros(RATE - mono.size, np.float32)])]
    else:
        hop = int(round(hop_seconds * RATE))
        windows = [mono[s : s + RATE] for s in range(0, mono.size - RATE + 1, hop)]
    logits = np.asarray(model(np.stack(windows), training=False)["logits"], np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return probs.mean(0), len(windows)


def run_json(capsys, argv):
    code = run_cli(predict_cli.main, argv + ["--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err


def test_json_any_rate_channels_length_equals_manual_window_average(setup, capsys):
    paths = setup["paths"]
    code, out, err = run_json(capsys, ["--model", setup["run_dir"], *paths.values()])
    assert code == 0
    records = {os.path.basename(r["file"]): r for r in out["predictions"]}
    assert list(records) == list(paths)
    expected = {
        # name: (windows, source rate, channels, padded)
        "a16k.wav": (3, 16000, 1, False),
        "b44k.wav": (2, 44100, 1, False),  # the 0.5-s tail is dropped
        "c48k_stereo.flac": (2, 48000, 2, False),
        "d_short.wav": (1, 44100, 1, True),
        "e_long.wav": (25, RATE, 1, False),
    }
    for name, (windows, rate, channels, padded) in expected.items():
        record = records[name]
        assert (record["windows"], record["source_rate"], record["channels"], record["padded"]) == (
            windows,
            rate,
            channels,
            padded,
        ), name
        assert record["downmixed"] == (channels == 2)
        probs = np.array([record["probabilities"][c] for c in SCENES])
        reference, count = manual_probabilities(setup["model"], paths[name])
        assert count == windows
        np.testing.assert_allclose(probs, reference, atol=2e-5, err_msg=name)
        assert record["scene"] == SCENES[int(np.argmax(reference))]
        assert record["probability"] == pytest.approx(probs.max())
    assert out["window_seconds"] == 1.0 and out["hop_seconds"] == 1.0
    assert (
        f"note: {paths['c48k_stereo.flac']}: 2 channels averaged to mono; resampled "
        "48000 -> 32000 Hz" in err
    )
    assert f"note: {paths['d_short.wav']}: resampled 44100 -> 32000 Hz; 0.500 s zero-padded" in err


def test_window_hop_and_batching_across_files(setup, capsys):
    paths = [setup["paths"]["b44k.wav"], setup["paths"]["a16k.wav"]]
    code, out, _ = run_json(
        capsys, ["--model", setup["run_dir"], *paths, "--window-hop", "0.5", "--batch-size", "3"]
    )
    assert code == 0
    # 2.5 s -> starts 0, 0.5, 1.0, 1.5; 3 s -> starts 0 .. 2.0 (5 windows): batches of 3 span
    # both files.
    assert [r["windows"] for r in out["predictions"]] == [4, 5]
    for record, path in zip(out["predictions"], paths):
        reference, _ = manual_probabilities(setup["model"], path, hop_seconds=0.5)
        probs = np.array([record["probabilities"][c] for c in SCENES])
        np.testing.assert_allclose(probs, reference, atol=2e-5)


def test_window_rules():
    assert predict.window_starts(100, 32000, 32000).tolist() == [0]
    assert predict.window_starts(32000, 32000, 32000).tolist() == [0]
    assert predict.window_starts(95999, 32000, 32000).tolist() == [0, 32000]
    assert predict.window_starts(96000, 32000, 16000).tolist() == [0, 16000, 32000, 48000, 64000]
    audio = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(
        predict.clip_windows(audio, 4, 3), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    )
    np.testing.assert_array_equal(predict.clip_windows(audio[:2], 4, 3), [[0, 1, 0, 0]])


def test_table_output(setup, capsys):
    paths = [setup["paths"]["a16k.wav"], setup["paths"]["d_short.wav"]]
    code = run_cli(
        predict_cli.main, ["--model", os.path.join(setup["run_dir"], "model.keras"), *paths]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[0].split() == ["file", "scene", "prob", *SCENES]
    assert len(lines) == 3
    for line, path in zip(lines[1:], paths):
        cells = line.split()
        reference, _ = manual_probabilities(setup["model"], path)
        assert cells[0] == path
        assert cells[1] == SCENES[int(np.argmax(reference))]
        np.testing.assert_allclose([float(c) for c in cells[3:]], reference, atol=1e-4)
        assert float(cells[2]) == pytest.approx(max(float(c) for c in cells[3:]))


def test_unreadable_and_missing_files_do_not_stop_the_others(setup, capsys):
    bad = setup["root"] / "garbage.wav"
    bad.write_bytes(b"RIFF but not audio")
    missing = setup["root"] / "missing.wav"
    good = [setup["paths"]["a16k.wav"], setup["paths"]["e_long.wav"]]
    code, out, err = run_json(
        capsys, ["--model", setup["run_dir"], good[0], str(bad), str(missing), good[1]]
    )
    assert code == 1
    assert [r["file"] for r in out["predictions"]] == good
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: audio file {bad} cannot be decoded (Error opening '{bad}': Format not "
        "recognised.); expected a readable audio file such as a PCM WAV",
        f"error: audio file {missing} does not exist (or is not a file)",
    ]
    assert "2 of 4 files failed" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--window-hop", "0"], "--window-hop 0.0: expected seconds in (0, 1]"),
        (["--window-hop", "1.5"], "--window-hop 1.5: expected seconds in (0, 1]"),
        (["--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    ],
)
def test_bad_options(setup, capsys, args, message):
    code = run_cli(
        predict_cli.main, ["--model", setup["run_dir"], setup["paths"]["a16k.wav"], *args]
    )
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_bad_model_paths(tmp_path, capsys):
    empty = tmp_path / "run"
    empty.mkdir()
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(b"not a zip")
    assert run_cli(predict_cli.main, ["--model", str(empty), "x.wav"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --model {empty}: folder has no model.keras; expected a .keras file or a run "
        "directory written by scripts/train.py"
    )
    assert run_cli(predict_cli.main, ["--model", str(tmp_path / "nope.keras"), "x.wav"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --model {tmp_path / 'nope.keras'}: not found; expected a .keras file or a run "
        "directory"
    )
    assert run_cli(predict_cli.main, ["--model", str(damaged), "x.wav"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --model {damaged}: cannot load the model")
