"""keras-asc: device-robust acoustic scene classification in Keras 3.

Public API (importing the package registers every serializable layer and model, so
``keras.saving.load_model`` works on saved ``.keras`` files after ``import keras_asc``).
``keras_asc.evaluation``, ``keras_asc.hear``, ``keras_asc.inference`` and ``keras_asc.training``
are imported explicitly where needed.
"""

from asc_core import vocab
from asc_core.errors import UserError
from keras_asc import _tf_logs  # noqa: F401  (first: imports TensorFlow without its C++ noise)
from keras_asc import augment
from keras_asc import irgen
from keras_asc import layers
from keras_asc import losses
from keras_asc import models
from keras_asc import optimizers
from keras_asc._version import __version__
from keras_asc.augment.augmenter import Augmenter
from keras_asc.augment.dir_augmentation import DirAugmentation
from keras_asc.augment.freq_mix_style import FreqMixStyle
from keras_asc.augment.mixup import Mixup
from keras_asc.augment.roll import Roll
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.losses.inverse_contrastive_loss import InverseContrastiveLoss
from keras_asc.losses.inverse_contrastive_loss import inverse_contrastive_loss
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.scene_classifier import SceneClassifier

__all__ = [
    "Augmenter",
    "DirAugmentation",
    "FreqMixStyle",
    "InverseContrastiveLoss",
    "KaldiMelSpectrogram",
    "Mixup",
    "PaSSTBackbone",
    "Roll",
    "SceneClassifier",
    "UserError",
    "augment",
    "irgen",
    "inverse_contrastive_loss",
    "layers",
    "losses",
    "models",
    "optimizers",
    "vocab",
    "__version__",
]
