"""See keras_asc.cli.irgen_train (`python scripts/train_irgen.py --help`)."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.irgen_train import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
