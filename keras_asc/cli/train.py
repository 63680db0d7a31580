"""``keras-asc train`` (``scripts/train.py``): train one config into a run directory (resumable),
or several seeds.

Usage::

    python scripts/train.py --config configs/demo.yaml [--set training.epochs=3 ...]
                            [--run-dir runs/demo] [--seeds 3]

Without ``--run-dir`` the run goes to ``runs/<config file stem>``. Running the same command
again resumes an interrupted run (or does nothing more when it has finished).
"""

import argparse
import json
import os

from keras_asc.cli._options import add_config_options
from keras_asc.config.loader import load_config
from keras_asc.run_dir import default_run_dir


def build_parser():
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a scene classifier from a YAML config into a resumable run directory.",
    )
    add_config_options(
        parser,
        config_help="YAML config file (configs/*.yaml)",
        set_example="optimizer.learning_rate=1.0e-4 (repeatable; the value is parsed as YAML)",
        run_dir_default="runs/<config stem>",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="train N seeds (seed, seed+1, ...) into RUN_DIR/seed-S and summarise them",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args.config, args.overrides)
    name = os.path.splitext(os.path.basename(args.config))[0]  # W&B runs: <name>-seed-<seed>
    run_dir = args.run_dir or default_run_dir(args.config)
    from keras_asc.training.runner import train
    from keras_asc.training.runner import train_seeds

    if args.seeds is None:
        summary = train(config, run_dir, name=name)
        print(
            f"done: {summary['epochs']} epochs in {summary['run_dir']}; best "
            f"{summary['monitor']} {summary['best']} (epoch {summary['best_epoch']})"
        )
    else:
        summary = train_seeds(config, run_dir, args.seeds, name=name)
        print(json.dumps({k: summary[k] for k in ("monitor", "best", "best_mean", "best_std")}))
    return 0
