"""Inverse contrastive loss (ICL) over device labels (Schmidt & Peters 2023, Eq. 1-4).

Akash et al. (AAAI 2021) make a representation invariant to a nuisance label by pulling
*different*-label pairs together and pushing *same*-label pairs apart. With ``d`` the l2 distance
between two embeddings, the paper uses

    g(z, z') = d**2                          for pairs from different devices   (Eq. 3)
    f(z, z') = exp((alpha - d) / beta)       for pairs from the same device      (Eq. 4)

and ``L_ICL = E[1(c == c') f + 1(c != c') g]`` over pairs (Eq. 1), added to the cross-entropy as
``L = L_CE + lambda_ICL * L_ICL`` (Eq. 2; the paper picks alpha = 0.2, beta = 1, lambda = 0.5).
"""

import keras
import tensorflow as tf

from keras_asc.errors import UserError

NORMALIZATIONS = ("pairs", "blocks")

# Squared distances at or below this count as d = 0: sqrt has an infinite derivative at 0, so
# duplicates (and the i == j diagonal) get d = 0 with a zero gradient instead of NaN.
_D2_FLOOR = 1e-12


def validate_icl_arguments(alpha, beta, normalization, num_devices):
    """Raises :class:`UserError` naming the first bad ICL argument."""
    try:
        alpha = float(alpha)
        beta = float(beta)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"inverse contrastive loss: alpha and beta must be numbers, got alpha={alpha!r}, "
            f"beta={beta!r}"
        ) from err
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
    if num_devices is not None and (isinstance(num_devices, bool) or not isinstance(
            num_devices, int) or num_devices < 1):
        raise UserError(
            f"inverse contrastive loss: num_devices must be a positive int or None, "
            f"got {num_devices!r}"
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


@keras.saving.register_keras_serializable(package="keras_asc")
class InverseContrastiveLoss(keras.losses.Loss):
    """Keras ``Loss`` wrapper of :func:`inverse_contrastive_loss`.

    ``y_true`` is the int device id vector ``[B]``, ``y_pred`` the embeddings ``[B, D]``. The loss
    is a batch-level scalar: ``sample_weight`` (if any) only rescales it by its mean, it does
    not weight pairs.

    Args:
        alpha: float, same-device barrier threshold (paper: 0.2).
        beta: float > 0, barrier strength (paper: 1.0).
        normalization: ``"pairs"`` (paper Eq. 1) or ``"blocks"`` (Akash et al.'s code).
        num_devices: int or None, ``C`` for ``"blocks"``.
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
        name="inverse_contrastive_loss",
        **kwargs,
    ):
        validate_icl_arguments(alpha, beta, normalization, num_devices)
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.beta = beta
        self.normalization = normalization
        self.num_devices = num_devices

    def call(self, y_true, y_pred):
        return inverse_contrastive_loss(
            y_pred,
            y_true,
            alpha=self.alpha,
            beta=self.beta,
            normalization=self.normalization,
            num_devices=self.num_devices,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "beta": self.beta,
                "normalization": self.normalization,
                "num_devices": self.num_devices,
            }
        )
        return config
