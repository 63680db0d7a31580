"""Preset weights: one resolution rule, and a verified cache of the official PaSST checkpoints.

``load_preset_weights`` is the one place that turns a ``weights`` argument into loaded weights,
for ``SceneClassifier.from_preset``, the training runner (``model.weights``) and
``keras_asc.hear.load_model``: None loads nothing, a path loads that ``.weights.h5`` file, and
``"audioset"`` (what ``from_preset`` uses by default for a preset named after an official
checkpoint) ends in this cache:

1. the free space and write access of the cache are checked, then the official ``.pt`` of
   preset ``name`` is downloaded once (resumable, retried) into ``<cache>/checkpoints/``; its
   size and sha256 go into ``<cache>/manifest.json``;
2. it is converted with ``keras_asc.models.passt_checkpoint`` (NumPy only, no torch) into
   ``<cache>/converted/<name>-<N>classes.weights.h5``, recorded the same way, with the sha256 of
   the checkpoint it came from;
3. every later use re-checks size and sha256 of both files; a corrupted or truncated entry is
   reported, deleted and fetched or converted again, never used.

The cache lives in ``$KERAS_ASC_CACHE`` or ``~/.cache/keras_asc`` unless ``cache_dir`` is given.
``$KERAS_ASC_WEIGHTS_MIRROR`` replaces the GitHub release prefix (a mirror serving the same
``<release>/<file>`` paths). The PaSST releases publish no checksums, so the sha256 recorded at
the first download is the reference for later uses (trust on first use).
"""

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from asc_core.download import fetch_resumable
from asc_core.download import file_digest
from asc_core.errors import UserError
from asc_core.files import write_json
from keras_asc.layers._utils import as_pair
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.passt_presets import CHECKPOINT_URL_PREFIX

CACHE_ENV = "KERAS_ASC_CACHE"
MIRROR_ENV = "KERAS_ASC_WEIGHTS_MIRROR"
MANIFEST = "manifest.json"


def cache_root(cache_dir=None):
    """The cache folder: ``cache_dir``, else ``$KERAS_ASC_CACHE``, else ``~/.cache/keras_asc``."""
    root = cache_dir or os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "keras_asc")
    return Path(root).expanduser()


def checkpoint_url(name):
    """URL of the official checkpoint of preset ``name`` (mirror prefix applied)."""
    checkpoint = get_preset(name)["checkpoint"]
    if checkpoint is None:
        raise UserError(
            f"preset {name!r} has no released weights (it is a size for tests and demos); "
            "leave out weights='audioset' (model.weights: null in a config), or use a preset "
            "named after an official checkpoint"
        )
    prefix = os.environ.get(MIRROR_ENV) or CHECKPOINT_URL_PREFIX
    return prefix.rstrip("/") + "/" + checkpoint


class WeightsCache:
    """Checkpoints and converted weights under one folder, each verified on every use."""

    def __init__(self, cache_dir=None):
        self.root = cache_root(cache_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(
                f"weights cache {self.root}: cannot create it ({err.strerror})"
            ) from None
        self.manifest_path = self.root / MANIFEST
        try:
            self.manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            self.manifest = {}
        except ValueError:
            warnings.warn(
                f"weights cache manifest {self.manifest_path} is unreadable; starting a new one "
                "(cached files will be verified again from scratch)",
                stacklevel=2,
            )
            self.manifest = {}

    def _save(self):
        write_json(self.manifest_path, self.manifest, indent=1, sort_keys=True)

    def _record(self, path, **extra):
        key = path.relative_to(self.root).as_posix()
        self.manifest[key] = {
            "size": path.stat().st_size,
            "sha256": file_digest(path, "sha256"),
            **extra,
        }
        self._save()
        return self.manifest[key]

    def _valid(self, path):
        """The manifest record of ``path`` when the file matches it; drops corrupted entries."""
        key = path.relative_to(self.root).as_posix()
        record = self.manifest.get(key)
        if record is None or not path.exists():
            return None
        size = path.stat().st_size
        problem = None
        if size != record["size"]:
            problem = f"size {size} != recorded {record['size']}"
        else:
            sha = file_digest(path, "sha256")
            if sha != record["sha256"]:
                problem = f"sha256 {sha} != recorded {record['sha256']}"
        if problem is None:
            return record
        warnings.warn(
            f"weights cache entry {path} is corrupted ({problem}); deleting it and fetching "
            "or converting it again",
            stacklevel=3,
        )
        path.unlink()
        del self.manifest[key]
        self._save()
        return None

    def check_room(self, name, files):
        """Raises a UserError unless the cache is writable and has room for ``files`` (that
        many files of the size of preset ``name``'s checkpoint); checked before any download."""
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as err:
            raise UserError(
                f"weights cache {self.root}: not writable ({err.strerror}); set {CACHE_ENV} to "
                "a writable folder"
            ) from None
        need = files * checkpoint_bytes(name)
        free = shutil.disk_usage(self.root).free
        if free < need:
            raise UserError(
                f"weights cache {self.root}: {free / 2**20:,.1f} MiB free, but the {name} "
                f"checkpoint and its converted weights need about {need / 2**20:,.1f} MiB; free "
                f"some space or set {CACHE_ENV} to a folder on another disk"
            )

    def checkpoint(self, name, retries=5, backoff=1.0, timeout=60):
        """Path of the verified official ``.pt`` of preset ``name``, downloaded if needed."""
        url = checkpoint_url(name)
        path = self.root / "checkpoints" / url.rsplit("/", 1)[-1]
        if self._valid(path) is not None:
            return path
        self.check_room(name, files=2)  # the checkpoint, then its converted weights
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        print(f"downloading {name} weights from {url}", flush=True)
        fetch_resumable(url, part, None, retries, backoff, timeout, desc=path.name)
        os.replace(part, path)
        self._record(path, url=url, preset=name)
        return path

    def converted(self, name, num_classes, **fetch_kwargs):
        """Path of verified Keras weights of preset ``name`` with ``num_classes`` classes."""
        # Imported here: passt_checkpoint builds a SceneClassifier, whose module imports this one.
        from keras_asc.models.passt_checkpoint import convert_checkpoint

        path = self.root / "converted" / f"{name}-{int(num_classes)}classes.weights.h5"
        checkpoint = self.checkpoint(name, **fetch_kwargs)
        source_sha = self.manifest[checkpoint.relative_to(self.root).as_posix()]["sha256"]
        record = self._valid(path)
        if record is not None and record.get("source_sha256") == source_sha:
            return path
        self.check_room(name, files=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"converting {checkpoint.name} for {num_classes} classes", flush=True)
        convert_checkpoint(str(checkpoint), str(path), num_classes=int(num_classes), arch=name)
        self._record(path, preset=name, num_classes=int(num_classes), source_sha256=source_sha)
        return path


def pretrained_weights(name, num_classes, cache_dir=None, **fetch_kwargs):
    """Converted AudioSet weights for preset ``name`` (see the module docstring)."""
    return WeightsCache(cache_dir).converted(name, num_classes, **fetch_kwargs)


def checkpoint_bytes(name):
    """Bytes of preset ``name``'s float32 PaSST checkpoint (all parameters, the AudioSet head
    and the unused distillation head included), plus 1 MiB of pickle and zip overhead."""
    preset = get_preset(name)
    b = preset["backbone"]
    width, inner, classes = b["hidden_dim"], b["intermediate_dim"], preset["num_classes"] or 527
    strides, patch = as_pair(b["stride"], "stride"), as_pair(b["patch_size"], "patch_size")
    # Two LayerNorms, qkv and proj (weights and biases), fc1 and fc2 (weights and biases).
    block = 4 * width + 4 * width * (width + 1) + 2 * width * inner + inner + width
    parameters = (
        6 * width  # cls and dist tokens, their position embeddings, the final LayerNorm
        + width * (b["num_mels"] // strides[0] + b["max_frames"] // strides[1])
        + width * (patch[0] * patch[1] + 1)
        + b["num_layers"] * block
        + 2 * width
        + 2 * (width + 1) * classes  # head LayerNorm, head and head_dist
    )
    return 4 * parameters + 2**20


def load_preset_weights(model, preset, weights, cache_dir=None, label="weights"):
    """Loads the weights that ``weights`` names for ``preset`` into ``model``.

    The one resolution rule of ``SceneClassifier.from_preset``, the training runner and
    ``keras_asc.hear.load_model``.

    Args:
        model: the built model of ``preset``.
        preset: the preset name (used by ``"audioset"``) or a description for messages.
        weights: None (nothing is loaded), ``"audioset"`` (the official checkpoint of
            ``preset``, downloaded and converted once into the cache for
            ``model.num_classes``) or the path of a ``.weights.h5`` file.
        cache_dir: the cache folder for ``"audioset"`` (default: see ``cache_root``).
        label: how messages name the argument (``"model.weights"`` in a config).

    Returns:
        the path loaded, or None.

    Raises:
        UserError: a value of another kind, a missing file, a preset without released weights,
            a failed download, or a file that does not fit the model.
    """
    if weights is None:
        return None
    if not isinstance(weights, str | os.PathLike):
        raise UserError(f"{label} must be None, 'audioset' or a .weights.h5 path, got {weights!r}")
    if weights == "audioset":
        path = pretrained_weights(preset, model.num_classes, cache_dir=cache_dir)
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise UserError(
                f"{label} must be None, 'audioset' or an existing .weights.h5 file, got "
                f"{path!r} (no such file; scripts/convert_passt_checkpoint.py writes one)"
            )
    try:
        model.load_weights(path)
    except ValueError as err:
        # Keras' message ends with the whole target variable; the shapes come before it.
        detail = " ".join(str(err).split("Target variable:")[0].split())[:500]
        raise UserError(
            f"{label} {path}: does not fit preset {preset} with {model.num_classes} classes: "
            f"{detail}"
        ) from None
    return path
