"""Report figures: confusion matrix and per-device bars (matplotlib, Agg backend, PNG files).

Every function takes plain arrays or a ``scene_metrics`` report, writes one PNG atomically
(a temporary name in the same folder, then a rename, so an existing figure is never left
half-written) and returns the path.
"""

import os

import numpy as np

from asc_core.files import replacing
from asc_core.vocab import DEVICE_GROUPS

FAMILY_COLOURS = {"real": "tab:blue", "simulated": "tab:orange", "unseen": "tab:green"}


def _pyplot():
    from asc_core.extras import require

    matplotlib = require("matplotlib", "plotting")

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=120):
    """Writes ``figure`` as PNG to ``path`` via a temporary file and a rename, then closes it."""
    plt = _pyplot()
    path = os.fspath(path)
    try:
        with replacing(path, suffix=".png") as tmp, open(tmp, "wb") as f:
            figure.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def normalize_rows(matrix):
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrix(matrix, class_names, path, title=None):
    """Confusion matrix as a heat map of row-normalised rates, annotated with counts.

    Args:
        matrix: ``[C, C]`` counts, rows true classes, columns predictions.
        class_names: ``C`` labels.
        path: output PNG.
        title: optional title.
    """
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rates = normalize_rows(matrix)
    size = 0.55 * len(class_names) + 2.5
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted scene")
    ax.set_ylabel("true scene")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour, size=7)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def device_bar_values(report, metric):
    """Per-device values in family order: ``(names, values, families)``; ``nan`` when absent."""
    names, values, families = [], [], []
    for family, members in DEVICE_GROUPS.items():
        for device in members:
            value = report["devices"][device][metric]
            names.append(device.upper())
            values.append(np.nan if value is None else float(value))
            families.append(family)
    return names, np.array(values), families


def plot_device_bars(report, path, title=None):
    """Per-device accuracy and log-loss bars, coloured by family, with the family means.

    Absent devices get no bar and an ``n/a`` mark. Args: a ``scene_metrics`` report, the output
    PNG and an optional title.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric, label in (
        (axes[0], "accuracy", "accuracy [%]"),
        (axes[1], "log_loss", "log-loss"),
    ):
        names, values, families = device_bar_values(report, metric)
        scale = 100.0 if metric == "accuracy" else 1.0
        x = np.arange(len(names))
        colours = [FAMILY_COLOURS.get(f, "grey") for f in families]
        ax.bar(x, np.nan_to_num(values * scale), color=colours)
        for i, value in enumerate(values):
            if np.isnan(value):
                ax.text(i, 0, "n/a", ha="center", va="bottom", size=8, rotation=90)
        for family, members in DEVICE_GROUPS.items():
            mean = report["groups"][family][metric]
            if mean is None:
                continue
            idx = [names.index(m.upper()) for m in members]
            ax.hlines(
                mean * scale,
                min(idx) - 0.4,
                max(idx) + 0.4,
                colors="black",
                linestyles="dashed",
                label=f"{family} mean" if metric == "accuracy" else None,
            )
        ax.set_xticks(x, labels=names)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in FAMILY_COLOURS.values()]
    axes[1].legend(
        handles, list(FAMILY_COLOURS), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
