"""keras-asc: device-robust acoustic scene classification in Keras 3.

Public API (importing the package registers every serializable layer and model, so
``keras.saving.load_model`` works on saved ``.keras`` files after ``import keras_asc``).
"""

from keras_asc import layers
from keras_asc import models
from keras_asc import vocab
from keras_asc.errors import UserError
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.scene_classifier import SceneClassifier

__version__ = "0.1.0"

__all__ = [
    "KaldiMelSpectrogram",
    "PaSSTBackbone",
    "SceneClassifier",
    "UserError",
    "layers",
    "models",
    "vocab",
    "__version__",
]
