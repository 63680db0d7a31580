"""PyTorch PaSST state dict → keras-asc weights, by name (NumPy only, no torch).

`passt_weight_table` lists every PyTorch key with the Keras variable it fills and the layout
change it needs; `load_passt_state_dict` checks a state dict against a built model and assigns
it. Anything that does not fit is a `UserError` naming the keys: a checkpoint of another
geometry (width, depth, MLP size, patch size, stride, time-encoding length), missing keys,
unused keys, shape mismatches, and Keras weights the checkpoint would leave unset.

Layouts (PyTorch → Keras, channels-last):
- `Linear.weight [out, in]` → `Dense.kernel [in, out]` (transpose); the fused `attn.qkv`
  keeps its q|k|v column order because `MultiHeadSelfAttention` splits it the same way.
- `patch_embed.proj.weight [D, 1, kh, kw]` → `Conv2D.kernel [kh, kw, 1, D]`.
- `freq_new_pos_embed [1, D, F, 1]` → `[1, F, 1, D]`, `time_new_pos_embed [1, D, 1, T]` →
  `[1, 1, T, D]`.
- LayerNorm `weight`/`bias` → `gamma`/`beta`; tokens and `new_pos_embed` unchanged.

`head_dist` (the distillation head) is stored in every checkpoint but never used by PaSST's
forward, so it is always dropped. `head.1` (the classifier) is loaded when its class count
equals the model's; otherwise it is dropped and the model's new classifier keeps its
initialisation while `head.0` (the head LayerNorm) is still loaded, as PaSST's
`load_pretrained` does when fine-tuning the 527-class AudioSet checkpoints on 10 scenes.
"""

import keras
import numpy as np

from asc_core.errors import UserError
from asc_core.files import replacing
from keras_asc.layers._utils import as_pair
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.passt_presets import passt_presets
from keras_asc.models.scene_classifier import SceneClassifier
from keras_asc.models.torch_checkpoint import read_torch_state_dict
from keras_asc.models.torch_checkpoint import unwrap_state_dict

WEIGHTS_SUFFIX = ".weights.h5"
_TRANSFORMS = {
    "same": lambda a: a,
    "linear": lambda a: a.T,
    "conv": lambda a: a.transpose(2, 3, 1, 0),
    "channels_last": lambda a: a.transpose(0, 2, 3, 1),
}

_DISTILLATION_HEAD = ("head_dist.weight", "head_dist.bias")
_CLASSIFIER = ("head.1.weight", "head.1.bias")
_HEAD_NORM = ("head.0.weight", "head.0.bias")

_GEOMETRY_LABELS = {
    "hidden_dim": "embedding width",
    "num_layers": "transformer blocks",
    "intermediate_dim": "MLP width",
    "patch_size": "patch size",
    "frequency_positions": "frequency positions (128 mels: 12 at stride 10, 10 at 12, 9 at 14, "
    "8 at 16)",
    "time_positions": "time positions (max_frames // stride: 99 for 10 s at stride 10)",
}


def _linear(torch_name, keras_name):
    """Rows of a PyTorch `Linear` → Keras `Dense`: the weight transposed, the bias as is."""
    return [
        (f"{torch_name}.weight", f"{keras_name}/kernel", "linear"),
        (f"{torch_name}.bias", f"{keras_name}/bias", "same"),
    ]


def _layer_norm(torch_name, keras_name):
    """Rows of a PyTorch `LayerNorm` → Keras `LayerNormalization`: weight/bias → gamma/beta."""
    return [
        (f"{torch_name}.weight", f"{keras_name}/gamma", "same"),
        (f"{torch_name}.bias", f"{keras_name}/beta", "same"),
    ]


def passt_weight_table(num_layers, classifier=True):
    """`[(torch_key, keras_path, transform)]` for a PaSST with `num_layers` blocks.

    Keras paths are attribute/layer names from the `SceneClassifier` (`backbone/...`,
    `head_norm/...`, `head_dense/...`); `classifier=False` gives the bare-backbone table with
    paths relative to the `PaSSTBackbone`. `transform` names an entry of the layout changes in
    the module docstring.
    """
    prefix = "backbone/" if classifier else ""
    rows = [
        ("cls_token", "class_tokens/cls_token", "same"),
        ("dist_token", "class_tokens/dist_token", "same"),
        ("new_pos_embed", "class_tokens/token_position_embedding", "same"),
        ("freq_new_pos_embed", "position_embedding/frequency_embedding", "channels_last"),
        ("time_new_pos_embed", "position_embedding/time_embedding", "channels_last"),
        ("patch_embed.proj.weight", "patch_embedding/proj/kernel", "conv"),
        ("patch_embed.proj.bias", "patch_embedding/proj/bias", "same"),
    ]
    for i in range(num_layers):
        torch_block, block = f"blocks.{i}", f"transformer_layer_{i}"
        rows += [
            *_layer_norm(f"{torch_block}.norm1", f"{block}/norm1"),
            *_linear(f"{torch_block}.attn.qkv", f"{block}/attention/qkv"),
            *_linear(f"{torch_block}.attn.proj", f"{block}/attention/proj"),
            *_layer_norm(f"{torch_block}.norm2", f"{block}/norm2"),
            *_linear(f"{torch_block}.mlp.fc1", f"{block}/mlp_fc1"),
            *_linear(f"{torch_block}.mlp.fc2", f"{block}/mlp_fc2"),
        ]
    rows += _layer_norm("norm", "final_norm")
    rows = [(key, prefix + path, transform) for key, path, transform in rows]
    if classifier:
        rows += [*_layer_norm("head.0", "head_norm"), *_linear("head.1", "head_dense")]
    return rows


def checkpoint_geometry(state_dict, source="checkpoint"):
    """Architecture numbers read off a PaSST state dict (see `_GEOMETRY_LABELS`).

    Also `num_classes`: rows of `head.1.weight`, or None without a classifier.
    """
    state_dict = unwrap_state_dict(state_dict, source)
    needed = (
        "cls_token",
        "freq_new_pos_embed",
        "time_new_pos_embed",
        "patch_embed.proj.weight",
        "blocks.0.mlp.fc1.weight",
    )
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise UserError(
            f"{source}: not a PaSST state dict, it lacks {', '.join(missing)} "
            f"(expected the keys of hear21passt/kkoutini PaSST, e.g. cls_token, blocks.0.*)"
        )
    shapes = {key: tuple(np.shape(value)) for key, value in state_dict.items()}
    for key, rank in (
        ("cls_token", 3),
        ("freq_new_pos_embed", 4),
        ("time_new_pos_embed", 4),
        ("patch_embed.proj.weight", 4),
        ("blocks.0.mlp.fc1.weight", 2),
    ):
        if len(shapes[key]) != rank:
            raise UserError(
                f"{source}: {key} has shape {shapes[key]}; expected a rank-{rank} PaSST tensor"
            )
    blocks = {
        int(key.split(".")[1])
        for key in state_dict
        if key.startswith("blocks.") and key.split(".")[1].isdigit()
    }
    classifier = shapes.get("head.1.weight")
    return {
        "hidden_dim": shapes["cls_token"][-1],
        "num_layers": len(blocks),
        "intermediate_dim": shapes["blocks.0.mlp.fc1.weight"][0],
        "patch_size": tuple(shapes["patch_embed.proj.weight"][2:]),
        "frequency_positions": shapes["freq_new_pos_embed"][2],
        "time_positions": shapes["time_new_pos_embed"][3],
        "num_classes": classifier[0] if classifier else None,
    }


def _geometry_of_kwargs(kwargs):
    """Geometry of complete `PaSSTBackbone` kwargs (a preset's or a `get_config()`)."""
    strides = as_pair(kwargs["stride"], "stride")
    return {
        "hidden_dim": kwargs["hidden_dim"],
        "num_layers": kwargs["num_layers"],
        "intermediate_dim": kwargs["intermediate_dim"],
        "patch_size": as_pair(kwargs["patch_size"], "patch_size"),
        "frequency_positions": kwargs["num_mels"] // strides[0],
        "time_positions": kwargs["max_frames"] // strides[1],
    }


def model_geometry(backbone):
    """The `_GEOMETRY_LABELS` numbers of a `PaSSTBackbone`."""
    return _geometry_of_kwargs(backbone.get_config())


def matching_presets(geometry):
    """Names of the presets whose architecture has `geometry` (order of `passt_presets`)."""
    return [
        name
        for name, preset in passt_presets.items()
        if _geometry_of_kwargs(preset["backbone"])
        == {key: geometry[key] for key in _GEOMETRY_LABELS}
    ]


def _check_geometry(geometry, backbone, source):
    expected = model_geometry(backbone)
    differences = [
        f"{_GEOMETRY_LABELS[key]}: {geometry[key]} in the checkpoint, {expected[key]} in the model"
        for key in _GEOMETRY_LABELS
        if geometry[key] != expected[key]
    ]
    if differences:
        fits = matching_presets(geometry)
        hint = (
            f"; presets of the checkpoint's architecture: {', '.join(fits)}"
            if fits
            else "; no preset has the checkpoint's architecture"
        )
        raise UserError(
            f"{source} is a PaSST of another architecture than the model "
            f"({backbone.name}): {'; '.join(differences)}{hint}"
        )


def _resolve(model, path):
    """The Keras variable at `path` (layer attribute / functional layer names, then variable)."""
    obj = model
    *layers, variable_name = path.split("/")
    for name in layers:
        child = getattr(obj, name, None)
        if not isinstance(child, keras.layers.Layer) and isinstance(obj, keras.Model):
            child = obj.get_layer(name)
        obj = child
    variable = getattr(obj, variable_name, None)
    if not isinstance(variable, keras.Variable):
        raise KeyError(f"no Keras variable at {path!r}")
    return variable


def load_passt_state_dict(model, state_dict, source="checkpoint"):
    """Assigns a PyTorch PaSST state dict (NumPy arrays) to `model`, checking everything.

    Args:
        model: a built `SceneClassifier` or `PaSSTBackbone`.
        state_dict: dict of PyTorch key → array (`torch_tensor.numpy()`), optionally under a
            top-level `"model"` key.
        source: how errors name the checkpoint (e.g. its file name).

    Returns:
        dict with `loaded` (number of tensors assigned), `dropped` (checkpoint keys
        deliberately not used) and `new_classifier` (True when the classifier kept its
        initialisation because the class counts differ).

    Raises:
        UserError: another architecture, missing or unused keys, shape mismatches, or model
            weights left unset; each names the keys.
    """
    state_dict = unwrap_state_dict(state_dict, source)
    geometry = checkpoint_geometry(state_dict, source)
    is_classifier = not isinstance(model, PaSSTBackbone)
    backbone = model.backbone if is_classifier else model
    if not isinstance(backbone, PaSSTBackbone):
        raise TypeError(f"expected a SceneClassifier or PaSSTBackbone, got {type(model)}")
    _check_geometry(geometry, backbone, source)

    table = passt_weight_table(backbone.num_layers, classifier=is_classifier)
    dropped = [key for key in _DISTILLATION_HEAD if key in state_dict]
    new_classifier = False
    if not is_classifier:
        dropped += [key for key in _HEAD_NORM + _CLASSIFIER if key in state_dict]
    elif geometry["num_classes"] != model.num_classes:
        # Fine-tuning on other classes: a fresh classifier, the head LayerNorm still loads.
        new_classifier = True
        dropped += [key for key in _CLASSIFIER if key in state_dict]
        table = [row for row in table if row[0] not in _CLASSIFIER]

    expected = {key for key, _, _ in table}
    missing = sorted(expected - set(state_dict))
    unused = sorted(set(state_dict) - expected - set(dropped))
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unused:
            parts.append(f"unused keys: {', '.join(unused)}")
        raise UserError(f"{source} does not fit the PaSST key table: {'; '.join(parts)}")

    assignments = []
    mismatches = []
    for key, path, transform in table:
        array = np.asarray(state_dict[key])
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{source}: {key} has dtype {array.dtype}; expected floating point")
        value = _TRANSFORMS[transform](array)
        variable = _resolve(model, path)
        if tuple(value.shape) != tuple(variable.shape):
            mismatches.append(
                f"{key} {tuple(array.shape)} -> {path} expects {tuple(variable.shape)}"
            )
        assignments.append((variable, value))
    if mismatches:
        raise UserError(f"{source}: shape mismatch: {'; '.join(mismatches)}")

    assigned = {id(variable) for variable, _ in assignments}
    intended_unset = (
        {id(model.head_dense.kernel), id(model.head_dense.bias)} if new_classifier else set()
    )
    # The checkpoint describes the backbone and the head; weights of other parts (e.g. an
    # augmentation layer's impulse-response bank) are not PaSST parameters.
    passt_weights = list(backbone.weights)
    if is_classifier:
        passt_weights += model.head_norm.weights + model.head_dense.weights
    unset = [v.path for v in passt_weights if id(v) not in assigned | intended_unset]
    if unset:
        raise UserError(f"{source} leaves model weights unset: {', '.join(unset)}")
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return {"loaded": len(assignments), "dropped": dropped, "new_classifier": new_classifier}


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
