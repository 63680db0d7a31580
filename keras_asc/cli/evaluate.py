"""``keras-asc evaluate`` (``scripts/evaluate.py``): per-device report (paper Table 3) of run
directories, or one table of several combined reports (:mod:`keras_asc.evaluation.evaluate`).
"""

import argparse

from asc_core.errors import UserError
from asc_core.files import check_writable
from asc_core.files import write_json
from keras_asc.cli._options import add_batch_options
from keras_asc.cli._options import add_method_options
from keras_asc.cli._options import add_run_dirs
from keras_asc.cli._options import add_split_options
from keras_asc.cli._options import clip_options
from keras_asc.cli._options import open_method
from keras_asc.evaluation import runs as run_io
from keras_asc.evaluation.evaluate import REPORT_VERSION
from keras_asc.evaluation.evaluate import compare
from keras_asc.evaluation.evaluate import evaluate_run
from keras_asc.evaluation.evaluate import log_to_wandb
from keras_asc.evaluation.evaluate import markdown_report
from keras_asc.evaluation.evaluate import summary


def build_parser():
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Per-device scene-classification report (paper Table 3) of run directories.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add_run_dirs(source)
    source.add_argument(
        "--compare",
        nargs="+",
        metavar="REPORT",
        help="combined reports (--out of earlier calls): one Table 3 with a row per method",
    )
    add_split_options(parser)
    add_method_options(parser, out_help="combined JSON report")
    add_batch_options(parser)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--no-wandb", action="store_true", help="never log to W&B")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected a positive integer")
    if args.max_examples is not None and args.max_examples < 1:
        raise UserError(f"--max-examples {args.max_examples}: expected a positive integer")
    if args.out:
        check_writable(args.out)
    if args.compare:
        return compare(args.compare, args.out)
    opened, name = open_method(args)
    reports = []
    for run in opened:
        report = evaluate_run(run, *clip_options(args), plots_enabled=not args.no_plots)
        reports.append(report)
        where = run_io.eval_dir(run.path, args.split)
        if not report["labelled"]:
            print(
                f"{run.name}: split {args.split!r} has no scene labels; wrote "
                f"{report['num_clips']} predictions to {where}/predictions.tsv (no metrics)"
            )
            continue
        unlabelled = report["num_clips"] - report["num_labelled"]
        if unlabelled:
            print(f"{run.name}: {unlabelled} clips without a scene label are not scored")
        print(f"{run.name}: {report['num_labelled']} clips scored; outputs in {where}")
        if not args.no_wandb and log_to_wandb(run, report):
            print(f"{run.name}: logged to W&B ({run.config['wandb'].get('mode', 'offline')})")
    text = markdown_report([(name, reports)], args.split)
    if text:
        print()
        print(text, end="")
    if args.out:
        combined = {
            "version": REPORT_VERSION,
            "method": name,
            "split": args.split,
            "runs": reports,
            "summary": summary(reports),
            "markdown": text,
        }
        write_json(args.out, combined)
        print(f"wrote {args.out}")
    return 0
