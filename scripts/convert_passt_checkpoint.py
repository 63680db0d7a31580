"""Convert an official PyTorch PaSST checkpoint to keras-asc weights (`keras-asc convert`)."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.convert import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
