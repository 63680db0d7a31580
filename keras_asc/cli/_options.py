"""Options that several commands share, so that each flag has one spelling and one help text,
and the two steps that read them the same way in ``evaluate`` and ``probe``."""


def add_config_options(parser, config_help, set_example, run_dir_default):
    """``--config``, ``--set KEY=VALUE`` (repeatable, into ``overrides``) and ``--run-dir``."""
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {set_example}",
    )
    parser.add_argument(
        "--run-dir", default=None, help=f"output folder (default: {run_dir_default})"
    )


def add_split_options(parser):
    """``--split`` and ``--data``: which TFRecord split of which folder a run is scored on."""
    parser.add_argument("--split", default="evaluate", help="TFRecord split (default: evaluate)")
    parser.add_argument("--data", help="TFRecord folder (default: data.path of config.yaml)")


def add_method_options(parser, out_help):
    """``--out`` (the combined JSON) and ``--name`` (the method's row in the table)."""
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--name", help="method name in the table (default: the run's name)")


def add_batch_options(parser):
    """``--batch-size`` and ``--max-examples`` of the clip predictions."""
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-examples", type=int, help="only the first N clips")


def add_run_dirs(container, **kwargs):
    """``--run RUN_DIR...`` on a parser or a mutually exclusive group."""
    container.add_argument(
        "--run",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories (several = seeds of one method)",
        **kwargs,
    )


def open_method(args):
    """The runs of ``--run`` (seed folders expanded) and the name of their method (``--name``)."""
    from keras_asc.evaluation import runs as run_io

    opened = run_io.expand_runs(args.run)
    return opened, run_io.method_name(opened, args.name)


def clip_options(args):
    """``(split, data, batch_size, max_examples)``: the clips a run is scored on."""
    return args.split, args.data, args.batch_size, args.max_examples
