"""Convert an official PyTorch PaSST checkpoint to keras-asc weights (see keras_asc.convert)."""

import sys

from keras_asc.convert.convert_passt import main
from keras_asc.errors import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
