"""``keras-asc <command>``: one console command for every tool of the package.

Each command is a ``main(argv)`` function (and its ``build_parser()``) in its own module of this
package, named after the command; the library modules it calls take arguments, raise
``UserError`` and never parse flags. A command's module is imported only when its command
runs (``keras-asc --help`` imports none of them), by name through
:func:`asc_core.errors.import_command`, and run through :func:`asc_core.errors.run_cli` (a user
error is one ``error: ...`` line and exit status 2).

The registry names modules by string, so the library packages stay independent: ``build`` is
``tfrecords_builder``'s own command line (``tfrecords_builder.__main__``), dispatched like every
other command, and no module of ``keras_asc`` imports ``tfrecords_builder``
(``tests/test_architecture.py``). This console is the application layer that reaches both.

``scripts/*.py`` are aliases of the same functions, so ``python scripts/train.py --config
configs/multi_icl.yaml`` and ``keras-asc train --config multi_icl`` are the same run.

TensorFlow's C++ start-up logs are hidden (``keras_asc._tf_logs``); ``keras-asc --verbose ...``
or ``KERAS_ASC_TF_LOGS=1`` shows them.
"""

import argparse
import sys

# command -> one-line help, for the commands of this package: each in the module named after
# it (grid-report: keras_asc.cli.grid_report).
_PACKAGE_COMMANDS = {
    "train": "train a scene classifier from a config (file or shipped name) into a resumable "
    "run directory",
    "evaluate": "per-device report of runs (paper Table 3)",
    "probe": "device probe of a run's frozen encoder (paper Table 2)",
    "predict": "scene predictions for audio files",
    "export": "SavedModel / TFLite export, verified",
    "convert": "official PaSST .pt checkpoint -> Keras weights (no torch needed)",
    "grid-report": "alpha / lambda grid table (paper Table 1)",
    "plot-dirs": "DIR frequency responses (paper Figures 1, 2)",
    "reproduce-miniature": "CPU miniature of the paper's tables and claims",
    "irgen-train": "train the DIR generator",
    "irgen-generate": "generate DIRs with a trained generator",
    "irgen-report": "report on a trained DIR generator",
}

# command -> (module with main(argv), one-line help)
COMMANDS = {
    "build": (
        "tfrecords_builder.__main__",
        "raw datasets -> TFRecords (tau22, micirp, multi-dirs, synthetic, inspect, download)",
    ),
    **{
        name: (f"keras_asc.cli.{name.replace('-', '_')}", help_text)
        for name, help_text in _PACKAGE_COMMANDS.items()
    },
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-asc",
        description="Device-robust acoustic scene classification (PaSST, ICL, DIR "
        "augmentation). 'keras-asc COMMAND --help' shows a command's options.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's C++ logs (hidden by default)"
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    """Runs ``keras-asc [--verbose] COMMAND [ARGS...]``; returns the exit status."""
    from asc_core.errors import import_command
    from asc_core.errors import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the command is the command's own: parse only up to it.
    index = next((i for i, a in enumerate(argv) if a in COMMANDS), len(argv))
    args = build_parser().parse_args(argv[: index + 1])
    command_argv = argv[index + 1 :]
    # Imported inside run_cli, so that a broken command is one error line too.
    return run_cli(
        lambda a: import_command(args.command, COMMANDS[args.command][0]).main(a), command_argv
    )


def cli():
    """Console-script entry point (``keras-asc``)."""
    sys.exit(main())
