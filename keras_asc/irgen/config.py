"""YAML configs of the DIR generator (``configs/irgen/*.yaml``).

The file format and its rules are those of :mod:`keras_asc.config.loader` (``extends:``,
``--set a.b=value`` overrides parsed as YAML, unknown keys are errors naming the file and key,
``yaml.safe_load``); only the sections differ. Each section holds the keyword arguments of one
callable:

============= ===========================================================================
section       target
============= ===========================================================================
seed          int: data order, hold-out draws and weight initialisation
data          :class:`DataOptions` (the DIR set folder, batch size)
holdout       :class:`HoldoutOptions` (:mod:`keras_asc.irgen.holdout`)
encoding      :class:`~keras_asc.irgen.condition_encoding.ConditionEncoder`
generator     :class:`~keras_asc.irgen.generator.DirGenerator` (length and condition size
              come from the data)
discriminator :class:`~keras_asc.irgen.discriminator.DirDiscriminator`
gan           :class:`~keras_asc.irgen.gan.DirGAN` (loss weights, generator steps)
optimizer     :class:`OptimizerOptions` (RMSprop and its step decay)
training      :class:`TrainingOptions`
============= ===========================================================================
"""

import dataclasses

from keras_asc.config import loader
from keras_asc.config.schema import Section
from keras_asc.config.schema import choice
from keras_asc.config.schema import number
from keras_asc.config.schema import string


@dataclasses.dataclass
class DataOptions:
    """``data`` section.

    Args:
        path: DIR TFRecord folder with microphone metadata (``multi-dirs`` output).
        batch_size: IRs per step (FAST-RIR: 128 per GPU, 256 in its README run).
    """

    path: str
    batch_size: int = 32


@dataclasses.dataclass
class HoldoutOptions:
    """``holdout`` section: see :func:`keras_asc.irgen.holdout.split_records`.

    Args:
        protocol: ``angles``, ``distance``, ``microphones`` or ``none``.
        every: ``angles``: one angle in ``every`` is held out.
        distance_cm: ``distance``: the held-out distance.
        microphone_fraction: ``microphones``: fraction of microphones held out.
        validation_fraction: fraction of the remaining IRs used for checkpoint selection.
    """

    protocol: str = "angles"
    every: int = 4
    distance_cm: int = 125
    microphone_fraction: float = 0.2
    validation_fraction: float = 0.1


@dataclasses.dataclass
class OptimizerOptions:
    """``optimizer`` section: RMSprop for both networks, learning rate × ``decay_rate`` every
    ``decay_epochs`` epochs (FAST-RIR: 8e-5, rho 0.99, epsilon 1e-8, × 0.7 every 40 epochs).

    Keras' RMSprop divides by ``sqrt(v + epsilon)``, PyTorch's by ``sqrt(v) + epsilon``; with
    ``epsilon = 1e-8`` this only matters for gradients below ~1e-4.
    """

    learning_rate: float = 8e-5
    rho: float = 0.99
    epsilon: float = 1e-8
    decay_rate: float = 0.7
    decay_epochs: int = 40


@dataclasses.dataclass
class TrainingOptions:
    """``training`` section.

    Args:
        epochs: number of epochs.
        checkpoint: ``best`` (the generator of the epoch with the lowest validation MSE, FAST-RIR
            picks snapshots by hand) or ``last``.
        verbose: 0 silent, 1 a progress bar over epochs, 2 one line per epoch.
    """

    epochs: int = 100
    checkpoint: str = "best"
    verbose: int = 1


def _int_list(lo=1):
    expected = f"a non-empty list of integers >= {lo}"

    def check(value):
        ok = (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value)
        )
        return None if ok else expected

    check.expected = expected
    return check


_KERAS = ("name", "dtype", "trainable", "seed")
_POSITIVE = number(0, lo_open=True)
_POSITIVE_INT = number(1, integer=True)
_NON_NEGATIVE = number(0)

SCHEMA = {
    "data": Section(
        target=DataOptions, checks={"path": string(), "batch_size": number(2, integer=True)}
    ),
    "holdout": Section(
        target=HoldoutOptions,
        checks={
            "protocol": choice("angles", "distance", "microphones", "none"),
            "every": number(2, integer=True),
            "distance_cm": _POSITIVE_INT,
            "microphone_fraction": number(0, 1, lo_open=True, hi_open=True),
            "validation_fraction": number(0, 1, hi_open=True),
        },
    ),
    "encoding": Section(
        target="keras_asc.irgen.condition_encoding:ConditionEncoder",
        checks={"coordinate_scale_m": _POSITIVE},
    ),
    "generator": Section(
        target="keras_asc.irgen.generator:DirGenerator",
        exclude=_KERAS + ("output_length", "condition_dim"),
        checks={
            "condition_units": number(1, integer=True, optional=True),
            "initial_length": _POSITIVE_INT,
            "initial_channels": _POSITIVE_INT,
            "channels": _int_list(),
            "strides": _int_list(),
            "kernel_size": _POSITIVE_INT,
            "init_stddev": _POSITIVE,
        },
    ),
    "discriminator": Section(
        target="keras_asc.irgen.discriminator:DirDiscriminator",
        exclude=_KERAS + ("input_length", "condition_dim"),
        checks={
            "filters": _int_list(),
            "strides": _int_list(),
            "kernel_size": _POSITIVE_INT,
            "joint_filters": _POSITIVE_INT,
            "negative_slope": _NON_NEGATIVE,
            "init_stddev": _POSITIVE,
        },
    ),
    "gan": Section(
        target="keras_asc.irgen.gan:DirGAN",
        exclude=("generator", "discriminator", "sample_rate", "name", "dtype", "trainable"),
        checks={
            "adversarial_weight": _NON_NEGATIVE,
            "mse_weight": number(0, optional=True),
            "spectral_weight": _NON_NEGATIVE,
            "wrong_pair_weight": _NON_NEGATIVE,
            "loss_scale": _POSITIVE,
            "generator_steps": _POSITIVE_INT,
            "spectral_fmin": _NON_NEGATIVE,
            "spectral_fmax": _POSITIVE,
        },
    ),
    "optimizer": Section(
        target=OptimizerOptions,
        checks={
            "learning_rate": _POSITIVE,
            "rho": number(0, 1, lo_open=True, hi_open=True),
            "epsilon": _POSITIVE,
            "decay_rate": number(0, 1, lo_open=True),
            "decay_epochs": _POSITIVE_INT,
        },
    ),
    "training": Section(
        target=TrainingOptions,
        checks={
            "epochs": _POSITIVE_INT,
            "checkpoint": choice("best", "last"),
            "verbose": choice(0, 1, 2),
        },
    ),
}
SCALARS = {"seed": (0, number(0, integer=True))}


def load_irgen_config(path, overrides=()):
    """Reads an irgen config file, applies ``--set`` overrides and validates it.

    Returns:
        dict, the resolved config (every section, defaults filled in, ``extends`` removed).

    Raises:
        UserError: unknown/missing keys or bad values, naming the file (or ``--set``) and key.
    """
    return loader.load_config(path, overrides, schema=SCHEMA, scalars=SCALARS, shipped=False)


def resolve_irgen_config(config, source="config", overridden=None):
    """Validates a raw irgen config dict; see :func:`load_irgen_config`."""
    return loader.resolve_config(config, source, overridden, schema=SCHEMA, scalars=SCALARS)


def save_irgen_config(config, path):
    """Writes a resolved config as YAML (atomically); :func:`load_irgen_config` reads it back."""
    loader.save_config(config, path)
