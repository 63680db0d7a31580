"""DIR generator: a FAST-RIR-style conditional GAN for microphone impulse responses (Sec. 5.3).

Importing this package registers :class:`DirGenerator`, :class:`DirDiscriminator` and
:class:`DirGAN` for ``keras.saving.load_model``. See ``docs/irgen.md``.
"""

from keras_asc.irgen.condition_encoding import CONDITION_DIM
from keras_asc.irgen.condition_encoding import CONDITION_NAMES
from keras_asc.irgen.condition_encoding import ConditionEncoder
from keras_asc.irgen.discriminator import DirDiscriminator
from keras_asc.irgen.gan import DirGAN
from keras_asc.irgen.generator import DirGenerator

__all__ = [
    "CONDITION_DIM",
    "CONDITION_NAMES",
    "ConditionEncoder",
    "DirDiscriminator",
    "DirGAN",
    "DirGenerator",
]
