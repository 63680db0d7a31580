"""TFRecord framing without TensorFlow: writing a record's frame and checking a file's frames.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes)
    data[length]                  | uint32 masked_crc32c(data)

with ``masked(crc) = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2**32`` (the masking keeps a
checksum of data that holds checksums well distributed). The CRC is CRC-32C (Castagnoli),
computed by the ``google-crc32c`` package (its C extension; the pure-Python fallback it uses
where the extension is missing gives the same bytes, slowly). The bytes equal those of
TensorFlow's ``tf.io.TFRecordWriter`` (no compression) for the same records, so
``tf.data.TFRecordDataset`` reads them with its checksum verification.

The builders frame records with :func:`frame` (written by :mod:`asc_core.tfrecord_io`);
``keras_asc`` checks finished shards with :func:`shard_problem` before a long run and names the
damaged file with :func:`data_loss_error` when TensorFlow reports a data loss.
"""

import os
import re
import struct

import google_crc32c
import numpy as np

from asc_core.errors import UserError

FRAME_BYTES = 16  # 8 (length) + 4 (its checksum) + 4 (data checksum)
_MASK_DELTA = 0xA282EAD8
_FRAME_HEADER = struct.Struct("<QI")  # record length, masked CRC-32C of the length
# The remedy named by every message about a damaged shard.
REBUILD_HINT = (
    "expected a complete TFRecord shard; rebuild the folder with python -m tfrecords_builder"
)
# The C extension reads bytes and numpy arrays in place (but refuses memoryviews); the
# pure-Python fallback iterates over its argument, so it must get bytes.
_CRC_READS_ARRAYS = google_crc32c.implementation == "c"


_HEADERS = {}  # record length -> framed header (length and its checksum)
_JOIN_MAX = 4096


def masked_crc32c(data):
    """TFRecord's masked CRC-32C of a bytes-like object (bytes or a C-contiguous array)."""
    return _mask(google_crc32c.value(data))


def _mask(crc):
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _pieces(record):
    return [record] if isinstance(record, (bytes, bytearray, memoryview)) else list(record)


def frame(record):
    """The framed record as a list of pieces: header, the record's pieces, footer.

    Args:
        record: the serialized record, as ``bytes`` or as a list of pieces (``bytes`` and
            C-contiguous arrays) whose concatenation is the record.

    Returns:
        ``(pieces, size)``: what to write, and its total length (record length + 16).
    """
    pieces = _pieces(record)
    crc = 0
    length = 0
    for piece in pieces:
        if not (isinstance(piece, bytes) or _CRC_READS_ARRAYS and isinstance(piece, np.ndarray)):
            piece = bytes(memoryview(piece).cast("B"))
        crc = google_crc32c.extend(crc, piece)
        length += len(piece) if isinstance(piece, bytes) else piece.nbytes
    header = _HEADERS.get(length)
    if header is None:  # records of a dataset have a handful of lengths: cache their headers
        length_bytes = struct.pack("<Q", length)
        header = length_bytes + struct.pack("<I", masked_crc32c(length_bytes))
        if len(_HEADERS) >= 1024:
            _HEADERS.clear()
        _HEADERS[length] = header
    footer = struct.pack("<I", _mask(crc))
    # Small bytes at either end are joined to the header and footer (a copy of a few hundred
    # bytes, and fewer pieces to write); large pieces are never copied.
    if pieces and isinstance(pieces[0], bytes) and len(pieces[0]) <= _JOIN_MAX:
        pieces[0] = header + pieces[0]
    else:
        pieces.insert(0, header)
    if len(pieces) > 1 and isinstance(pieces[-1], bytes) and len(pieces[-1]) <= _JOIN_MAX:
        pieces[-1] += footer
    else:
        pieces.append(footer)
    return pieces, length + FRAME_BYTES


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
            if masked_crc32c(header[:8]) != crc:
                return None, f"corrupted record header at byte {offset}"
            end = offset + _FRAME_HEADER.size + length + 4
            if end > size:
                return None, (
                    f"truncated: the record at byte {offset} ends at byte {end}, the "
                    f"file has {size} bytes"
                )
            if check_data:
                data, data_crc = f.read(length), f.read(4)
                if masked_crc32c(data) != struct.unpack("<I", data_crc)[0]:
                    return None, f"corrupted record at byte {offset} (data checksum mismatch)"
            offset, count = end, count + 1
    return count, None


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
            return UserError(f"{path}: {problem}; {REBUILD_HINT}")
    folders = sorted({os.path.dirname(f) for f in files})
    return UserError(
        f"reading the TFRecords of {', '.join(folders)} failed ({detail}); {REBUILD_HINT}"
    )
