"""``keras-asc irgen-train`` (``scripts/train_irgen.py``): train the DIR generator GAN into a run
directory (layout: :mod:`keras_asc.irgen.train`, ``docs/irgen.md``).

Usage::

    python scripts/train_irgen.py --config configs/irgen/small_cpu.yaml [--set k=v ...]
                                  [--run-dir runs/irgen_small] [--overwrite]
"""

import argparse
import os

from keras_asc.cli._options import add_config_options
from keras_asc.irgen.config import load_irgen_config
from keras_asc.irgen.train import train
from keras_asc.run_dir import default_run_dir


def build_parser():
    parser = argparse.ArgumentParser(
        prog="train_irgen.py",
        description="Train the FAST-RIR-style DIR generator GAN on a DIR TFRecord set.",
    )
    add_config_options(
        parser,
        config_help="YAML config (configs/irgen/*.yaml)",
        set_example="training.epochs=3 (repeatable)",
        run_dir_default="runs/irgen/<config stem>",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of a finished run in --run-dir",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_irgen_config(args.config, args.overrides)
    run_dir = args.run_dir or default_run_dir(args.config, os.path.join("runs", "irgen"))
    summary = train(config, run_dir, overwrite=args.overwrite)
    print(
        f"done: {summary['epochs']} epochs ({summary['minutes']} min) in {summary['run_dir']}; "
        f"protocol {summary['protocol']}, validation MSE {summary['first_val_mse']} -> "
        f"{summary['last_val_mse']} (best {summary['best_val_mse']}, epoch "
        f"{summary['best_epoch']})"
    )
    return 0
