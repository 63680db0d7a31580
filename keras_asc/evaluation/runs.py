"""Reading run directories and predicting their model on the 1-s clips of a TFRecord split.

A run directory is what ``scripts/train.py`` writes (layout: :mod:`keras_asc.run_dir`):
``config.yaml`` (the resolved config; ``data.path`` names the TFRecord folder) and
``model.keras`` (loadable after ``import keras_asc``). Evaluation outputs go to
``RUN_DIR/eval/<split>/`` (see ``docs/report_schema.md``).
"""

import csv
import io
import os
import re

import numpy as np

from asc_core import vocab
from asc_core.errors import UserError
from asc_core.tfrecord import data_loss_error
from keras_asc.run_dir import CONFIG_FILE
from keras_asc.run_dir import MODEL_FILE
from keras_asc.run_dir import SEED_DIR
from keras_asc.run_dir import eval_dir  # noqa: F401 - part of this module's API
from keras_asc.run_dir import read_run_config
from keras_asc.run_dir import seed_dirs

# === Run directories ===


class Run:
    """One run directory.

    Attributes:
        path: the folder.
        name: its base name.
        config: the parsed ``config.yaml`` (dict; ``{}`` when the file is absent).
    """

    def __init__(self, path, config):
        self.path = os.fspath(path)
        self.name = os.path.basename(os.path.normpath(self.path))
        self.config = config

    @property
    def model_path(self):
        return os.path.join(self.path, MODEL_FILE)

    def data_path(self, override=None):
        """The TFRecord folder: ``override`` (``--data``) or the config's ``data.path``."""
        if override is not None:
            return os.fspath(override)
        data = self.config.get("data") if isinstance(self.config, dict) else None
        path = data.get("path") if isinstance(data, dict) else None
        if not path:
            raise UserError(
                f"{os.path.join(self.path, CONFIG_FILE)}: no data.path; pass the TFRecord "
                "folder with --data"
            )
        return os.fspath(path)

    def get(self, dotted, default=None):
        """A config value by dotted key (``loss.icl_weight``), or ``default``."""
        node = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def load_model(self):
        """``keras.saving.load_model(RUN_DIR/model.keras)`` after registering keras_asc objects."""
        import keras

        import keras_asc.models  # noqa: F401 - registers SceneClassifier and what it is built of

        try:
            model = keras.saving.load_model(self.model_path)
        except (ValueError, TypeError, OSError) as err:
            raise UserError(f"{self.model_path}: cannot load the model ({err})") from None
        outputs = getattr(model, "output", None)
        if not (isinstance(outputs, dict) and "logits" in outputs):  # as predict.py checks
            raise UserError(
                f"{self.model_path}: model {model.name!r} has no 'logits' output; expected a "
                "keras_asc SceneClassifier written by scripts/train.py"
            )
        return model


def open_run(path, need_model=True):
    """Checks a run directory and reads its config.

    Raises:
        UserError: the folder does not exist, has no ``model.keras`` (when ``need_model``) or its
            ``config.yaml`` is not a YAML mapping.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise UserError(f"--run {path}: run directory not found")
    if need_model and not os.path.isfile(os.path.join(path, MODEL_FILE)):
        raise UserError(
            f"--run {path}: no {MODEL_FILE}; expected a finished training run "
            "(scripts/train.py writes RUN_DIR/model.keras at the end) or a folder of seed-S runs"
        )
    config = read_run_config(path)
    return Run(path, config)


def expand_runs(paths, need_model=True):
    """Opens run directories; a folder of ``seed-S`` runs (``train.py --seeds``) gives its seeds.

    Returns:
        list of :class:`Run`, in the given order (seeds in seed order).
    """
    opened = []
    for path in paths:
        path = os.fspath(path)
        seeds = seed_dirs(path)
        if seeds and not os.path.isfile(os.path.join(path, MODEL_FILE)):
            opened += [open_run(p, need_model) for p in seeds]
        else:
            opened.append(open_run(path, need_model))
    return opened


def method_name(runs, name=None):
    """Row label for runs of one method.

    ``name`` when given; for ``.../icl/seed-0`` the parent's name (``icl``); otherwise the first
    run's name without a ``-seedN`` suffix.
    """
    if name:
        return name
    first = runs[0]
    if SEED_DIR.match(first.name):
        return os.path.basename(os.path.dirname(os.path.normpath(first.path))) or first.name
    return re.sub(r"[-_.]?seed[-_]?\d+$", "", first.name) or first.name


# === Clips ===


def resolve_split(path, split):
    """The split holding ``split``'s shards (``info.json`` aliases: ``test`` → ``evaluate``)."""
    from keras_asc.data.shards import read_info

    info = read_info(path) or {}
    return info.get("aliases", {}).get(split, split)


def check_split(path, split):
    """Fails early (before a model is loaded) when ``path`` has no 1-s shards of ``split``."""
    from keras_asc.data.shards import check_shards
    from keras_asc.data.shards import read_info
    from keras_asc.data.shards import shard_files

    name = resolve_split(path, split)
    files = shard_files(path, name, "1s")
    check_shards(files, read_info(path), name, "1s")  # a broken shard is named before the run
    return files


def read_clips(path, split="evaluate", batch_size=64, max_examples=None):
    """Yields batches of 1-s clips with their labels and names.

    Args:
        path: TFRecord folder of the ``tau22`` builder.
        split: split name (an ``info.json`` alias is followed).
        batch_size: clips per batch (the last batch may be smaller).
        max_examples: only the first N clips.

    Yields:
        dicts of NumPy arrays: ``audio [B, samples]`` float32, ``scene_id [B]``,
        ``device_id [B]`` (int64, -1 when unknown), ``filename [B]`` (str), ``group [B]`` (str: the
        10-s recording a clip belongs to, for grouped splits).
    """
    import tensorflow as tf

    from keras_asc.data.schema import parse_audio_example

    files = check_split(path, split)
    records = tf.data.TFRecordDataset(files)
    if max_examples is not None:
        records = records.take(max_examples)

    def parse(serialized):
        features = parse_audio_example(serialized)
        features["audio"] = features["audio"].to_tensor()
        return features

    batches = records.batch(batch_size).map(parse).prefetch(2)
    for features in batches.as_numpy_iterator():
        filenames = [f.decode("utf-8") for f in features["filename"]]
        yield {
            "audio": features["audio"].astype(np.float32),
            "scene_id": features["scene_id"].astype(np.int64),
            "device_id": features["device_id"].astype(np.int64),
            "filename": filenames,
            "group": [recording_key(f) for f in filenames],
        }


def split_clip_count(path, split, max_examples=None):
    """The number of 1-s clips of ``split`` that :func:`read_clips` yields (None: unknown)."""
    from keras_asc.data.shards import info_count
    from keras_asc.data.shards import read_info

    count = info_count(read_info(path), resolve_split(path, split), "1s")
    if count is not None and max_examples is not None:
        count = min(count, max_examples)
    return count


def recording_key(filename):
    """10-s recording key of a 1-s clip name: ``audio/bus-lyon-1-2-3-a.wav`` → ``bus-lyon-1-2-a``.

    Names that do not follow the TAU pattern (anonymised ``audio/12.wav``) are their own key.
    """
    stem = os.path.splitext(os.path.basename(filename))[0]
    parts = stem.split("-")
    if len(parts) >= 5 and parts[-2].isdigit():
        return "-".join(parts[:-2] + parts[-1:])
    return stem


def predict_clips(
    model, path, split="evaluate", batch_size=64, max_examples=None, embeddings=False, progress=True
):
    """Runs ``model`` over a split's 1-s clips.

    Args:
        model: a ``SceneClassifier``-like model: waveform ``[B, samples]`` →
            ``{"logits": [B, C], "embedding": [B, D]}`` (a bare logits tensor is accepted too).
        path, split, batch_size, max_examples: see :func:`read_clips`.
        embeddings: also return the ``embedding`` output.
        progress: show progress (a bar on a terminal, plain lines otherwise), with the split's
            clip count from ``info.json`` as total.

    Returns:
        dict: ``logits [N, C]`` float32, ``scene_id``, ``device_id`` ``[N]`` int64,
        ``filename``, ``group`` (lists of str) and, with ``embeddings``, ``embedding [N, D]``.

    Raises:
        UserError: the split holds no clip.
    """
    from asc_core.progress import progress as progress_display

    out = {"logits": [], "scene_id": [], "device_id": [], "filename": [], "group": []}
    if embeddings:
        out["embedding"] = []
    total = split_clip_count(path, split, max_examples)
    bar = progress_display(total=total, desc=f"predict {split}", unit="clip", enabled=progress)
    try:
        batches = read_clips(path, split, batch_size, max_examples)
        for batch in _named_data_errors(batches, path, split):
            audio = batch["audio"]
            count = audio.shape[0]
            if count < batch_size:
                # Pad the last batch to the full size: one traced predict function for every batch.
                audio = np.pad(audio, ((0, batch_size - count), (0, 0)))
            outputs = model.predict_on_batch(audio)
            if isinstance(outputs, dict):
                logits = outputs["logits"]
                embedding = outputs.get("embedding")
            else:
                logits, embedding = outputs, None
            logits = np.asarray(logits)[:count]
            embedding = None if embedding is None else np.asarray(embedding)[:count]
            out["logits"].append(np.asarray(logits, dtype=np.float32))
            if embeddings:
                if embedding is None:
                    raise UserError(
                        "the model has no 'embedding' output; the device probe needs a "
                        "SceneClassifier-like model returning {'logits', 'embedding'}"
                    )
                out["embedding"].append(np.asarray(embedding, dtype=np.float32))
            for key in ("scene_id", "device_id"):
                out[key].append(batch[key])
            out["filename"] += batch["filename"]
            out["group"] += batch["group"]
            bar.update(len(batch["filename"]))
    finally:
        bar.close()  # before any error message: the message is the last line
    if not out["filename"]:
        raise UserError(f"{path}: split {split!r} holds no clip")
    for key in ("logits", "scene_id", "device_id") + (("embedding",) if embeddings else ()):
        out[key] = np.concatenate(out[key])
    return out


def _named_data_errors(batches, path, split):
    """Yields ``batches``; a TFRecord data loss becomes a UserError naming the shard."""
    import tensorflow as tf

    from keras_asc.data.shards import shard_files

    try:
        yield from batches
    except tf.errors.DataLossError as err:
        raise data_loss_error(err, shard_files(path, resolve_split(path, split), "1s")) from None


def predictions_tsv(filenames, probabilities, class_names=vocab.SCENES):
    """DCASE submission format: ``filename  scene_label  <one probability column per scene>``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["filename", "scene_label", *class_names])
    for name, probs in zip(filenames, probabilities):
        label = class_names[int(np.argmax(probs))]
        writer.writerow([name, label, *(f"{p:.6f}" for p in probs)])
    return buffer.getvalue()
