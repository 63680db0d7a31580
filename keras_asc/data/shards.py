"""The TFRecord shards of a ``tau22`` folder: finding them, ``info.json``, and checking their
framing before a long run (a truncated or corrupted shard is named, not met hours later as a
TensorFlow error).
"""

import glob
import json
import os
import re

import numpy as np
import tensorflow as tf

from asc_core.errors import UserError
from asc_core.tfrecord import REBUILD_HINT
from asc_core.tfrecord import shard_problem

_SHARD_PATTERN = re.compile(r"^(?P<prefix>.+)\.tfrecord-(?P<i>\d{5})-of-(?P<n>\d{5})$")


def shard_files(path, split, view):
    """Sorted shard paths ``{path}/{split}-{view}.tfrecord-*``.

    Raises:
        UserError: ``path`` is not a folder, or it holds no shard of that split and view.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise UserError(
            f"data.path {path}: TFRecord folder not found; expected the output folder of "
            "`python -m tfrecords_builder tau22`"
        )
    files = sorted(glob.glob(os.path.join(glob.escape(path), f"{split}-{view}.tfrecord-*")))
    files = [f for f in files if _SHARD_PATTERN.match(os.path.basename(f))]
    if not files:
        present = sorted(
            {
                m.group("prefix")
                for m in (_SHARD_PATTERN.match(n) for n in os.listdir(path))
                if m is not None
            }
        )
        raise UserError(
            f"data.path {path}: no TFRecord shards for split {split!r} view {view!r} "
            f"(expected {split}-{view}.tfrecord-*); present: {', '.join(present) or 'none'}"
        )
    return files


def read_info(path):
    """``info.json`` of a TFRecord folder as a dict, or None when there is none."""
    info_path = os.path.join(os.fspath(path), "info.json")
    if not os.path.isfile(info_path):
        return None
    with open(info_path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise UserError(f"{info_path}: not valid JSON ({err})") from None


def count_records(files):
    """Number of records in TFRecord files (reads them once)."""
    dataset = tf.data.TFRecordDataset(files)
    return int(dataset.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def check_shards(files, info=None, split=None, view=None):
    """Checks the shards of a split before a long run (cheap: record headers only).

    Args:
        files: shard paths.
        info: the folder's ``info.json`` (or None); when it has the view's ``num_examples``
            the records found must add up to it (finds a shard cut at a record boundary).
        split, view: the split and view of ``files`` (for ``info`` and messages).

    Returns:
        the number of records in ``files``.

    Raises:
        UserError: naming the first broken shard, or the view whose count differs.
    """
    counts = []
    for path in files:
        count, problem = shard_problem(path)
        if problem is not None:
            raise UserError(f"{path}: {problem}; {REBUILD_HINT}")
        counts.append(count)
    expected = info_count(info, split, view)
    if expected is not None and sum(counts) != expected:
        held = ", ".join(f"{os.path.basename(f)}: {n}" for f, n in zip(files, counts))
        raise UserError(
            f"{os.path.dirname(files[0])}: split {split!r} view {view!r} holds {sum(counts)} "
            f"records but info.json records {expected} ({held}); a shard is truncated or "
            "replaced; rebuild the folder with python -m tfrecords_builder"
        )
    return sum(counts)


def info_count(info, split, view):
    """``info["splits"][split]["views"][view]["num_examples"]`` of a tau22 build, or None."""
    try:
        count = info["splits"][split]["views"][view]["num_examples"]
    except (KeyError, TypeError):
        return None
    return count if isinstance(count, int) else None
