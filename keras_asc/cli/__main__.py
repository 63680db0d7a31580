"""``python -m keras_asc.cli`` is ``keras-asc``."""

from keras_asc.cli import cli

cli()
