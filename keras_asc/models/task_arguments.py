"""``SceneClassifier``'s task arguments: their checks, the ICL setting of a config, compile's
loss and metrics for the logits output.
"""

import numbers

import keras

from asc_core.errors import UserError
from keras_asc.augment.augmenter import Augmenter
from keras_asc.losses.inverse_contrastive_loss import InverseContrastiveLoss

# The head emits logits, so cross-entropy losses named by string must read them as logits
# (Keras' string losses default to from_logits=False, which would silently train on garbage).
_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
}


# The constructor arguments of the task objects (not of the architecture).
TASK_KWARGS = (
    "auxiliary_loss",
    "auxiliary_loss_weight",
    "auxiliary_loss_rampup_steps",
    "augmenter",
)


def _logits_entry(value, argument):
    """`compile`'s `loss` / `metrics` given as `{output name: ...}` -> the `"logits"` entry."""
    if not isinstance(value, dict):
        return value
    outputs = ("logits", "embedding", "class_tokens")
    unknown = sorted(str(k) for k in value if k not in outputs)
    if unknown:
        raise UserError(
            f"SceneClassifier.compile: {argument} keys {unknown} are not outputs; expected "
            f"the output name 'logits' (outputs: {', '.join(outputs)})"
        )
    other = sorted(k for k in value if k != "logits" and value[k] is not None)
    if other:
        raise UserError(
            f"SceneClassifier.compile: {argument} for {other}: only 'logits' takes a compiled "
            f"{argument} (the class-token term is auxiliary_loss=InverseContrastiveLoss(...))"
        )
    return value.get("logits", "auto" if argument == "loss" else None)


def icl_task_kwargs(
    icl_weight=0.0,
    icl_alpha=0.2,
    icl_beta=1.0,
    icl_normalization="pairs",
    icl_num_devices=None,
    icl_rampup_steps=0,
    icl_target="pooled",
):
    """The ``SceneClassifier`` kwargs of an ICL setting (the config's ``loss`` section).

    Args:
        icl_weight: float >= 0, ``lambda``; 0 means no auxiliary loss (plain CE).
        icl_alpha, icl_beta, icl_normalization, icl_num_devices, icl_target: the
            ``InverseContrastiveLoss`` arguments ``alpha``, ``beta``, ``normalization``,
            ``num_devices``, ``target``.
        icl_rampup_steps: int >= 0, linear ramp of ``lambda`` over this many steps.

    Returns:
        dict with ``auxiliary_loss`` (None when ``icl_weight`` is 0),
        ``auxiliary_loss_weight`` and ``auxiliary_loss_rampup_steps``.

    Raises:
        UserError: naming the bad ``icl_*`` key.
    """
    _check_weight("icl_weight", icl_weight)
    _check_rampup("icl_rampup_steps", icl_rampup_steps)
    try:
        loss = InverseContrastiveLoss(
            alpha=icl_alpha,
            beta=icl_beta,
            normalization=icl_normalization,
            num_devices=icl_num_devices,
            target=icl_target,
        )
    except UserError as err:
        # Name the config key (icl_alpha), not the loss argument (alpha).
        message = str(err).replace("inverse contrastive loss: ", "ICL settings: ")
        for key in ("alpha", "beta", "normalization", "num_devices", "target"):
            message = message.replace(f"{key} must", f"icl_{key} must")
            message = message.replace(f"got {key}=", f"got icl_{key}=")
        raise UserError(message) from None
    return {
        "auxiliary_loss": loss if icl_weight > 0 else None,
        "auxiliary_loss_weight": icl_weight,
        "auxiliary_loss_rampup_steps": icl_rampup_steps,
    }


def _check_weight(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0.0:
        raise UserError(f"SceneClassifier: {key} must be a number >= 0, got {value!r}")


def _check_rampup(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise UserError(f"SceneClassifier: {key} must be an int >= 0, got {value!r}")


def validate_task_arguments(auxiliary_loss, weight, rampup_steps, augmenter):
    """Raises UserError naming the first bad task argument of ``SceneClassifier``."""
    if auxiliary_loss is not None and not isinstance(auxiliary_loss, InverseContrastiveLoss):
        raise UserError(
            "SceneClassifier: auxiliary_loss must be a keras_asc.losses.InverseContrastiveLoss "
            f"or None, got {type(auxiliary_loss).__name__}"
        )
    _check_weight("auxiliary_loss_weight", weight)
    _check_rampup("auxiliary_loss_rampup_steps", rampup_steps)
    if augmenter is not None and not isinstance(augmenter, Augmenter):
        raise UserError(
            "SceneClassifier: augmenter must be a keras_asc.augment.Augmenter or None, got "
            f"{type(augmenter).__name__}"
        )


def logits_compile_arguments(loss, metrics):
    """``compile``'s ``loss`` and ``metrics`` (``"auto"``, objects, names or output dicts) for
    the logits output: ``"auto"`` is sparse CE / accuracy; CE names are built from logits."""
    # Keras style: a dict keyed by output name. Only "logits" has targets; the ICL term on
    # the class tokens is `auxiliary_loss`, so the dict is unwrapped to its logits entry.
    loss = _logits_entry(loss, "loss")
    metrics = _logits_entry(metrics, "metrics")
    if loss == "auto":
        loss = "sparse_categorical_crossentropy"
    if isinstance(loss, str) and loss in _LOGIT_LOSSES:
        loss = _LOGIT_LOSSES[loss](from_logits=True)
    if metrics == "auto":
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return loss, metrics
