"""Train a scene classifier from a YAML config (see keras_asc.training.cli)."""

import sys

from asc_core.errors import run_cli
from keras_asc.training.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
