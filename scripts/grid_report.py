"""ICL grid table (paper Table 1) from run directories; see keras_asc.evaluation.grid."""

import sys

from asc_core.errors import run_cli
from keras_asc.evaluation.grid import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
