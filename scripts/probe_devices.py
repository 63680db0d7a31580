"""Device probe (paper Table 2) of run directories; see keras_asc.cli.probe."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.probe import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
