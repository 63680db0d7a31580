"""evaluate / probe_devices / grid_report on run directories built in the test.

The run directories follow docs/design.md: a tiny ``SceneClassifier`` (``passt_tiny``) saved as
``model.keras`` and a ``config.yaml`` whose ``data.path`` names a TFRecord folder written with the
builders' record encoder (``keras_asc.data.schema.encode_audio_example``).
"""

import csv
import json
import os
import re
import shutil

import _fs
import numpy as np
import pytest
import yaml

from asc_core.errors import run_cli
from asc_core.vocab import SCENES
from keras_asc.cli import evaluate as evaluate_cli
from keras_asc.cli import grid_report
from keras_asc.cli import probe as probe_cli
from keras_asc.evaluation import metrics

CLIP = 32000
# Six training devices x 3 recordings x 2 clips, plus 2 clips of s4; s5 and s6 absent.
DEVICES_IN_SPLIT = ("a", "b", "c", "s1", "s2", "s3")


def clip_records(rng):
    from asc_core.example import encode_audio_example

    records, waveforms, labels = [], [], []
    for d, device in enumerate(DEVICES_IN_SPLIT + ("s4",)):
        recordings = 3 if device != "s4" else 1
        for r in range(recordings):
            scene = SCENES[(d + r) % len(SCENES)]
            for index in range(2):
                audio = (0.1 * rng.normal(size=CLIP)).astype(np.float32)
                name = f"audio/{scene}-lyon-{d}-{100 + r}-{index}-{device}.wav"
                records.append(
                    encode_audio_example(
                        audio,
                        filename=name,
                        scene=scene,
                        device=device,
                        city="lyon",
                        location=f"lyon-{d}",
                        segment_id=100 + r,
                        index=index,
                    )
                )
                waveforms.append(audio)
                labels.append((SCENES.index(scene), d))
    return records, np.stack(waveforms), np.array(labels)


def write_shard(folder, split, records):
    import tensorflow as tf

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{split}-1s.tfrecord-00000-of-00001")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def make_run(path, data, seed, loss=None, wandb=None):
    from keras_asc.models.scene_classifier import SceneClassifier

    os.makedirs(path)
    model = SceneClassifier.from_preset("passt_tiny", seed=seed)
    model.save(os.path.join(path, "model.keras"))
    config = {"seed": seed, "data": {"path": str(data)}, "loss": loss or {}, "wandb": wandb}
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    return model


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from asc_core.example import encode_audio_example

    root = tmp_path_factory.mktemp("evalcli")
    rng = np.random.default_rng(0)
    records, waveforms, labels = clip_records(rng)
    data = root / "tau"
    write_shard(data, "evaluate", records)
    unlabelled = [
        encode_audio_example(
            (0.1 * rng.normal(size=CLIP)).astype(np.float32), filename=f"audio/{i}.wav"
        )
        for i in range(3)
    ]
    write_shard(data, "eval2023", unlabelled)
    # A training split for the paper's probe protocol (named "fit": other tests need a folder
    # without a "train" split).
    write_shard(data, "fit", clip_records(np.random.default_rng(1))[0])
    # `train.py --seeds 2` layout: RUN_DIR/seed-0, RUN_DIR/seed-1 (the grid test gives the
    # two seeds different λ_ICL).
    run_a = root / "icl" / "seed-0"
    model = make_run(run_a, data, 0, loss={"icl_alpha": 0.2, "icl_weight": 10.0})
    logits = model.predict_on_batch(waveforms)["logits"]
    run_b = root / "icl" / "seed-1"
    make_run(
        run_b,
        data,
        1,
        loss={"icl_alpha": 0.2, "icl_weight": 0.5},
        wandb={"mode": "offline", "project": "test"},
    )
    return {
        "root": root,
        "data": data,
        "run_a": run_a,
        "run_b": run_b,
        "labels": labels,
        "logits": np.asarray(logits),
    }


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def png_ok(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluate_single_run_matches_direct_prediction(workspace, capsys, drawn_figures):
    run = workspace["run_a"]
    assert run_cli(evaluate_cli.main, ["--run", str(run), "--no-wandb"]) == 0
    out = capsys.readouterr().out
    assert "| Method | A | B | C | Avg real |" in out
    assert "| icl |" in out  # method name = the seeds' parent folder
    folder = run / "eval" / "evaluate"
    with open(folder / "report.json") as f:
        text = f.read()
    assert "NaN" not in text
    report = json.loads(text)
    assert report["num_clips"] == report["num_labelled"] == 38
    # Parity: the same metrics as the model's own logits on the same clips.
    labels, logits = workspace["labels"], workspace["logits"]
    expected = metrics.scene_metrics(labels[:, 0], metrics.softmax(logits), labels[:, 1])
    got = report["metrics"]
    assert got["overall"]["log_loss"] == pytest.approx(expected["overall"]["log_loss"], rel=1e-4)
    assert got["overall"]["accuracy"] == pytest.approx(expected["overall"]["accuracy"])
    assert got["devices"]["s4"]["count"] == 2
    assert got["devices"]["s5"]["accuracy"] is None
    assert got["groups"]["unseen"]["devices"] == ["s4"]
    rows = read_tsv(folder / "predictions.tsv")
    assert rows[0] == ["filename", "scene_label", *SCENES]
    assert len(rows) == 39 and rows[1][0] == "audio/airport-lyon-0-100-0-a.wav"
    probs = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    np.testing.assert_allclose(probs, metrics.softmax(logits), atol=1e-6)
    assert png_ok(folder / "confusion.png") and png_ok(folder / "devices.png")
    # The figures show this run's numbers: confusion counts, per-device accuracy bars.
    confusion, devices = drawn_figures
    np.testing.assert_array_equal(
        [int(t.get_text()) for t in confusion.axes[0].texts],
        np.ravel(got["confusion_matrix"]),
    )
    assert devices.get_suptitle() == f"{run.name} — evaluate"
    heights = [bar.get_height() for bar in devices.axes[0].patches]
    assert heights[0] == pytest.approx(100 * got["devices"]["a"]["accuracy"])
    assert heights[7] == 0 and "n/a" in [t.get_text() for t in devices.axes[0].texts]  # S5


@pytest.fixture(scope="module")
def seeds_report(workspace):
    """``evaluate.py --run RUN_DIR --out`` on the two seed runs: (exit code, stdout, JSON)."""
    import contextlib
    import io

    out_json = workspace["root"] / "icl-report.json"
    stdout = io.StringIO()
    # The folder of seed runs expands to its seeds.
    argv = ["--run", str(workspace["root"] / "icl"), "--out", str(out_json), "--no-plots"]
    with contextlib.redirect_stdout(stdout):
        code = run_cli(evaluate_cli.main, argv)
    return code, stdout.getvalue(), out_json


def test_evaluate_two_seeds_best_and_mean_and_wandb(workspace, seeds_report):
    code, out, out_json = seeds_report
    assert code == 0
    assert "| icl (best of 2) |" in out and "| icl (mean ± std, n=2) |" in out
    assert "seed-1: logged to W&B (offline)" in out
    combined = json.loads(out_json.read_text())
    assert combined["method"] == "icl"
    assert [r["run"] for r in combined["runs"]] == ["seed-0", "seed-1"]
    s = combined["summary"]["log_loss"]
    overall = [r["metrics"]["overall"]["log_loss"] for r in combined["runs"]]
    assert s["best"][-1] == pytest.approx(min(overall))
    assert s["mean"][-1] == pytest.approx(np.mean(overall))
    assert s["std"][-1] == pytest.approx(np.std(overall, ddof=1))
    # The seed-1 run enables W&B in offline mode: its files are under RUN_DIR/wandb.
    wandb_dir = workspace["run_b"] / "wandb"
    assert any(name.startswith("offline-run-") for name in os.listdir(wandb_dir))
    assert not (workspace["run_a"] / "wandb").exists()


def test_evaluate_compare_reports_into_one_table(workspace, seeds_report, tmp_path, capsys):
    # Combined reports of two methods (the second built from the first one's seed-0 run).
    first = seeds_report[2]
    data = json.loads(first.read_text())
    second = tmp_path / "passt.json"
    second.write_text(json.dumps({**data, "method": "PaSST", "runs": data["runs"][:1]}))
    capsys.readouterr()
    out_json = tmp_path / "table3.json"
    argv = ["--compare", str(second), str(first), "--out", str(out_json)]
    assert run_cli(evaluate_cli.main, argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    methods = [line.split(" | ")[0][2:] for line in lines if not line.startswith("| Method")]
    assert methods == ["PaSST", "icl (best of 2)", "icl (mean ± std, n=2)"] * 2
    table = json.loads(out_json.read_text())
    assert [m["method"] for m in table["methods"]] == ["PaSST", "icl"]
    # Reports of different splits, and files that are not reports, are refused.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "split": "test"}))
    assert run_cli(evaluate_cli.main, ["--compare", str(first), str(other)]) == 2
    assert "cover different splits (evaluate, test)" in capsys.readouterr().err
    assert run_cli(evaluate_cli.main, ["--compare", str(workspace["run_a"] / "config.yaml")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bogus = tmp_path / "bogus.json"
    bogus.write_text("[1, 2]")
    assert run_cli(evaluate_cli.main, ["--compare", str(bogus)]) == 2
    assert "not a combined report of `scripts/evaluate.py --out`" in capsys.readouterr().err


def test_evaluate_unlabelled_split_writes_predictions_only(workspace, capsys):
    run = workspace["run_a"]
    assert run_cli(evaluate_cli.main, ["--run", str(run), "--split", "eval2023"]) == 0
    out = capsys.readouterr().out
    assert "split 'eval2023' has no scene labels; wrote 3 predictions" in out
    assert "| Method |" not in out
    folder = run / "eval" / "eval2023"
    report = json.loads((folder / "report.json").read_text())
    assert report["labelled"] is False and report["metrics"] is None
    assert [r[0] for r in read_tsv(folder / "predictions.tsv")[1:]] == [
        "audio/0.wav",
        "audio/1.wav",
        "audio/2.wav",
    ]


def test_evaluate_bad_inputs(workspace, tmp_path, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert run_cli(evaluate_cli.main, ["--run", str(empty)]) == 2
    assert f"--run {empty}: no model.keras; expected a finished training run" in (
        capsys.readouterr().err
    )
    assert run_cli(evaluate_cli.main, ["--run", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert (
        run_cli(
            evaluate_cli.main,
            ["--run", str(workspace["run_a"]), "--data", str(tmp_path / "missing")],
        )
        == 2
    )
    assert "TFRecord folder not found" in capsys.readouterr().err
    assert run_cli(evaluate_cli.main, ["--run", str(workspace["run_a"]), "--split", "train"]) == 2
    assert "no TFRecord shards for split 'train'" in capsys.readouterr().err
    # A damaged model file and a config that is not YAML: one clear line each.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_text("not a zip")
    (broken / "config.yaml").write_text(f"data: {{path: {workspace['data']}}}\n")
    assert run_cli(evaluate_cli.main, ["--run", str(broken)]) == 2
    assert f"{broken / 'model.keras'}: cannot load the model" in capsys.readouterr().err
    (broken / "config.yaml").write_text("data: [unclosed\n")
    assert run_cli(evaluate_cli.main, ["--run", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'config.yaml'}: not valid YAML" in err and err.count("\n") == 1
    (broken / "config.yaml").write_text("seed: 1\n")
    assert run_cli(evaluate_cli.main, ["--run", str(broken)]) == 2
    assert "config.yaml: no data.path; pass the TFRecord folder with --data" in (
        capsys.readouterr().err
    )


def _other_model_run(workspace, folder):
    import keras

    folder = folder / "other-run"
    os.makedirs(folder)
    inputs = keras.Input((CLIP,))
    keras.Model(inputs, keras.layers.Dense(10)(inputs[:, :8]), name="plain").save(
        folder / "model.keras"
    )  # a valid Keras model, not a scene classifier
    (folder / "config.yaml").write_text(f"data: {{path: {workspace['data']}}}\n")
    return ["--run", str(folder)]


def _damaged_data(workspace, folder, damage):
    data = folder / "tau"
    shutil.copytree(workspace["data"], data)
    damage(str(data / "evaluate-1s.tfrecord-00000-of-00001"))
    return ["--run", str(workspace["run_a"]), "--data", str(data), "--no-plots"]


def _out_under_a_file(workspace, folder):
    (folder / "file").write_text("x")
    return [
        "--run",
        str(workspace["run_a"]),
        "--no-plots",
        "--out",
        str(folder / "file" / "report.json"),
    ]


EVALUATE_BAD_INPUTS = {
    "model of another kind": (
        _other_model_run,
        r"model\.keras: model 'plain' has no 'logits' output; expected a "
        r"keras_asc SceneClassifier",
    ),
    "truncated evaluate shard": (
        lambda w, f: _damaged_data(w, f, lambda p: _fs.truncate(p, -100)),
        r"evaluate-1s\.tfrecord-00000-of-00001: truncated: the record "
        r"at byte \d+ ends at byte \d+, the file has \d+ bytes",
    ),
    "bit-flipped evaluate shard": (
        lambda w, f: _damaged_data(w, f, _fs.flip_bit),
        r"evaluate-1s\.tfrecord-00000-of-00001: corrupted record at "
        r"byte \d+ \(data checksum mismatch\)",
    ),
    "--out under a file": (
        _out_under_a_file,
        r"--out .*file/report\.json: cannot write in .*file \(.*\); expected "
        r"a writable folder",
    ),
}


@pytest.mark.parametrize("case", sorted(EVALUATE_BAD_INPUTS))
def test_evaluate_bad_input_one_clear_error(case, workspace, tmp_path, capsys):
    make_args, message = EVALUATE_BAD_INPUTS[case]
    argv = make_args(workspace, tmp_path)
    assert run_cli(evaluate_cli.main, argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert re.match(f"error: .*{message}", last) and "Traceback" not in err, err
    assert not [n for _, _, names in os.walk(tmp_path) for n in names if ".tmp-" in n]


def test_probe_devices_cli_paper_protocol(workspace, capsys, tmp_path):
    out_json = tmp_path / "probe.json"
    argv = ["--run", str(workspace["run_a"]), "--out", str(out_json), "--train-split", "fit",
            "--probe-seeds", "3", "--seed", "2"]  # fmt: skip
    assert run_cli(probe_cli.main, argv) == 0
    out = capsys.readouterr().out
    assert "| Method | Accuracy [%] | Chance [%] | Runs |" in out
    assert "| icl |" in out and "| 16.67 | 1 |" in out
    assert "3 probe seeds (s.d. " in out and "95 % CI [" in out
    result = json.loads(out_json.read_text())["runs"][0]
    assert result["protocol"] == "paper" and result["train_split"] == "fit"
    assert result["devices"] == list(DEVICES_IN_SPLIT)  # s4 is not a training device
    # fit on the 36 training-device clips of "fit", test on all 36 of "evaluate"
    assert result["counts"] == {"train": 36, "test": 36}
    assert result["num_clips"] == 36 and result["embedding_dim"] == 64
    assert [r["seed"] for r in result["per_seed"]] == [2, 3, 4]
    for run in result["per_seed"]:
        # 3 recordings per device: 1 held out for early stopping (2 clips), 2 fit (4 clips)
        assert run["counts"] == {"fit": 24, "stop": 12}
        assert sum(map(sum, run["confusion_matrix"])) == 36
    assert len(result["balanced_accuracy_ci"]) == 2
    assert os.path.isfile(workspace["run_a"] / "eval" / "evaluate" / "probe.json")


def test_probe_devices_cli_evaluate_protocol(workspace, capsys, tmp_path):
    out_json = tmp_path / "probe.json"
    argv = ["--run", str(workspace["run_a"]), "--out", str(out_json), "--protocol", "evaluate"]
    assert run_cli(probe_cli.main, argv) == 0
    out = capsys.readouterr().out
    assert "| icl |" in out and "| 16.67 | 1 |" in out
    result = json.loads(out_json.read_text())["runs"][0]
    assert result["protocol"] == "evaluate"
    assert result["devices"] == list(DEVICES_IN_SPLIT)
    assert result["num_clips"] == 36 and result["embedding_dim"] == 64
    assert sum(result["counts"].values()) == 36
    assert os.path.isfile(workspace["run_a"] / "eval" / "evaluate" / "probe_evaluate.json")


def test_probe_devices_cli_paper_protocol_needs_a_training_split(workspace, capsys):
    assert run_cli(probe_cli.main, ["--run", str(workspace["run_a"])]) == 2
    assert "no TFRecord shards for split 'train'" in capsys.readouterr().err


def test_grid_report_from_cached_reports(workspace, capsys, tmp_path):
    # Both runs were evaluated above (eval/evaluate/report.json): nothing is predicted again.
    out_json = tmp_path / "grid.json"
    argv = [str(workspace["root"] / "icl"), "--out", str(out_json)]
    assert run_cli(grid_report.main, argv) == 0
    out = capsys.readouterr().out
    assert "| α | LogLoss | Acc. [%] | λ_ICL | LogLoss | Acc. [%] |" in out
    data = json.loads(out_json.read_text())
    assert [r["source"] for r in data["records"]] == ["cached", "cached"]
    assert [row[0] for row in data["alpha_rows"]] == [0.2]  # only seed0 has λ = 10
    assert [row[0] for row in data["weight_rows"]] == [0.5, 10.0]


def test_grid_report_needs_icl_settings(tmp_path, capsys):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "config.yaml").write_text("data: {path: x}\nloss: {icl_alpha: fast}\n")
    assert run_cli(grid_report.main, [str(run)]) == 2
    assert "loss.icl_alpha is 'fast'; expected a number" in capsys.readouterr().err


def test_seed_folders_and_method_names(tmp_path):
    from keras_asc.evaluation import runs as run_io

    for seed in (10, 2, 0):
        (tmp_path / "multi" / f"seed-{seed}").mkdir(parents=True)
    (tmp_path / "multi" / "seed-x").mkdir()
    names = [os.path.basename(p) for p in run_io.seed_dirs(tmp_path / "multi")]
    assert names == ["seed-0", "seed-2", "seed-10"]
    opened = run_io.expand_runs([tmp_path / "multi"], need_model=False)
    assert [r.name for r in opened] == names
    assert run_io.method_name(opened) == "multi"
    assert run_io.method_name([run_io.Run(tmp_path / "passt-seed3", {})]) == "passt"
    assert run_io.method_name(opened, "PaSST") == "PaSST"
    assert run_io.recording_key("audio/bus-lyon-1-2-3-a.wav") == "bus-lyon-1-2-a"
    assert run_io.recording_key("audio/17.wav") == "17"
