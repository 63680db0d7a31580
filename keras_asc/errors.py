"""User-facing errors and the command-line wrapper that reports them without a traceback."""

import importlib
import sys


class UserError(Exception):
    """Bad input from the user: a file, key or value that is not what was expected.

    The message must name the offending file/key/value and say what was expected. Command-line
    entry points print it as one line and exit with status 2; programming errors keep their
    traceback.
    """


def run_cli(main, argv=None):
    """Runs ``main(argv)`` and turns a :class:`UserError` into ``error: ...`` and exit code 2."""
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
