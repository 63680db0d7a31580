"""Command line: official PaSST `.pt` checkpoint → `SceneClassifier` `.weights.h5`.

    python scripts/convert_passt_checkpoint.py --checkpoint passt-s-f128-p16-s10-ap.476-swa.pt \\
        --out passt_s_swa_p16_128_ap476.weights.h5 [--num-classes 10] [--arch NAME]

Then `SceneClassifier.from_preset(NAME, num_classes=N, weights=OUT)`. Needs no torch.
"""

import argparse

from asc_core.errors import UserError
from asc_core.files import replacing
from keras_asc.convert.passt_checkpoint import checkpoint_geometry
from keras_asc.convert.passt_checkpoint import load_passt_state_dict
from keras_asc.convert.passt_checkpoint import matching_presets
from keras_asc.convert.torch_checkpoint import read_torch_state_dict
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.scene_classifier import SceneClassifier

WEIGHTS_SUFFIX = ".weights.h5"


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


def convert_checkpoint(checkpoint, out, num_classes=None, arch=None):
    """Converts `checkpoint` (.pt) into `out` (.weights.h5), written atomically.

    Returns:
        dict: `arch`, `num_classes` and the `load_passt_state_dict` report.
    """
    if not out.endswith(WEIGHTS_SUFFIX):
        raise UserError(f"--out {out}: expected a file name ending in {WEIGHTS_SUFFIX}")
    if num_classes is not None and num_classes < 1:
        raise UserError(f"--num-classes {num_classes}: expected a positive number of classes")
    state_dict = read_torch_state_dict(checkpoint)
    geometry = checkpoint_geometry(state_dict, source=checkpoint)
    if arch is None:
        candidates = matching_presets(geometry)
        if not candidates:
            raise UserError(
                f"checkpoint {checkpoint}: no preset has its architecture {geometry}; "
                f"expected a released PaSST geometry or pass --arch"
            )
        arch = candidates[0]
    else:
        get_preset(arch)  # a UserError listing the names when unknown
    if num_classes is None:
        num_classes = geometry["num_classes"]
        if num_classes is None:
            raise UserError(
                f"checkpoint {checkpoint} has no classifier (head.1); pass --num-classes"
            )
    model = SceneClassifier.from_preset(arch, load_weights=False, num_classes=num_classes)
    report = load_passt_state_dict(model, state_dict, source=f"checkpoint {checkpoint}")

    with replacing(out, suffix=WEIGHTS_SUFFIX) as temporary:
        model.save_weights(temporary)
    return {"arch": arch, "num_classes": num_classes, **report}


def main(argv=None):
    from asc_core.files import check_writable

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
