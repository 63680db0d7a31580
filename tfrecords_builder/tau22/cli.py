"""``python -m tfrecords_builder tau22``: the command's arguments and its run."""

from asc_core import writer as writer_lib
from tfrecords_builder.tau22.builder import build
from tfrecords_builder.tau22.builder import summary

_SPLIT_HELP = (
    "extra split CSV like fold1_train.csv (e.g. DCASE2024 split5.csv); split name = file stem; "
    "repeatable"
)


def add_arguments(parser):
    parser.add_argument("--source", required=True, help="extracted TAU22 folder (meta.csv)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument(
        "--split-file",
        dest="split_files",
        action="append",
        default=[],
        metavar="CSV",
        help=_SPLIT_HELP,
    )
    parser.add_argument("--on-error", choices=writer_lib.ON_ERROR_CHOICES, default="raise")
    parser.add_argument(
        "--shards", type=int, default=None, help="shards per split and view (default: ~256 MB)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: all cores)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the stored record order")


# The options that are keyword arguments of build under the same names.
OPTIONS = ("split_files", "on_error", "shards", "workers", "seed")


def run(args):
    info = build(args.source, args.out, **{name: getattr(args, name) for name in OPTIONS})
    print(summary(info, args.out))
    return 0
