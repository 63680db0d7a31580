"""Experiment configs: YAML sections that map 1:1 to constructor/function kwargs.

See :mod:`keras_asc.config.schema` for the sections and :mod:`keras_asc.config.loader` for
``extends``, ``--set`` overrides and validation.
"""

from keras_asc.config.loader import config_differences
from keras_asc.config.loader import dump_config
from keras_asc.config.loader import load_config
from keras_asc.config.loader import parse_override
from keras_asc.config.loader import read_config_file
from keras_asc.config.loader import resolve_config
from keras_asc.config.loader import save_config
from keras_asc.config.schema import SCHEMA

__all__ = [
    "SCHEMA",
    "config_differences",
    "dump_config",
    "load_config",
    "parse_override",
    "read_config_file",
    "resolve_config",
    "save_config",
]
