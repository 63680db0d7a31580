"""Markdown tables in the layout of the paper's Tables 1-3.

- Table 3: one row per method, columns ``A B C Avg | S1 S2 S3 Avg | S4 S5 S6 Avg | Overall``, for
  log-loss (3 decimals) or accuracy (percent, 2 decimals). The family averages are the means of
  the device values (``scene_metrics``' ``groups``), ``Overall`` pools every clip.
- Table 1: the α grid and the λ_ICL grid side by side, log-loss and accuracy for each.
- Table 2: device-probe accuracy per method against chance.

Several runs of one method (seeds) give two rows: ``best`` (the run with the best overall value
of the table's metric: lowest log-loss, highest accuracy; the paper's "best of three") and
``mean ± std`` over the runs, cell by cell, with the SAMPLE standard deviation (``ddof=1``).
Absent values (a device missing from the split) print as ``n/a``.
"""

import numpy as np

from asc_core.vocab import DEVICE_GROUPS

ABSENT = "n/a"

GROUP_TITLES = {"real": "Avg real", "simulated": "Avg sim.", "unseen": "Avg unseen"}


def _table3_columns():
    """Each device family's devices, then its average, then the pooled value."""
    columns = []
    for group, devices in DEVICE_GROUPS.items():
        columns += [(device.upper(), ("devices", device)) for device in devices]
        columns.append((GROUP_TITLES[group], ("groups", group)))
    return (*columns, ("Overall", ("overall", None)))


# (column title, where the value lives in a scene_metrics report): A B C Avg real S1 ... Overall.
TABLE3_COLUMNS = _table3_columns()

METRICS = ("log_loss", "accuracy")


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def format_value(value, metric, std=None):
    """One table cell: log-loss with 3 decimals, accuracy in percent with 2; ``n/a`` if absent."""
    _check_metric(metric)
    if value is None or np.isnan(value):
        return ABSENT
    scale, digits = (1.0, 3) if metric == "log_loss" else (100.0, 2)
    text = f"{value * scale:.{digits}f}"
    if std is not None and not np.isnan(std):
        text += f" ± {std * scale:.{digits}f}"
    return text


def table3_cells(report, metric="log_loss"):
    """The 13 Table-3 values of one ``scene_metrics`` report (``None`` where absent)."""
    _check_metric(metric)
    cells = []
    for _, (section, key) in TABLE3_COLUMNS:
        entry = report[section] if key is None else report[section].get(key)
        cells.append(None if entry is None else entry.get(metric))
    return cells


def _better(a, b, metric):
    """True when overall value ``a`` beats ``b`` (``None`` never wins)."""
    if a is None:
        return False
    if b is None:
        return True
    return a < b if metric == "log_loss" else a > b


def summarize_runs(reports, metric="log_loss"):
    """Best run and cell-wise mean ± sample std of several runs of one method.

    Args:
        reports: list of ``scene_metrics`` reports (one per seed).
        metric: ``"log_loss"`` or ``"accuracy"``.

    Returns:
        ``{"n", "best_index", "best", "mean", "std"}``: ``best_index`` picks the run with the best
        ``overall`` value; ``best``/``mean``/``std`` are lists of the 13 Table-3 values
        (``std`` is ``None`` for a single run, and where fewer than two runs have the value).
    """
    _check_metric(metric)
    if not reports:
        raise ValueError("summarize_runs needs at least one report")
    cells = [table3_cells(r, metric) for r in reports]
    best_index = 0
    for i in range(1, len(cells)):
        if _better(cells[i][-1], cells[best_index][-1], metric):
            best_index = i
    mean, std = [], []
    for column in zip(*cells):
        present = [v for v in column if v is not None]
        mean.append(float(np.mean(present)) if present else None)
        std.append(float(np.std(present, ddof=1)) if len(present) > 1 else None)
    return {
        "n": len(reports),
        "best_index": best_index,
        "best": cells[best_index],
        "mean": mean,
        "std": std,
    }


def markdown_table(header, rows, align):
    """A Markdown table: ``header`` and ``rows`` of cell strings, ``align`` per column
    (``---`` left, ``---:`` right)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table3(methods, metric="log_loss"):
    """Table 3 as Markdown.

    Args:
        methods: ``[(method_name, [report, ...]), ...]`` in row order; each report is a
            ``scene_metrics`` dict. One report gives one row named ``method_name``; several give
            ``method_name (best of n)`` and ``method_name (mean ± std, n)``.
        metric: ``"log_loss"`` or ``"accuracy"``.

    Returns:
        The Markdown table (no trailing newline).
    """
    _check_metric(metric)
    header = ["Method"] + [title for title, _ in TABLE3_COLUMNS]
    rows = []
    for name, reports in methods:
        summary = summarize_runs(reports, metric)
        if summary["n"] == 1:
            rows.append([name] + [format_value(v, metric) for v in summary["best"]])
            continue
        n = summary["n"]
        rows.append([f"{name} (best of {n})"] + [format_value(v, metric) for v in summary["best"]])
        rows.append(
            [f"{name} (mean ± std, n={n})"]
            + [format_value(m, metric, s) for m, s in zip(summary["mean"], summary["std"])]
        )
    return markdown_table(header, rows, ["---"] + ["---:"] * len(TABLE3_COLUMNS))


def table3_title(metric, split):
    """A one-line caption for :func:`table3`."""
    what = "Log-loss" if metric == "log_loss" else "Accuracy [%]"
    groups = ", ".join(f"{k} ({' '.join(v).upper()})" for k, v in DEVICE_GROUPS.items())
    return (
        f"{what} on the `{split}` split, 1-s clips; family averages are means of device "
        f"values ({groups}); Overall pools all clips."
    )


def _grid_value(value):
    return f"{value:g}"


def table1(alpha_rows, weight_rows):
    """Table 1: the α grid and the λ_ICL grid side by side.

    Args:
        alpha_rows: ``[(alpha, log_loss, accuracy), ...]`` of the α search (fixed λ_ICL).
        weight_rows: ``[(weight, log_loss, accuracy), ...]`` of the λ_ICL search (fixed α).
            Either list may be empty or shorter; missing cells are blank.

    Returns:
        Markdown with columns ``α | LogLoss | Acc. [%] | λ_ICL | LogLoss | Acc. [%]``.
    """
    header = ["α", "LogLoss", "Acc. [%]", "λ_ICL", "LogLoss", "Acc. [%]"]
    rows = []
    for i in range(max(len(alpha_rows), len(weight_rows))):
        row = []
        for grid in (alpha_rows, weight_rows):
            if i < len(grid):
                value, loss, acc = grid[i]
                row += [
                    _grid_value(value),
                    format_value(loss, "log_loss"),
                    format_value(acc, "accuracy"),
                ]
            else:
                row += ["", "", ""]
        rows.append(row)
    return markdown_table(header, rows, ["---:"] * 6)


def icl_grids(records, alpha_search_weight=10.0, weight_search_alpha=0.2, aggregate="best"):
    """Splits runs into the paper's two one-dimensional ICL grids.

    The α search fixes λ_ICL (10 in the paper), the λ_ICL search fixes α (0.2); a run at
    ``(0.2, 10)`` belongs to both. Several runs at one grid point are reduced to the best run
    (lowest log-loss, reporting that run's accuracy) or to the mean of each metric.

    Args:
        records: ``[{"alpha", "weight", "log_loss", "accuracy"}, ...]``.
        alpha_search_weight: the λ_ICL shared by the α-search runs.
        weight_search_alpha: the α shared by the λ_ICL-search runs.
        aggregate: ``"best"`` or ``"mean"``.

    Returns:
        ``(alpha_rows, weight_rows)`` sorted by the searched value, ready for :func:`table1`.
    """
    if aggregate not in ("best", "mean"):
        raise ValueError(f"aggregate must be 'best' or 'mean', got {aggregate!r}")

    def reduce(points):
        rows = []
        for value in sorted(points):
            runs = points[value]
            if aggregate == "best":
                best = min(runs, key=lambda r: np.inf if r["log_loss"] is None else r["log_loss"])
                rows.append((value, best["log_loss"], best["accuracy"]))
            else:
                losses = [r["log_loss"] for r in runs if r["log_loss"] is not None]
                accs = [r["accuracy"] for r in runs if r["accuracy"] is not None]
                rows.append(
                    (
                        value,
                        float(np.mean(losses)) if losses else None,
                        float(np.mean(accs)) if accs else None,
                    )
                )
        return rows

    alpha_points, weight_points = {}, {}
    for record in records:
        if np.isclose(record["weight"], alpha_search_weight):
            alpha_points.setdefault(float(record["alpha"]), []).append(record)
        if np.isclose(record["alpha"], weight_search_alpha):
            weight_points.setdefault(float(record["weight"]), []).append(record)
    return reduce(alpha_points), reduce(weight_points)


def table2(methods):
    """Table 2: device-probe accuracy per method against chance.

    Args:
        methods: ``[(method_name, [probe_result, ...]), ...]``; a probe result is the dict of
            ``probe.device_probe`` (``balanced_accuracy``, ``chance``). Several results of one
            method print as ``mean ± std`` (sample std) with their count.

    Returns:
        Markdown with columns ``Method | Accuracy [%] | Chance [%] | Runs``.
    """
    header = ["Method", "Accuracy [%]", "Chance [%]", "Runs"]
    rows = []
    for name, results in methods:
        if not results:
            raise ValueError(f"method {name!r} has no probe result")
        accs = [r["balanced_accuracy"] for r in results]
        chance = results[0]["chance"]
        if len(accs) == 1:
            cell = format_value(accs[0], "accuracy")
        else:
            cell = format_value(float(np.mean(accs)), "accuracy", float(np.std(accs, ddof=1)))
        rows.append([name, cell, format_value(chance, "accuracy"), str(len(accs))])
    return markdown_table(header, rows, ["---", "---:", "---:", "---:"])
