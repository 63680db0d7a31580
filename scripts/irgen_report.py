"""See keras_asc.cli.irgen_report (`python scripts/irgen_report.py --help`)."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.irgen_report import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
