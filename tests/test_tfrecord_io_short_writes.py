"""tfrecord_io: records written with short (partial) vectored writes stay complete."""

import os

import numpy as np
import pytest

from asc_core import tfrecord
from asc_core import tfrecord_io


def _joined(pieces):
    return b"".join(memoryview(p).cast("B").tobytes() for p in pieces)


@pytest.fixture
def short_writes(monkeypatch):
    """Makes every vectored write write at most 1000 bytes; returns the list of call sizes."""
    calls = []

    def pwritev(fd, buffers, offset):
        data = _joined(buffers)[:1000]
        calls.append(len(data))
        return os.pwrite(fd, data, offset)

    def writev(fd, buffers):
        data = _joined(buffers)[:1000]
        calls.append(len(data))
        return os.write(fd, data)

    monkeypatch.setattr(tfrecord_io.os, "pwritev", pwritev)
    monkeypatch.setattr(tfrecord_io.os, "writev", writev)
    return calls


def test_write_at_and_record_writer_survive_short_writes(tmp_path, short_writes):
    wave = np.linspace(-1, 1, 3000, dtype=np.float32)
    record = [b"head" * 10, wave, b"tail" * 5]
    expected = _joined(tfrecord.frame(record)[0])
    assert len(expected) == 40 + wave.nbytes + 20 + tfrecord.FRAME_BYTES

    path = tmp_path / "placed"
    path.write_bytes(b"")
    assert tfrecord_io.write_at(str(path), 7, record) == len(expected)
    tfrecord_io.close_files()
    assert path.read_bytes() == b"\0" * 7 + expected
    assert short_writes == [1000] * 12 + [len(expected) - 12000]

    short_writes.clear()
    with tfrecord_io.RecordWriter(tmp_path / "sequential") as writer:
        writer.write(record)
        writer.write(b"small record")
    small = _joined(tfrecord.frame(b"small record")[0])
    assert (tmp_path / "sequential").read_bytes() == expected + small
    assert sum(short_writes) == len(expected) + len(small)
