"""``keras-asc convert`` (``scripts/convert_passt_checkpoint.py``): official PaSST ``.pt``
checkpoint -> ``SceneClassifier`` ``.weights.h5``.

    python scripts/convert_passt_checkpoint.py --checkpoint passt-s-f128-p16-s10-ap.476-swa.pt \
        --out passt_s_swa_p16_128_ap476.weights.h5 [--num-classes 10] [--arch NAME]

Then ``SceneClassifier.from_preset(NAME, num_classes=N, weights=OUT)``. Needs no torch.
"""

import argparse

from asc_core.errors import UserError
from asc_core.files import check_writable
from keras_asc.models.passt_checkpoint import WEIGHTS_SUFFIX
from keras_asc.models.passt_checkpoint import convert_checkpoint


def build_parser():
    parser = argparse.ArgumentParser(
        prog="convert_passt_checkpoint.py",
        description="Convert an official PyTorch PaSST checkpoint (.pt) to keras-asc weights.",
    )
    parser.add_argument("--checkpoint", required=True, help="PyTorch state dict (.pt)")
    parser.add_argument("--out", required=True, help=f"output file, ending in {WEIGHTS_SUFFIX}")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes of the Keras head (default: the checkpoint's); another count than the "
        "checkpoint's starts a new classifier (head.1 and head_dist dropped, head.0 kept)",
    )
    parser.add_argument(
        "--arch",
        default=None,
        help="preset name of the architecture (default: the first preset whose geometry "
        "matches the checkpoint, e.g. passt_s_swa_p16_128_ap476)",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_writable(args.out)  # before the checkpoint is read and converted
    try:
        result = convert_checkpoint(
            args.checkpoint, args.out, num_classes=args.num_classes, arch=args.arch
        )
    except OSError as err:  # e.g. a full disk while writing the weights
        where = f" {err.filename}" if err.filename else ""
        raise UserError(
            f"--out {args.out}: the conversion failed on a file{where} "
            f"({err.strerror or err}); expected a writable folder with free "
            "space"
        ) from None
    head = (
        "new classifier (head.1 dropped, head.0 loaded)"
        if result["new_classifier"]
        else "classifier loaded"
    )
    print(
        f"{args.out}: {result['arch']}, {result['num_classes']} classes, "
        f"{result['loaded']} tensors loaded, dropped {', '.join(result['dropped']) or 'nothing'}"
        f"; {head}"
    )
    return 0
