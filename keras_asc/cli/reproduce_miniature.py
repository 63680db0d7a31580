"""``keras-asc reproduce-miniature`` (``scripts/reproduce_miniature.py``): the CPU miniature of the
paper's tables and claims (steps, outputs and cost: :mod:`keras_asc.experiments.driver`).
"""

import argparse

from asc_core.errors import UserError
from keras_asc.experiments import claims
from keras_asc.experiments.driver import ALPHA_GRID
from keras_asc.experiments.driver import ICL_TARGETS
from keras_asc.experiments.driver import MAIN_ICL_TARGET
from keras_asc.experiments.driver import WEIGHT_GRID
from keras_asc.experiments.driver import run_miniature


def _target(value):
    return None if value in ("default", "none") else value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_miniature.py",
        description="CPU miniature of the paper's Tables 1-3: pretraining on a disjoint corpus, "
        "λ_ICL calibration per ICL variant, the Table-3 rows × paired seeds, evaluation, device "
        "probe, statistics, docs/results_miniature.md. Started again after a kill, it continues "
        "where it stopped.",
    )
    parser.add_argument("--work-dir", default="miniature", help="corpora, TFRecords and runs")
    parser.add_argument("--out", default="docs/results_miniature.md", help="the Markdown report")
    parser.add_argument("--seeds", type=int, default=5, help="paired seeds per row (default 5)")
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--pretrain-corpus-seed", type=int, default=1)
    parser.add_argument("--config-dir", default=None, help="configs (configs/miniature)")
    parser.add_argument(
        "--rows", nargs="+", default=None, metavar="ROW",
        help="main rows (default: passt icl multi_dirs multi_icl)",
    )  # fmt: skip
    parser.add_argument("--vintage", action="store_true", help="also run + Vintage DIRs")
    parser.add_argument(
        "--icl-targets", nargs="*", default=list(ICL_TARGETS), metavar="VARIANT",
        help="ICL variants to calibrate (loss.icl_target; 'default': the model's default; "
        "none given: no calibration)",
    )  # fmt: skip
    parser.add_argument(
        "--icl-target",
        default=MAIN_ICL_TARGET,
        help=f"ICL variant of the main rows (default: {MAIN_ICL_TARGET}; 'default': the model's)",
    )
    parser.add_argument(
        "--icl-weight", type=float, default=None,
        help="λ_ICL of the main ICL rows (default: the calibrated choice)",
    )  # fmt: skip
    parser.add_argument(
        "--weight-grid", type=float, nargs="+", default=list(WEIGHT_GRID), metavar="λ"
    )
    parser.add_argument("--alpha-grid", type=float, nargs="*", default=list(ALPHA_GRID),
                        metavar="α")  # fmt: skip
    parser.add_argument(
        "--calibration-epochs", type=int, default=None,
        help="epochs of each calibration run (default: calibrate.yaml's)",
    )  # fmt: skip
    for flag, dest, what in (
        ("--set", "overrides", "every main run"),
        ("--pretrain-set", "pretrain_overrides", "the pretraining run"),
        ("--calibration-set", "calibration_overrides", "every calibration run"),
    ):
        parser.add_argument(flag, dest=dest, action="append", default=[], metavar="KEY=VALUE",
                            help=f"override the config of {what} (repeatable)")  # fmt: skip
    parser.add_argument("--max-examples", type=int, default=None,
                        help="evaluate and probe only the first N clips (smoke runs)")  # fmt: skip
    parser.add_argument("--probe-seeds", type=int, default=5)
    parser.add_argument(
        "--probe-split-by", choices=("recording", "clip"), default="recording",
        help="hold out recordings (default) or clips for the probe's early stopping",
    )  # fmt: skip
    parser.add_argument("--secondary-probe", action="store_true",
                        help="also run the earlier evaluate-split probe")  # fmt: skip
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.calibration_epochs is not None and args.calibration_epochs < 1:
        raise UserError(f"--calibration-epochs {args.calibration_epochs}: expected at least 1")
    calibration_overrides = list(args.calibration_overrides)
    if args.calibration_epochs is not None:
        calibration_overrides.insert(0, f"training.epochs={args.calibration_epochs}")
    result = run_miniature(
        work_dir=args.work_dir,
        config_dir=args.config_dir,
        seeds=args.seeds,
        size=args.size,
        corpus_seed=args.corpus_seed,
        pretrain_corpus_seed=args.pretrain_corpus_seed,
        rows=args.rows,
        vintage=args.vintage,
        icl_targets=[_target(t) for t in args.icl_targets],
        icl_target=_target(args.icl_target),
        icl_weight=args.icl_weight,
        weight_grid=args.weight_grid,
        alpha_grid=args.alpha_grid,
        overrides=args.overrides,
        pretrain_overrides=args.pretrain_overrides,
        calibration_overrides=calibration_overrides,
        max_examples=args.max_examples,
        probe_seeds=args.probe_seeds,
        probe_split_by=args.probe_split_by,
        secondary_probe=args.secondary_probe,
        out=args.out,
    )
    for test in claims.check_all(result):
        print(f"{test['verdict']:>13}: {test['claim']}")
    return 0
