"""Verified SavedModel/TFLite export with parameters and MACs; see keras_asc.cli.export."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.export import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
