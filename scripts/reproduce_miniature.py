"""CPU miniature of the paper's Tables 2 and 3; see keras_asc.evaluation.miniature."""

import sys

from keras_asc.errors import run_cli
from keras_asc.evaluation.miniature import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
