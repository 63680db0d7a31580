"""Statistics for the miniature's claims: paired-by-seed t intervals, Holm, symmetric verdicts.

A claim compares two rows run with the same seeds (same initialisation, data order and DIR draws
per seed), so the unit of evidence is the per-seed difference ``d_s = a_s - b_s``. With ``n``
seeds its mean has the t interval ``mean ± t(1 - (1 - level) / 2, n - 1) · sd / sqrt(n)``
(``sd`` with ``ddof = 1``), and the two-sided p-value of ``H0: E[d] = margin`` is
``2 · P(T_{n-1} > |mean - margin| / (sd / sqrt(n)))``.

A claim says that ``d`` lies on one side of a margin (``d < 0``: "ICL lowers the probe
accuracy"; ``d > -0.02``: "no more than 2 pp worse"). The verdict is symmetric:

- ``holds``: the Holm-adjusted p-value is below ``alpha`` and the mean is on the claimed side;
- ``contradicted``: the Holm-adjusted p-value is below ``alpha`` and the mean is on the other side;
- ``inconclusive``: otherwise (including ``n < 2``, where there is no noise estimate).

Holm's step-down correction runs over every claim of one report, so a page of eleven claims does
not get eleven chances at a 5 % false verdict.

"Best of seeds" follows the paper (Table 3: "trained for three different seeds and best
performance is picked"): the seed with the lowest validation log-loss is picked once, and every
column of that row (accuracy, log-loss per device, probe) comes from that seed.
"""

import math

import numpy as np

ALPHA = 0.05
VERDICTS = ("holds", "contradicted", "inconclusive")


def t_interval(values, level=0.95):
    """Mean and two-sided t interval of ``values`` (sample sd, ``ddof = 1``).

    Args:
        values: 1-D sequence of numbers (NaN not allowed).
        level: coverage of the interval.

    Returns:
        dict ``n``, ``mean``, ``sd``, ``se``, ``df``, ``t`` (the quantile), ``half_width``,
        ``low``, ``high``; with one value ``sd``/``se``/``t``/``half_width``/``low``/``high`` are
        None (no spread to estimate).
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"t_interval needs a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"t_interval: non-finite values {x.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = int(x.size)
    out = {"n": n, "mean": float(x.mean()), "sd": None, "se": None, "df": n - 1, "t": None,
           "half_width": None, "low": None, "high": None, "level": level}  # fmt: skip
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    t = float(stats.t.ppf(1 - (1 - level) / 2, n - 1))
    out.update(sd=sd, se=se, t=t, half_width=t * se, low=out["mean"] - t * se,
               high=out["mean"] + t * se)  # fmt: skip
    return out


def paired_difference(a, b, margin=0.0, level=0.95):
    """Per-seed differences ``a - b`` with their t interval and the p-value against ``margin``.

    Args:
        a, b: per-seed values of two rows, in the same seed order (equal length).
        margin: the value of ``E[a - b]`` under the null hypothesis.
        level: coverage of the interval.

    Returns:
        :func:`t_interval` of the differences plus ``differences`` (list), ``margin``,
        ``t_stat`` and ``p`` (two-sided; None with fewer than two seeds; 0 when every difference
        is the same and differs from ``margin``, 1 when it equals it).
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired_difference needs two 1-D sequences of equal length, got {a.shape} and "
            f"{b.shape} (one value per seed of each row)"
        )
    d = a - b
    out = t_interval(d, level)
    out.update(differences=d.tolist(), margin=float(margin), t_stat=None, p=None)
    if out["n"] < 2:
        return out
    offset = out["mean"] - margin
    # Identical differences (up to rounding): no spread, the sign alone decides.
    if out["se"] <= 1e-12 * max(1.0, abs(out["mean"])):
        out["p"] = 1.0 if offset == 0 else 0.0
        out["t_stat"] = 0.0 if offset == 0 else math.copysign(math.inf, offset)
        return out
    t_stat = offset / out["se"]
    out["t_stat"] = float(t_stat)
    out["p"] = float(2 * stats.t.sf(abs(t_stat), out["df"]))
    return out


def holm(p_values):
    """Holm's step-down adjusted p-values (same order as given; None stays None).

    The ``k``-th smallest of ``m`` p-values is multiplied by ``m - k + 1`` (k from 1), made
    non-decreasing along the sorted order and capped at 1. Rejecting where the adjusted value is
    below ``alpha`` controls the family-wise error rate at ``alpha``.
    """
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(mean, margin, sign, p_adjusted, alpha=ALPHA):
    """``holds`` / ``contradicted`` / ``inconclusive`` for a claim ``sign · (d - margin) > 0``.

    Args:
        mean: the mean per-seed difference.
        margin: the claim's threshold.
        sign: -1 for a claim ``d < margin``, +1 for ``d > margin``.
        p_adjusted: the Holm-adjusted p-value (None: no test possible).
        alpha: family-wise error rate.
    """
    if sign not in (-1, 1):
        raise ValueError(f"sign must be -1 or +1, got {sign!r}")
    if p_adjusted is None or p_adjusted >= alpha or mean == margin:
        return "inconclusive"
    return "holds" if sign * (mean - margin) > 0 else "contradicted"


def judge(tests, alpha=ALPHA):
    """Holm-corrects a family of paired tests and gives each its verdict.

    Args:
        tests: list of dicts with at least ``mean``, ``margin``, ``p`` (from
            :func:`paired_difference`) and ``sign`` (the claimed side).
        alpha: family-wise error rate.

    Returns:
        New dicts: the input plus ``p_holm`` and ``verdict``.
    """
    adjusted = holm([t["p"] for t in tests])
    out = []
    for test, p_adj in zip(tests, adjusted):
        out.append(
            {
                **test,
                "p_holm": p_adj,
                "verdict": verdict(test["mean"], test["margin"], test["sign"], p_adj, alpha),
            }
        )
    return out


def best_seed_index(val_log_losses):
    """Index of the seed with the lowest validation log-loss (the paper's "best of seeds")."""
    values = np.asarray(val_log_losses, dtype=np.float64)
    if values.size == 0:
        raise ValueError("best_seed_index needs at least one value")
    finite = np.where(np.isfinite(values), values, np.inf)
    return int(np.argmin(finite))


def worse_than_uniform(log_loss, num_classes):
    """True when ``log_loss`` exceeds ``ln(num_classes)``, the loss of the uniform prediction.

    Such a loss says more about calibration than about recognition: a model that predicts the
    uniform distribution would score better.
    """
    return log_loss is not None and bool(log_loss > math.log(num_classes))
