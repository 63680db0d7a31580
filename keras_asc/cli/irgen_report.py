"""``keras-asc irgen-report`` (``scripts/irgen_report.py``): IR-level metrics of trained DIR
generators, per hold-out protocol (what is measured and written: :mod:`keras_asc.irgen.report`).

Usage::

    python scripts/irgen_report.py --run runs/irgen/angles --run runs/irgen/distance \
        --run runs/irgen/microphones [--out runs/irgen/report] [--config RodeK2/cardioid]
        [--distance 50]
"""

import argparse

from keras_asc.irgen.report import write_report


def build_parser():
    parser = argparse.ArgumentParser(
        prog="irgen_report.py",
        description="IR-level metrics (MSE, LSD, polar error) of trained DIR generators.",
    )
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="run directory of scripts/train_irgen.py (repeatable)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: RUN/report)")
    parser.add_argument(
        "--config",
        dest="config_token",
        default=None,
        help="figure: the configuration, e.g. RodeK2/cardioid",
    )
    parser.add_argument("--distance", type=int, default=None, help="figure: distance in cm")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    paths = write_report(args.run, args.out, args.config_token, args.distance)
    with open(paths["markdown"], encoding="utf-8") as f:
        print(f.read())
    print(f"wrote {', '.join(paths.values())}")
    return 0
