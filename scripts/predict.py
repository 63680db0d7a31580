"""Scene predictions for audio files; see keras_asc.cli.predict."""

import sys

from asc_core.errors import run_cli
from keras_asc.cli.predict import main

if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:]))
