"""A CPU miniature that can test the paper's claims.

Steps (each one is skipped when its output exists, so a killed run started again with the same
command continues where it stopped; training itself resumes mid-run):

1. **Data.** ``python -m tfrecords_builder synthetic --size small --seed 0`` for fine-tuning and
   evaluation (with its TAU22, MicIRP and Surrey TFRecords) and ``--seed 1`` as a disjoint
   pretraining corpus (TAU22 TFRecords only): ``WORK/data/seed-S/{raw,tfrecords}``.
2. **Pretraining** (once, reused by every later run): cross-entropy with device-balanced sampling
   on the seed-1 corpus (``configs/miniature/pretrain.yaml``), the stand-in for AudioSet, which
   has no TAU device bias: ``WORK/pretrain``, weights ``WORK/pretrain/encoder.weights.h5``.
3. **Calibration** (the Table 1 analogue, ``configs/miniature/calibrate.yaml``): per ICL variant
   (``loss.icl_target``) the λ_ICL grid at α 0.2 and the α grid at λ_ICL 10, one seed, short
   runs from the pretrained encoder; λ_ICL = 0 once. The chosen λ_ICL of a variant is the
   largest within 2 pp of λ_ICL = 0 in validation accuracy (the paper's criterion, see
   :mod:`keras_asc.experiments.calibration`): ``WORK/calibration/<variant>-l<λ>-a<α>``.
4. **Main runs**: PaSST, + ICL, + Multi DIRs, + ICL + Multi DIRs (and + Vintage DIRs with
   ``--vintage``) × ``--seeds`` paired seeds: seed ``s`` of every row starts from the same
   pretrained weights and sees the same data order and DIR draws. The paper's fine-tuning recipe
   (Adam lr 4.2e-4, β (0.957, 0.9514), ε 0.038), the last epoch's weights (fixed in advance).
   The ICL rows use the ``--icl-target`` variant at its calibrated λ_ICL: ``WORK/runs/<row>``.
5. **Evaluation and probe** of each main run: the ``evaluate`` split's 1-s clips
   (``report.json``) and the paper-protocol device probe (``probe.json``: fit on training
   embeddings, 5 probe seeds; :func:`keras_asc.evaluation.probe.paper_probe`); with
   ``--secondary-probe`` also the earlier evaluate-split probe (``probe_evaluate.json``).
6. **Statistics and report**: paired-by-seed t intervals, Holm over the claims, verdicts
   (:mod:`keras_asc.experiments.claims`), ``docs/results_miniature.md``
   (:mod:`keras_asc.experiments.report`), ``WORK/results.json``, ``WORK/timings.json``.

Cost on 2 CPU cores (``lscpu``: AMD EPYC), measured by the run that wrote
``docs/results_miniature.md`` (2026-12-02, every default, while other test jobs kept the load
average at 3-8, so an idle machine is faster; stopped once after the first calibration runs
to extend the λ_ICL grid and resumed, the times add up both invocations): 74.8 min in all.

============== ============================================================ ==========
step           size                                                         minutes
============== ============================================================ ==========
data           two ``small`` corpora + TFRecords (+ the two DIR sets)       1.2
pretraining    24 epochs × 75 steps                                         5.6
calibration    1 + 3 variants × (8 λ + 2 α) = 31 runs of 75 steps, full     29.6
               validation (1,800 clips)
main           4 rows × 5 seeds × 3 epochs × 75 steps, 320-clip validation  23.7
evaluation,    20 runs × (1,800 + 4,200 clips predicted, 5 probe fits)      14.7
probe
============== ============================================================ ==========

``--vintage`` adds ≈ 10 min, ``--secondary-probe`` ≈ 5 min; ``--icl-targets`` with fewer
variants saves ≈ 10 min per variant.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from asc_core.errors import UserError
from asc_core.files import replacing
from asc_core.files import write_json
from keras_asc.experiments import calibration
from keras_asc.experiments.paper import ICL_ROWS
from keras_asc.experiments.paper import ROWS

MAIN_ROWS = ("passt", "icl", "multi_dirs", "multi_icl")
ALL_ROWS = tuple(stem for _, stem in ROWS)
ICL_TARGETS = ("pooled", "tokens", "normalized")
# The paper's grid (0.1, 0.5, 3, 10) extended down: on the miniature every λ_ICL >= 0.1 cost
# 20-37 pp of validation accuracy after one epoch (the ICL term's scale relative to the CE
# differs from PaSST-S's), so the 2-pp criterion needs the smaller values.
WEIGHT_GRID = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.5, 3.0, 10.0)
MAIN_ICL_TARGET = "normalized"  # the variant that neither cancellation nor rescaling escapes
ALPHA_GRID = (0.0, 0.2, 1.5)  # 0.2 is shared with the λ grid; 1.5 degraded the paper's model
WEIGHT_SEARCH_ALPHA = 0.2  # the paper's α for the λ_ICL search and every later run
ALPHA_SEARCH_WEIGHT = 10.0  # the paper's λ_ICL for the α search

RAW_TAU22 = "TAU-urban-acoustic-scenes-2022-mobile-development"
RAW_MICIRP = "micirp"
RAW_SURREY = "Microphone_Impulse_Responses"
PRETRAINED = "encoder.weights.h5"


# === Data ===


def _run_builder(args, progress=True):
    command = [sys.executable, "-m", "tfrecords_builder", *args]
    if progress:
        print("$ " + " ".join(["python", "-m", "tfrecords_builder", *args]), flush=True)
    done = subprocess.run(command, check=False)  # noqa: S603 - our own module, fixed arguments
    if done.returncode != 0:
        raise UserError(
            f"`python -m tfrecords_builder {' '.join(args)}` failed with exit status "
            f"{done.returncode} (its message is above)"
        )


def prepare_data(folder, size="small", corpus_seed=0, sets=("tau22", "micirp", "multi_dirs"),
                 progress=True):  # fmt: skip
    """Synthetic raw corpus and the asked TFRecord sets under ``folder`` (skipped when present).

    Returns:
        dict of TFRecord folders by set name (``tau22``, ``micirp``, ``multi_dirs``).
    """
    raw = os.path.join(folder, "raw")
    out = os.path.join(folder, "tfrecords")
    if not os.path.isfile(os.path.join(raw, "manifest.json")):
        _run_builder(
            ["synthetic", "--out", raw, "--size", size, "--seed", str(corpus_seed)], progress
        )
    else:
        check_corpus(raw, size, corpus_seed)
    builders = {
        "tau22": ("tau22", RAW_TAU22),
        "micirp": ("micirp", RAW_MICIRP),
        "multi_dirs": ("multi-dirs", RAW_SURREY),
    }
    paths = {}
    for name in sets:
        command, source = builders[name]
        target = paths[name] = os.path.join(out, name)
        if not os.path.isfile(os.path.join(target, "info.json")):
            args = [command, "--source", os.path.join(raw, source), "--out", target]
            _run_builder(args, progress)
    return paths


def check_corpus(raw, size, corpus_seed):
    """An existing corpus must be the one asked for (a work dir is not silently reused)."""
    with open(os.path.join(raw, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    found = (manifest.get("size"), manifest.get("seed"))
    if found != (size, corpus_seed):
        raise UserError(
            f"{raw}: holds a synthetic corpus of size {found[0]!r} and seed {found[1]!r}; "
            f"expected size {size!r} and seed {corpus_seed!r} (use another --work-dir)"
        )


# === Configs ===


def default_config_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "configs", "miniature"))


def _read_raw_dirs(path):
    from keras_asc.config.loader import read_config_file

    dirs = read_config_file(path).get("dirs") or {}
    return list(dirs.get("sets") or [])


def icl_overrides(weight, alpha, target):
    """``--set`` strings of one ICL setting (``target`` None: the model's default variant)."""
    sets = [f"loss.icl_weight={weight:g}", f"loss.icl_alpha={alpha:g}"]
    if target is not None:
        sets.append(f"loss.icl_target={target}")
    return sets


def config_overrides(config_path, data_paths, weights=None, extra=()):
    """The ``--set`` strings that point a miniature config at the work directory."""
    sets = [f"data.path={data_paths['tau22']}"]
    dirs = _read_raw_dirs(config_path)
    if dirs:
        # configs name the sets by their folder (…/micirp, …/multi_dirs)
        resolved = [data_paths[os.path.basename(os.path.normpath(d))] for d in dirs]
        sets.append("dirs.sets=[" + ", ".join(resolved) + "]")
    if weights is not None:
        sets.append(f"model.weights={weights}")
    return [*sets, *extra]


def load(config_dir, stem, data_paths, weights=None, extra=()):
    """The resolved config ``configs/miniature/<stem>.yaml`` pointed at the work directory."""
    from keras_asc.config.loader import load_config

    path = os.path.join(config_dir, f"{stem}.yaml")
    return load_config(path, overrides=config_overrides(path, data_paths, weights, extra))


# === Steps ===


def _read_json(path, default=None):
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Timer:
    """Per-step machine time, accumulated over resumed invocations (``WORK/timings.json``)."""

    def __init__(self, path):
        self.path = path
        self.values = _read_json(path, {})

    def add(self, key, start):
        self.values[key] = round(self.values.get(key, 0.0) + time.time() - start, 1)
        write_json(self.path, self.values)


def pretrain(work_dir, config_dir, data_paths, overrides=(), progress=True):
    """Step 2: trains (or finds) the pretrained encoder; returns its summary and weights path."""
    from keras_asc.run_dir import RunDirectory
    from keras_asc.training.runner import train

    run_dir = os.path.join(work_dir, "pretrain")
    weights = os.path.join(run_dir, PRETRAINED)
    config = load(config_dir, "pretrain", data_paths, extra=overrides)
    if progress:
        print(f"== pretraining into {run_dir}", flush=True)
    summary = train(config, run_dir)
    if not os.path.isfile(weights):
        with replacing(weights, suffix=".weights.h5") as tmp:
            shutil.copyfile(RunDirectory(run_dir).last_weights, tmp)
    return {"run_dir": run_dir, "weights": weights, "summary": summary}


def _last_history_row(run_dir):
    rows = _read_json(os.path.join(run_dir, "history.json"), [])
    return rows[-1] if rows else {}


def calibrate(work_dir, config_dir, data_paths, weights, targets, weight_grid, alpha_grid,
              overrides=(), progress=True):  # fmt: skip
    """Step 3: the Table 1 analogue; returns the records and the chosen λ_ICL per variant."""
    from keras_asc.training.runner import train

    records = []
    for target, weight, alpha in calibration.plan(
        targets, weight_grid, alpha_grid, WEIGHT_SEARCH_ALPHA, ALPHA_SEARCH_WEIGHT
    ):
        run_dir = os.path.join(work_dir, "calibration", calibration.run_name(target, weight, alpha))
        extra = icl_overrides(weight, alpha, target if weight else None)
        config = load(config_dir, "calibrate", data_paths, weights, [*extra, *overrides])
        if progress:
            print(f"== calibration λ_ICL {weight:g}, α {alpha:g}, variant {target}", flush=True)
        train(config, run_dir)
        records.append(calibration.record_from_history(
            _last_history_row(run_dir), target, weight, alpha, run_dir))  # fmt: skip
    chosen = {}
    for target in targets:
        weight_records, _ = calibration.grids(records, target, WEIGHT_SEARCH_ALPHA,
                                              ALPHA_SEARCH_WEIGHT)  # fmt: skip
        if any(r["weight"] == 0 for r in weight_records) and any(
            r["weight"] > 0 for r in weight_records
        ):
            chosen[str(target)] = calibration.choose_weight(weight_records)
    return {"records": records, "chosen": chosen, "targets": list(targets),
            "alpha": WEIGHT_SEARCH_ALPHA, "alpha_search_weight": ALPHA_SEARCH_WEIGHT}  # fmt: skip


def _fresh(path, model_path, wanted):
    """A cached result newer than the model and made with the same settings (else None)."""
    if not (os.path.isfile(path) and os.path.getmtime(path) >= os.path.getmtime(model_path)):
        return None
    cached = _read_json(path)
    if any(cached.get(k) != v for k, v in wanted.items()):
        return None
    return cached


def evaluate_and_probe(run_dir, max_examples=None, probe_seeds=5, split_by="recording",
                       secondary=True, progress=True):  # fmt: skip
    """Step 5 for one run: ``(report, probe, probe_secondary)`` (cached beside the run)."""
    from keras_asc.evaluation.evaluate import evaluate_run
    from keras_asc.evaluation.probe import PROBE_FILES
    from keras_asc.evaluation.probe import probe_run
    from keras_asc.evaluation.runs import eval_dir
    from keras_asc.evaluation.runs import open_run

    run = open_run(run_dir)
    out = eval_dir(run.path, "evaluate")
    report = _fresh(os.path.join(out, "report.json"), run.model_path,
                    {"max_examples": max_examples})  # fmt: skip
    if report is None:
        report = evaluate_run(run, "evaluate", max_examples=max_examples, plots_enabled=False,
                              progress=progress)  # fmt: skip
    wanted = {"max_examples": max_examples, "split_by": split_by,
              "seeds": list(range(probe_seeds))}  # fmt: skip
    probe = _fresh(os.path.join(out, PROBE_FILES["paper"]), run.model_path, wanted)
    if probe is None:
        probe = probe_run(run, "evaluate", max_examples=max_examples, split_by=split_by,
                          probe_seeds=probe_seeds, progress=progress)  # fmt: skip
        probe["max_examples"] = max_examples
        write_json(os.path.join(out, PROBE_FILES["paper"]), probe)
    secondary_result = None
    if secondary:
        wanted = {"max_examples": max_examples, "split_by": split_by, "seed": 0}
        secondary_result = _fresh(os.path.join(out, PROBE_FILES["evaluate"]), run.model_path,
                                  wanted)  # fmt: skip
        if secondary_result is None:
            try:
                secondary_result = probe_run(run, "evaluate", max_examples=max_examples,
                                             split_by=split_by, protocol="evaluate",
                                             progress=progress)  # fmt: skip
            except UserError as err:  # too few evaluate recordings for a 3-way split
                secondary_result = {"error": str(err), "split_by": split_by, "seed": 0}
            secondary_result["max_examples"] = max_examples
            write_json(os.path.join(out, PROBE_FILES["evaluate"]), secondary_result)
    return report, probe, secondary_result


def run_miniature(
    work_dir="miniature",
    config_dir=None,
    seeds=5,
    size="small",
    corpus_seed=0,
    pretrain_corpus_seed=1,
    rows=None,
    vintage=False,
    icl_targets=ICL_TARGETS,
    icl_target=MAIN_ICL_TARGET,
    icl_weight=None,
    weight_grid=WEIGHT_GRID,
    alpha_grid=ALPHA_GRID,
    overrides=(),
    pretrain_overrides=(),
    calibration_overrides=(),
    max_examples=None,
    probe_seeds=5,
    probe_split_by="recording",
    secondary_probe=False,
    out="docs/results_miniature.md",
    progress=True,
):
    """Runs the whole miniature (module docstring) and writes the report.

    Args:
        work_dir: folder for the corpora, TFRecords, runs and timings.
        config_dir: the miniature configs (default: the repository's ``configs/miniature``).
        seeds: paired seeds per main row.
        size: synthetic corpus size (``small``; ``tiny`` for smoke runs).
        corpus_seed, pretrain_corpus_seed: seeds of the two corpora (must differ).
        rows: main rows to run (default: PaSST, + ICL, + Multi DIRs, + ICL + Multi DIRs).
        vintage: also run + Vintage DIRs.
        icl_targets: ICL variants of the calibration (``loss.icl_target`` values; ``None`` in
            the list: the model's default, no override); empty: no calibration.
        icl_target: the variant of the main ICL rows (None: the model's default, ``pooled``).
        icl_weight: λ_ICL of the main ICL rows; None: the calibrated choice for ``icl_target``
            (the config's value when that variant was not calibrated).
        weight_grid, alpha_grid: the calibration grids.
        overrides: ``--set`` strings for every main run (e.g. ``training.epochs=1``).
        pretrain_overrides, calibration_overrides: the same for pretraining / calibration.
        max_examples: evaluate / probe only the first N clips of each split (smoke runs).
        probe_seeds: probe seeds per run (paper protocol).
        probe_split_by: ``recording`` or ``clip`` (corpora with one recording per device).
        secondary_probe: also run the earlier evaluate-split probe (it embeds the evaluate
            clips once more).
        out: the Markdown file (None: not written).
        progress: print progress.

    Returns:
        The results dict (also ``WORK/results.json``).
    """
    from keras_asc.experiments import report
    from keras_asc.training.runner import train_seeds

    config_dir = config_dir or default_config_dir()
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected at least 1")
    if probe_seeds < 1:
        raise UserError(f"--probe-seeds {probe_seeds}: expected at least 1")
    if corpus_seed == pretrain_corpus_seed:
        raise UserError(
            f"--pretrain-corpus-seed {pretrain_corpus_seed}: must differ from --corpus-seed "
            f"(the pretraining corpus must be disjoint from the fine-tuning one)"
        )
    for stem in rows or ():
        if stem not in ALL_ROWS:
            raise UserError(
                f"--rows {stem}: unknown row; expected some of {', '.join(sorted(ALL_ROWS))}"
            )
    for value in [*weight_grid, *alpha_grid]:
        if value < 0:
            raise UserError(f"calibration grid value {value}: expected a number >= 0")
    chosen_rows = list(rows or MAIN_ROWS) + (["vintage_dirs"] if vintage else [])
    selected = [(name, stem) for name, stem in ROWS if stem in chosen_rows]
    os.makedirs(work_dir, exist_ok=True)
    timer = Timer(os.path.join(work_dir, "timings.json"))

    start = time.time()
    data_paths = prepare_data(os.path.join(work_dir, "data", f"seed-{corpus_seed}"), size,
                              corpus_seed, progress=progress)  # fmt: skip
    pretrain_paths = prepare_data(
        os.path.join(work_dir, "data", f"seed-{pretrain_corpus_seed}"), size,
        pretrain_corpus_seed, sets=("tau22",), progress=progress,
    )  # fmt: skip
    timer.add("data", start)

    start = time.time()
    pretrained = pretrain(work_dir, config_dir, pretrain_paths, pretrain_overrides, progress)
    timer.add("pretrain", start)

    calibrated = None
    if icl_targets:
        start = time.time()
        calibrated = calibrate(work_dir, config_dir, data_paths, pretrained["weights"],
                               list(icl_targets), weight_grid, alpha_grid,
                               calibration_overrides, progress)  # fmt: skip
        timer.add("calibration", start)
    main_weight = icl_weight
    if main_weight is None and calibrated is not None:
        choice = calibrated["chosen"].get(str(icl_target))
        main_weight = choice["weight"] if choice else None

    results_rows = []
    for name, stem in selected:
        extra = []
        if stem in ICL_ROWS and (main_weight is not None or icl_target is not None):
            from keras_asc.config.loader import read_config_file

            loss = read_config_file(os.path.join(config_dir, "icl.yaml")).get("loss") or {}
            weight = main_weight if main_weight is not None else loss.get("icl_weight", 0.5)
            extra = icl_overrides(weight, WEIGHT_SEARCH_ALPHA, icl_target)
        config = load(config_dir, stem, data_paths, pretrained["weights"], [*extra, *overrides])
        run_root = os.path.join(work_dir, "runs", stem)
        if progress:
            print(f"== {name} ({stem}.yaml): {seeds} seed(s) into {run_root}", flush=True)
        start = time.time()
        summary = train_seeds(config, run_root, seeds)
        timer.add(f"train/{stem}", start)
        runs = []
        for entry in summary["seeds"]:
            start = time.time()
            report_, probe, secondary = evaluate_and_probe(
                entry["run_dir"], max_examples, probe_seeds, probe_split_by, secondary_probe,
                progress,
            )  # fmt: skip
            timer.add(f"evaluate/{stem}", start)
            runs.append({"seed": entry["seed"], "run_dir": entry["run_dir"], "report": report_,
                         "probe": probe, "probe_secondary": secondary,
                         "history": _last_history_row(entry["run_dir"])})  # fmt: skip
        results_rows.append({"name": name, "stem": stem, "runs": runs,
                             "loss": config["loss"]})  # fmt: skip

    results = {
        "rows": results_rows,
        "pretrain": pretrained,
        "calibration": calibrated,
        "main_icl": {"target": icl_target, "weight": main_weight, "alpha": WEIGHT_SEARCH_ALPHA},
        "timings": timer.values,
        "settings": {
            "work_dir": work_dir,
            "config_dir": config_dir,
            "seeds": seeds,
            "size": size,
            "corpus_seed": corpus_seed,
            "pretrain_corpus_seed": pretrain_corpus_seed,
            "overrides": list(overrides),
            "pretrain_overrides": list(pretrain_overrides),
            "calibration_overrides": list(calibration_overrides),
            "max_examples": max_examples,
            "probe_seeds": probe_seeds,
            "probe_split_by": probe_split_by,
            "weight_grid": list(weight_grid),
            "alpha_grid": list(alpha_grid),
        },  # fmt: skip
    }
    write_json(os.path.join(work_dir, "results.json"), results)
    if out is not None:
        report.write_markdown(out, results)
        if progress:
            print(f"wrote {out}")
    return results
