"""Figure 1 / Figure 2 of the paper from DIR TFRecord sets; see keras_asc.evaluation.dir_plots."""

import sys

from asc_core.errors import run_cli
from keras_asc.evaluation.dir_plots import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
