"""The paper's claims and the issue's goals, tested on paired seeds with Holm's correction.

Each check compares two rows of the miniature (or one row with chance) through the per-seed
differences of one quantity and states the side of a margin the claim puts them on; the numbers
come from :mod:`keras_asc.evaluation.stats`. The text of a claim says what the paper says; the
verdict (``holds`` / ``contradicted`` / ``inconclusive``) is computed, never written by hand.

Quantities of one run (``results["rows"][i]["runs"][j]``):

========== =================================================================================
probe      the paper-protocol device probe: mean balanced accuracy over the probe seeds
overall    log-loss over all ``evaluate`` clips
real       mean log-loss of devices A, B, C
unseen     mean log-loss of devices S4-S6
accuracy   accuracy over all ``evaluate`` clips
========== =================================================================================
"""

import math

import numpy as np

from keras_asc.evaluation import stats
from keras_asc.experiments.paper import ICL_ROWS
from keras_asc.experiments.paper import ROW_NAMES

QUANTITIES = {
    "probe": "probe accuracy",
    "overall": "overall log-loss",
    "real": "real-device log-loss",
    "unseen": "unseen-device log-loss",
    "accuracy": "overall accuracy",
}
PERCENT = ("probe", "accuracy")  # printed in percentage points


class Claim:
    """``sign · (mean(a − b) − margin) > 0``, per seed, for ``quantity``.

    Args:
        text: the statement, as the paper makes it (with its source).
        a, b: row stems; ``b = "chance"`` compares ``a`` with the probe's chance level.
        quantity: a key of :data:`QUANTITIES`.
        sign: -1 (``a − b < margin``) or +1 (``a − b > margin``).
        margin: the claim's threshold (0: a plain direction).
        paper: the paper's value of ``a − b`` (None: not a number of the paper).
        kind: ``"paper"`` (a claim of the paper) or ``"goal"`` (a goal of the issue).
    """

    def __init__(self, text, a, b, quantity, sign=-1, margin=0.0, paper=None, kind="paper"):
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}; expected one of {list(QUANTITIES)}")
        self.text, self.a, self.b, self.quantity = text, a, b, quantity
        self.sign, self.margin, self.paper, self.kind = sign, margin, paper, kind

    def rows(self):
        return (self.a,) if self.b == "chance" else (self.a, self.b)


CLAIMS = (
    Claim("ICL lowers the device information of the embedding (Table 2: −16.4 pp)",
          "icl", "passt", "probe", paper=-0.1639),
    Claim("Multi DIRs lower it (Table 2: −41.0 pp)", "multi_dirs", "passt", "probe",
          paper=-0.4096),
    Claim("Multi DIRs lower it more than ICL (Table 2: −24.6 pp)", "multi_dirs", "icl", "probe",
          paper=-0.2457),
    Claim("ICL + Multi DIRs lower it below Multi DIRs alone (Table 2: −23.6 pp)",
          "multi_icl", "multi_dirs", "probe", paper=-0.2355),
    Claim("Multi DIRs lower the unseen-device log-loss (Table 3: −0.089)",
          "multi_dirs", "passt", "unseen", paper=-0.089),
    Claim("Multi DIRs lower the overall log-loss (Table 3: −0.042)",
          "multi_dirs", "passt", "overall", paper=-0.042),
    Claim("ICL lowers the overall log-loss (Table 3: −0.014)", "icl", "passt", "overall",
          paper=-0.014),
    Claim("ICL lowers the unseen-device log-loss (Table 3: −0.051)", "icl", "passt", "unseen",
          paper=-0.051),
    Claim("ICL raises the real-device log-loss slightly (Table 3: +0.015)",
          "icl", "passt", "real", sign=+1, paper=0.015),
    Claim("ICL + Multi DIRs beat ICL alone overall (Table 3: −0.011)",
          "multi_icl", "icl", "overall", paper=-0.011),
    Claim("Multi DIRs alone beat ICL + Multi DIRs overall (Table 3: −0.017)",
          "multi_dirs", "multi_icl", "overall", paper=-0.017),
    Claim("Vintage DIRs lower the unseen-device log-loss (Table 3: −0.027)",
          "vintage_dirs", "passt", "unseen", paper=-0.027),
    Claim("Vintage DIRs raise the real-device log-loss (Table 3: +0.102)",
          "vintage_dirs", "passt", "real", sign=+1, paper=0.102),
    Claim("Multi DIRs beat Vintage DIRs overall (Table 3: −0.073)",
          "multi_dirs", "vintage_dirs", "overall", paper=-0.073),
    Claim("Goal: + ICL + Multi DIRs probe within 10 pp of chance",
          "multi_icl", "chance", "probe", margin=0.10, kind="goal"),
    Claim("Goal: + ICL + Multi DIRs scene accuracy within 2 pp of the best row without ICL",
          "multi_icl", "best_without_icl", "accuracy", sign=+1, margin=-0.02, kind="goal"),
    Claim("Goal: + ICL scene accuracy within 2 pp of the best row without ICL",
          "icl", "best_without_icl", "accuracy", sign=+1, margin=-0.02, kind="goal"),
)  # fmt: skip


def run_value(run, quantity):
    """One run's value of ``quantity`` (see the module docstring)."""
    if quantity == "probe":
        return run["probe"]["balanced_accuracy"]
    metrics = run["report"]["metrics"]
    if quantity == "overall":
        return metrics["overall"]["log_loss"]
    if quantity == "accuracy":
        return metrics["overall"]["accuracy"]
    return metrics["groups"][quantity]["log_loss"]


def seed_values(row, quantity):
    """``{seed: value}`` of one row."""
    return {run["seed"]: run_value(run, quantity) for run in row["runs"]}


def best_without_icl(by_stem):
    """The row without ICL with the highest mean accuracy (None if there is none)."""
    candidates = [s for s in by_stem if s not in ICL_ROWS]
    if not candidates:
        return None
    return max(candidates, key=lambda s: np.mean(list(seed_values(by_stem[s], "accuracy")
                                                      .values())))  # fmt: skip


def check(claim, by_stem, level=0.95):
    """The paired test of one claim, or None when one of its rows was not run.

    Returns:
        dict: ``claim`` (text), ``kind``, ``a``, ``b`` (stems; ``b`` resolved for
        ``best_without_icl``), ``quantity``, ``sign``, ``margin``, ``paper``, ``seeds`` (the
        paired seeds) and the fields of :func:`stats.paired_difference` (``mean``, ``low``,
        ``high``, ``p``, ...).
    """
    b = best_without_icl(by_stem) if claim.b == "best_without_icl" else claim.b
    if claim.a not in by_stem or b is None or (b != "chance" and b not in by_stem):
        return None
    a_values = seed_values(by_stem[claim.a], claim.quantity)
    if b == "chance":
        chance = by_stem[claim.a]["runs"][0]["probe"]["chance"]
        b_values = {seed: chance for seed in a_values}
    else:
        b_values = seed_values(by_stem[b], claim.quantity)
    seeds = sorted(set(a_values) & set(b_values))
    if not seeds:
        return None
    test = stats.paired_difference(
        [a_values[s] for s in seeds], [b_values[s] for s in seeds], claim.margin, level
    )
    return {"claim": claim.text, "kind": claim.kind, "a": claim.a, "b": b,
            "quantity": claim.quantity, "sign": claim.sign, "paper": claim.paper,
            "seeds": seeds, **test}  # fmt: skip


def check_all(results, claims=CLAIMS, level=0.95, alpha=stats.ALPHA):
    """Every claim whose rows were run, tested and judged with Holm over all of them."""
    by_stem = {row["stem"]: row for row in results["rows"]}
    tests = [t for t in (check(c, by_stem, level) for c in claims) if t is not None]
    return stats.judge(tests, alpha)


def best_runs(results):
    """Per row, the run picked by the paper's rule (lowest overall validation log-loss).

    Returns:
        dict stem -> ``(index, run)``; every column a report prints for "best of seeds" comes
        from this one run.
    """
    picked = {}
    for row in results["rows"]:
        losses = [run_value(run, "overall") for run in row["runs"]]
        index = stats.best_seed_index(losses)
        picked[row["stem"]] = (index, row["runs"][index])
    return picked


def uniform_log_loss(num_classes):
    return math.log(num_classes)


def row_name(stem):
    return ROW_NAMES.get(stem, "chance" if stem == "chance" else stem)
