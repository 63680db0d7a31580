"""Exact Markdown layouts of the paper's Tables 1-3."""

import numpy as np
import pytest

from asc_core.vocab import DEVICE_GROUPS
from asc_core.vocab import DEVICES
from keras_asc.evaluation import tables

# The paper's Table 3 "PaSST" row (log-loss), to build a report with known cells.
PASST = dict(zip(DEVICES, (1.012, 1.266, 1.070, 1.371, 1.492, 1.326, 1.401, 1.36, 1.509)))


def fake_report(log_losses, accuracies=None, overall=None, absent=()):
    """A scene_metrics-shaped report with given device values and group means."""
    accuracies = accuracies or {d: 0.5 for d in DEVICES}
    devices = {}
    for d in DEVICES:
        if d in absent:
            devices[d] = {"count": 0, "accuracy": None, "log_loss": None}
        else:
            devices[d] = {"count": 10, "accuracy": accuracies[d], "log_loss": log_losses[d]}
    groups = {}
    for family, members in DEVICE_GROUPS.items():
        present = [m for m in members if m not in absent]
        groups[family] = {
            "accuracy": float(np.mean([accuracies[m] for m in present])) if present else None,
            "log_loss": float(np.mean([log_losses[m] for m in present])) if present else None,
        }
    overall = overall or (1.181, 0.6)
    return {
        "devices": devices,
        "groups": groups,
        "overall": {"log_loss": overall[0], "accuracy": overall[1]},
    }


HEADER = (
    "| Method | A | B | C | Avg real | S1 | S2 | S3 | Avg sim. | S4 | S5 | S6 | Avg unseen "
    "| Overall |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def test_table3_single_run_reproduces_paper_row():
    text = tables.table3([("PaSST", [fake_report(PASST)])], metric="log_loss")
    assert text == (
        HEADER + "\n| PaSST | 1.012 | 1.266 | 1.070 | 1.116 | 1.371 | 1.492 | 1.326 | 1.396 "
        "| 1.401 | 1.360 | 1.509 | 1.423 | 1.181 |"
    )


def test_table3_absent_devices_print_na():
    report = fake_report(PASST, absent=("s4", "s5", "s6"))
    row = tables.table3([("m", [report])]).splitlines()[2]
    assert row.endswith("| 1.326 | 1.396 | n/a | n/a | n/a | n/a | 1.181 |")


def test_table3_accuracy_in_percent():
    acc = {d: 0.1 * (i + 1) for i, d in enumerate(DEVICES)}
    text = tables.table3([("m", [fake_report(PASST, acc, overall=(1.0, 0.5))])], "accuracy")
    assert text.splitlines()[2] == (
        "| m | 10.00 | 20.00 | 30.00 | 20.00 | 40.00 | 50.00 | 60.00 | 50.00 | 70.00 | 80.00 "
        "| 90.00 | 80.00 | 50.00 |"
    )


def test_table3_several_seeds_best_and_mean_std():
    runs = [
        fake_report({d: 1.0 for d in DEVICES}, overall=(1.2, 0.6)),
        fake_report({d: 0.8 for d in DEVICES}, overall=(1.0, 0.5)),
        fake_report({d: 0.9 for d in DEVICES}, overall=(1.1, 0.7)),
    ]
    lines = tables.table3([("ICL", runs)], "log_loss").splitlines()
    assert len(lines) == 4
    # Best = lowest overall log-loss (run 2).
    assert lines[2] == "| ICL (best of 3) | " + " | ".join(["0.800"] * 12 + ["1.000"]) + " |"
    # Mean 0.9, sample std 0.1 in every device cell; overall 1.1 ± 0.1.
    assert lines[3] == (
        "| ICL (mean ± std, n=3) | " + " | ".join(["0.900 ± 0.100"] * 12 + ["1.100 ± 0.100"]) + " |"
    )
    # For accuracy the best run is the highest overall accuracy (run 3).
    summary = tables.summarize_runs(runs, "accuracy")
    assert summary["best_index"] == 2
    assert summary["std"][-1] == pytest.approx(0.1)


def test_table1_side_by_side_with_uneven_grids():
    text = tables.table1(
        [(0.0, 1.265, 0.5172), (0.2, 1.270, 0.5128), (1.5, 2.166, 0.216)],
        [(0.1, 1.139, 0.5687), (0.5, 1.100, 0.5832)],
    )
    assert text == (
        "| α | LogLoss | Acc. [%] | λ_ICL | LogLoss | Acc. [%] |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        "| 0 | 1.265 | 51.72 | 0.1 | 1.139 | 56.87 |\n"
        "| 0.2 | 1.270 | 51.28 | 0.5 | 1.100 | 58.32 |\n"
        "| 1.5 | 2.166 | 21.60 |  |  |  |"
    )


def test_icl_grids_split_and_best_of_seeds():
    records = [
        {"alpha": 0.0, "weight": 10.0, "log_loss": 1.3, "accuracy": 0.50},
        {"alpha": 0.2, "weight": 10.0, "log_loss": 1.27, "accuracy": 0.51},
        {"alpha": 0.2, "weight": 10.0, "log_loss": 1.29, "accuracy": 0.53},
        {"alpha": 0.2, "weight": 0.5, "log_loss": 1.10, "accuracy": 0.58},
        {"alpha": 0.4, "weight": 0.5, "log_loss": 1.00, "accuracy": 0.60},  # in neither grid
    ]
    alpha_rows, weight_rows = tables.icl_grids(records)
    assert alpha_rows == [(0.0, 1.3, 0.50), (0.2, 1.27, 0.51)]
    assert weight_rows == [(0.5, 1.10, 0.58), (10.0, 1.27, 0.51)]
    alpha_rows, _ = tables.icl_grids(records, aggregate="mean")
    assert alpha_rows[1] == (0.2, pytest.approx(1.28), pytest.approx(0.52))


def test_table2_probe_rows():
    text = tables.table2(
        [
            ("PaSST", [{"balanced_accuracy": 0.8204, "chance": 1 / 6}]),
            (
                "+ ICL",
                [
                    {"balanced_accuracy": 0.60, "chance": 1 / 6},
                    {"balanced_accuracy": 0.70, "chance": 1 / 6},
                ],
            ),
        ]
    )
    assert text == (
        "| Method | Accuracy [%] | Chance [%] | Runs |\n"
        "|---|---:|---:|---:|\n"
        "| PaSST | 82.04 | 16.67 | 1 |\n"
        "| + ICL | 65.00 ± 7.07 | 16.67 | 2 |"
    )


def test_bad_metric_raises():
    with pytest.raises(ValueError, match="metric must be one of"):
        tables.table3([("m", [fake_report(PASST)])], metric="f1")
