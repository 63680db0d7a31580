"""``keras-asc probe`` (``scripts/probe_devices.py``): device probe (paper Table 2) of run
directories' frozen encoders (protocols: :mod:`keras_asc.evaluation.probe`).
"""

import argparse

from asc_core.errors import UserError
from asc_core.files import write_json
from keras_asc.cli._options import add_batch_options
from keras_asc.cli._options import add_method_options
from keras_asc.cli._options import add_run_dirs
from keras_asc.cli._options import add_split_options
from keras_asc.cli._options import clip_options
from keras_asc.cli._options import open_method
from keras_asc.evaluation import tables
from keras_asc.evaluation.probe import PROTOCOLS
from keras_asc.evaluation.probe import probe_run


def build_parser():
    parser = argparse.ArgumentParser(
        prog="probe_devices.py",
        description="Device probe (paper Table 2): how well a LayerNorm+Dense classifier "
        "recognises the six training devices from the frozen embedding.",
    )
    add_run_dirs(parser, required=True)
    add_split_options(parser)
    add_method_options(parser, out_help="combined JSON")
    parser.add_argument("--seed", type=int, default=0, help="first split/initialisation seed")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="paper",
        help="paper (default): fit on the training split, test on every --split clip; "
        "evaluate: the earlier 60/20/20 split of the --split clips",
    )
    parser.add_argument("--train-split", default="train", help="the paper protocol's fit split")
    parser.add_argument(
        "--probe-seeds", type=int, default=5, help="probe seeds of the paper protocol (default 5)"
    )
    parser.add_argument(
        "--split-by",
        choices=("recording", "clip"),
        default="recording",
        help="keep each 10-s recording in one part (default) or split clips",
    )
    add_batch_options(parser)
    return parser


def describe(name, result):
    """One line about a probe result (either protocol)."""
    recall = ", ".join(f"{d} {100 * r:.1f}" for d, r in result["recall"].items() if r is not None)
    text = (
        f"{name}: balanced device accuracy {100 * result['balanced_accuracy']:.2f} % "
        f"(chance {100 * result['chance']:.2f} %; per device: {recall}); "
        f"{result['counts']['test']} test clips; "
    )
    if result.get("protocol") == "paper":
        ci = result["balanced_accuracy_ci"]
        spread = (
            f"s.d. {100 * result['balanced_accuracy_sd']:.2f} pp, {100 * result['level']:.0f} % "
            f"CI [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
            if ci is not None
            else "one probe seed"
        )
        stopped = sum(r["early_stopped"] for r in result["per_seed"])
        return text + (
            f"{len(result['per_seed'])} probe seeds ({spread}); early stopping ended "
            f"{stopped} of them"
        )
    return text + (
        f"early-stopped after {result['epochs']} epochs"
        if result["early_stopped"]
        else f"still improving at the last of {result['epochs']} epochs"
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: expected a non-negative integer")
    if args.probe_seeds < 1:
        raise UserError(f"--probe-seeds {args.probe_seeds}: expected at least 1")
    opened, name = open_method(args)
    results = []
    for run in opened:
        result = probe_run(
            run,
            *clip_options(args),
            seed=args.seed,
            split_by=args.split_by,
            protocol=args.protocol,
            train_split=args.train_split,
            probe_seeds=args.probe_seeds,
        )
        results.append(result)
        print(describe(run.name, result))
    text = tables.table2([(name, results)])
    print()
    print(text)
    if args.out:
        write_json(
            args.out, {"method": name, "split": args.split, "runs": results, "markdown": text}
        )
        print(f"wrote {args.out}")
    return 0
