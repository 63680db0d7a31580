"""Inverse contrastive loss (ICL) over device labels (Schmidt & Peters 2023, Eq. 1-4).

Akash et al. (AAAI 2021) make a representation invariant to a nuisance label by pulling
*different*-label pairs together and pushing *same*-label pairs apart. With ``d`` the l2 distance
between two embeddings, the paper uses

    g(z, z') = d**2                          for pairs from different devices   (Eq. 3)
    f(z, z') = exp((alpha - d) / beta)       for pairs from the same device      (Eq. 4)

and ``L_ICL = E[1(c == c') f + 1(c != c') g]`` over pairs (Eq. 1), added to the cross-entropy as
``L = L_CE + lambda_ICL * L_ICL`` (Eq. 2; the paper picks alpha = 0.2, beta = 1, lambda = 0.5).
"""

import math
import numbers

import keras
import tensorflow as tf

from asc_core.errors import UserError

NORMALIZATIONS = ("pairs", "blocks")
# What the loss acts on (see :func:`icl_target_embeddings`).
TARGETS = ("pooled", "tokens", "normalized")

# Squared distances at or below this count as d = 0: sqrt has an infinite derivative at 0, so
# duplicates (and the i == j diagonal) get d = 0 with a zero gradient instead of NaN.
_D2_FLOOR = 1e-12


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def validate_icl_arguments(alpha, beta, normalization, num_devices, target="pooled"):
    """Raises :class:`UserError` naming the first bad ICL argument."""
    for key, value in (("alpha", alpha), ("beta", beta)):
        # Numbers only: float("0.2") would accept a YAML string silently.
        if not _is_number(value) or not math.isfinite(value):
            raise UserError(
                f"inverse contrastive loss: {key} must be a finite number, got {key}={value!r}"
            )
    if not beta > 0.0:
        raise UserError(
            f"inverse contrastive loss: beta must be > 0 (the barrier strength in "
            f"exp((alpha - d) / beta)), got beta={beta!r}"
        )
    if normalization not in NORMALIZATIONS:
        raise UserError(
            f"inverse contrastive loss: normalization must be one of {NORMALIZATIONS}, "
            f"got {normalization!r}"
        )
    if num_devices is not None and (
        isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1
    ):
        raise UserError(
            f"inverse contrastive loss: num_devices must be a positive int or None, "
            f"got {num_devices!r}"
        )
    if target not in TARGETS:
        raise UserError(
            f"inverse contrastive loss: target must be one of {TARGETS}, got {target!r}"
        )


def inverse_contrastive_loss(
    embeddings, devices, alpha=0.2, beta=1.0, normalization="pairs", num_devices=None
):
    """Inverse contrastive loss of a batch of embeddings with device labels.

    Every ordered pair ``(i, j)`` of valid examples contributes ``exp((alpha - d_ij) / beta)``
    when ``devices[i] == devices[j]`` and ``d_ij**2`` otherwise, where ``d_ij`` is the l2
    distance between the embeddings. Examples with a negative device id (the TFRecord's ``-1``
    "unknown") take no part. The computation is in float32 whatever the input dtype (mixed
    precision), and uses explicit differences (memory ``O(B**2 * D)``) rather than the Gram
    form, whose cancellation error at ``|z| ~ 30`` (PaSST features) is of the order of
    ``alpha`` itself.

    Normalisations:
        ``"pairs"`` (default, the paper's Eq. 1): the plain mean over all ordered pairs
            ``i != j``. Zero for a batch with fewer than two valid examples.
        ``"blocks"``: Akash et al.'s reference code. With ``n_k`` the number of examples of
            device ``k`` and weights ``w_ij = 1 / (n_{c_i} n_{c_j})`` over *all* ordered pairs
            including ``i == j``::

                L = sum_{c_i != c_j} w_ij d_ij**2 + (C - 1) sum_{c_i == c_j} w_ij f_ij

            i.e. the sum of the cross-device block means plus ``C - 1`` times the sum of the
            within-device block means. The diagonal adds the gradient-free constant
            ``(C - 1) exp(alpha / beta) sum_k 1 / n_k``, kept for parity with that code.
            ``C`` is ``num_devices`` when given (the reference hard-codes the number of
            classes), else the number of distinct devices present in the batch; with the
            latter a single-device batch has loss 0.

    Args:
        embeddings: float ``[B, D]``.
        devices: int ``[B]`` device ids (ids >= 9 are DIR-augmented "devices").
        alpha: float, threshold of the same-device barrier (paper: 0.2).
        beta: float > 0, barrier strength (paper: 1.0).
        normalization: ``"pairs"`` or ``"blocks"``.
        num_devices: int or None, ``C`` for ``"blocks"`` (ignored by ``"pairs"``).

    Returns:
        float32 scalar.

    Raises:
        UserError: for ``beta <= 0``, an unknown ``normalization`` or a bad ``num_devices``.
    """
    validate_icl_arguments(alpha, beta, normalization, num_devices)
    z = tf.cast(embeddings, tf.float32)
    z = tf.reshape(z, [tf.shape(z)[0], -1])
    c = tf.reshape(tf.cast(devices, tf.int64), [-1])
    valid = tf.cast(c >= 0, tf.float32)
    valid_pairs = valid[:, None] * valid[None, :]
    same = tf.cast(tf.equal(c[:, None], c[None, :]), tf.float32)

    diff = z[:, None, :] - z[None, :, :]
    d2 = tf.reduce_sum(tf.square(diff), axis=-1)
    positive = d2 > _D2_FLOOR
    d = tf.where(positive, tf.sqrt(tf.where(positive, d2, 1.0)), 0.0)
    pull = d2  # g, Eq. 3
    push = tf.exp((float(alpha) - d) / float(beta))  # f, Eq. 4

    if normalization == "pairs":
        off_diagonal = 1.0 - tf.eye(tf.shape(z)[0], dtype=tf.float32)
        weights = valid_pairs * off_diagonal
        total = tf.reduce_sum(weights * (same * push + (1.0 - same) * pull))
        return total / tf.maximum(tf.reduce_sum(weights), 1.0)

    # "blocks": n_{c_i} counts valid examples sharing i's label; s_i = 1 / n_{c_i}.
    counts = tf.reduce_sum(same * valid[None, :], axis=1)
    s = valid / tf.maximum(counts, 1.0)
    weights = s[:, None] * s[None, :]
    if num_devices is None:
        # sum_i 1 / n_{c_i} over valid examples is the number of distinct valid labels.
        num_classes = tf.reduce_sum(s)
    else:
        num_classes = tf.constant(float(num_devices))
    cross = tf.reduce_sum(weights * (1.0 - same) * pull)
    within = tf.reduce_sum(weights * same * push)
    return cross + (num_classes - 1.0) * within


# Only guards the zero vector: the "normalized" target must stay scale-free at every scale the
# training can reach (the head's own LayerNorm, eps 1e-5, is not at |z| ~ 1e-3).
_NORM_FLOOR = 1e-12


def scale_free(z):
    """LayerNorm without affine over the last axis: ``(z - mean) / std``, float32.

    Invariant to ``z -> s * z + b`` for any ``s > 0`` and scalar ``b`` (up to ``1e-12``).
    """
    z = tf.cast(z, tf.float32)
    centred = z - tf.reduce_mean(z, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
    return centred * tf.math.rsqrt(tf.maximum(variance, _NORM_FLOOR))


def icl_target_embeddings(embeddings, target="pooled"):
    """The embedding(s) the ICL acts on, as a list of ``[B, D]`` tensors (losses averaged).

    Args:
        embeddings: float ``[B, D]`` (a pooled embedding) or ``[B, T, D]`` with ``T >= 2``
            (PaSST's tokens after the final norm: ``[:, 0]`` cls, ``[:, 1]`` dist).
        target: ``"pooled"`` — ``(cls + dist) / 2``, the paper's literal reading (PaSST's
            ``features``); ``"tokens"`` — cls and dist separately; ``"normalized"`` —
            ``scale_free(pooled)``, what the head's LayerNorm hands its Dense (without the
            affine part).

    Returns:
        list of float ``[B, D]``: one tensor for ``"pooled"``/``"normalized"``, two for
        ``"tokens"``.
    """
    if embeddings.shape.rank == 2:
        if target == "tokens":
            raise UserError(
                'inverse contrastive loss: target="tokens" needs the class tokens [B, 2, D], '
                "got a pooled embedding [B, D]"
            )
        pooled = embeddings
    else:
        cls, dist = embeddings[:, 0], embeddings[:, 1]
        if target == "tokens":
            return [cls, dist]
        pooled = (cls + dist) / 2
    return [scale_free(pooled) if target == "normalized" else pooled]


@keras.saving.register_keras_serializable(package="keras_asc")
class InverseContrastiveLoss(keras.losses.Loss):
    """The inverse contrastive loss as a Keras ``Loss`` (the task's auxiliary loss).

    ``y_true`` is the int device id vector ``[B]`` (``-1``: unknown, left out); ``y_pred`` is
    either the pooled embedding ``[B, D]`` or the class tokens ``[B, 2, D]`` (cls, dist after
    the final norm; ``SceneClassifier`` passes its ``"class_tokens"`` output). The result is a
    batch-level float32 scalar: ``sample_weight`` only rescales it by its mean, it does not
    weight pairs. Keras does not scale a scalar loss for ``tf.distribute``; the task does
    (``SceneClassifier.compute_loss``).

    Where ICL acts (``target``) decides which escapes the training can take (see
    ``docs/design.md``, "Inverse contrastive loss"):

    ============== ======================================== =================================
    target         what                                      escapes left open
    ============== ======================================== =================================
    ``pooled``     ``(cls + dist) / 2`` (paper, Eq. 1)       ``dist -> -cls`` cancels the pull
                                                             term; a global shrink of ``z``
                                                             lowers it (the head's LayerNorm
                                                             undoes the shrink)
    ``tokens``     mean of the ICL of cls and of dist        a shrink of both tokens, i.e.
                                                             of the final-norm gain ``gamma``
    ``normalized`` ``scale_free(pooled)``: LayerNorm          none of the two: invariant to
                   without affine, what the head sees        scale, ``dist = -cls`` leaves a
                                                             residual that is rescaled
    ============== ======================================== =================================

    Scale of ``normalization``: ``"pairs"`` is the mean over ordered pairs (paper, Eq. 1);
    ``"blocks"`` (Akash et al.'s code) sums per-device block means, which divides each pair by
    ``n_{c_i} n_{c_j}`` instead of ``B (B - 1)``. On a batch of 32 with device a at 70 % the
    two differ by about two orders of magnitude in value and gradient (``docs/design.md`` gives
    the measured ratio), so a ``lambda`` found for one does not carry over to the other.

    Args:
        alpha: float, same-device barrier threshold (paper: 0.2).
        beta: float > 0, barrier strength (paper: 1.0).
        normalization: ``"pairs"`` (paper Eq. 1) or ``"blocks"`` (Akash et al.'s code).
        num_devices: int or None, ``C`` for ``"blocks"``.
        target: ``"pooled"``, ``"tokens"`` or ``"normalized"`` (above).
        name: loss name.

    Example:

    >>> import numpy as np
    >>> loss = InverseContrastiveLoss(alpha=0.2, beta=1.0)
    >>> float(loss(np.array([0, 0, 1]), np.zeros((3, 4), "float32")))  # all d = 0
    0.4071...
    """

    def __init__(
        self,
        alpha=0.2,
        beta=1.0,
        normalization="pairs",
        num_devices=None,
        target="pooled",
        name="inverse_contrastive_loss",
        **kwargs,
    ):
        validate_icl_arguments(alpha, beta, normalization, num_devices, target)
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.beta = beta
        self.normalization = normalization
        self.num_devices = num_devices
        self.target = target

    def call(self, y_true, y_pred):
        losses = [
            inverse_contrastive_loss(
                z,
                y_true,
                alpha=self.alpha,
                beta=self.beta,
                normalization=self.normalization,
                num_devices=self.num_devices,
            )
            for z in icl_target_embeddings(y_pred, self.target)
        ]
        return tf.add_n(losses) / float(len(losses))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "beta": self.beta,
                "normalization": self.normalization,
                "num_devices": self.num_devices,
                "target": self.target,
            }
        )
        return config
