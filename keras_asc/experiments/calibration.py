"""The Table 1 analogue: λ_ICL and α grids per ICL variant, and the paper's choice of λ_ICL.

The paper (§5.2) searched α at λ_ICL 10 and λ_ICL at α 0.2, one dimension at a time, and kept
λ_ICL = 0.5 because "increasing too much decreases performance by 2 % accuracy". Read as a rule:
the largest λ_ICL whose validation accuracy is within 2 pp of λ_ICL = 0 (:func:`choose_weight`).
α is not chosen here: the grid is reported and the paper's α = 0.2 is used (the paper picked it
although α 0.4 was also within 2 pp, so its α choice is no simple rule).

One calibration run gives one record: ``{"target", "weight", "alpha", "val_loss",
"val_accuracy", "diagnostics", "run_dir"}`` from the last epoch of its history (the weights are
fixed in advance: the last epoch, no pick by validation).
"""

import math

# The ICL diagnostics a run's history may carry (logged by the model when ICL is on).
DIAGNOSTICS = (
    ("icl_embedding_norm", "\\|z\\|"),
    ("icl_cos_cls_dist", "cos(cls, dist)"),
    ("icl_clip_share", "clip share"),
    ("icl_distance_ratio", "d same / d cross"),
    ("icl_same_device_fraction", "same-device pairs"),
    ("icl_grad_share", "ICL grad share"),
)


def record_from_history(history_row, target, weight, alpha, run_dir):
    """A calibration record from the last history row of a run."""
    diagnostics = {key: history_row[key] for key, _ in DIAGNOSTICS if key in history_row}
    return {
        "target": target,
        "weight": float(weight),
        "alpha": float(alpha),
        "val_loss": history_row.get("val_loss"),
        "val_accuracy": history_row.get("val_accuracy"),
        "diagnostics": diagnostics,
        "run_dir": run_dir,
    }


def choose_weight(records, tolerance=0.02):
    """The largest λ_ICL whose accuracy is within ``tolerance`` of λ_ICL = 0's.

    Args:
        records: calibration records of one variant at one α, including λ_ICL = 0.
        tolerance: allowed accuracy drop (0.02 = 2 pp).

    Returns:
        dict ``weight`` (the choice; the smallest λ > 0 of the grid when none qualifies),
        ``criterion_met`` (False in that fallback), ``baseline_accuracy``, ``tolerance``.

    Raises:
        ValueError: no λ_ICL = 0 record or no λ_ICL > 0 record.
    """
    base = [r for r in records if r["weight"] == 0]
    positive = sorted((r for r in records if r["weight"] > 0), key=lambda r: r["weight"])
    if not base or not positive:
        raise ValueError("choose_weight needs a λ_ICL = 0 record and at least one λ_ICL > 0")
    base_acc = base[0]["val_accuracy"]
    within = [r for r in positive if _finite(r["val_accuracy"])
              and r["val_accuracy"] >= base_acc - tolerance - 1e-12]  # fmt: skip
    if within:
        return {"weight": within[-1]["weight"], "criterion_met": True,
                "baseline_accuracy": base_acc, "tolerance": tolerance}  # fmt: skip
    return {"weight": positive[0]["weight"], "criterion_met": False,
            "baseline_accuracy": base_acc, "tolerance": tolerance}  # fmt: skip


def _finite(value):
    return value is not None and math.isfinite(value)


def grids(records, target, weight_search_alpha=0.2, alpha_search_weight=10.0):
    """The two one-dimensional grids of one variant (λ_ICL = 0 belongs to every variant).

    Returns:
        ``(weight_records, alpha_records)``, each sorted by the searched value.
    """

    def close(x, y):
        return abs(x - y) < 1e-9

    mine = [r for r in records if r["target"] == target or r["weight"] == 0]
    weight = [r for r in mine if r["weight"] == 0 or close(r["alpha"], weight_search_alpha)]
    alpha = [r for r in mine if r["weight"] > 0 and close(r["weight"], alpha_search_weight)]
    return (sorted(weight, key=lambda r: r["weight"]), sorted(alpha, key=lambda r: r["alpha"]))


def plan(targets, weight_grid, alpha_grid, weight_search_alpha=0.2, alpha_search_weight=10.0):
    """The calibration runs: ``[(target, weight, alpha), ...]``, λ_ICL = 0 once (target None).

    The λ grid runs at ``weight_search_alpha``; the α grid at ``alpha_search_weight`` (the point
    shared by both grids is run once).
    """
    runs = []
    if 0 in weight_grid:
        runs.append((None, 0.0, weight_search_alpha))
    for target in targets:
        points = [(float(w), float(weight_search_alpha)) for w in weight_grid if w > 0]
        points += [(float(alpha_search_weight), float(a)) for a in alpha_grid]
        seen = []
        for point in points:
            if point not in seen:
                seen.append(point)
        runs += [(target, w, a) for w, a in seen]
    return runs


def run_name(target, weight, alpha):
    """Folder name of one calibration run, e.g. ``tokens-l0.5-a0.2`` (λ_ICL 0: ``off-l0-a0.2``)."""
    return f"{target or 'default'}-l{weight:g}-a{alpha:g}" if weight else f"off-l0-a{alpha:g}"
