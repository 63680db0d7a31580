"""``scripts/reproduce_miniature.py``: a CPU miniature of the paper's Tables 2 and 3.

Steps (each one is skipped when its output exists, so a killed run started again with the same
command continues where it stopped; training itself resumes mid-run):

1. ``python -m tfrecords_builder synthetic --size small`` writes the raw corpus in the TAU22,
   MicIRP and Surrey layouts; the ``tau22``, ``micirp`` and ``multi-dirs`` builders turn it into
   TFRecords (``WORK/raw``, ``WORK/tfrecords``).
2. The five Table 3 rows (``configs/miniature/*.yaml``) are trained for ``seeds`` seeds each
   (:func:`keras_asc.training.runner.train_seeds`, ``WORK/runs/<row>/seed-S``).
3. Every run is evaluated on the 1-s clips of the ``evaluate`` split
   (:func:`keras_asc.evaluation.evaluate.evaluate_run`) and its frozen encoder probed for device
   information (:func:`keras_asc.evaluation.probe.probe_run`, the paper's Table 2 protocol).
4. ``docs/results_miniature.md`` gets the analogues of Tables 2 and 3 (best of the seeds and
   mean ± std), the paper's numbers, and a check of each of the paper's claims computed from the
   runs. A hand-written discussion between the ``reading`` markers of an existing file is kept.

Timings of every step are written to ``WORK/timings.json`` and into the Markdown file.
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from keras_asc.errors import UserError
from keras_asc.evaluation import tables
from keras_asc.evaluation.runs import atomic_write_text
from keras_asc.evaluation.runs import write_json

# (method name as in the paper, config file stem in configs/miniature/)
ROWS = (
    ("PaSST", "passt"),
    ("+ Vintage DIRs", "vintage_dirs"),
    ("+ Multi DIRs", "multi_dirs"),
    ("+ ICL", "icl"),
    ("+ ICL + Multi DIRs", "multi_icl"),
)

# Paper Table 3 (validation log-loss, best of three seeds), in tables.TABLE3_COLUMNS order.
PAPER_TABLE3 = {
    "PaSST": (1.012, 1.266, 1.070, 1.116, 1.371, 1.492, 1.326, 1.396, 1.401, 1.36, 1.509, 1.423,
              1.181),
    "+ Vintage DIRs": (1.082, 1.360, 1.212, 1.218, 1.462, 1.449, 1.361, 1.424, 1.343, 1.289,
                       1.557, 1.396, 1.212),
    "+ Multi DIRs": (0.979, 1.221, 1.090, 1.097, 1.347, 1.427, 1.318, 1.364, 1.277, 1.302, 1.425,
                     1.334, 1.139),
    "+ ICL": (1.021, 1.297, 1.074, 1.131, 1.375, 1.465, 1.325, 1.388, 1.284, 1.364, 1.467, 1.372,
              1.167),
    "+ ICL + Multi DIRs": (1.030, 1.190, 1.139, 1.096, 1.372, 1.412, 1.318, 1.367, 1.302, 1.327,
                           1.474, 1.368, 1.156),
}  # fmt: skip

# Paper Table 2 (device-probe accuracy [%] on the six training devices; chance 16.67 %).
PAPER_TABLE2 = {
    "PaSST": 82.04,
    "+ ICL": 65.65,
    "+ Multi DIRs": 41.08,
    "+ ICL + Multi DIRs": 17.53,
}

TIMING_NAMES = {"data_s": "corpus + TFRecords"}

READING_START = "<!-- reading:start -->"
READING_END = "<!-- reading:end -->"
DEFAULT_READING = (
    "_No hand-written discussion yet: add it between the `reading` markers; "
    "`scripts/reproduce_miniature.py` keeps it when it rewrites this file._"
)

RAW_TAU22 = "TAU-urban-acoustic-scenes-2022-mobile-development"
RAW_MICIRP = "micirp"
RAW_SURREY = "Microphone_Impulse_Responses"


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


def prepare_data(work_dir, size="small", corpus_seed=0, progress=True):
    """Synthetic raw corpus and its three TFRecord sets under ``work_dir`` (skipped when present).

    Returns:
        dict of TFRecord folders: ``tau22``, ``micirp``, ``multi_dirs``.
    """
    raw = os.path.join(work_dir, "raw")
    out = os.path.join(work_dir, "tfrecords")
    if not os.path.isfile(os.path.join(raw, "manifest.json")):
        _run_builder(
            ["synthetic", "--out", raw, "--size", size, "--seed", str(corpus_seed)], progress
        )
    else:
        _check_corpus(raw, size, corpus_seed)
    paths = {name: os.path.join(out, name) for name in ("tau22", "micirp", "multi_dirs")}
    builds = (
        ("tau22", RAW_TAU22, paths["tau22"]),
        ("micirp", RAW_MICIRP, paths["micirp"]),
        ("multi-dirs", RAW_SURREY, paths["multi_dirs"]),
    )
    for command, source, target in builds:
        if not os.path.isfile(os.path.join(target, "info.json")):
            args = [command, "--source", os.path.join(raw, source), "--out", target]
            _run_builder(args, progress)
    return paths


def _check_corpus(raw, size, corpus_seed):
    """An existing corpus must be the one asked for (a work dir is not silently reused)."""
    with open(os.path.join(raw, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    found = (manifest.get("size"), manifest.get("seed"))
    if found != (size, corpus_seed):
        raise UserError(
            f"{raw}: holds a synthetic corpus of size {found[0]!r} and seed {found[1]!r}; "
            f"expected size {size!r} and seed {corpus_seed!r} (use another --work-dir)"
        )


# === Training, evaluation, probe ===


def row_config(config_dir, stem, data_paths, overrides=()):
    """The resolved config of one row with its data paths pointed at the work directory."""
    from keras_asc.config.loader import load_config

    path = os.path.join(config_dir, f"{stem}.yaml")
    sets = []
    raw = _read_raw_dirs(path)
    for name in raw:
        # configs name the sets by their folder (…/micirp, …/multi_dirs)
        sets.append(data_paths[os.path.basename(os.path.normpath(name))])
    fixed = [f"data.path={data_paths['tau22']}"]
    if sets:
        fixed.append("dirs.sets=[" + ", ".join(sets) + "]")
    return load_config(path, overrides=[*fixed, *overrides])


def _read_raw_dirs(path):
    from keras_asc.config.loader import read_config_file

    dirs = read_config_file(path).get("dirs") or {}
    return list(dirs.get("sets") or [])


def _fresh(path, model_path):
    return os.path.isfile(path) and os.path.getmtime(path) >= os.path.getmtime(model_path)


def evaluate_and_probe(
    run_dir, max_examples=None, probe_seed=0, split_by="recording", progress=True
):
    """Evaluation report and device probe of one finished run (cached beside the run).

    Returns:
        ``(report, probe)`` dicts as written to ``RUN_DIR/eval/evaluate/``.
    """
    from keras_asc.evaluation.evaluate import evaluate_run
    from keras_asc.evaluation.probe import probe_run
    from keras_asc.evaluation.runs import eval_dir
    from keras_asc.evaluation.runs import open_run

    run = open_run(run_dir)
    out = eval_dir(run.path, "evaluate")
    report_path = os.path.join(out, "report.json")
    probe_path = os.path.join(out, "probe.json")
    report = probe = None
    if _fresh(report_path, run.model_path):
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
        if report.get("max_examples") != max_examples:
            report = None
    if report is None:
        report = evaluate_run(run, "evaluate", max_examples=max_examples, progress=progress)
    if _fresh(probe_path, run.model_path):
        with open(probe_path, encoding="utf-8") as f:
            probe = json.load(f)
        wanted = (max_examples, probe_seed, split_by)
        if (probe.get("max_examples"), probe.get("seed"), probe.get("split_by")) != wanted:
            probe = None
    if probe is None:
        probe = probe_run(
            run,
            "evaluate",
            max_examples=max_examples,
            seed=probe_seed,
            split_by=split_by,
            progress=progress,
        )
        probe["max_examples"] = max_examples
        write_json(probe_path, probe)
    return report, probe


def run_miniature(
    work_dir="miniature",
    config_dir=None,
    seeds=3,
    size="small",
    corpus_seed=0,
    rows=None,
    overrides=(),
    max_examples=None,
    probe_split_by="recording",
    out="docs/results_miniature.md",
    progress=True,
):
    """Runs the whole miniature and writes the Markdown report.

    Args:
        work_dir: folder for the corpus, TFRecords, runs and timings.
        config_dir: folder of the row configs (default: the repository's ``configs/miniature``).
        seeds: seeds per row (the paper uses three).
        size: synthetic corpus size (``small``; ``tiny`` for smoke runs).
        corpus_seed: seed of the synthetic corpus.
        rows: config stems to run (default: all five rows, in the paper's order).
        overrides: ``--set`` strings applied to every row config (e.g. ``training.epochs=1``).
        max_examples: evaluate / probe only the first N clips (smoke runs); None: all.
        probe_split_by: ``recording`` (the probe's fit/stop/test parts never share a 10-s
            recording) or ``clip`` (for corpora with too few recordings per device).
        out: the Markdown file (None: not written).
        progress: print progress.

    Returns:
        dict with ``rows`` (per row: name, stem, runs with report and probe), ``timings``.
    """
    from keras_asc.training.runner import train_seeds

    config_dir = config_dir or default_config_dir()
    known = {stem for _, stem in ROWS}
    for stem in rows or ():
        if stem not in known:
            raise UserError(
                f"--rows {stem}: unknown row; expected some of {', '.join(sorted(known))}"
            )
    selected = [(name, stem) for name, stem in ROWS if rows is None or stem in rows]
    os.makedirs(work_dir, exist_ok=True)
    timings_path = os.path.join(work_dir, "timings.json")
    timings = _read_json(timings_path, {})

    start = time.time()
    data_paths = prepare_data(work_dir, size, corpus_seed, progress)
    timings.setdefault("data_s", round(time.time() - start, 1))
    write_json(timings_path, timings)

    results = []
    for name, stem in selected:
        config = row_config(config_dir, stem, data_paths, overrides)
        run_root = os.path.join(work_dir, "runs", stem)
        if progress:
            print(f"== {name} ({stem}.yaml): {seeds} seed(s) into {run_root}", flush=True)
        t0 = time.time()
        summary = train_seeds(config, run_root, seeds)
        _add_time(timings, f"train/{stem}", t0)
        write_json(timings_path, timings)
        runs = []
        for entry in summary["seeds"]:
            t0 = time.time()
            report, probe = evaluate_and_probe(
                entry["run_dir"],
                max_examples=max_examples,
                split_by=probe_split_by,
                progress=progress,
            )
            _add_time(timings, f"evaluate/{stem}", t0)
            runs.append({"seed": entry["seed"], "run_dir": entry["run_dir"], "report": report,
                         "probe": probe})  # fmt: skip
        write_json(timings_path, timings)
        results.append({"name": name, "stem": stem, "runs": runs})

    result = {
        "rows": results,
        "timings": timings,
        "settings": {
            "work_dir": work_dir,
            "seeds": seeds,
            "size": size,
            "corpus_seed": corpus_seed,
            "overrides": list(overrides),
            "max_examples": max_examples,
            "probe_split_by": probe_split_by,
            "config_dir": config_dir,
        },
    }
    write_json(os.path.join(work_dir, "results.json"), result)
    if out is not None:
        write_markdown(out, result)
        if progress:
            print(f"wrote {out}")
    return result


def _read_json(path, default):
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _add_time(timings, key, start):
    # Accumulates over resumed invocations, so the total is the machine time actually spent.
    timings[key] = round(timings.get(key, 0.0) + time.time() - start, 1)


def default_config_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "configs", "miniature"))


# === Claims ===


def _group(report, group):
    m = report["metrics"]
    return m["overall"]["log_loss"] if group == "overall" else m["groups"][group]["log_loss"]


def _values(row, what):
    """Per-seed values of a row: a log-loss group or the probe's balanced accuracy."""
    if what == "probe":
        return [r["probe"]["balanced_accuracy"] for r in row["runs"]]
    return [_group(r["report"], what) for r in row["runs"]]


def compare(rows_by_stem, better, worse, what):
    """Does ``better`` have a lower value of ``what`` than ``worse``?

    Returns:
        dict: ``delta`` (mean of ``better`` − mean of ``worse``; negative = the claim's direction),
        ``se`` (standard error of that difference from the seed spread; None with one seed),
        ``best_delta`` (best-of-seeds difference), ``verdict``: ``holds`` (both differences
        negative and |delta| > 2 se), ``holds within noise`` (mean difference negative but
        inside 2 se, or only the best-of-seeds one is), ``does not hold``; with one seed
        ``direction holds (1 seed)`` or ``does not hold``.
    """
    a = np.asarray(_values(rows_by_stem[better], what), dtype=np.float64)
    b = np.asarray(_values(rows_by_stem[worse], what), dtype=np.float64)
    delta = float(a.mean() - b.mean())
    best_delta = float(a.min() - b.min())
    se = None
    if a.size > 1 and b.size > 1:
        se = float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    if se is None:  # one seed: no noise estimate, only a direction
        verdict = "direction holds (1 seed)" if delta < 0 else "does not hold"
    elif delta < 0 and best_delta < 0 and -delta > 2 * se:
        verdict = "holds"
    elif delta < 0 or best_delta < 0:
        verdict = "holds within noise"
    else:
        verdict = "does not hold"
    return {"delta": delta, "se": se, "best_delta": best_delta, "verdict": verdict}


# (claim, better row, worse row, quantity) — each a statement of the paper, Secs. 5.4-5.5.
CLAIMS = (
    ("ICL lowers the device information of the embedding (Table 2)", "icl", "passt", "probe"),
    ("Multi-DIR augmentation lowers it (Table 2)", "multi_dirs", "passt", "probe"),
    ("augmentation lowers it more than ICL (Table 2)", "multi_dirs", "icl", "probe"),
    ("ICL + Multi DIRs lowers it most (Table 2)", "multi_icl", "multi_dirs", "probe"),
    ("Multi DIRs lower unseen-device log-loss (Table 3, ≈ −0.09)", "multi_dirs", "passt", "unseen"),
    ("Vintage DIRs lower unseen-device log-loss (Table 3, −0.03)", "vintage_dirs", "passt",
     "unseen"),
    ("Multi DIRs lower overall log-loss (Table 3, −0.04)", "multi_dirs", "passt", "overall"),
    ("Multi DIRs beat Vintage DIRs overall (Table 3, −0.07)", "multi_dirs", "vintage_dirs",
     "overall"),
    ("ICL lowers overall log-loss (Table 3, −0.01)", "icl", "passt", "overall"),
    ("ICL lowers unseen-device log-loss (Table 3, −0.05)", "icl", "passt", "unseen"),
    ("ICL + Multi DIRs beats ICL alone overall (Table 3, −0.01)", "multi_icl", "icl", "overall"),
)  # fmt: skip


def claim_checks(results):
    """Every claim in :data:`CLAIMS` whose rows were run, with :func:`compare`'s numbers."""
    by_stem = {row["stem"]: row for row in results["rows"]}
    checks = []
    for text, better, worse, what in CLAIMS:
        if better in by_stem and worse in by_stem:
            checks.append({"claim": text, "better": better, "worse": worse, "what": what,
                           **compare(by_stem, better, worse, what)})  # fmt: skip
    return checks


def device_gap(row):
    """Mean over seeds of (unseen − real) log-loss: the seen/unseen gap (≈ 0.31 in the paper)."""
    return float(np.mean([_group(r["report"], "unseen") - _group(r["report"], "real")
                          for r in row["runs"]]))  # fmt: skip


def seed_rows(results):
    """Per run: method, seed, probe balanced accuracy, overall and unseen log-loss."""
    out = []
    for row in results["rows"]:
        for run in row["runs"]:
            report = run["report"]
            out.append((row["name"], run.get("seed"), run["probe"]["balanced_accuracy"],
                        _group(report, "overall"), _group(report, "unseen")))  # fmt: skip
    return out


def probe_loss_correlation(results):
    """Spearman correlation over all runs of probe accuracy with overall / unseen log-loss.

    The paper's thesis in one number: if less device information in the embedding goes with
    better generalisation, the correlation is positive. None with fewer than three runs.
    """
    from scipy.stats import spearmanr

    rows = seed_rows(results)
    if len(rows) < 3:
        return None
    probe = [r[2] for r in rows]
    return {
        "runs": len(rows),
        "overall": float(spearmanr(probe, [r[3] for r in rows]).statistic),
        "unseen": float(spearmanr(probe, [r[4] for r in rows]).statistic),
    }


# === Markdown ===


def paper_table3():
    header = ["Method"] + [title for title, _ in tables.TABLE3_COLUMNS]
    align = ["---"] + ["---:"] * len(tables.TABLE3_COLUMNS)
    rows = [[name] + [f"{v:.3f}" for v in values] for name, values in PAPER_TABLE3.items()]
    return tables.markdown_table(header, rows, align)


def paper_table2():
    rows = [[name, f"{acc:.2f}", "16.67"] for name, acc in PAPER_TABLE2.items()]
    header = ["Method", "Accuracy [%]", "Chance [%]"]
    return tables.markdown_table(header, rows, ["---", "---:", "---:"])


def _keep_reading(path):
    if not os.path.isfile(path):
        return DEFAULT_READING
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(READING_START), text.find(READING_END)
    if start < 0 or end < start:
        return DEFAULT_READING
    return text[start + len(READING_START) : end].strip() or DEFAULT_READING


def _format_delta(check, what):
    scale, unit = (100.0, " pp") if what == "probe" else (1.0, "")
    text = f"{check['delta'] * scale:+.3f}{unit}"
    if check["se"] is not None:
        text += f" (± {check['se'] * scale:.3f} s.e.)"
    return text + f"; best-of-seeds {check['best_delta'] * scale:+.3f}{unit}"


def render_markdown(results, reading=DEFAULT_READING):
    """The report as Markdown (see :func:`write_markdown`)."""
    rows = results["rows"]
    settings = results["settings"]
    methods = [(r["name"], [run["report"]["metrics"] for run in r["runs"]]) for r in rows]
    probes = [(r["name"], [run["probe"] for run in r["runs"]]) for r in rows]
    timings = results["timings"]
    split_by = "10-s recording" if settings["probe_split_by"] == "recording" else "clip"
    total_s = sum(v for v in timings.values() if isinstance(v, (int, float)))
    parts = [
        "# Results: a CPU miniature of the paper's Tables 2 and 3",
        "",
        "Written by `python scripts/reproduce_miniature.py` "
        f"({datetime.date.today().isoformat()}; settings: {settings['seeds']} seed(s) per row, "
        f"`{settings['size']}` synthetic corpus, seed {settings['corpus_seed']}"
        + (f", overrides `{' '.join(settings['overrides'])}`" if settings["overrides"] else "")
        + (f", first {settings['max_examples']} clips only" if settings["max_examples"] else "")
        + f"). Machine time: {total_s / 60:.1f} min. The rows are `configs/miniature/*.yaml`: "
        "the paper's recipes on the 2-block, width-64 `passt_tiny` model trained from scratch "
        "on the synthetic corpus (see the configs for every deviation), each evaluated with the "
        "weights of its last epoch (`training.final_weights: last`; the paper's \"best\" is "
        "the best of three seeds, which the `best` rows give). Tables below: runs of "
        "this project; the paper's numbers follow for comparison — absolute values are not "
        "comparable (another dataset, a 1000× smaller model without AudioSet pre-training), "
        "only the directions of the differences are.",
        "",
        "## Table 3 analogue: log-loss on the `evaluate` split (1-s clips)",
        "",
        tables.table3(methods, "log_loss"),
        "",
        "Accuracy [%]:",
        "",
        tables.table3(methods, "accuracy"),
        "",
        "Paper (TAU22, PaSST-S fine-tuned from AudioSet, best of 3 seeds, log-loss):",
        "",
        paper_table3(),
        "",
        "## Table 2 analogue: device information in the frozen embedding",
        "",
        "A LayerNorm + Dense probe (the scene head's capacity) trained with class-balanced "
        "cross-entropy on the embeddings of the six training devices' `evaluate` clips "
        f"(60/20/20 split by {split_by}, early stopping); balanced accuracy on the held-out "
        "part.",
        "",
        tables.table2(probes),
        "",
        "Paper:",
        "",
        paper_table2(),
        "",
        "Per run (the probe's spread between seeds is large, so the runs are listed):",
        "",
        tables.markdown_table(
            ["Method", "Seed", "Probe accuracy [%]", "Overall log-loss", "Unseen log-loss"],
            [[name, str(seed), f"{acc * 100:.2f}", f"{overall:.3f}", f"{unseen:.3f}"]
             for name, seed, acc, overall, unseen in seed_rows(results)],
            ["---", "---:", "---:", "---:", "---:"],
        ),  # fmt: skip
        "",
        "## The paper's claims, checked on these runs",
        "",
        "Δ = mean over seeds of the first row minus the second (negative: the paper's "
        "direction), with the standard error of that difference from the seed spread. "
        "`holds`: both the mean and the best-of-seeds differences point the paper's way and "
        "|Δ| > 2 s.e.; `holds within noise`: the direction is right but not beyond the seed "
        "noise (or only for the best seeds); `does not hold`: the opposite direction.",
        "",
    ]
    check_rows = []
    for check in claim_checks(results):
        check_rows.append([check["claim"], _format_delta(check, check["what"]), check["verdict"]])
    if check_rows:
        parts.append(tables.markdown_table(["Claim", "Δ here", "Verdict"], check_rows,
                                      ["---", "---:", "---"]))  # fmt: skip
        parts.append("")
    correlation = probe_loss_correlation(results)
    if correlation is not None:
        parts.append(
            f"Across all {correlation['runs']} runs, the Spearman correlation of probe accuracy "
            f"with log-loss is {correlation['overall']:+.2f} (overall) and "
            f"{correlation['unseen']:+.2f} (unseen devices): positive means that runs whose "
            "embedding carries less device information generalise better."
        )
        parts.append("")
    by_stem = {r["stem"]: r for r in rows}
    if "passt" in by_stem:
        parts.append(
            f"Seen/unseen gap of the baseline (unseen − real log-loss, mean over seeds): "
            f"{device_gap(by_stem['passt']):+.3f} here, +0.307 in the paper."
        )
        parts.append("")
    parts += [
        "## Reading",
        "",
        READING_START,
        reading,
        READING_END,
        "",
        "## Time",
        "",
        tables.markdown_table(
            ["Step", "Minutes"],
            [[TIMING_NAMES.get(key, key), f"{value / 60:.1f}"] for key, value in timings.items()]
            + [["total", f"{total_s / 60:.1f}"]],
            ["---", "---:"],
        ),
        "",
    ]
    return "\n".join(parts)


def write_markdown(path, results):
    """Writes the report atomically, keeping the hand-written reading of an existing file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_write_text(path, render_markdown(results, _keep_reading(path)))


# === Command line ===


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_miniature.py",
        description="CPU miniature of the paper's Tables 2 and 3: the five Table-3 rows x seeds "
        "on the synthetic corpus, evaluation, device probe, docs/results_miniature.md. "
        "Started again after a kill, it continues where it stopped.",
    )
    parser.add_argument("--work-dir", default="miniature", help="corpus, TFRecords and runs")
    parser.add_argument("--out", default="docs/results_miniature.md", help="the Markdown report")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--config-dir", default=None, help="row configs (configs/miniature)")
    parser.add_argument(
        "--rows", nargs="+", default=None, metavar="ROW",
        help="config stems to run (default: passt vintage_dirs multi_dirs icl multi_icl)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override every row config, e.g. --set training.epochs=1 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--max-examples", type=int, default=None,
        help="evaluate and probe only the first N clips (smoke runs)",
    )  # fmt: skip
    parser.add_argument(
        "--probe-split-by", choices=("recording", "clip"), default="recording",
        help="split of the probe's clips (clip: for corpora with few recordings per device)",
    )  # fmt: skip
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: expected at least 1")
    result = run_miniature(
        work_dir=args.work_dir,
        config_dir=args.config_dir,
        seeds=args.seeds,
        size=args.size,
        corpus_seed=args.corpus_seed,
        rows=args.rows,
        overrides=args.overrides,
        max_examples=args.max_examples,
        probe_split_by=args.probe_split_by,
        out=args.out,
    )
    for check in claim_checks(result):
        print(f"{check['verdict']:>20}: {check['claim']}")
    return 0
