"""keras-asc: device-robust acoustic scene classification in Keras 3.

Public API (importing the package registers every serializable layer and model, so
``keras.saving.load_model`` works on saved ``.keras`` files after ``import keras_asc``).
"""

from keras_asc import vocab
from keras_asc.errors import UserError

__version__ = "0.1.0"

__all__ = ["UserError", "vocab", "__version__"]
