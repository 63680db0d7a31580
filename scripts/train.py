"""Train a scene classifier from a YAML config (see keras_asc.cli.train)."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.train import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
