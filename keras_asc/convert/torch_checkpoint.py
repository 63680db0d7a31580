"""Reads an official PaSST `.pt` checkpoint into NumPy arrays, safely.

torch is imported here only, when a `.pt` file is actually read (it is an optional oracle
dependency). Loading uses `torch.load(..., weights_only=True)`: a pickle that would construct
anything but tensors and plain containers, i.e. one that could run code, is refused.
"""

import os
import pickle
import re
from collections.abc import Mapping

from keras_asc.errors import UserError


def read_torch_state_dict(path):
    """`{key: np.ndarray}` (float tensors as float32) from the PyTorch checkpoint `path`.

    A top-level `"model"` entry (training checkpoints) is unwrapped.

    Raises:
        UserError: torch missing, the file missing or not a PyTorch file, a pickle that is not
            plain tensors (refused unexecuted), or content that is not a state dict.
    """
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path}: no such file")
    try:
        import torch
    except ImportError as err:
        raise UserError(
            f"checkpoint {path}: reading PyTorch .pt files needs torch "
            f"(pip install torch; the CPU wheel is enough): {err}"
        ) from None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _unpickler_reason(err)
        if "Unsupported global" in reason:
            raise UserError(
                f"checkpoint {path}: refused, it is not a plain tensor state dict "
                f"(torch.load with weights_only=True rejected it: {reason})"
            ) from None
        raise UserError(
            f"checkpoint {path}: cannot be read as a PyTorch checkpoint ({reason})"
        ) from None
    except Exception as err:  # truncated, not a torch file, ...: torch raises many types
        raise UserError(
            f"checkpoint {path}: cannot be read as a PyTorch checkpoint "
            f"({type(err).__name__}: {err})"
        ) from None
    if isinstance(content, Mapping) and isinstance(content.get("model"), Mapping):
        content = content["model"]
    if not isinstance(content, Mapping) or not content:
        raise UserError(
            f"checkpoint {path}: expected a state dict (a mapping of parameter names to "
            f"tensors), found {type(content).__name__}"
        )
    arrays = {}
    for key, value in content.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise UserError(
                f"checkpoint {path}: entry {key!r} is a {type(value).__name__}; expected a "
                f"state dict of tensors"
            )
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        arrays[key] = tensor.numpy()
    return arrays


def _unpickler_reason(err):
    """The specific part of torch's long weights-only error (e.g. the refused global)."""
    text = str(err)
    match = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\s*Please use|\n\n|$)", text, re.S)
    reason = match.group(1) if match else text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(reason.split()) or type(err).__name__
