"""Figure 1 / Figure 2 of the paper from DIR TFRecord sets; see keras_asc.cli.plot_dirs."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.plot_dirs import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
