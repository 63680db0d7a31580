"""TensorFlow's C++ start-up logs, hidden unless asked for (imported first by ``keras_asc``).

``import tensorflow`` on a CPU machine writes ~9 lines from C++ (absl's "All log messages
before absl::InitializeLog()", the CUDA stub's "Could not find cuda drivers", "failed call to
cuInit", oneDNN and CPU-feature notices) straight to file descriptor 2, where neither Python's
``warnings`` nor ``logging`` can filter them, and ``TF_CPP_MIN_LOG_LEVEL`` does not hide the
absl and CUDA-stub lines. So TensorFlow is imported, and its devices listed (the CUDA probe logs
then), with descriptor 2 pointed at ``/dev/null``; Python exceptions raised by the import are
unaffected. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 afterwards (a value the user set is kept).

Shown instead when ``KERAS_ASC_TF_LOGS=1`` is set or a command runs with ``--verbose``.
"""

import contextlib
import os
import sys


def logs_wanted():
    """True when the user asked to see TensorFlow's C++ logs."""
    return os.environ.get("KERAS_ASC_TF_LOGS", "") not in ("", "0") or "--verbose" in sys.argv[1:]


@contextlib.contextmanager
def _descriptor_2_silenced():
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing to hide
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow():
    """Imports TensorFlow, quietly unless `logs_wanted()`; a no-op if it is imported already."""
    if "tensorflow" in sys.modules:
        return
    if logs_wanted():
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _descriptor_2_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()


import_tensorflow()
