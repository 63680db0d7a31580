"""See keras_asc.cli.irgen_generate (`python scripts/generate_dirs.py --help`)."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.irgen_generate import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
