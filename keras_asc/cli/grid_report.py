"""``keras-asc grid-report`` (``scripts/grid_report.py``): the paper's Table 1 (ICL α and
λ_ICL grids) from run directories (where the numbers come from: :mod:`keras_asc.evaluation.grid`).
"""

import argparse

from asc_core.errors import UserError
from asc_core.files import write_json
from keras_asc.cli._options import add_split_options
from keras_asc.evaluation import runs as run_io
from keras_asc.evaluation import tables
from keras_asc.evaluation.evaluate import evaluate_run
from keras_asc.evaluation.grid import cached_report
from keras_asc.evaluation.grid import icl_settings


def build_parser():
    parser = argparse.ArgumentParser(
        prog="grid_report.py",
        description="Table 1 of the paper: log-loss and accuracy over the ICL α and λ_ICL grids.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="ICL run directories")
    add_split_options(parser)
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
