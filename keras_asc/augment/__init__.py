"""Augmentations: DIR convolution, Freq-MixStyle, mixup and roll (``Augmenter``: the task's set).

Each comes as a pure function keyed by an explicit example or batch index (for ``tf.data``)
and as a Keras layer that numbers examples/batches itself with a saved counter (for the model's
``train_step``); for the same seed and order both give the same result.
"""

from keras_asc.augment.augmenter import Augmenter
from keras_asc.augment.dir_augmentation import DirAugmentation
from keras_asc.augment.dir_augmentation import dir_augment
from keras_asc.augment.dir_convolution import fft_convolve
from keras_asc.augment.freq_mix_style import FreqMixStyle
from keras_asc.augment.freq_mix_style import freq_mix_style
from keras_asc.augment.freq_mix_style import freq_mix_style_params
from keras_asc.augment.mixup import Mixup
from keras_asc.augment.mixup import mixup
from keras_asc.augment.mixup import mixup_cross_entropy
from keras_asc.augment.roll import Roll
from keras_asc.augment.roll import roll_audio

__all__ = [
    "Augmenter",
    "DirAugmentation",
    "FreqMixStyle",
    "Mixup",
    "Roll",
    "dir_augment",
    "fft_convolve",
    "freq_mix_style",
    "freq_mix_style_params",
    "mixup",
    "mixup_cross_entropy",
    "roll_audio",
]
