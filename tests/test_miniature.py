"""The miniature (keras_asc.experiments): claims on paired seeds, calibration choice, the report,
configs, bad input, and a smoke run of the whole driver on tiny corpora."""

import json
import math
import os
import re

import numpy as np
import pytest
import yaml

from asc_core.errors import UserError
from asc_core.vocab import DEVICES
from asc_core.vocab import SCENES
from keras_asc.cli import reproduce_miniature
from keras_asc.evaluation.metrics import scene_metrics
from keras_asc.experiments import calibration
from keras_asc.experiments import claims
from keras_asc.experiments import driver
from keras_asc.experiments import report

T975_DF2 = 4.302652729911275  # t(0.975, 2)


def fake_run(rng, seed, quality, probe_acc):
    """A run whose report is real scene_metrics output: higher ``quality`` → lower log-loss."""
    n = 200
    labels = rng.integers(0, len(SCENES), n)
    devices = np.arange(n) % len(DEVICES)
    logits = rng.normal(size=(n, len(SCENES)))
    logits[np.arange(n), labels] += quality
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probe = {"balanced_accuracy": probe_acc, "chance": 1 / 6,
             "balanced_accuracy_ci": [probe_acc - 0.01, probe_acc + 0.01]}  # fmt: skip
    return {"seed": seed, "report": {"metrics": scene_metrics(labels, probs, devices)},
            "probe": probe, "probe_secondary": {"balanced_accuracy": probe_acc / 2}}  # fmt: skip


def fake_results(spec, seeds=3):
    """``spec``: stem -> (quality, probe accuracy); seed s adds 0.2·s and 0.01·s."""
    rng = np.random.default_rng(0)
    rows = []
    for name, stem in driver.ROWS:
        if stem not in spec:
            continue
        quality, acc = spec[stem]
        runs = [fake_run(rng, s, quality + 0.2 * s, acc + 0.01 * s) for s in range(seeds)]
        rows.append(
            {
                "name": name,
                "stem": stem,
                "runs": runs,
                "loss": {"icl_weight": 0.5, "icl_alpha": 0.2} if "icl" in stem else {},
            }
        )
    settings = {"seeds": seeds, "size": "small", "corpus_seed": 0, "pretrain_corpus_seed": 1,
                "overrides": [], "max_examples": None, "probe_seeds": 5}  # fmt: skip
    return {"rows": rows, "timings": {"data": 60.0, "train/passt": 600.0},
            "settings": settings, "calibration": None, "pretrain": None,
            "main_icl": {"target": None, "weight": 0.5, "alpha": 0.2}}  # fmt: skip


SPEC = {"passt": (1.0, 0.8), "vintage_dirs": (0.9, 0.7), "multi_dirs": (1.5, 0.4),
        "icl": (1.1, 0.6), "multi_icl": (1.4, 0.2)}  # fmt: skip


def by_stem(results):
    return {row["stem"]: row for row in results["rows"]}


def test_paired_claim_by_hand():
    # ICL − PaSST probe per seed: (0.6 + 0.01 s) − (0.8 + 0.01 s) = −0.2 exactly: no spread.
    results = fake_results(SPEC)
    tests = {(t["a"], t["b"], t["quantity"]): t for t in claims.check_all(results)}
    probe = tests[("icl", "passt", "probe")]
    assert probe["seeds"] == [0, 1, 2] and probe["n"] == 3
    assert probe["mean"] == pytest.approx(-0.2) and probe["p"] == 0.0
    assert probe["verdict"] == "holds"
    # A log-loss claim: the differences are computed from the runs' reports, paired by seed.
    rows = by_stem(results)
    unseen = {stem: [r["report"]["metrics"]["groups"]["unseen"]["log_loss"]
                     for r in rows[stem]["runs"]] for stem in ("multi_dirs", "passt")}  # fmt: skip
    d = np.subtract(unseen["multi_dirs"], unseen["passt"])
    t = tests[("multi_dirs", "passt", "unseen")]
    assert t["differences"] == pytest.approx(d.tolist())
    half = T975_DF2 * d.std(ddof=1) / math.sqrt(3)
    assert (t["low"], t["high"]) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    # Holm over the whole family: m checks; the smallest p gets m×.
    ps = [x["p"] for x in tests.values()]
    assert min(x["p_holm"] for x in tests.values()) == pytest.approx(min(1.0, len(ps) * min(ps)))


def test_claims_verdicts_are_symmetric_and_goals_are_checked():
    # ICL much WORSE on log-loss than PaSST (quality 0.2 vs 3.0) and the probe unchanged.
    spec = {**SPEC, "passt": (3.0, 0.6), "icl": (0.2, 0.6)}
    tests = {(t["a"], t["b"], t["quantity"]): t for t in claims.check_all(fake_results(spec))}
    assert tests[("icl", "passt", "overall")]["verdict"] == "contradicted"
    assert tests[("icl", "passt", "probe")]["verdict"] == "inconclusive"  # Δ = 0 exactly
    goal = tests[("multi_icl", "chance", "probe")]
    # probe 0.2, 0.21, 0.22 vs chance 1/6 + 10 pp: below the margin with zero spread → holds
    assert goal["margin"] == 0.10 and goal["mean"] == pytest.approx(0.21 - 1 / 6)
    assert goal["verdict"] == "holds"
    # best row without ICL by mean accuracy: PaSST (quality 3.0)
    assert tests[("icl", "passt", "accuracy")]["kind"] == "goal"


def test_best_of_seeds_is_picked_by_log_loss_for_every_column():
    results = fake_results(SPEC)
    row = by_stem(results)["passt"]
    # Make seed 1 the best by log-loss but the worst by probe: the best row must still be seed 1.
    for run in row["runs"]:
        run["report"]["metrics"]["overall"]["log_loss"] = {0: 2.0, 1: 1.0, 2: 1.5}[run["seed"]]
    row["runs"][1]["probe"]["balanced_accuracy"] = 0.99
    index, run = claims.best_runs(results)["passt"]
    assert index == 1 and run["seed"] == 1
    text = report.render_markdown(results)
    assert "| PaSST (seed 1) | 99.00 [" in text
    assert "| PaSST (best of 3: seed 1) |" in text


def test_choose_weight_follows_the_paper_criterion():
    def rec(weight, acc):
        return {"weight": weight, "alpha": 0.2, "val_accuracy": acc, "target": "t"}

    records = [rec(0, 0.50), rec(0.1, 0.51), rec(0.5, 0.485), rec(3, 0.47), rec(10, 0.30)]
    choice = calibration.choose_weight(records)
    assert choice == {"weight": 0.5, "criterion_met": True, "baseline_accuracy": 0.50,
                      "tolerance": 0.02}  # fmt: skip
    collapsed = [rec(0, 0.50), rec(0.1, 0.40), rec(0.5, 0.2)]
    assert calibration.choose_weight(collapsed) == {
        "weight": 0.1,
        "criterion_met": False,
        "baseline_accuracy": 0.50,
        "tolerance": 0.02,
    }
    with pytest.raises(ValueError, match="needs a λ_ICL = 0 record"):
        calibration.choose_weight([rec(0.1, 0.5)])


def test_calibration_plan_and_grids():
    runs = calibration.plan(["pooled", "tokens"], (0, 0.1, 10), (0, 0.2, 1.5))
    # λ 0 once; per variant λ 0.1 and 10 at α 0.2, and α 0 and 1.5 at λ 10 ((10, 0.2) shared)
    assert runs == [(None, 0.0, 0.2),
                    ("pooled", 0.1, 0.2), ("pooled", 10.0, 0.2), ("pooled", 10.0, 0.0),
                    ("pooled", 10.0, 1.5),
                    ("tokens", 0.1, 0.2), ("tokens", 10.0, 0.2), ("tokens", 10.0, 0.0),
                    ("tokens", 10.0, 1.5)]  # fmt: skip
    records = [{"target": t, "weight": w, "alpha": a} for t, w, a in runs]
    weight, alpha = calibration.grids(records, "tokens")
    assert [(r["target"], r["weight"]) for r in weight] == [(None, 0.0), ("tokens", 0.1),
                                                            ("tokens", 10.0)]  # fmt: skip
    assert [r["alpha"] for r in alpha] == [0.0, 0.2, 1.5]
    assert calibration.run_name("tokens", 0.5, 0.2) == "tokens-l0.5-a0.2"
    assert calibration.run_name(None, 0.0, 0.2) == "off-l0-a0.2"


def test_calibration_record_reads_the_diagnostics():
    row = {"epoch": 2, "val_loss": 2.1, "val_accuracy": 0.3, "icl_cos_cls_dist": -0.97,
           "icl_clip_share": 0.05, "loss": 3.0}  # fmt: skip
    record = calibration.record_from_history(row, "pooled", 0.5, 0.2, "/r")
    assert record["diagnostics"] == {"icl_cos_cls_dist": -0.97, "icl_clip_share": 0.05}
    assert (record["val_loss"], record["val_accuracy"]) == (2.1, 0.3)


def test_report_structure_flags_and_keeps_the_reading(tmp_path):
    spec = {**SPEC, "passt": (-1.0, 0.8)}  # PaSST worse than uniform: log-loss > ln 10
    results = fake_results(spec)
    path = tmp_path / "docs" / "results.md"
    report.write_markdown(str(path), results)
    text = path.read_text()
    for heading in ("## Table 1 analogue", "## Table 3 analogue", "## Table 2 analogue",
                    "## The paper's claims and the issue's goals, tested", "## Per run",
                    "## Reading", "## Time"):  # fmt: skip
        assert heading in text
    assert "| 1.012 | 1.266 | 1.070 | 1.116 |" in text  # the paper's PaSST row
    assert "| + ICL + Multi DIRs | 17.53 | 16.67 |" in text  # the paper's Table 2
    passt_ll = [r["report"]["metrics"]["overall"]["log_loss"]
                for r in by_stem(results)["passt"]["runs"]]  # fmt: skip
    assert min(passt_ll) > math.log(10)
    assert f"| {passt_ll[0]:.3f}† |" in text  # per-run row, flagged
    tests = claims.check_all(results)
    verdicts = re.findall(r"\| \*\*(holds|contradicted|inconclusive)\*\* \|", text)
    assert verdicts == [t["verdict"] for t in tests]
    assert "ICL gave the largest log-loss gain" not in text
    assert report.DEFAULT_READING in text
    assert "ICL diagnostics of the last epoch" not in text  # no run logged any

    # Diagnostics in a run's last history row are listed per run.
    by_stem(results)["icl"]["runs"][1]["history"] = {
        "icl_cos_cls_dist": -0.975,
        "icl_clip_share": 0.031,
    }
    text = report.render_markdown(results)
    assert "| Method | Seed | cos(cls, dist) | clip share |" in text
    assert "| + ICL | 1 | -0.975 | 0.031 |" in text

    path.write_text(text.replace(report.DEFAULT_READING, "Our reading."))
    report.write_markdown(str(path), fake_results(SPEC))
    again = path.read_text()
    assert "Our reading." in again and report.DEFAULT_READING not in again

    # The old protocol's page (no generator mark): its discussion is not carried over.
    old = tmp_path / "old.md"
    old.write_text(
        f"# old\n{report.READING_START}\nICL gave the largest log-loss gain of any "
        f"single method\n{report.READING_END}\n"
    )
    report.write_markdown(str(old), fake_results(SPEC))
    assert "largest log-loss gain" not in old.read_text()
    assert report.DEFAULT_READING in old.read_text()


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match=r"--rows nope: unknown row; expected some of icl, "):
        driver.run_miniature(work_dir=str(tmp_path), rows=["nope"], out=None)
    with pytest.raises(UserError, match=r"--seeds 0: expected at least 1"):
        reproduce_miniature.main(["--work-dir", str(tmp_path), "--seeds", "0"])
    with pytest.raises(UserError, match=r"--pretrain-corpus-seed 0: must differ"):
        reproduce_miniature.main(["--work-dir", str(tmp_path), "--pretrain-corpus-seed", "0"])
    with pytest.raises(UserError, match=r"calibration grid value -1.0: expected a number >= 0"):
        reproduce_miniature.main(["--work-dir", str(tmp_path), "--weight-grid", "0", "-1"])
    with pytest.raises(UserError, match=r"--calibration-epochs 0: expected at least 1"):
        reproduce_miniature.main(["--work-dir", str(tmp_path), "--calibration-epochs", "0"])
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text(json.dumps({"size": "tiny", "seed": 3}))
    with pytest.raises(UserError, match=r"size 'tiny' and seed 3; expected size 'small' and seed"):
        driver.prepare_data(str(tmp_path), size="small", corpus_seed=0, progress=False)
    assert not os.path.exists(tmp_path / "timings.json")


def test_configs_follow_the_paper_recipe():
    paths = {"tau22": "/w/tau22", "micirp": "/w/micirp", "multi_dirs": "/w/multi"}
    config_dir = driver.default_config_dir()
    stems = [stem for _, stem in driver.ROWS]
    configs = {s: driver.load(config_dir, s, paths, weights="/w/enc.weights.h5") for s in stems}
    for stem, config in configs.items():
        assert config["data"]["path"] == "/w/tau22"
        assert config["model"]["weights"] == "/w/enc.weights.h5"
        assert config["model"]["preset"] == "passt_tiny"
        opt = config["optimizer"]
        assert (opt["learning_rate"], opt["beta_1"], opt["beta_2"], opt["epsilon"]) == (
            4.2e-4,
            0.957,
            0.9514,
            0.038,
        ), stem
        assert config["training"]["final_weights"] == "last"
    assert configs["passt"]["dirs"] is None
    assert configs["vintage_dirs"]["dirs"]["sets"] == ["/w/micirp"]
    assert configs["multi_dirs"]["dirs"]["sets"] == ["/w/multi"]
    assert configs["multi_icl"]["dirs"] == configs["multi_dirs"]["dirs"]
    assert configs["icl"]["loss"] == configs["multi_icl"]["loss"]
    assert configs["icl"]["loss"]["icl_alpha"] == 0.2
    assert not configs["passt"]["loss"].get("icl_weight")
    for stem in stems:  # the rows differ from the baseline only in their method
        for section in ("data", "model", "optimizer", "schedule", "training", "seed"):
            assert configs[stem][section] == configs["passt"][section], (stem, section)
    pre = driver.load(config_dir, "pretrain", paths)
    assert pre["data"]["device_balanced"] is True and pre["model"].get("weights") is None
    cal = driver.load(config_dir, "calibrate", paths, extra=driver.icl_overrides(3, 0.4, None))
    assert (cal["loss"]["icl_weight"], cal["loss"]["icl_alpha"]) == (3, 0.4)
    assert cal["training"]["epochs"] < configs["icl"]["training"]["epochs"]
    # per-epoch validation: a subset in the main runs, every clip where it picks λ_ICL
    assert configs["passt"]["data"]["max_eval_examples"] == 320
    assert cal["data"]["max_eval_examples"] is None


def test_icl_overrides():
    assert driver.icl_overrides(0.5, 0.2, None) == ["loss.icl_weight=0.5", "loss.icl_alpha=0.2"]
    assert driver.icl_overrides(10.0, 0.0, "tokens") == [
        "loss.icl_weight=10",
        "loss.icl_alpha=0",
        "loss.icl_target=tokens",
    ]


def _numbers(line):
    return re.findall(r"[-+]?\d+\.\d+", line)


@pytest.mark.slow
def test_smoke_whole_driver_tiny(synthetic_corpus, tmp_path, capsys):
    folder, manifest = synthetic_corpus
    work = tmp_path / "work"
    os.makedirs(work / "data" / "seed-0")
    os.symlink(folder, work / "data" / "seed-0" / "raw")  # the session's tiny corpus (seed 0)
    out = tmp_path / "results.md"
    short = ["training.epochs=1", "training.steps_per_epoch=2"]
    args = ["--work-dir", str(work), "--size", "tiny", "--seeds", "2", "--out", str(out),
            "--probe-seeds", "2", "--probe-split-by", "clip", "--rows", "passt", "icl",
            "--icl-targets", "default", "--icl-target", "default",
            "--weight-grid", "0", "0.5", "--alpha-grid",
            "--secondary-probe",
            *[x for s in short for x in ("--set", s)],
            *[x for s in short for x in ("--pretrain-set", s)],
            *[x for s in short for x in ("--calibration-set", s)]]  # fmt: skip
    assert reproduce_miniature.main(args) == 0
    results = json.loads((work / "results.json").read_text())

    # Pretraining ran once on the seed-1 corpus; its weights started every later run.
    pre = results["pretrain"]
    assert os.path.isfile(pre["weights"])
    with open(work / "data" / "seed-1" / "raw" / "manifest.json") as f:
        assert json.load(f)["seed"] == 1
    # Calibration: λ 0 and λ 0.5 at α 0.2 (no α grid); the choice follows the criterion.
    cal = results["calibration"]
    assert [(r["weight"], r["alpha"]) for r in cal["records"]] == [(0, 0.2), (0.5, 0.2)]
    weight_records, _ = calibration.grids(cal["records"], None)
    assert cal["chosen"]["None"] == calibration.choose_weight(weight_records)
    assert results["main_icl"]["weight"] == cal["chosen"]["None"]["weight"]
    rows = by_stem(results)
    assert rows["icl"]["loss"]["icl_weight"] == results["main_icl"]["weight"]
    # Two paired seeds per row, each evaluated and probed with the paper's protocol.
    clips = manifest["tau22"]["splits"]["evaluate"]["clips"]
    n_eval = sum(sum(per_scene.values()) for per_scene in clips.values())
    for stem in ("passt", "icl"):
        assert [r["seed"] for r in rows[stem]["runs"]] == [0, 1]
        for run in rows[stem]["runs"]:
            assert run["report"]["metrics"]["overall"]["count"] == n_eval
            assert run["probe"]["protocol"] == "paper"
            assert [s["seed"] for s in run["probe"]["per_seed"]] == [0, 1]
            assert run["probe"]["devices"] == ["a", "b", "c", "s1", "s2", "s3"]
            assert run["probe_secondary"]["protocol"] == "evaluate"
            with open(os.path.join(run["run_dir"], "config.yaml")) as f:
                assert yaml.safe_load(f)["model"]["weights"] == pre["weights"]

    # The report: its numbers are the runs' numbers.
    text = out.read_text()
    tests = claims.check_all(results)
    assert {t["claim"] for t in tests} == {
        c.text
        for c in claims.CLAIMS
        if set(c.rows()) <= {"passt", "icl"} or c.b == "best_without_icl" and c.a == "icl"
    }
    assert re.findall(r"\| \*\*(holds|contradicted|inconclusive)\*\* \|", text) == [
        t["verdict"] for t in tests
    ]
    for t in tests:
        line = next(x for x in text.splitlines() if x.startswith(f"| {t['claim']}"))
        scale = 100 if t["quantity"] in claims.PERCENT else 1
        digits = 2 if scale == 100 else 3
        assert f"{t['mean'] * scale:+.{digits}f}" in line
    per_run = text[text.index("## Per run") : text.index("## Reading")]
    for stem in ("passt", "icl"):
        for run in rows[stem]["runs"]:
            line = next(
                x
                for x in per_run.splitlines()
                if x.startswith(f"| {rows[stem]['name']} | {run['seed']} |")
            )
            expected = [
                f"{100 * run['probe']['balanced_accuracy']:.2f}",
                f"{run['report']['metrics']['overall']['log_loss']:.3f}",
                f"{run['report']['metrics']['groups']['unseen']['log_loss']:.3f}",
                f"{100 * run['report']['metrics']['overall']['accuracy']:.2f}",
            ]
            for value in expected:
                assert value in _numbers(line), (value, line)
    cal_part = text[text.index("## Table 1 analogue") : text.index("Paper (TAU22, PaSST-S):")]
    for record in cal["records"]:
        assert f"{record['val_loss']:.3f}" in cal_part
    timings = json.loads((work / "timings.json").read_text())
    assert set(timings) >= {"data", "pretrain", "calibration", "train/passt", "train/icl"}

    # Started again: nothing is retrained or re-evaluated, and the hand-written reading stays.
    first = rows["passt"]["runs"][0]["run_dir"]
    stamps = [
        os.path.getmtime(os.path.join(first, p))
        for p in ("model.keras", "eval/evaluate/report.json", "eval/evaluate/probe.json")
    ]
    pre_stamp = os.path.getmtime(pre["weights"])
    out.write_text(text.replace(report.DEFAULT_READING, "kept"))
    capsys.readouterr()
    assert reproduce_miniature.main(args) == 0
    assert [
        os.path.getmtime(os.path.join(first, p))
        for p in ("model.keras", "eval/evaluate/report.json", "eval/evaluate/probe.json")
    ] == stamps
    assert os.path.getmtime(pre["weights"]) == pre_stamp
    assert "kept" in out.read_text()
    assert "tfrecords_builder synthetic" not in capsys.readouterr().out
