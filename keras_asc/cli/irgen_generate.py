"""``keras-asc irgen-generate`` (``scripts/generate_dirs.py``): a DIR TFRecord set from a trained
generator (conditions, grid and layout: :mod:`keras_asc.irgen.generate`).

Usage::

    python scripts/generate_dirs.py --run RUN_DIR --out data/tfrecords/generated_dirs \
        [--grid angles=0:360:5 distances=50,125,500] [--microphones my_mics.csv] \
        [--select RodeNT2ACardioid,ShureSM57] [--checkpoint PATH.weights.h5]
"""

import argparse
import sys
import warnings

from keras_asc.irgen.generate import NORMALIZE
from keras_asc.irgen.generate import OutOfRangeWarning
from keras_asc.irgen.generate import generate_set


def build_parser():
    parser = argparse.ArgumentParser(
        prog="generate_dirs.py",
        description="Write a DIR TFRecord set (set 'generated') from a trained DIR generator.",
    )
    parser.add_argument("--run", required=True, help="run directory of scripts/train_irgen.py")
    parser.add_argument("--out", required=True, help="output DIR set folder")
    parser.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="KEY=SPEC",
        help="angles=0:360:5 and/or distances=50,125,500 (default: the trained "
        "angles and distances)",
    )
    parser.add_argument(
        "--microphones",
        default=None,
        help="microphone table CSV in the surrey_microphones.csv format "
        "(default: RUN_DIR/microphones.csv)",
    )
    parser.add_argument(
        "--select", default=None, help="comma-separated config tokens of the table to generate"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="generator weights (.weights.h5) instead of RUN_DIR/generator.keras",
    )
    parser.add_argument(
        "--normalize",
        default="peak",
        choices=NORMALIZE,
        help="peak (default, as multi-dirs) or none",
    )
    parser.add_argument("--shards", type=int, default=1, help="number of TFRecord files")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    select = [s.strip() for s in args.select.split(",") if s.strip()] if args.select else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutOfRangeWarning)
        out = generate_set(
            args.run,
            args.out,
            args.grid,
            args.microphones,
            select,
            args.normalize,
            shards=args.shards,
            checkpoint=args.checkpoint,
        )
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
