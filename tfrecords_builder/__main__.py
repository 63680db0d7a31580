"""``python -m tfrecords_builder <command>``: raw datasets → TFRecords (``docs/data_format.md``).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``. The
modules are imported only when their command runs (``-h`` of the top level imports none of them),
so a missing or broken module breaks only its own command.
"""

import argparse
import sys

# command -> (module, one-line help)
COMMANDS = {
    "tau22": (
        "tfrecords_builder.tau22.cli",
        "TAU Urban Acoustic Scenes 2022 Mobile → audio TFRecords",
    ),
    "micirp": ("tfrecords_builder.micirp", "MicIRP vintage microphone IRs → DIR TFRecords"),
    "multi-dirs": (
        "tfrecords_builder.multi_dirs",
        "Surrey multi-angle/multi-distance microphone IRs → DIR TFRecords",
    ),
    "synthetic": (
        "tfrecords_builder.synthetic",
        "write a small synthetic raw corpus in the real TAU22/MicIRP/Surrey layouts",
    ),
    "inspect": ("tfrecords_builder.inspect_cmd", "summarise a finished TFRecord output folder"),
    "download": (
        "tfrecords_builder.download",
        "verified, resumable download of tau22, tau22-eval-2022/2023, micirp or multi-dirs",
    ),
}


def _load(command):
    from asc_core.errors import import_command

    return import_command(command, COMMANDS[command][0])


def build_parser(command=None):
    """The argument parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m tfrecords_builder",
        description="Convert raw datasets to TFRecords (see docs/data_format.md).",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, (_, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _load(name).add_arguments(sub_parser)
    return parser


def main(argv=None):
    """Parses ``argv`` (default ``sys.argv[1:]``) and runs the chosen command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    args = build_parser(command).parse_args(argv)
    return _load(args.command).run(args)


def cli():
    """Console-script entry point (``keras-asc-build``, ``python -m tfrecords_builder``).

    The builders import only ``asc_core`` and their own modules, never ``keras_asc``, so
    start-up and error reports stay fast; TensorFlow is imported only by ``inspect``, which
    reads records with ``tf.data``.
    """
    from asc_core.errors import run_cli

    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
