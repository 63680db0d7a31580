"""ICL grid table (paper Table 1) from run directories; see keras_asc.cli.grid_report."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.grid_report import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
