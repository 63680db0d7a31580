"""scripts/reproduce_miniature.py: claim checks, the Markdown report, bad input, and a smoke run
of all five Table-3 rows (one seed, one short epoch) on the tiny synthetic corpus."""

import json
import os

import numpy as np
import pytest

from keras_asc.errors import UserError
from keras_asc.evaluation import miniature
from keras_asc.evaluation.metrics import scene_metrics
from keras_asc.vocab import DEVICES
from keras_asc.vocab import SCENES

STEMS = [stem for _, stem in miniature.ROWS]


def fake_run(rng, quality, probe_acc):
    """A run whose report is real scene_metrics output: higher ``quality`` → lower log-loss."""
    n = 180
    labels = rng.integers(0, len(SCENES), n)
    devices = np.arange(n) % len(DEVICES)
    logits = rng.normal(size=(n, len(SCENES)))
    logits[np.arange(n), labels] += quality
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {
        "report": {"metrics": scene_metrics(labels, probs, devices)},
        "probe": {"balanced_accuracy": probe_acc, "chance": 1 / 6},
    }


def fake_results(qualities, probe_accs, seeds=3):
    rng = np.random.default_rng(0)
    rows = []
    for (name, stem), q, acc in zip(miniature.ROWS, qualities, probe_accs):
        runs = [{"seed": s, **fake_run(rng, q + 0.01 * s, acc + 0.01 * s)} for s in range(seeds)]
        rows.append({"name": name, "stem": stem, "runs": runs})
    settings = {"seeds": seeds, "size": "small", "corpus_seed": 0, "overrides": [],
                "max_examples": None, "probe_split_by": "recording"}  # fmt: skip
    return {"rows": rows, "timings": {"data_s": 60.0, "train/passt": 600.0}, "settings": settings}


def by_stem(results):
    return {row["stem"]: row for row in results["rows"]}


def test_compare_verdicts_follow_mean_best_and_seed_noise():
    def row(values):
        return {"runs": [{"probe": {"balanced_accuracy": v}} for v in values]}

    rows = {
        "low": row([0.20, 0.21, 0.22]),
        "high": row([0.80, 0.81, 0.82]),
        "noisy": row([0.10, 0.85, 0.80]),  # mean 0.583 < 0.81, but the spread is large
        "one": row([0.5]),
        "other": row([0.6]),
    }
    strong = miniature.compare(rows, "low", "high", "probe")
    assert strong["verdict"] == "holds"
    np.testing.assert_allclose(strong["delta"], 0.21 - 0.81)
    np.testing.assert_allclose(strong["best_delta"], 0.20 - 0.80)
    np.testing.assert_allclose(strong["se"], np.sqrt(2 * 0.0001 / 3))
    assert miniature.compare(rows, "high", "low", "probe")["verdict"] == "does not hold"
    assert miniature.compare(rows, "noisy", "high", "probe")["verdict"] == "holds within noise"
    assert miniature.compare(rows, "one", "other", "probe")["verdict"] == "direction holds (1 seed)"
    assert miniature.compare(rows, "other", "one", "probe")["verdict"] == "does not hold"


def test_claims_read_the_right_quantities():
    # Multi DIRs (row 3) clearly better than PaSST; ICL (row 4) clearly worse on log-loss.
    results = fake_results([1.0, 1.0, 3.0, 0.2, 3.0], [0.8, 0.8, 0.4, 0.6, 0.2])
    checks = {(c["better"], c["worse"], c["what"]): c for c in miniature.claim_checks(results)}
    assert len(checks) == len(miniature.CLAIMS)
    rows = by_stem(results)
    def unseen(stem):
        return [r["report"]["metrics"]["groups"]["unseen"]["log_loss"] for r in rows[stem]["runs"]]

    c = checks[("multi_dirs", "passt", "unseen")]
    np.testing.assert_allclose(c["delta"], np.mean(unseen("multi_dirs")) - np.mean(unseen("passt")))
    assert c["verdict"] == "holds"
    assert checks[("icl", "passt", "overall")]["verdict"] == "does not hold"
    np.testing.assert_allclose(checks[("icl", "passt", "probe")]["delta"], 0.6 - 0.8)
    assert checks[("multi_icl", "multi_dirs", "probe")]["verdict"] == "holds"


def test_markdown_has_both_tables_paper_numbers_and_keeps_the_reading(tmp_path):
    results = fake_results([1.0, 0.9, 1.5, 1.1, 1.4], [0.8, 0.7, 0.4, 0.6, 0.2])
    path = tmp_path / "docs" / "results.md"
    miniature.write_markdown(str(path), results)
    text = path.read_text()
    for name, _ in miniature.ROWS:
        assert f"| {name} | " in text
    # best + mean ± std rows of our runs for both metrics, paper rows, probe rows
    assert text.count("| PaSST (best) |") + text.count("| PaSST |") >= 2
    assert "| 1.012 | 1.266 | 1.070 | 1.116 |" in text  # the paper's PaSST row
    assert "| + ICL + Multi DIRs | 17.53 | 16.67 |" in text  # the paper's Table 2
    assert text.count("| holds") + text.count("| does not hold") >= 1
    assert miniature.DEFAULT_READING in text
    assert "split by 10-s recording" in text

    edited = text.replace(miniature.DEFAULT_READING, "Our reading: ICL helps a little.")
    path.write_text(edited)
    miniature.write_markdown(str(path), fake_results([2.0] * 5, [0.5] * 5))
    again = path.read_text()
    assert "Our reading: ICL helps a little." in again
    assert miniature.DEFAULT_READING not in again


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match=r"--rows nope: unknown row; expected some of icl, "):
        miniature.run_miniature(work_dir=str(tmp_path), rows=["nope"], out=None)
    with pytest.raises(UserError, match=r"--seeds 0: expected at least 1"):
        miniature.main(["--work-dir", str(tmp_path), "--seeds", "0"])
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text(json.dumps({"size": "tiny", "seed": 3}))
    with pytest.raises(UserError, match=r"size 'tiny' and seed 3; expected size 'small' and seed"):
        miniature.prepare_data(str(tmp_path), size="small", corpus_seed=0, progress=False)


def test_row_configs_point_at_the_work_directory():
    paths = {"tau22": "/w/tau22", "micirp": "/w/micirp", "multi_dirs": "/w/multi"}
    config_dir = miniature.default_config_dir()
    configs = {stem: miniature.row_config(config_dir, stem, paths) for stem in STEMS}
    for config in configs.values():
        assert config["data"]["path"] == "/w/tau22"
        assert config["model"]["preset"] == "passt_tiny"
    assert configs["passt"]["dirs"] is None
    assert configs["vintage_dirs"]["dirs"]["sets"] == ["/w/micirp"]
    assert configs["multi_dirs"]["dirs"]["sets"] == ["/w/multi"]
    assert configs["multi_icl"]["dirs"]["sets"] == ["/w/multi"]
    assert configs["icl"]["loss"]["icl_weight"] > 0
    assert configs["multi_icl"]["loss"]["icl_weight"] == configs["icl"]["loss"]["icl_weight"]
    assert not configs["passt"]["loss"].get("icl_weight")
    # the rows differ from the baseline only in their method
    for stem in STEMS:
        for section in ("data", "model", "optimizer", "schedule", "training"):
            assert configs[stem][section] == configs["passt"][section], (stem, section)


@pytest.mark.slow
def test_smoke_one_seed_one_epoch_all_rows(synthetic_corpus, tmp_path, capsys):
    folder, manifest = synthetic_corpus
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(folder, work / "raw")  # the session's tiny corpus; the driver builds its TFRecords
    out = tmp_path / "results.md"
    args = ["--work-dir", str(work), "--size", "tiny", "--seeds", "1", "--out", str(out),
            "--set", "training.epochs=1", "--set", "training.steps_per_epoch=1",
            "--probe-split-by", "clip"]  # fmt: skip
    assert miniature.main(args) == 0
    clips = manifest["tau22"]["splits"]["evaluate"]["clips"]
    n_eval = sum(sum(per_scene.values()) for per_scene in clips.values())
    results = json.loads((work / "results.json").read_text())
    assert [row["stem"] for row in results["rows"]] == STEMS
    for row in results["rows"]:
        (run,) = row["runs"]
        run_dir = run["run_dir"]
        assert os.path.isfile(os.path.join(run_dir, "model.keras"))
        assert os.path.isfile(os.path.join(run_dir, "eval", "evaluate", "report.json"))
        assert os.path.isfile(os.path.join(run_dir, "eval", "evaluate", "probe.json"))
        assert run["report"]["metrics"]["overall"]["count"] == n_eval
        assert run["probe"]["devices"] == ["a", "b", "c", "s1", "s2", "s3"]
        with open(os.path.join(run_dir, "history.json")) as f:
            assert len(json.load(f)) == 1
    text = out.read_text()
    assert text.count("| direction holds (1 seed) |") + text.count("| does not hold |") == len(
        miniature.CLAIMS
    )
    timings = json.loads((work / "timings.json").read_text())
    assert set(timings) >= {"data_s", *(f"train/{s}" for s in STEMS)}

    # Started again: nothing is retrained or re-evaluated, and the hand-written reading stays.
    first = results["rows"][0]["runs"][0]["run_dir"]
    model = os.path.join(first, "model.keras")
    report = os.path.join(first, "eval", "evaluate", "report.json")
    stamps = (os.path.getmtime(model), os.path.getmtime(report))
    out.write_text(text.replace(miniature.DEFAULT_READING, "kept"))
    assert miniature.main([*args, "--rows", "passt"]) == 0
    assert (os.path.getmtime(model), os.path.getmtime(report)) == stamps
    assert "kept" in out.read_text()
    assert "tfrecords_builder synthetic" not in capsys.readouterr().out


def test_per_run_rows_and_probe_loss_correlation(tmp_path):
    # Rows with better scene quality carry less device information: a positive correlation.
    results = fake_results([0.5, 1.0, 1.5, 2.0, 2.5], [0.9, 0.7, 0.5, 0.3, 0.1])
    rows = miniature.seed_rows(results)
    assert len(rows) == 15
    assert rows[0][:2] == ("PaSST", 0) and rows[-1][:2] == ("+ ICL + Multi DIRs", 2)
    overall = [r[3] for r in rows]
    np.testing.assert_allclose(
        overall, [run["report"]["metrics"]["overall"]["log_loss"]
                  for row in results["rows"] for run in row["runs"]])  # fmt: skip
    corr = miniature.probe_loss_correlation(results)
    assert corr["runs"] == 15 and corr["overall"] > 0.8
    few = fake_results([1.0, 2.0], [0.5, 0.4], seeds=1)
    few["rows"] = few["rows"][:2]
    assert miniature.probe_loss_correlation(few) is None
    path = tmp_path / "r.md"
    miniature.write_markdown(str(path), results)
    text = path.read_text()
    assert f"Spearman correlation of probe accuracy with log-loss is {corr['overall']:+.2f}" in text
    assert [text.count(f"| + ICL | {seed} | ") for seed in range(3)] == [1, 1, 1]
