"""Safe, deterministic output for every build: temp folder, sharded TFRecords, info.json, skips.

Used by the dataset builders (``tfrecords_builder``) and by ``keras_asc.irgen`` (a generated DIR
set is a builder output too), so it lives in the TensorFlow-free bottom package.

A build writes into ``<OUT>.incomplete/`` next to ``OUT`` and only a successful build moves it
into place, so a killed build never leaves a folder that looks finished:

* ``OUT`` appears (or an existing finished ``OUT`` is replaced) only after ``info.json`` was
  written; the swap uses Linux ``renameat2(RENAME_EXCHANGE)`` (atomic) and falls back to two
  renames elsewhere.
* A stale ``<OUT>.incomplete/`` left by a killed build is removed by the next run, which then
  builds everything again (re-running completes it). A lock file ``<OUT>.lock`` (``flock``,
  released by the kernel when a process dies) stops two builds from writing the same ``OUT``.
* A build that fails with an error removes its temporary folder; ``OUT`` is left untouched.
* An existing ``OUT`` is replaced only if it is empty or a builder output (has an ``info.json``
  with a ``builder`` key), so a mistyped ``--out`` cannot wipe an unrelated folder.

Records are written round-robin over ``num_shards`` files named
``{prefix}.tfrecord-{i:05d}-of-{n:05d}``, in the TFRecord format (written by
:mod:`asc_core.tfrecord_io`; no TensorFlow needed). Given the same records in the same
order the shards are byte-identical. Two writers:

* :class:`ShardedWriter` (``OutputDir.sharded_writer``): the building process writes each record
  as it comes, to the next shard.
* :class:`PlacedShards` (``OutputDir.placed_shards``): the building process only *places* each
  planned record (shard and byte offset, from its length) and worker processes write them there
  (:func:`tfrecord_io.write_at`). A planned record that is then skipped leaves a gap, closed
  by :meth:`PlacedShards.finish`; its shard ends up one record shorter.
"""

import contextlib
import csv
import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections import defaultdict

from asc_core import tfrecord
from asc_core import tfrecord_io
from asc_core.errors import UserError
from asc_core.files import write_json

# The TFRecord format version, written into every info.json as ``builder_version``; a format
# change bumps it and is listed in CHANGELOG.md (the package version is separate).
BUILDER_VERSION = "1.1.0"
ON_ERROR_CHOICES = ("raise", "skip")
PREALLOCATE_BYTES = 64 << 20  # PlacedShards reserves disk space in steps of this
# Room kept for what a build writes besides its records (info.json, skipped.tsv).
METADATA_BYTES = 1 << 20
INFO_NAME = "info.json"
SKIPPED_NAME = "skipped.tsv"


def shard_name(prefix, index, num_shards):
    """``{prefix}.tfrecord-{index:05d}-of-{num_shards:05d}``."""
    return f"{prefix}.tfrecord-{index:05d}-of-{num_shards:05d}"


def md5_file(path, chunk_size=1 << 20):
    """Hex md5 of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_info(out_dir):
    """Loads ``OUT/info.json`` of a finished build; UserError when it is missing or broken."""
    path = os.path.join(os.fspath(out_dir), INFO_NAME)
    if not os.path.isfile(path):
        raise UserError(
            f"{path} does not exist; expected a finished tfrecords_builder output folder "
            "(a killed build leaves only <OUT>.incomplete)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); expected a builder info.json") from None
    if not isinstance(info, dict) or "builder" not in info:
        raise UserError(f"{path} has no 'builder' key; expected a tfrecords_builder info.json")
    return info


def _gb(n):
    return f"{n / 1e9:.2f} GB"


def check_free_space(out, needed, builder):
    """Refuses a build that cannot fit, before anything is written (UserError with the numbers).

    The build writes ``<OUT>.incomplete/`` next to ``OUT``, so the free space counted is that of
    the filesystem of ``OUT``'s parent (its nearest existing ancestor when the parent does not
    exist yet). A finished ``OUT`` that the build replaces stays until the new one is complete:
    its bytes are not free.

    Args:
        out: the output folder.
        needed: bytes of the records the build will write (framing included);
            :data:`METADATA_BYTES` are added for its info.json and skipped.tsv.
        builder: the command name, for the message.
    """
    out = os.path.abspath(os.fspath(out))
    folder = os.path.dirname(out)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown here; a write that fails is still reported as one message
    needed = int(needed) + METADATA_BYTES
    if needed > free:
        raise UserError(
            f"not enough free space for --out {out}: the {builder} build writes "
            f"{_gb(needed)} ({needed} bytes), but only {_gb(free)} ({free} bytes) is free in "
            f"{folder}; expected free space for the whole build (nothing was written)"
        )


class ErrorPolicy:
    """What to do with a bad input item: ``raise`` (default) or ``skip`` and report it.

    Args:
        mode: ``"raise"`` or ``"skip"``.
    """

    def __init__(self, mode="raise"):
        if mode not in ON_ERROR_CHOICES:
            raise UserError(f"--on-error {mode!r} is not valid; expected one of raise, skip")
        self.mode = mode
        self.skipped = []

    def fail(self, group, item, reason):
        """Raises ``UserError(reason)``, or records ``(group, item, reason)`` when skipping.

        Args:
            group: where the item belongs (a split name, ``dirs``, ...).
            item: the skipped file, row or recording.
            reason: one line naming the item and what was expected.
        """
        if self.mode == "raise":
            raise UserError(reason)
        self.skipped.append({"split": group, "item": item, "reason": reason})


class _RoundRobin:
    """``num_shards`` shard names of ``prefix`` and their record counts, filled in turn."""

    def __init__(self, prefix, num_shards):
        if num_shards < 1:
            raise UserError(f"--shards must be at least 1, got {num_shards}")
        self.prefix = prefix
        self.names = [shard_name(prefix, i, num_shards) for i in range(num_shards)]
        self.counts = [0] * num_shards
        self._next = 0

    @property
    def num_examples(self):
        return sum(self.counts)


class ShardedWriter(_RoundRobin):
    """Writes serialized records round-robin into ``num_shards`` TFRecord files.

    Args:
        directory: folder to write into (the build's temporary folder).
        prefix: file name prefix, e.g. ``train-1s`` or ``dirs``.
        num_shards: number of files (≥ 1).
    """

    def __init__(self, directory, prefix, num_shards):
        super().__init__(prefix, num_shards)
        self._writers = [tfrecord_io.RecordWriter(os.path.join(directory, n)) for n in self.names]

    def write(self, record):
        """Appends one serialized record (bytes, or a list of pieces) to the next shard."""
        shard = self._next
        self._writers[shard].write(record)
        self.counts[shard] += 1
        self._next = (shard + 1) % len(self._writers)

    def close(self):
        """Flushes and closes every shard; returns the shard file names."""
        for writer in self._writers:
            writer.close()
        return list(self.names)


class PlacedShards(_RoundRobin):
    """Round-robin shards whose records are placed first and written by other processes.

    :meth:`place` gives the n-th planned record shard ``n % num_shards`` and the byte offset
    after the shard's earlier records; whoever produces the record writes it there with
    :func:`asc_core.tfrecord_io.write_at`. :meth:`skip` marks a placed record that
    will not be written, and :meth:`finish` closes its gap, so the shards hold exactly the
    written records, in planned order. The files are created (empty) here.

    Args:
        directory: folder to write into (the build's temporary folder).
        prefix: file name prefix, e.g. ``train-1s``.
        num_shards: number of files (≥ 1).
    """

    def __init__(self, directory, prefix, num_shards):
        super().__init__(prefix, num_shards)
        self.paths = [os.path.join(directory, n) for n in self.names]
        self.sizes = [0] * num_shards
        self._allocated = [0] * num_shards
        self._gaps = defaultdict(list)
        for path in self.paths:
            with open(path, "wb"):
                pass

    def place(self, record_size):
        """Reserves the next record's place.

        Args:
            record_size: the serialized record's length (before TFRecord framing).

        Returns:
            ``(path, offset, framed size)``, the arguments of ``tfrecord_io.write_at``.
        """
        shard = self._next
        offset = self.sizes[shard]
        framed = record_size + tfrecord.FRAME_BYTES
        self.sizes[shard] += framed
        self.counts[shard] += 1
        self._next = (shard + 1) % len(self.paths)
        if self.sizes[shard] > self._allocated[shard]:
            start = self._allocated[shard]
            self._allocated[shard] = max(self.sizes[shard], start + PREALLOCATE_BYTES)
            _preallocate(self.paths[shard], start, self._allocated[shard] - start)
        return self.paths[shard], offset, framed

    def skip(self, place):
        """Marks a placed record (the tuple :meth:`place` returned) as never written."""
        path, offset, framed = place
        shard = self.paths.index(path)
        self._gaps[shard].append((offset, framed))
        self.counts[shard] -= 1

    def finish(self):
        """Closes the gaps and checks every shard's length; returns the shard file names.

        Raises:
            RuntimeError: a shard's length differs from what was placed in it (a record was
                neither written nor skipped).
        """
        for shard, path in enumerate(self.paths):
            gaps = self._gaps.pop(shard, [])
            if gaps:
                self.sizes[shard] = tfrecord_io.remove_gaps(path, gaps, self.sizes[shard])
            actual = os.path.getsize(path)
            if actual != self.sizes[shard]:
                raise RuntimeError(
                    f"{path} holds {actual} bytes; its records take "
                    f"{self.sizes[shard]}: a placed record was not written"
                )
            os.truncate(path, actual)  # frees the preallocated blocks past the end
        return list(self.names)

    def close(self):
        """Nothing to close here (the writing processes hold the files)."""
        return list(self.names)


@functools.cache
def _fallocate():
    """libc's ``fallocate`` (looked up once: a build preallocates many times), or None."""
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return fallocate


def _preallocate(path, offset, length):
    """Reserves disk blocks past the end of ``path`` without changing its size (best effort).

    ``fallocate(FALLOC_FL_KEEP_SIZE)``: later writes into reserved blocks cost about a quarter
    less CPU than writes that must allocate (ext4). Where it is unsupported nothing happens.
    """
    fallocate = _fallocate()
    if fallocate is None:
        return
    keep_size = 1
    fd = os.open(path, os.O_WRONLY)
    try:
        fallocate(fd, keep_size, offset, length)  # an error (e.g. EOPNOTSUPP) is ignored
    finally:
        os.close(fd)


def _rename_exchange(a, b):
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EXDEV):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), b)


class OutputDir:
    """Context manager for one build's output folder; see the module docstring.

    Usage::

        with OutputDir(out, builder="tau22") as output:
            writer = output.sharded_writer("train-1s", 4)
            ...
            output.finish(info)   # writes info.json and skipped.tsv, then moves into place

    Leaving the block without :meth:`finish` (an exception, or a forgotten call) removes the
    temporary folder and leaves ``OUT`` as it was.

    Args:
        out: the final output folder.
        builder: the command name recorded in info.json.
        policy: the :class:`ErrorPolicy` whose skipped items are reported.
    """

    def __init__(self, out, *, builder, policy=None):
        self.out = os.path.abspath(os.fspath(out))
        self.builder = builder
        self.policy = policy or ErrorPolicy("raise")
        self.tmp = f"{self.out}.incomplete"
        self._lock_path = f"{self.out}.lock"
        self._lock = None
        self._finished = False
        self._writers = []

    # --- setup -------------------------------------------------------------------------------

    def _check_replaceable(self):
        if not os.path.lexists(self.out):
            return
        if not os.path.isdir(self.out) or os.path.islink(self.out):
            raise UserError(f"--out {self.out} exists and is not a folder; expected a folder path")
        if os.listdir(self.out) and not os.path.isfile(os.path.join(self.out, INFO_NAME)):
            raise UserError(
                f"--out {self.out} exists, is not empty and has no {INFO_NAME}; refusing to "
                "replace a folder that is not a tfrecords_builder output"
            )
        if os.listdir(self.out):
            read_info(self.out)

    def __enter__(self):
        parent = os.path.dirname(self.out)
        self._check_replaceable()
        try:
            os.makedirs(parent, exist_ok=True)
            self._lock = open(self._lock_path, "w")  # noqa: SIM115 - held for the whole build
        except OSError as err:
            raise UserError(
                f"cannot write the output folder {self.out} ({err.strerror}); expected a "
                "writable location"
            ) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise UserError(
                f"another build is writing {self.out} (lock {self._lock_path} is held); "
                "wait for it to finish"
            ) from None
        try:
            if os.path.lexists(self.tmp):  # left by a killed build: start again from scratch
                shutil.rmtree(self.tmp)
            os.makedirs(self.tmp)
        except OSError as err:
            self._release()
            raise UserError(
                f"cannot create {self.tmp} ({err.strerror}); expected a writable output location"
            ) from None
        return self

    def _release(self):
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._lock_path)
            self._lock.close()
            self._lock = None

    def __exit__(self, exc_type, exc, tb):
        try:
            if not self._finished:
                for writer in self._writers:
                    with contextlib.suppress(Exception):
                        writer.close()
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            self._release()
        if isinstance(exc, OSError) and not self._finished:
            # A full disk (or another write failure, here or in a worker process): one line,
            # not a traceback. The temporary folder is gone and OUT is as it was.
            where = f" on {exc.filename}" if exc.filename else ""
            raise UserError(
                f"the build of {self.out} failed{where} ({exc.strerror or exc}); "
                f"{self.out} is unchanged and the temporary folder was removed; expected "
                "free space and a writable output location"
            ) from None
        return False

    # --- writing -----------------------------------------------------------------------------

    def path(self, name):
        """Path of ``name`` inside the temporary build folder."""
        return os.path.join(self.tmp, name)

    def sharded_writer(self, prefix, num_shards):
        """A :class:`ShardedWriter` inside the temporary folder."""
        writer = ShardedWriter(self.tmp, prefix, num_shards)
        self._writers.append(writer)
        return writer

    def placed_shards(self, prefix, num_shards):
        """A :class:`PlacedShards` inside the temporary folder (call its ``finish`` first)."""
        shards = PlacedShards(self.tmp, prefix, num_shards)
        self._writers.append(shards)
        return shards

    def finish(self, info):
        """Writes ``skipped.tsv`` and ``info.json``, then moves the build into place.

        ``info`` gets ``builder``, ``builder_version`` (first) and ``skipped`` added.

        Args:
            info: JSON-serialisable dict describing the build.

        Returns:
            the final output path.
        """
        for writer in self._writers:
            writer.close()
        self._writers = []
        skipped = list(self.policy.skipped)
        with open(self.path(SKIPPED_NAME), "w", encoding="utf-8", newline="") as handle:
            rows = csv.writer(handle, delimiter="\t", lineterminator="\n")
            rows.writerow(["split", "item", "reason"])
            for entry in skipped:
                rows.writerow([entry["split"], entry["item"], entry["reason"]])
        full = {"builder": self.builder, "builder_version": BUILDER_VERSION}
        full.update(info)
        full["on_error"] = self.policy.mode
        full["skipped"] = skipped
        write_json(self.path(INFO_NAME), full)
        self._move_into_place()
        self._finished = True
        return self.out

    def _move_into_place(self):
        try:
            if os.path.lexists(self.out):
                self._check_replaceable()
                if not _rename_exchange(self.tmp, self.out):
                    old = f"{self.out}.old"
                    shutil.rmtree(old, ignore_errors=True)
                    os.rename(self.out, old)
                    os.rename(self.tmp, self.out)
                    shutil.rmtree(old, ignore_errors=True)
                # After the exchange the previous output sits at the temporary path.
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                os.rename(self.tmp, self.out)
        except OSError as err:
            self._finished = True  # keep the complete build where it is
            raise UserError(
                f"cannot move the finished build into {self.out} ({err.strerror}); the complete "
                f"build is left in {self.tmp}"
            ) from None
