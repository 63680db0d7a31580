"""The TFRecord shards of a ``tau22`` folder: finding them, ``info.json``, and checking their
framing before a long run (a truncated or corrupted shard is named, not met hours later as a
TensorFlow error).
"""

import glob
import json
import os
import re
import struct

import numpy as np
import tensorflow as tf

from asc_core.errors import UserError

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


_FRAME_HEADER = struct.Struct("<QI")  # record length, masked CRC-32C of the length


_REBUILD = "expected a complete TFRecord shard; rebuild the folder with python -m tfrecords_builder"


def _masked_crc32c(data):
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def shard_problem(path, check_data=False):
    """What is wrong with one TFRecord file's framing, or None when it is sound.

    Walks the record headers (length and its checksum): a truncated or overwritten file is
    found with one 12-byte read per record. ``check_data`` also verifies every record's data
    checksum (reads the whole file: what finds a flipped bit; used after TensorFlow reported
    a data loss, to name the file).

    Returns:
        ``(record count, None)`` or ``(None, problem)`` with ``problem`` one phrase.
    """
    size = os.path.getsize(path)
    offset, count = 0, 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(_FRAME_HEADER.size)
            if len(header) < _FRAME_HEADER.size:
                return None, f"truncated: the file ends inside the record header at byte {offset}"
            length, crc = _FRAME_HEADER.unpack(header)
            if _masked_crc32c(header[:8]) != crc:
                return None, f"corrupted record header at byte {offset}"
            end = offset + _FRAME_HEADER.size + length + 4
            if end > size:
                return None, (
                    f"truncated: the record at byte {offset} ends at byte {end}, the "
                    f"file has {size} bytes"
                )
            if check_data:
                data, data_crc = f.read(length), f.read(4)
                if _masked_crc32c(data) != struct.unpack("<I", data_crc)[0]:
                    return None, f"corrupted record at byte {offset} (data checksum mismatch)"
            offset, count = end, count + 1
    return count, None


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
            raise UserError(f"{path}: {problem}; {_REBUILD}")
        counts.append(count)
    expected = _info_count(info, split, view)
    if expected is not None and sum(counts) != expected:
        held = ", ".join(f"{os.path.basename(f)}: {n}" for f, n in zip(files, counts))
        raise UserError(
            f"{os.path.dirname(files[0])}: split {split!r} view {view!r} holds {sum(counts)} "
            f"records but info.json records {expected} ({held}); a shard is truncated or "
            "replaced; rebuild the folder with python -m tfrecords_builder"
        )
    return sum(counts)


def data_loss_error(err, files):
    """A :class:`UserError` for a ``tf.errors.DataLossError`` met while reading ``files``.

    TensorFlow's message names a byte offset but not the file: every shard's checksums are
    verified here to name it.
    """
    detail = str(getattr(err, "message", err)).strip().splitlines()[0]
    detail = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", detail)
    for path in files:
        try:
            _, problem = shard_problem(path, check_data=True)
        except OSError as os_err:
            problem = f"cannot be read ({os_err.strerror})"
        if problem is not None:
            return UserError(f"{path}: {problem}; {_REBUILD}")
    folders = sorted({os.path.dirname(f) for f in files})
    return UserError(f"reading the TFRecords of {', '.join(folders)} failed ({detail}); {_REBUILD}")


def _info_count(info, split, view):
    """``info["splits"][split]["views"][view]["num_examples"]`` of a tau22 build, or None."""
    try:
        count = info["splits"][split]["views"][view]["num_examples"]
    except (KeyError, TypeError):
        return None
    return count if isinstance(count, int) else None
