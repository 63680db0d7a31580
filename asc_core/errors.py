"""User-facing errors and the command-line wrapper that reports them without a traceback."""

import contextlib
import importlib
import signal
import sys
import threading


class UserError(ValueError):
    """Bad input from the user: a file, key or value that is not what was expected.

    The message must name the offending file/key/value and say what was expected. Command-line
    entry points print it as one line and exit with status 2; programming errors keep their
    traceback.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by :func:`run_cli`.

    A subclass of ``KeyboardInterrupt``, so every cleanup that runs for Ctrl-C (temporary
    folders removed, worker pools stopped, locks released) runs for a SIGTERM too.
    """


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Raises :class:`Terminated` on SIGTERM inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred():
    """Holds back Ctrl-C (SIGINT) and SIGTERM until the block ends, then delivers them.

    For a few steps that must not be cut in half, such as starting a worker process (a worker
    whose start-up data was half written fails with an ``EOFError`` traceback of its own). A
    signal that arrives inside the block is raised again at its end, to the handler in place
    then (so ``KeyboardInterrupt`` / :class:`Terminated` come out of the ``with``). Main thread
    only; elsewhere the block runs as is (signals go to the main thread anyway).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda n, _: arrived.append(n)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


def run_cli(main, argv=None):
    """Runs ``main(argv)`` and turns a :class:`UserError` into ``error: ...`` and exit code 2.

    Ctrl-C prints ``interrupted`` (exit 130); SIGTERM is handled the same way and prints
    ``terminated`` (exit 143, the shell's 128 + 15).
    """
    try:
        with _sigterm_as_interrupt():
            code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


def import_command(command, module_name):
    """Imports the module of CLI command ``command``; a broken one breaks only that command.

    Raises:
        UserError: the module cannot be imported (the message names the command and module).
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(
            f"command {command!r} is unavailable: module {module_name} cannot be imported ({err})"
        ) from None
