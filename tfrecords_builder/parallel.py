"""Ordered, memory-bounded parallel map over a process pool that never imports TensorFlow.

Workers are started with the ``spawn`` method (safe after TensorFlow created its threads in the
writing process). A worker imports only ``asc_core`` and ``tfrecords_builder`` modules, which
never import TensorFlow (``tests/test_architecture.py`` checks it), so it starts in about a
second with numpy, soundfile and soxr instead of paying the TensorFlow import (and its memory)
once per process.

Results come back in input order, so the output is deterministic whatever the scheduling, and at
most ``window`` tasks are in flight, so memory does not grow with the corpus size. Workers keep
the memory they free for reuse (glibc ``mallopt``), since every audio task allocates and frees
the same few large arrays.
"""

import collections
import contextlib
import importlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from asc_core.errors import interrupts_deferred


def default_workers():
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _keep_freed_memory():
    """Makes glibc's malloc keep freed memory for reuse instead of returning it to the system.

    A worker allocates and frees the same few large arrays (decoded and resampled audio,
    0.1-2 MB) for every task. By default glibc serves them with fresh ``mmap`` pages or trims
    the heap after each ``free``, so every task pays page faults and zeroing of new pages again
    (~15 % of a worker's CPU time for TAU22). With fixed thresholds the freed blocks are
    reused; a worker's memory stays at its largest working set (tens of MB). No effect outside
    glibc.
    """
    import ctypes
    import ctypes.util

    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_mmap_threshold, 32 << 20)  # the largest value glibc accepts
        libc.mallopt(m_trim_threshold, 128 << 20)
    except (OSError, AttributeError):
        pass


def _exit_with_parent(parent):
    """Ends this worker when process ``parent`` dies, however it dies (SIGKILL included).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` makes the kernel kill the worker with its
    parent. Everywhere (and in case the parent died before the ``prctl``): a daemon thread
    polls ``os.getppid()``, which changes when the parent is gone. Without this the workers,
    and the multiprocessing resource tracker they keep open, outlive a killed build. (The
    kernel signals on the exit of the *thread* that started the worker: a :class:`WorkerPool`
    is created in the thread that uses it, which every builder does.)
    """
    import ctypes
    import signal
    import threading
    import time

    pr_set_pdeathsig = 1  # from linux/prctl.h
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(warm=(), parent=None):
    if parent is not None:
        _exit_with_parent(parent)
    _keep_freed_memory()
    for name in warm:
        importlib.import_module(name)


def module_loaded(name):
    """Whether module ``name`` is imported in the calling process (tests check the workers)."""
    return name in sys.modules


class WorkerPool:
    """Worker processes for :meth:`ordered_map`, startable before the work is known.

    A builder creates the pool first and plans its work meanwhile: the workers start (spawn,
    import numpy, soundfile, soxr: about half a second of CPU each) on the other cores while
    the main process reads the CSVs. Usable as a context manager; leaving it cancels tasks not
    yet started and waits for the workers to exit, except after an error raised before any task
    was handed out (a bad CSV row, Ctrl-C, SIGTERM while planning): then the workers hold no
    work and are killed, so the caller is not held up by their start-up.

    Args:
        workers: number of worker processes; 0 runs everything in the calling process.
        warm: modules each worker imports as soon as it starts (e.g. the module of the
            function it will run).
    """

    def __init__(self, workers, warm=()):
        self.workers = max(0, int(workers))
        self._pool = None
        self._handed_out = False
        if self.workers == 0:
            return
        context = multiprocessing.get_context("spawn")
        try:
            # An interrupt here could leave a worker with half its start-up data (it would
            # print an EOFError traceback after the build's one-line message), so it is held
            # back until all workers are started; then they are killed.
            with interrupts_deferred():
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_init_worker,
                    initargs=(tuple(warm), os.getpid()),
                )
                # The executor starts a process per submitted task until it has ``workers``:
                # one empty task each starts them all now.
                for _ in range(self.workers):
                    self._pool.submit(os.getpid)
        except BaseException:
            self._kill()
            raise

    def ordered_map(self, fn, items, window=None):
        """Yields ``fn(item)`` for every item, in order (see :func:`ordered_map`)."""
        if self._pool is None:
            for item in items:
                yield fn(item)
            return
        window = window or 4 * self.workers
        self._handed_out = True
        pending = collections.deque()
        try:
            for item in items:
                pending.append(self._pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self, wait=True):
        """Stops the workers (idempotent); unstarted tasks are cancelled.

        Args:
            wait: wait for them to exit; without, they finish their current task (at most a
                warm-up or one unit) and exit on their own.
        """
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def _kill(self):
        """Kills the workers at once: only for a pool that was never handed a task."""
        # Not `close(wait=False)`: that leaves them to finish starting up after this process
        # may have exited. `_processes` is private to ProcessPoolExecutor (Python 3.14 adds
        # `kill_workers`).
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self.close(wait=False)
        for process in processes:
            with contextlib.suppress(OSError, ValueError):
                process.kill()
                process.join(timeout=5)

    def __exit__(self, exc_type, *exc):
        # Once tasks were submitted, wait: a task already queued still runs and may write
        # files. Before that, an error need not wait for workers that are starting up.
        if exc_type is not None and not self._handed_out:
            self._kill()
        else:
            self.close()
        return False


def ordered_map(fn, items, workers, window=None):
    """Yields ``fn(item)`` for every item, in order.

    Args:
        fn: a picklable module-level function.
        items: iterable of picklable arguments.
        workers: number of worker processes; 0 runs ``fn`` in this process.
        window: maximum number of tasks submitted but not yet yielded (default 4 per worker).

    Yields:
        the results, in the order of ``items``. An exception raised by ``fn`` is re-raised
        here and the remaining tasks are cancelled.
    """
    with WorkerPool(workers) as pool:
        yield from pool.ordered_map(fn, items, window)
