"""``scripts/grid_report.py``: the paper's Table 1 (ICL α and λ_ICL grids) from run directories.

Each run's ICL settings come from its ``config.yaml`` (``loss.icl_alpha``, ``loss.icl_weight``;
a key the config leaves out takes ``SceneClassifier``'s default). Its overall log-loss and
accuracy come from ``RUN_DIR/eval/<split>/report.json`` when ``scripts/evaluate.py`` already
wrote it for the same split (and data), otherwise the run is evaluated now (which writes that
report). The α search holds λ_ICL fixed (``--alpha-search-weight``, 10 in the paper), the λ_ICL
search holds α fixed (``--weight-search-alpha``, 0.2); several runs (seeds) at one grid point
are reduced to the best run (lowest log-loss) or to their mean (``--aggregate``).
"""

import argparse
import json
import os

from asc_core.errors import UserError
from asc_core.files import write_json
from keras_asc.evaluation import runs as run_io
from keras_asc.evaluation import tables

ALPHA_KEY = "loss.icl_alpha"
WEIGHT_KEY = "loss.icl_weight"


def _model_default(name):
    """``SceneClassifier``'s default for an ICL keyword, or None when it has no such argument."""
    import inspect

    from keras_asc.models.scene_classifier import SceneClassifier

    param = inspect.signature(SceneClassifier.__init__).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def icl_settings(run):
    """``(alpha, weight)`` of a run; UserError when neither the config nor the model gives one."""
    values = []
    for key in (ALPHA_KEY, WEIGHT_KEY):
        value = run.get(key)
        if value is None:
            value = _model_default(key.split(".")[1])
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(
                f"{os.path.join(run.path, run_io.CONFIG_FILE)}: {key} is "
                f"{'missing' if value is None else repr(value)}; expected a number (Table 1 "
                "needs ICL runs)"
            )
        values.append(float(value))
    return tuple(values)


def cached_report(run, split, data=None):
    """The run's ``eval/<split>/report.json`` when it is complete and matches; else None."""
    path = os.path.join(run_io.eval_dir(run.path, split), "report.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            report = json.load(f)
        except ValueError:
            return None
    if report.get("split") != split or report.get("max_examples") is not None:
        return None
    if data is not None and os.path.abspath(report.get("data", "")) != os.path.abspath(data):
        return None
    return report if report.get("metrics") else None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="grid_report.py",
        description="Table 1 of the paper: log-loss and accuracy over the ICL α and λ_ICL grids.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="ICL run directories")
    parser.add_argument("--split", default="evaluate", help="TFRecord split (default: evaluate)")
    parser.add_argument("--data", help="TFRecord folder (default: data.path of config.yaml)")
    parser.add_argument(
        "--alpha-search-weight",
        type=float,
        default=10.0,
        help="λ_ICL shared by the α-search runs (paper: 10)",
    )
    parser.add_argument(
        "--weight-search-alpha",
        type=float,
        default=0.2,
        help="α shared by the λ_ICL-search runs (paper: 0.2)",
    )
    parser.add_argument(
        "--aggregate",
        choices=("best", "mean"),
        default="best",
        help="several runs at one grid point: best (lowest log-loss) or mean",
    )
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="evaluate every run again instead of reading eval/<split>/report.json",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="JSON with the grid records and the table")
    return parser


def main(argv=None):
    from keras_asc.evaluation.evaluate import evaluate_run

    args = build_parser().parse_args(argv)
    records = []
    for run in run_io.expand_runs(args.runs, need_model=False):
        alpha, weight = icl_settings(run)
        report = None if args.recompute else cached_report(run, args.split, args.data)
        source = "cached"
        if report is None:
            run = run_io.open_run(run.path)  # now the model is needed
            report = evaluate_run(run, args.split, args.data, args.batch_size)
            source = "evaluated"
            if not report["labelled"]:
                raise UserError(
                    f"--split {args.split}: no scene labels; Table 1 needs a labelled split"
                )
        overall = report["metrics"]["overall"]
        records.append(
            {
                "run": run.name,
                "run_dir": run.path,
                "alpha": alpha,
                "weight": weight,
                "log_loss": overall["log_loss"],
                "accuracy": overall["accuracy"],
                "source": source,
            }
        )
        print(
            f"{run.name}: α={alpha:g} λ_ICL={weight:g} log-loss {overall['log_loss']:.3f} "
            f"accuracy {100 * overall['accuracy']:.2f} % ({source})"
        )
    alpha_rows, weight_rows = tables.icl_grids(
        records, args.alpha_search_weight, args.weight_search_alpha, args.aggregate
    )
    if not alpha_rows and not weight_rows:
        raise UserError(
            f"no run is on either grid: the α search needs loss.icl_weight = "
            f"{args.alpha_search_weight:g}, the λ_ICL search loss.icl_alpha = "
            f"{args.weight_search_alpha:g} (see --alpha-search-weight / --weight-search-alpha)"
        )
    text = tables.table1(alpha_rows, weight_rows)
    print()
    print(
        f"α search at λ_ICL = {args.alpha_search_weight:g}, λ_ICL search at α = "
        f"{args.weight_search_alpha:g}; split `{args.split}`, overall values, "
        f"{args.aggregate} of the runs per grid point."
    )
    print()
    print(text)
    if args.out:
        write_json(
            args.out,
            {
                "split": args.split,
                "alpha_search_weight": args.alpha_search_weight,
                "weight_search_alpha": args.weight_search_alpha,
                "aggregate": args.aggregate,
                "records": records,
                "alpha_rows": alpha_rows,
                "weight_rows": weight_rows,
                "markdown": text,
            },
        )
        print(f"wrote {args.out}")
    return 0
