"""CPU miniature of the paper's Tables 1-3 and claims; see keras_asc.cli.reproduce_miniature."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.reproduce_miniature import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
