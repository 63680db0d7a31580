"""TFRecord schema and ``tf.data`` input pipelines (see ``docs/data_format.md``).

The encoders are :mod:`asc_core.example`'s (the builders write with them, without TensorFlow).

Importing this package does not import TensorFlow; the parse functions import it when called.
"""

from asc_core.example import AUDIO_FEATURES
from asc_core.example import DIR_FEATURES
from asc_core.example import encode_audio_example
from asc_core.example import encode_dir_example
from keras_asc.data.schema import parse_audio_example
from keras_asc.data.schema import parse_dir_example

__all__ = [
    "AUDIO_FEATURES",
    "DIR_FEATURES",
    "encode_audio_example",
    "encode_dir_example",
    "parse_audio_example",
    "parse_dir_example",
]
