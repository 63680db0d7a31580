"""File-system helpers of the tests: a read-only folder that also stops root."""

import errno
import os


def read_only(monkeypatch, folder):
    """Makes ``folder`` refuse new files and folders as a read-only folder does (EACCES).

    chmod alone would not do: the tests may run as root, which permission bits do not stop.
    """
    folder = os.path.abspath(folder)
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path):
        return os.path.dirname(os.path.abspath(os.fspath(path))) == folder

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def truncate(path, keep):
    """Cuts file ``path`` to its first ``keep`` bytes (negative: drops ``-keep`` from the end)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(keep if keep >= 0 else size + keep)


def flip_bit(path, at=None, mask=0x01):
    """XORs byte ``at`` (default: the middle byte) of file ``path`` with ``mask``."""
    at = os.path.getsize(path) // 2 if at is None else at
    with open(path, "r+b") as f:
        f.seek(at)
        value = f.read(1)[0]
        f.seek(at)
        f.write(bytes([value ^ mask]))
