"""TFRecord files written without TensorFlow: a sequential writer and placed writes.

Records are framed by :func:`asc_core.tfrecord.frame` (the format is described there); the
bytes equal those of TensorFlow's ``tf.io.TFRecordWriter`` for the same records.

Two ways of writing:

* :class:`RecordWriter` appends records to one file, in order (the DIR builders, through
  :class:`asc_core.writer.ShardedWriter`).
* :func:`write_at` writes one framed record at a byte offset fixed in advance. The ``tau22``
  builder computes every record's length before decoding any audio
  (:func:`asc_core.example.audio_example_size`), so its worker processes write their own
  records straight into the shards: nothing large travels back to the main process, and the
  file contents do not depend on which worker wrote what, or when. :func:`remove_gaps` closes
  the gaps that skipped records leave.

Records are passed as a list of pieces (``bytes`` and C-contiguous arrays, e.g. from
:func:`asc_core.example.audio_example_pieces`): the checksum and the vectored write read
the waveform in place, without joining the pieces into one buffer first.
"""

import collections
import os

from asc_core.tfrecord import frame

_OPEN_FILES_MAX = 64
_COPY_CHUNK = 8 << 20


def _write_all(fd, pieces, offset=None, size=None):
    """``os.writev``/``os.pwritev`` until every byte is written (short writes are legal).

    ``size``: the pieces' total length, when known; then one call that writes everything
    (the usual case) needs no byte views of the pieces.
    """
    if size is not None:
        written = os.writev(fd, pieces) if offset is None else os.pwritev(fd, pieces, offset)
        if written == size:
            return
        pieces = [b"".join(memoryview(p).cast("B") for p in pieces)[written:]]
        if offset is not None:
            offset += written
    views = [memoryview(p).cast("B") for p in pieces]
    while views:
        written = os.writev(fd, views) if offset is None else os.pwritev(fd, views, offset)
        if offset is not None:
            offset += written
        while views and written >= views[0].nbytes:
            written -= views[0].nbytes
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


class RecordWriter:
    """Appends framed records to a new file (a drop-in for ``tf.io.TFRecordWriter``).

    Args:
        path: the file to create (truncated if it exists).

    Usable as a context manager; :meth:`close` is idempotent.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.bytes_written = 0

    def write(self, record):
        """Appends one record (``bytes`` or a list of pieces, see :func:`frame`)."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the writer is closed")
        pieces, size = frame(record)
        _write_all(self._fd, pieces, size=size)
        self.bytes_written += size

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# Descriptors opened by write_at, kept per process (a worker writes many records into the
# same few shards); least recently used ones are closed beyond _OPEN_FILES_MAX.
_open_files = collections.OrderedDict()


def write_at(path, offset, record, size=None):
    """Writes one framed record at byte ``offset`` of the existing file ``path``.

    Several processes may write disjoint ranges of the same file at once.

    Args:
        path: an existing file (created by the caller; never created here).
        offset: where the framed record starts.
        record: ``bytes`` or a list of pieces (see :func:`frame`).
        size: the framed length the caller reserved; a record of another length raises
            ``RuntimeError`` instead of overwriting its neighbour.

    Returns:
        the framed length written.
    """
    pieces, framed = frame(record)
    if size is not None and framed != size:
        raise RuntimeError(
            f"{path}: record at offset {offset} is {framed} bytes framed but "
            f"{size} were reserved for it"
        )
    fd = _open_files.pop(path, None)
    if fd is None:
        fd = os.open(path, os.O_WRONLY)
        while len(_open_files) >= _OPEN_FILES_MAX:
            os.close(_open_files.popitem(last=False)[1])
    _open_files[path] = fd
    _write_all(fd, pieces, offset, framed)
    return framed


def close_files():
    """Closes the descriptors :func:`write_at` keeps open in this process."""
    while _open_files:
        os.close(_open_files.popitem()[1])


def remove_gaps(path, gaps, size):
    """Closes gaps in a file in place: the bytes after each gap move down, then it is cut.

    Args:
        path: the file.
        gaps: ``(offset, length)`` ranges to remove, non-overlapping, in any order.
        size: the file's intended length before removing the gaps (bytes past the end of the
            file count as zeros, as in a sparse file).

    Returns:
        the new length, ``size - sum(lengths)``.
    """
    gaps = sorted(gaps)
    fd = os.open(path, os.O_RDWR)
    try:
        write = gaps[0][0] if gaps else size
        for i, (offset, length) in enumerate(gaps):
            read = offset + length
            end = gaps[i + 1][0] if i + 1 < len(gaps) else size
            if end < read or offset < write:
                raise ValueError(f"{path}: gaps overlap or exceed the file ({gaps})")
            while read < end:  # destination below source: copying forwards is safe
                chunk = os.pread(fd, min(_COPY_CHUNK, end - read), read)
                if not chunk:
                    raise ValueError(f"{path} ends at {read} bytes; expected {size}")
                _write_all(fd, [chunk], write)
                read += len(chunk)
                write += len(chunk)
        os.ftruncate(fd, write)
    finally:
        os.close(fd)
    return write
