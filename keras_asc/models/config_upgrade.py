"""Reading ``SceneClassifier`` configs of earlier layouts (``.keras`` files saved before the Task
layout load, with a warning; an unknown version is one clear error naming it).
"""

import warnings

import keras

from asc_core.errors import UserError
from keras_asc.augment.augmenter import Augmenter
from keras_asc.models.task_arguments import icl_task_kwargs

# Config layout version: 1 = flat icl_* / mixstyle_* / mixup_alpha / augment_seed /
# dir_augmentation kwargs (no "version" key); 2 = auxiliary_loss + augmenter objects.
CONFIG_VERSION = 2


_V1_ICL = (
    "icl_weight",
    "icl_alpha",
    "icl_beta",
    "icl_normalization",
    "icl_num_devices",
    "icl_rampup_steps",
)


_V1_AUGMENT = {
    "dir_augmentation": "dir_augmentation",
    "mixstyle_p": "mixstyle_p",
    "mixstyle_alpha": "mixstyle_alpha",
    "mixup_alpha": "mixup_alpha",
    "augment_seed": "seed",
}

# Every kwarg of the version-1 layout (from_preset names them when given as overrides).
V1_KWARGS = frozenset(_V1_ICL) | frozenset(_V1_AUGMENT)


def upgrade_config(config):
    """A ``get_config`` dict of any known layout -> the current one (version 2).

    Version 1 (no ``version`` key; keras_asc before the Task layout) had flat ``icl_*``,
    ``mixstyle_*``, ``mixup_alpha``, ``augment_seed`` and ``dir_augmentation`` kwargs; they
    become ``auxiliary_loss`` (+ weight, ramp-up) and ``augmenter``. The augmentation layers
    keep their weight paths, so the file's weights (IR bank and counters included) load.
    """
    version = config.pop("version", 1)
    if version == CONFIG_VERSION:
        return config
    if version != 1:
        raise UserError(
            f"SceneClassifier: this model was saved with config version {version!r}; this "
            f"keras_asc reads versions 1 and {CONFIG_VERSION} (a newer keras_asc wrote it?)"
        )
    icl = {key: config.pop(key) for key in _V1_ICL if key in config}
    augment = {new: config.pop(old) for old, new in _V1_AUGMENT.items() if old in config}
    if isinstance(augment.get("dir_augmentation"), dict):
        augment["dir_augmentation"] = keras.layers.deserialize(augment["dir_augmentation"])
    config.update(icl_task_kwargs(**icl))
    config["augmenter"] = Augmenter(**augment)
    warnings.warn(
        "SceneClassifier: upgraded a config of version 1 (flat icl_*/augmentation kwargs) to "
        f"version {CONFIG_VERSION}; save the model again to write the new layout",
        stacklevel=2,
    )
    return config
