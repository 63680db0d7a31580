"""TFRecord schema and ``tf.data`` input pipelines (see ``docs/data_format.md``).

Importing this package does not import TensorFlow; the parse functions import it when called.
"""

from keras_asc.data.schema import AUDIO_FEATURES
from keras_asc.data.schema import DIR_FEATURES
from keras_asc.data.schema import encode_audio_example
from keras_asc.data.schema import encode_dir_example
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
