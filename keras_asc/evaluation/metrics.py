"""Scene-classification metrics on 1-s clips: per device, per device family, DCASE class-wise.

Everything here is plain NumPy: arrays in, a JSON-ready ``dict`` out. Conventions (also in
``docs/report_schema.md``):

- **Log-loss** is the mean negative log-probability of the true scene. Probabilities are clipped to
  ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` first, with ``LOG_LOSS_EPS = 1e-15`` (scikit-learn's classic
  ``log_loss`` default), so one confidently wrong clip costs at most ``-ln(1e-15) ≈ 34.5``.
  Probabilities are not renormalised after clipping.
- **Per device**: ``accuracy`` and ``log_loss`` pool the clips of that device (CPJKU's ``vacc.<d>``
  and ``vloss.<d>``); ``macro_accuracy`` / ``macro_log_loss`` average the class-wise values within
  the device (the DCASE 2022 baseline's per-device numbers).
- **Device families** (real a–c, simulated s1–s3, unseen s4–s6): ``accuracy`` and ``log_loss`` are
  MEANS OF THE DEVICE VALUES, as the paper's Table 3 averages its device columns. Pooled values
  (CPJKU's ``acc.real`` etc.) are given as ``pooled_accuracy`` / ``pooled_log_loss``.
- **Overall**: ``accuracy`` / ``log_loss`` pool every labelled clip (micro, CPJKU's ``val_acc``);
  ``macro_accuracy`` / ``macro_log_loss`` are the DCASE class-wise averages (mean over scenes of
  the metric restricted to that scene's clips); ``device_mean_*`` average the present devices.
- **DG** is the POPULATION standard deviation (``ddof=0``) of the present devices' accuracies, the
  DIRAugmentation convention; ``dg_sample`` is the ``ddof=1`` value.
- A device (or scene) with no clip is **absent**: its values are ``None``, never ``0``, and it is
  left out of every mean.
"""

import math

import numpy as np

from asc_core.vocab import DEVICE_GROUPS
from asc_core.vocab import DEVICES
from asc_core.vocab import SCENES

LOG_LOSS_EPS = 1e-15


def softmax(logits):
    """Row-wise softmax in float64, stable for large logits.

    Args:
        logits: array-like ``[N, C]``.

    Returns:
        ``[N, C]`` float64 probabilities, rows summing to 1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def clip_log_losses(labels, probabilities, eps=LOG_LOSS_EPS):
    """Per-clip log-loss ``-ln(clip(p[label], eps, 1 - eps))``.

    Args:
        labels: ``[N]`` int class ids in ``[0, C)``.
        probabilities: ``[N, C]`` class probabilities.
        eps: clipping bound.

    Returns:
        ``[N]`` float64 losses.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true_p = probabilities[np.arange(labels.shape[0]), labels]
    return -np.log(np.clip(true_p, eps, 1.0 - eps))


def log_loss(labels, probabilities, eps=LOG_LOSS_EPS):
    """Mean clipped log-loss over clips (``None`` when there is no clip).

    Args:
        labels: ``[N]`` int class ids.
        probabilities: ``[N, C]`` class probabilities.
        eps: clipping bound (see the module docstring).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return None
    return float(clip_log_losses(labels, probabilities, eps).mean())


def confusion_matrix(labels, predictions, num_classes):
    """Counts ``[num_classes, num_classes]``: rows are true classes, columns predicted ones."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _mean_or_none(values):
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _std_or_none(values, ddof):
    present = [v for v in values if v is not None]
    if len(present) <= ddof:
        return None
    return float(np.std(present, ddof=ddof))


def _subset_metrics(labels, predictions, losses, num_classes):
    """Pooled and class-wise accuracy / log-loss over one subset of clips."""
    count = int(labels.shape[0])
    if count == 0:
        return {
            "count": 0,
            "accuracy": None,
            "log_loss": None,
            "macro_accuracy": None,
            "macro_log_loss": None,
        }
    correct = predictions == labels
    class_acc = []
    class_loss = []
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            class_acc.append(float(correct[mask].mean()))
            class_loss.append(float(losses[mask].mean()))
    return {
        "count": count,
        "accuracy": float(correct.mean()),
        "log_loss": float(losses.mean()),
        "macro_accuracy": _mean_or_none(class_acc),
        "macro_log_loss": _mean_or_none(class_loss),
    }


def _validate(labels, probabilities, device_ids, num_devices):
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be [N, C], got shape {probabilities.shape}")
    if labels.shape != (probabilities.shape[0],):
        raise ValueError(
            f"labels must be [N] with N={probabilities.shape[0]} (the rows of probabilities), "
            f"got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    num_classes = probabilities.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got values from {labels.min()} to "
            f"{labels.max()} (filter unlabelled clips, id -1, before computing metrics)"
        )
    if device_ids is None:
        device_ids = np.full(labels.shape, -1, dtype=np.int64)
    device_ids = np.asarray(device_ids)
    if device_ids.shape != labels.shape:
        raise ValueError(f"device_ids must have shape {labels.shape}, got {device_ids.shape}")
    if device_ids.size and (device_ids.min() < -1 or device_ids.max() >= num_devices):
        raise ValueError(
            f"device_ids must lie in [-1, {num_devices}) (-1 = unknown), got values from "
            f"{device_ids.min()} to {device_ids.max()}"
        )
    return labels.astype(np.int64), probabilities, device_ids.astype(np.int64)


def scene_metrics(
    labels,
    probabilities,
    device_ids=None,
    class_names=SCENES,
    device_names=DEVICES,
    device_groups=None,
    eps=LOG_LOSS_EPS,
):
    """All scene-classification metrics of one prediction set.

    Args:
        labels: ``[N]`` int scene ids (no unlabelled ``-1`` rows).
        probabilities: ``[N, C]`` scene probabilities (use :func:`softmax` on logits).
        device_ids: ``[N]`` int device ids indexing ``device_names``; ``-1`` = unknown device
            (counted in ``overall`` only). ``None``: no device information.
        class_names: ``C`` scene names, the column order of ``probabilities``.
        device_names: device names, indexed by ``device_ids``.
        device_groups: ``{family: (device, ...)}``; defaults to ``vocab.DEVICE_GROUPS``.
        eps: log-loss clipping bound.

    Returns:
        A JSON-ready dict: ``overall``, ``devices`` (one entry per name, ``None`` values when
        absent), ``groups``, ``dg``, ``dg_sample``, ``classes`` (per-scene accuracy, log-loss,
        count), ``confusion_matrix`` (list of lists, rows true), ``class_names``,
        ``device_names``, ``log_loss_eps``. Layout in ``docs/report_schema.md``.
    """
    if device_groups is None:
        device_groups = DEVICE_GROUPS
    labels, probabilities, device_ids = _validate(
        labels, probabilities, device_ids, len(device_names)
    )
    num_classes = probabilities.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but probabilities has {num_classes} columns"
        )
    predictions = probabilities.argmax(axis=1)
    losses = clip_log_losses(labels, probabilities, eps)

    devices = {}
    for d, name in enumerate(device_names):
        mask = device_ids == d
        devices[name] = _subset_metrics(labels[mask], predictions[mask], losses[mask], num_classes)

    groups = {}
    for family, members in device_groups.items():
        unknown = [m for m in members if m not in devices]
        if unknown:
            raise ValueError(f"device group {family!r} names unknown devices {unknown}")
        present = [m for m in members if devices[m]["count"] > 0]
        mask = np.isin(device_ids, [device_names.index(m) for m in members])
        pooled = _subset_metrics(labels[mask], predictions[mask], losses[mask], num_classes)
        groups[family] = {
            "devices": present,
            "count": pooled["count"],
            "accuracy": _mean_or_none([devices[m]["accuracy"] for m in present]),
            "log_loss": _mean_or_none([devices[m]["log_loss"] for m in present]),
            "pooled_accuracy": pooled["accuracy"],
            "pooled_log_loss": pooled["log_loss"],
        }

    overall = _subset_metrics(labels, predictions, losses, num_classes)
    device_acc = [devices[name]["accuracy"] for name in device_names]
    overall["device_mean_accuracy"] = _mean_or_none(device_acc)
    overall["device_mean_log_loss"] = _mean_or_none(
        [devices[name]["log_loss"] for name in device_names]
    )
    overall["unknown_device_count"] = int((device_ids == -1).sum())

    classes = {}
    correct = predictions == labels
    for c, name in enumerate(class_names):
        mask = labels == c
        classes[name] = {
            "count": int(mask.sum()),
            "accuracy": float(correct[mask].mean()) if mask.any() else None,
            "log_loss": float(losses[mask].mean()) if mask.any() else None,
        }

    return {
        "overall": overall,
        "devices": devices,
        "groups": groups,
        "dg": _std_or_none(device_acc, ddof=0),
        "dg_sample": _std_or_none(device_acc, ddof=1),
        "classes": classes,
        "confusion_matrix": confusion_matrix(labels, predictions, num_classes).tolist(),
        "class_names": list(class_names),
        "device_names": list(device_names),
        "log_loss_eps": eps,
    }


def is_absent(value):
    """True for a metric that was not measured (``None`` or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
