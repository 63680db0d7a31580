"""Files written whole or not at all, and the one JSON policy of everything keras-asc writes.

Every file this project writes (reports, ``info.json``, run-directory state, configs, tables,
figures, weights) goes through :func:`replacing`: the content is written to a temporary file in
the target's folder, flushed to disk (``fsync``) and renamed onto the target with
``os.replace``, which is atomic on POSIX. A reader, or a process killed at any moment, therefore
sees either the previous file or the new one, never a half-written one. The temporary name is
``.tmp-<PID>-<name>.<random><suffix>``: the process id lets the next run remove what a killed
writer left (``keras_asc.training.run_dir.remove_stale_temp_files``), and ``suffix`` keeps the
ending that some writers insist on (Keras: ``.weights.h5``, ``.keras``; numpy: ``.npz``). A write
that fails (a full disk, a read-only folder) removes the temporary file, leaves the target as it
was and raises :class:`WriteError` naming the target.

JSON policy (:func:`json_text`, :func:`write_json`): strict JSON (RFC 8259). ``NaN``, ``inf``
and ``-inf`` are written as ``null``; numpy scalars and arrays as plain numbers and lists;
non-ASCII text as UTF-8. Why: Python's default writes bare ``NaN``/``Infinity`` tokens, which
``jq``, JavaScript's ``JSON.parse``, pandas' strict readers and most other JSON tools reject,
and a NaN in a report always means "no value" (a metric undefined for a class without clips, a
loss that diverged, a direction error at 0 degrees), which ``null`` says in every reader. Code
that reads these files back treats ``null`` as that missing value.
"""

import contextlib
import json
import math
import os
import tempfile

import numpy as np

from asc_core.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written: a full disk, a read-only or missing folder...

    Both a :class:`UserError` (a command line reports it as one line) and an ``OSError`` whose
    ``filename`` is the target (never its temporary name) and ``errno``/``strerror`` those of
    the failure. The temporary file is already removed and the previous target untouched.
    """

    def __init__(self, path, err):
        strerror = getattr(err, "strerror", None) or str(err)
        super().__init__(
            f"cannot write {path} ({strerror}); expected a writable folder with free space"
        )
        self.errno = getattr(err, "errno", None)
        self.strerror = strerror
        self.filename = os.fspath(path)

    def __str__(self):
        return self.args[0]


def _temporary(path, suffix):
    folder, name = os.path.split(os.path.abspath(path))
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-{name}.", suffix=suffix, dir=folder)
    os.close(fd)
    return tmp


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path, suffix=""):
    """Yields a temporary path; what the block writes there replaces ``path`` when it succeeds.

    Usage::

        with replacing("run/model.keras", suffix=".keras") as tmp:
            model.save(tmp)

    The folder of ``path`` is created when missing. The temporary file exists (empty) when the
    block starts; the block may overwrite it by name.

    Args:
        path: the target file.
        suffix: the ending the temporary name must keep (e.g. ``".weights.h5"``).

    Raises:
        WriteError: creating, writing, syncing or renaming failed with an ``OSError``; the
            temporary file is removed and ``path`` is untouched. Any other exception of the
            block propagates, after the temporary file is removed.
    """
    path = os.fspath(path)
    tmp = None
    try:
        tmp = _temporary(path, suffix)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from err
        raise


def atomic_write_bytes(path, data):
    """Writes ``data`` (bytes-like) to ``path`` atomically (see :func:`replacing`); returns path."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return os.fspath(path)


def atomic_write_text(path, text):
    """Writes ``text`` as UTF-8 to ``path`` atomically, newlines as given; returns ``path``."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return os.fspath(path)


def json_safe(value):
    """``value`` with the module's JSON policy applied: NaN/±inf → None, numpy → Python.

    Dict keys become strings and tuples lists, as JSON has no other kinds.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.generic):
        return value.item()
    return value


def json_text(data, indent=2, sort_keys=False):
    """``data`` as strict JSON text ending with a newline (the module's JSON policy)."""
    text = json.dumps(
        json_safe(data), indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False
    )
    return text + "\n"


def write_json(path, data, indent=2, sort_keys=False):
    """Writes ``data`` as strict JSON (:func:`json_text`) to ``path`` atomically; returns path."""
    return atomic_write_text(path, json_text(data, indent=indent, sort_keys=sort_keys))


def check_writable(path, label="--out"):
    """Fails now, before a long run, when ``path``'s folder cannot take a new file.

    Creates the folder and a probe file (removed at once): what really tells, also for root
    on a read-only file system, where permission bits say nothing.

    Raises:
        UserError: naming ``label``, ``path`` and the folder.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UserError(
            f"{label} {path}: cannot write in {folder} ({err.strerror}); expected a writable folder"
        ) from None
