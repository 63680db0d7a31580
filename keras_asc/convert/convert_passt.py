"""Official PaSST `.pt` checkpoint → `SceneClassifier` `.weights.h5`; from the command line::

    python scripts/convert_passt_checkpoint.py --checkpoint passt-s-f128-p16-s10-ap.476-swa.pt \\
        --out passt_s_swa_p16_128_ap476.weights.h5 [--num-classes 10] [--arch NAME]

Then `SceneClassifier.from_preset(NAME, num_classes=N, weights=OUT)`. Needs no torch.
"""

import os

from asc_core.errors import UserError
from keras_asc.convert.passt_checkpoint import checkpoint_geometry
from keras_asc.convert.passt_checkpoint import load_passt_state_dict
from keras_asc.convert.passt_checkpoint import matching_presets
from keras_asc.convert.torch_checkpoint import read_torch_state_dict
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.scene_classifier import SceneClassifier

WEIGHTS_SUFFIX = ".weights.h5"


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

    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(
        directory,
        f".{os.path.basename(out)[: -len(WEIGHTS_SUFFIX)]}.{os.getpid()}.tmp{WEIGHTS_SUFFIX}",
    )
    try:
        model.save_weights(temporary)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return {"arch": arch, "num_classes": num_classes, **report}
