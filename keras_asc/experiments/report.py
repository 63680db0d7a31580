"""``docs/results_miniature.md`` from the miniature's results (:mod:`keras_asc.experiments.driver`).

Every number on the page is computed from ``results`` (the runs' reports, probes and histories);
every verdict comes from :func:`keras_asc.experiments.claims.check_all` (paired-by-seed t
intervals, Holm over all checks). Rules the page follows:

- "best of seeds" is the seed with the lowest overall validation log-loss, and every column of a
  best row (log-loss, accuracy, probe) comes from that seed (the paper's rule);
- accuracy is printed next to log-loss, and a log-loss above ``ln(10)`` (worse than predicting
  the uniform distribution) is marked ``†``: there it measures calibration more than recognition;
- the probe is the paper's protocol (mean and t interval over probe seeds); the earlier
  evaluate-split probe is listed per run as a secondary measure.

A hand-written discussion between the ``reading`` markers of an existing file is kept, but only
from a page written by this generator (:data:`GENERATOR_MARK`): the discussion of the earlier
miniature's page argued from numbers of the old protocol and is not carried over.
"""

import datetime
import os

from asc_core.files import atomic_write_text
from asc_core.vocab import SCENES
from keras_asc.evaluation import stats
from keras_asc.evaluation import tables
from keras_asc.experiments import calibration
from keras_asc.experiments import claims
from keras_asc.experiments import paper

READING_START = "<!-- reading:start -->"
READING_END = "<!-- reading:end -->"
DEFAULT_READING = (
    "_No hand-written discussion yet: add it between the `reading` markers; "
    "`scripts/reproduce_miniature.py` keeps it when it rewrites this file._"
)
WORSE_THAN_UNIFORM = "†"
GENERATOR_MARK = "<!-- generator: keras_asc.experiments.report, protocol 2 -->"


def _pct(value, digits=2):
    return tables.ABSENT if value is None else f"{100 * value:.{digits}f}"


def _num(value, digits=3):
    return tables.ABSENT if value is None else f"{value:.{digits}f}"


def _loss_cell(value):
    flag = WORSE_THAN_UNIFORM if stats.worse_than_uniform(value, len(SCENES)) else ""
    return tables.format_value(value, "log_loss") + flag


def _ci(low, high, scale=1.0, digits=3):
    if low is None:
        return "n/a (1 seed)"
    return f"[{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"


# === Table 3 ===


def table3(results, metric):
    """Best-of-seeds (picked by log-loss for every column) and mean ± sd rows per method."""
    best = claims.best_runs(results)
    header = ["Method"] + [title for title, _ in tables.TABLE3_COLUMNS]
    rows = []
    for row in results["rows"]:
        index, run = best[row["stem"]]
        cells = tables.table3_cells(run["report"]["metrics"], metric)
        fmt = _loss_cell if metric == "log_loss" else (lambda v: tables.format_value(v, metric))
        n = len(row["runs"])
        rows.append([f"{row['name']} (best of {n}: seed {run['seed']})"] + [fmt(v) for v in cells])
        if n > 1:
            summary = tables.summarize_runs([r["report"]["metrics"] for r in row["runs"]], metric)
            rows.append([f"{row['name']} (mean ± sd)"] + [
                tables.format_value(m, metric, s) for m, s in zip(summary["mean"], summary["std"])
            ])  # fmt: skip
    return tables.markdown_table(header, rows, ["---"] + ["---:"] * len(tables.TABLE3_COLUMNS))


# === Table 2 ===


def table2(results):
    """Probe accuracy per method: best seed (its probe interval) and mean over training seeds."""
    best = claims.best_runs(results)
    header = ["Method", "Best seed [%] (95 % CI over probe seeds)",
              "Mean over training seeds [%] (95 % CI)", "Chance [%]", "Seeds"]  # fmt: skip
    rows = []
    for row in results["rows"]:
        _, run = best[row["stem"]]
        probe = run["probe"]
        ci = probe.get("balanced_accuracy_ci")
        best_cell = _pct(probe["balanced_accuracy"]) + (
            f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
        )
        values = [r["probe"]["balanced_accuracy"] for r in row["runs"]]
        interval = stats.t_interval(values)
        mean_cell = _pct(interval["mean"]) + (
            f" [{_pct(interval['low'])}, {_pct(interval['high'])}]"
            if interval["low"] is not None else ""
        )  # fmt: skip
        rows.append([f"{row['name']} (seed {run['seed']})", best_cell, mean_cell,
                     _pct(probe["chance"]), str(len(values))])  # fmt: skip
    return tables.markdown_table(header, rows, ["---", "---:", "---:", "---:", "---:"])


# === Table 1 ===


def calibration_tables(results):
    """Per ICL variant: the λ_ICL grid and the α grid with accuracy, log-loss and diagnostics."""
    cal = results.get("calibration")
    if not cal:
        return ["_No calibration was run (`--icl-targets` empty)._", ""]
    records = cal["records"]
    present = [(key, title) for key, title in calibration.DIAGNOSTICS
               if any(key in r["diagnostics"] for r in records)]  # fmt: skip
    header = ["Grid", "λ_ICL", "α", "LogLoss", "Acc. [%]"] + [t for _, t in present]
    parts = []
    for target in cal["targets"]:
        weight_records, alpha_records = calibration.grids(
            records, target, cal["alpha"], cal["alpha_search_weight"]
        )
        rows = []
        for grid, recs in (("λ", weight_records), ("α", alpha_records)):
            for r in recs:
                rows.append([grid, f"{r['weight']:g}", f"{r['alpha']:g}", _loss_cell(r["val_loss"]),
                             _pct(r["val_accuracy"])]
                            + [_num(r["diagnostics"].get(k)) for k, _ in present])  # fmt: skip
        parts += [f"Variant `{target or 'default'}`:", "",
                  tables.markdown_table(header, rows, ["---"] + ["---:"] * (len(header) - 1)),
                  ""]  # fmt: skip
        choice = cal["chosen"].get(str(target))
        if choice is not None:
            if choice["criterion_met"]:
                parts.append(
                    f"Chosen λ_ICL: {choice['weight']:g}, the largest within "
                    f"{100 * choice['tolerance']:.0f} pp of λ_ICL 0's accuracy "
                    f"({_pct(choice['baseline_accuracy'])} %)."
                )
            else:
                parts.append(
                    f"No λ_ICL > 0 stayed within {100 * choice['tolerance']:.0f} pp of λ_ICL 0's "
                    f"accuracy ({_pct(choice['baseline_accuracy'])} %): the criterion is not met; "
                    f"the smallest grid value, {choice['weight']:g}, would be used."
                )
            parts.append("")
    return parts


# === Claims ===


def claims_table(tests):
    header = ["Check", "Seeds", "Mean Δ", "95 % CI", "p", "p (Holm)", "Verdict", "Paper Δ"]
    rows = []
    for t in tests:
        percent = t["quantity"] in claims.PERCENT
        scale, digits, unit = (100.0, 2, " pp") if percent else (1.0, 3, "")
        what = f"{claims.QUANTITIES[t['quantity']]}: {claims.row_name(t['a'])} − " + (
            claims.row_name(t["b"])
        )
        side = "<" if t["sign"] < 0 else ">"
        claim = f"{t['claim']} — Δ {what} {side} {t['margin'] * scale:g}{unit}"
        rows.append([
            claim,
            str(t["n"]),
            f"{t['mean'] * scale:+.{digits}f}{unit}",
            _ci(t["low"], t["high"], scale, digits),
            tables.ABSENT if t["p"] is None else f"{t['p']:.3f}",
            tables.ABSENT if t["p_holm"] is None else f"{t['p_holm']:.3f}",
            f"**{t['verdict']}**",
            tables.ABSENT if t["paper"] is None else f"{t['paper'] * scale:+.{digits}f}{unit}",
        ])  # fmt: skip
    return tables.markdown_table(header, rows, ["---", "---:", "---:", "---:", "---:", "---:",
                                                "---", "---:"])  # fmt: skip


# === Per run ===


def per_run_table(results):
    header = ["Method", "Seed", "Probe [%] (95 % CI)", "Probe, evaluate split [%]",
              "Overall log-loss", "Unseen log-loss", "Accuracy [%]"]  # fmt: skip
    rows = []
    for row in results["rows"]:
        for run in row["runs"]:
            probe = run["probe"]
            ci = probe.get("balanced_accuracy_ci")
            secondary = run.get("probe_secondary") or {}
            rows.append([
                row["name"], str(run["seed"]),
                _pct(probe["balanced_accuracy"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci
                                                    else ""),
                _pct(secondary.get("balanced_accuracy")),
                _loss_cell(claims.run_value(run, "overall")),
                _loss_cell(claims.run_value(run, "unseen")),
                _pct(claims.run_value(run, "accuracy")),
            ])  # fmt: skip
    return tables.markdown_table(header, rows, ["---"] + ["---:"] * 6)


def diagnostics_table(results):
    """ICL diagnostics of the main runs' last epoch (None when no run logged any)."""
    keys = [(k, t) for k, t in calibration.DIAGNOSTICS
            if any(k in (run.get("history") or {}) for row in results["rows"]
                   for run in row["runs"])]  # fmt: skip
    if not keys:
        return None
    rows = []
    for row in results["rows"]:
        for run in row["runs"]:
            history = run.get("history") or {}
            if any(k in history for k, _ in keys):
                rows.append([row["name"], str(run["seed"])]
                            + [_num(history.get(k)) for k, _ in keys])  # fmt: skip
    return tables.markdown_table(["Method", "Seed"] + [t for _, t in keys], rows,
                                 ["---"] + ["---:"] * (len(keys) + 1))  # fmt: skip


def keep_reading(path):
    if not os.path.isfile(path):
        return DEFAULT_READING
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if GENERATOR_MARK not in text:
        return DEFAULT_READING
    start, end = text.find(READING_START), text.find(READING_END)
    if start < 0 or end < start:
        return DEFAULT_READING
    return text[start + len(READING_START) : end].strip() or DEFAULT_READING


def _main_icl_sentence(results):
    main = results.get("main_icl") or {}
    rows = {row["stem"]: row for row in results["rows"]}
    icl = rows.get("icl") or rows.get("multi_icl")
    if icl is None:
        return ""
    loss = icl.get("loss") or {}
    return (
        f" The ICL rows use λ_ICL {loss.get('icl_weight', main.get('weight'))}, α "
        f"{loss.get('icl_alpha', main.get('alpha'))} and the variant "
        f"`{loss.get('icl_target', main.get('target')) or 'default'}`."
    )


def render_markdown(results, reading=DEFAULT_READING):
    """The report as Markdown (see the module docstring)."""
    settings = results["settings"]
    timings = results["timings"]
    total_s = sum(v for v in timings.values() if isinstance(v, int | float))
    tests = claims.check_all(results)
    counts = {v: sum(t["verdict"] == v for t in tests) for v in stats.VERDICTS}
    pre = results.get("pretrain") or {}
    pre_last = (pre.get("summary") or {}).get("last") or {}
    parts = [
        GENERATOR_MARK,
        "# Results: a CPU miniature of the paper's Tables 1-3",
        "",
        "Written by `python scripts/reproduce_miniature.py` "
        f"({datetime.date.today().isoformat()}; {settings['seeds']} paired seed(s) per row, "
        f"`{settings['size']}` synthetic corpora: seed {settings['corpus_seed']} for "
        f"fine-tuning and evaluation, seed {settings['pretrain_corpus_seed']} for pretraining"
        + (
            f"; main-run overrides `{' '.join(settings['overrides'])}`"
            if settings["overrides"]
            else ""
        )
        + (
            f"; first {settings['max_examples']} clips per split only"
            if settings["max_examples"]
            else ""
        )
        + f"). Machine time: {total_s / 60:.1f} min. Every number below is computed from the "
        "runs in the work directory, and every verdict from paired-by-seed statistics; "
        "see `keras_asc/experiments/` for the rules.",
        "",
        "Setup: `passt_tiny` (2 blocks, width 64) pretrained with device-balanced "
        "cross-entropy on the disjoint corpus (the stand-in for AudioSet"
        + (
            f"; last epoch: validation log-loss {_num(pre_last.get('val_loss'))}, accuracy "
            f"{_pct(pre_last.get('val_accuracy'))} % on the pretraining corpus"
            if pre_last
            else ""
        )
        + "), then fine-tuned per row with the paper's recipe (`configs/miniature/*.yaml`), the "
        "last epoch's weights kept (chosen in advance)."
        + _main_icl_sentence(results)
        + " Absolute values are not comparable with the paper (another dataset, a 1000× "
        "smaller model); the directions of the differences are.",
        "",
        "## Table 1 analogue: λ_ICL and α per ICL variant (validation, one seed)",
        "",
        "The λ_ICL grid at α = 0.2 and the α grid at λ_ICL = 10, as in the paper; the chosen "
        "λ_ICL is the largest within 2 pp of λ_ICL = 0 in accuracy (the paper's criterion). "
        "Diagnostics of the last epoch where the run logged them.",
        "",
        *calibration_tables(results),
        "Paper (TAU22, PaSST-S):",
        "",
        paper.table1_markdown(),
        "",
        "## Table 3 analogue: log-loss on the `evaluate` split (1-s clips)",
        "",
        "`best of n` is the seed with the lowest overall log-loss, and every column of that "
        f"row is from that seed. `{WORSE_THAN_UNIFORM}`: log-loss above ln 10 = 2.303, worse "
        "than predicting the uniform distribution.",
        "",
        table3(results, "log_loss"),
        "",
        "Accuracy [%] (best row: the same seed as above, picked by log-loss):",
        "",
        table3(results, "accuracy"),
        "",
        "Paper (TAU22, PaSST-S fine-tuned from AudioSet, best of 3 seeds, log-loss):",
        "",
        paper.table3_markdown(),
        "",
        "## Table 2 analogue: device information in the frozen embedding",
        "",
        "The paper's protocol: a LayerNorm + Dense probe fit with class-balanced cross-entropy "
        "on the training-split embeddings of the six training devices (early stopping on "
        "held-out training recordings), tested on every `evaluate` clip of those devices; "
        f"balanced accuracy, mean over {settings['probe_seeds']} probe seeds. The best-seed "
        "interval is over probe seeds (how precisely one encoder was measured); the mean's "
        "interval is over training seeds.",
        "",
        table2(results),
        "",
        "Paper:",
        "",
        paper.table2_markdown(),
        "",
        "## The paper's claims and the issue's goals, tested",
        "",
        "Δ = per-seed difference of the two rows (same seed: same pretrained start, data order "
        "and DIR draws), mean over seeds with its t interval; p: two-sided paired t test of "
        "Δ = margin; Holm's correction over all the checks below. **holds**: Holm p < 0.05 and "
        "the mean on the claimed side; **contradicted**: Holm p < 0.05 and the mean on the "
        "other side; **inconclusive**: otherwise. "
        f"Here: {counts['holds']} hold, {counts['contradicted']} contradicted, "
        f"{counts['inconclusive']} inconclusive.",
        "",
        claims_table(tests) if tests else "_No check had both of its rows run._",
        "",
        "## Per run",
        "",
        per_run_table(results),
        "",
        *(
            [
                "ICL diagnostics of the last epoch, as the model logged them:",
                "",
                diagnostics_table(results),
                "",
            ]
            if diagnostics_table(results)
            else []
        ),
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
            [[key, f"{value / 60:.1f}"] for key, value in timings.items()]
            + [["total", f"{total_s / 60:.1f}"]],
            ["---", "---:"],
        ),
        "",
    ]
    return "\n".join(parts)


def write_markdown(path, results):
    """Writes the report atomically, keeping the hand-written reading of an existing file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, render_markdown(results, keep_reading(path)))
