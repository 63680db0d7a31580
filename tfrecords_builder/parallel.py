"""Ordered, memory-bounded parallel map over a process pool that never imports TensorFlow.

Workers are started with the ``spawn`` method: they import only the module that defines the
function (decoding and resampling need numpy, soundfile and soxr), never the TensorFlow already
loaded in the writing process, and they are safe to start after TensorFlow created its threads.
Results come back in input order, so the output is deterministic whatever the scheduling, and at
most ``window`` tasks are in flight, so memory does not grow with the corpus size.
"""

import collections
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def default_workers():
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


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
    if workers <= 0:
        for item in items:
            yield fn(item)
        return
    window = window or 4 * workers
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
