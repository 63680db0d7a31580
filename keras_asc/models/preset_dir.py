"""Local preset directories: a model's config and weights, saved and loaded as keras-hub does.

A preset directory holds:

- `config.json`: `keras.saving.serialize_keras_object(model)` (class, registered name and
  the `get_config()` of the model and every nested layer);
- `metadata.json`: `format_version` (`PRESET_FORMAT_VERSION`), the class, the keras and
  keras-asc versions that wrote it and the parameter count;
- `model.weights.h5`: `model.save_weights`.

`save_preset` writes all three into a temporary sibling folder and renames it into place,
so an interrupted save leaves the previous preset (or nothing) and never a half-written one.
"""

import json
import os
import shutil

from asc_core.errors import UserError
from keras_asc._version import __version__

PRESET_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


def is_preset_dir(path):
    """True when `path` is a folder with a preset's `metadata.json`."""
    return os.path.isfile(os.path.join(os.fspath(path), METADATA_FILE))


def save_preset(model, directory):
    """Writes `model` as a preset directory `directory` (atomically, see the module docstring).

    An existing `directory` is replaced only when it is empty or a preset directory.

    Raises:
        UserError: `directory` holds something else, or cannot be written.
    """
    import keras

    directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(directory) and not (
        os.path.isdir(directory) and (not os.listdir(directory) or is_preset_dir(directory))
    ):
        raise UserError(
            f"preset directory {directory}: exists and is not a preset directory (no "
            f"{METADATA_FILE}); refusing to replace it"
        )
    parent, name = os.path.split(directory)
    temporary = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    previous = os.path.join(parent, f".{name}.old-{os.getpid()}")
    metadata = {
        "format_version": PRESET_FORMAT_VERSION,
        "class_name": type(model).__name__,
        "keras_version": keras.__version__,
        "keras_asc_version": __version__,
        "parameter_count": int(model.count_params()),
    }
    try:
        os.makedirs(parent, exist_ok=True)
        for stale in os.listdir(parent):  # left by a save that was killed
            if stale.startswith(f".{name}.tmp-"):
                shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
        os.mkdir(temporary)
        config = keras.saving.serialize_keras_object(model)
        with open(os.path.join(temporary, CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=1)
        with open(os.path.join(temporary, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=1)
        model.save_weights(os.path.join(temporary, WEIGHTS_FILE))
        replacing = os.path.exists(directory)
        if replacing:
            os.rename(directory, previous)
        try:
            os.rename(temporary, directory)
        except OSError:
            if replacing:
                os.rename(previous, directory)
            raise
        if replacing:
            shutil.rmtree(previous, ignore_errors=True)
    except OSError as err:
        raise UserError(f"preset directory {directory}: cannot write it ({err})") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return directory


def load_preset_config(directory, cls):
    """`(model, weights_path)`: the model of preset directory `directory`, not yet loaded.

    Raises:
        UserError: a missing or unreadable file, a newer format version, or a preset of
            another class than `cls`.
    """
    import keras

    import keras_asc.models  # noqa: F401 - registers the classes the config names

    directory = os.fspath(directory)
    files = {}
    for name in (METADATA_FILE, CONFIG_FILE):
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                files[name] = json.load(f)
        except FileNotFoundError:
            raise UserError(
                f"preset directory {directory}: no {name}; expected a folder written by "
                f"{cls.__name__}.save_to_preset"
            ) from None
        except (OSError, ValueError) as err:
            raise UserError(f"preset file {path}: cannot be read ({err})") from None
    metadata, config = files[METADATA_FILE], files[CONFIG_FILE]
    version = metadata.get("format_version") if isinstance(metadata, dict) else None
    if not isinstance(version, int) or version > PRESET_FORMAT_VERSION:
        raise UserError(
            f"preset directory {directory}: format_version {version!r}; this keras-asc reads "
            f"versions up to {PRESET_FORMAT_VERSION} (a newer keras-asc wrote it?)"
        )
    if metadata.get("class_name") != cls.__name__:
        raise UserError(
            f"preset directory {directory}: holds a {metadata.get('class_name')}; expected a "
            f"{cls.__name__}"
        )
    try:
        model = keras.saving.deserialize_keras_object(config)
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(
            f"preset file {os.path.join(directory, CONFIG_FILE)}: cannot build the model ({err})"
        ) from None
    return model, os.path.join(directory, WEIGHTS_FILE)
