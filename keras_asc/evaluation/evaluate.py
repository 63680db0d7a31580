"""Scene-classification report of one or more run directories.

For each ``--run RUN_DIR`` the model (``RUN_DIR/model.keras``) is run over the 1-s clips of
``--split`` of the TFRecord folder named by ``RUN_DIR/config.yaml`` (``data.path``, or
``--data``). Per run it writes ``RUN_DIR/eval/<split>/``: ``predictions.tsv`` (DCASE submission
format), ``report.json``, ``confusion.png`` and ``devices.png``. It prints the paper's Table 3
(log-loss, then accuracy). Several run directories are seeds of one method: the table shows the
best run and the mean ± std; ``--out`` writes the combined JSON. ``--compare`` puts several
combined reports (one per method) into one Table 3, as in the paper. Layouts:
``docs/report_schema.md``.

A split without scene labels (an evaluation set) is predicted and its predictions written; the
report says it is unlabelled and has no metrics.
"""

import os

import numpy as np

from asc_core.errors import UserError
from asc_core.files import atomic_write_text
from asc_core.files import write_json
from keras_asc.evaluation import metrics
from keras_asc.evaluation import plots
from keras_asc.evaluation import runs as run_io
from keras_asc.evaluation import tables

REPORT_VERSION = 1


def evaluate_predictions(predicted, split):
    """Metrics of predicted clips (only the labelled ones count).

    Args:
        predicted: the dict of :func:`runs.predict_clips`.
        split: split name, for the report.

    Returns:
        ``(report, probabilities)``: the report dict (``labelled``, counts and, when labelled,
        ``metrics`` = :func:`metrics.scene_metrics`) and ``[N, C]`` probabilities.
    """
    probabilities = metrics.softmax(predicted["logits"])
    labels = predicted["scene_id"]
    labelled = labels >= 0
    report = {
        "split": split,
        "num_clips": int(labels.size),
        "num_labelled": int(labelled.sum()),
        "labelled": bool(labelled.any()),
        "metrics": None,
    }
    if labelled.any():
        report["metrics"] = metrics.scene_metrics(
            labels[labelled], probabilities[labelled], predicted["device_id"][labelled]
        )
    return report, probabilities


def evaluate_run(
    run,
    split="evaluate",
    data=None,
    batch_size=64,
    max_examples=None,
    plots_enabled=True,
    progress=True,
):
    """Predicts one run on a split and writes ``RUN_DIR/eval/<split>/`` (see module docstring).

    Returns:
        The run's report dict (also written as ``report.json``).
    """
    data_path = run.data_path(data)
    run_io.check_split(data_path, split)
    model = run.load_model()
    predicted = run_io.predict_clips(
        model,
        data_path,
        split,
        batch_size=batch_size,
        max_examples=max_examples,
        progress=progress,
    )
    report, probabilities = evaluate_predictions(predicted, split)
    out_dir = run_io.eval_dir(run.path, split)
    files = {
        "predictions": atomic_write_text(
            os.path.join(out_dir, "predictions.tsv"),
            run_io.predictions_tsv(predicted["filename"], probabilities),
        )
    }
    if report["labelled"] and plots_enabled:
        m = report["metrics"]
        files["confusion"] = plots.plot_confusion_matrix(
            m["confusion_matrix"],
            m["class_names"],
            os.path.join(out_dir, "confusion.png"),
            title=f"{run.name} — {split}",
        )
        files["devices"] = plots.plot_device_bars(
            m, os.path.join(out_dir, "devices.png"), title=f"{run.name} — {split}"
        )
    report.update(
        {
            "version": REPORT_VERSION,
            "run_dir": run.path,
            "run": run.name,
            "data": data_path,
            "max_examples": max_examples,
            "files": files,
        }
    )
    write_json(os.path.join(out_dir, "report.json"), report)
    return report


def summary(reports):
    """Best run and mean ± std of the Table-3 cells for log-loss and accuracy (labelled runs)."""
    labelled = [r for r in reports if r["labelled"]]
    if not labelled:
        return None
    out = {"columns": [title for title, _ in tables.TABLE3_COLUMNS]}
    for metric in tables.METRICS:
        s = tables.summarize_runs([r["metrics"] for r in labelled], metric)
        s["best_run"] = labelled[s["best_index"]]["run"]
        out[metric] = s
    dgs = [r["metrics"]["dg"] for r in labelled if r["metrics"]["dg"] is not None]
    out["dg_mean"] = float(np.mean(dgs)) if dgs else None
    return out


def markdown_report(methods, split):
    """Table 3 for log-loss and accuracy.

    Args:
        methods: ``[(name, [run report, ...]), ...]``, one table row group per method.
        split: split name for the captions.

    Returns:
        Markdown (empty string when no run is labelled).
    """
    rows = [(name, [r["metrics"] for r in reports if r["labelled"]]) for name, reports in methods]
    rows = [(name, labelled) for name, labelled in rows if labelled]
    if not rows:
        return ""
    parts = []
    for metric in tables.METRICS:
        parts.append(tables.table3_title(metric, split))
        parts.append("")
        parts.append(tables.table3(rows, metric))
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def load_combined(path):
    """A combined report written by ``evaluate.py --out``; UserError when it is not one."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise UserError(f"--compare {path}: cannot read ({err.strerror})") from None
    except ValueError as err:
        raise UserError(f"--compare {path}: not valid JSON ({err})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and "labelled" in r and "metrics" in r for r in runs
    ):
        raise UserError(
            f"--compare {path}: not a combined report of `scripts/evaluate.py --out` "
            "(expected 'method', 'split' and a list of 'runs')"
        )
    return data


def compare(paths, out=None):
    """Table 3 with one row group per combined report (``--compare``)."""
    combined = [load_combined(p) for p in paths]
    splits = sorted({c.get("split") for c in combined})
    if len(splits) > 1:
        raise UserError(
            f"--compare: the reports cover different splits ({', '.join(map(str, splits))}); "
            "compare reports of one split"
        )
    methods = [(c.get("method") or os.path.basename(p), c["runs"]) for c, p in zip(combined, paths)]
    text = markdown_report(methods, splits[0])
    if not text:
        raise UserError("--compare: no report has a labelled split to tabulate")
    print(text, end="")
    if out:
        write_json(
            out,
            {
                "version": REPORT_VERSION,
                "split": splits[0],
                "methods": [
                    {"method": name, "report": path, "summary": summary(runs)}
                    for (name, runs), path in zip(methods, paths)
                ],
                "markdown": text,
            },
        )
        print(f"wrote {out}")
    return 0


def log_to_wandb(run, report):
    """Logs a run's evaluation to W&B when its config enables W&B (``wandb`` section, mode not
    ``disabled``); offline mode writes under ``RUN_DIR/wandb``. Returns True when logged."""
    settings = run.config.get("wandb")
    if not isinstance(settings, dict) or settings.get("mode", "offline") == "disabled":
        return False
    from asc_core.extras import require

    wandb = require("wandb", f"logging the evaluation to W&B (wandb.mode {settings.get('mode')!r})")

    m = report["metrics"]
    values = {
        f"eval/{report['split']}/{k}": m["overall"][k]
        for k in ("accuracy", "log_loss", "macro_accuracy", "macro_log_loss")
    }
    for device, entry in m["devices"].items():
        for k in ("accuracy", "log_loss"):
            if entry[k] is not None:
                values[f"eval/{report['split']}/{k}.{device}"] = entry[k]
    for family, entry in m["groups"].items():
        for k in ("accuracy", "log_loss"):
            if entry[k] is not None:
                values[f"eval/{report['split']}/{k}.{family}"] = entry[k]
    if m["dg"] is not None:
        values[f"eval/{report['split']}/dg"] = m["dg"]
    for key in ("confusion", "devices"):
        if key in report["files"]:
            values[f"eval/{report['split']}/{key}"] = wandb.Image(report["files"][key])
    wb = wandb.init(
        project=settings.get("project", "keras-asc"),
        entity=settings.get("entity"),
        name=f"{settings.get('name') or run.name}-eval-{report['split']}",
        group=settings.get("group") or run.name,
        tags=list(settings.get("tags") or []),
        mode=settings.get("mode", "offline"),
        dir=run.path,
        job_type="evaluation",
        config={"run_dir": run.path, "split": report["split"]},
        reinit="finish_previous",
        # No console capture, system stats, git or code snapshot: an evaluation logs numbers.
        settings=wandb.Settings(
            console="off", silent=True, save_code=False, disable_git=True, x_disable_stats=True
        ),
    )
    try:
        wb.log(values)
        wb.summary.update({k: v for k, v in values.items() if not isinstance(v, wandb.Image)})
    finally:
        wb.finish()
    return True
