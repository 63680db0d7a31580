"""What the inverse contrastive loss does to the embedding: batch statistics logged per epoch.

``SceneClassifier`` tracks these (``icl_`` metrics, epoch means of per-batch values) in every run
with an auxiliary loss, so the escapes the ICL can take show in ``history.csv``, TensorBoard and
W&B: a collapse (``icl_clip_share`` -> 0), a cancellation of the two tokens
(``icl_cos_cls_dist`` -> -1 while ``icl_embedding_norm`` shrinks), or a loss that is all pull
(``icl_same_device_fraction`` small). ``docs/design.md`` ("ICL diagnostics") explains each.
"""

import tensorflow as tf

# Metric names (the ``icl_`` prefix keeps them together in logs); ``grad_share`` is computed by
# the model, which holds the head.
DIAGNOSTICS = (
    "icl_embedding_norm",
    "icl_cos_cls_dist",
    "icl_clip_share",
    "icl_distance_ratio",
    "icl_same_device_fraction",
    "icl_grad_share",
)

_TINY = 1e-12


def icl_diagnostics(class_tokens, devices):
    """Batch statistics of the pooled embedding and its two tokens.

    Args:
        class_tokens: float ``[B, 2, D]``, cls and dist after the final norm.
        devices: int ``[B]`` device ids (``-1``: unknown, left out of the pair statistics).

    Returns:
        dict name -> ``(value, weight)`` float32 scalars; ``weight`` is 0 where the batch does
        not define the value (no same-device or no cross-device pair), so an epoch mean
        weighted by it skips those batches:

        - ``icl_embedding_norm``: mean ``|z|`` of the pooled ``z = (cls + dist) / 2``.
        - ``icl_cos_cls_dist``: mean cosine between each clip's cls and dist tokens.
        - ``icl_clip_share``: ``1 - |mean z|^2 / mean |z|^2``, the share of the embedding's
          second moment that differs between clips (0: every clip has the same embedding).
        - ``icl_distance_ratio``: mean same-device distance / mean cross-device distance over
          ordered pairs ``i != j`` (1: the devices are not separable by distance).
        - ``icl_same_device_fraction``: share of those pairs from the same device (the push
          term's share of the pairs; the rest is pull).
    """
    tokens = tf.cast(class_tokens, tf.float32)
    cls, dist = tokens[:, 0], tokens[:, 1]
    z = (cls + dist) / 2
    one = tf.constant(1.0)

    norms = tf.norm(z, axis=-1)
    cos = tf.reduce_sum(cls * dist, axis=-1) / tf.maximum(
        tf.norm(cls, axis=-1) * tf.norm(dist, axis=-1), _TINY
    )
    second_moment = tf.reduce_mean(tf.square(norms))
    mean_sq = tf.reduce_sum(tf.square(tf.reduce_mean(z, axis=0)))
    clip_share = 1.0 - mean_sq / tf.maximum(second_moment, _TINY)

    c = tf.reshape(tf.cast(devices, tf.int64), [-1])
    valid = tf.cast(c >= 0, tf.float32)
    pairs = valid[:, None] * valid[None, :] * (1.0 - tf.eye(tf.shape(z)[0]))
    same = tf.cast(tf.equal(c[:, None], c[None, :]), tf.float32) * pairs
    cross = pairs - same
    d2 = tf.reduce_sum(tf.square(z[:, None, :] - z[None, :, :]), axis=-1)
    d = tf.sqrt(tf.maximum(d2, _TINY))
    n_same, n_cross, n_pairs = tf.reduce_sum(same), tf.reduce_sum(cross), tf.reduce_sum(pairs)
    mean_same = tf.reduce_sum(d * same) / tf.maximum(n_same, 1.0)
    mean_cross = tf.reduce_sum(d * cross) / tf.maximum(n_cross, 1.0)
    has_ratio = tf.cast((n_same > 0) & (n_cross > 0), tf.float32)
    ratio = tf.where(has_ratio > 0, mean_same / tf.maximum(mean_cross, _TINY), 0.0)
    return {
        "icl_embedding_norm": (tf.reduce_mean(norms), one),
        "icl_cos_cls_dist": (tf.reduce_mean(cos), one),
        "icl_clip_share": (clip_share, one),
        "icl_distance_ratio": (ratio, has_ratio),
        "icl_same_device_fraction": (
            n_same / tf.maximum(n_pairs, 1.0),
            tf.cast(n_pairs > 0, tf.float32),
        ),
    }


def gradient_share(weighted_auxiliary_gradient, main_gradient):
    """``|g_aux| / (|g_aux| + |g_main|)`` of two gradients of the same tensor (0 when both 0)."""
    aux = tf.norm(tf.cast(weighted_auxiliary_gradient, tf.float32))
    main = tf.norm(tf.cast(main_gradient, tf.float32))
    return aux / tf.maximum(aux + main, _TINY)


def expected_same_device_fraction(
    device_shares, probability=0.6, source_devices=("a",), augmented_class_sizes=None
):
    """Expected share of same-device pairs among a batch's ordered pairs ``i != j``.

    Clips are drawn independently with device shares ``device_shares``; a source-device clip is
    DIR-augmented with ``probability`` and takes an augmented class ``k`` with probability
    proportional to ``augmented_class_sizes[k]`` (the number of IRs of class ``k``: all ones
    for ``device_labels="per_ir"``, IRs per microphone for ``"per_microphone"``, one entry for
    ``"shared"``). With independent clips the expectation does not depend on the batch size.

    Args:
        device_shares: dict device -> share (sums to 1).
        probability: float, the DIR probability.
        source_devices: devices that are augmented.
        augmented_class_sizes: list of positive ints, or None (no DIR augmentation).

    Returns:
        float in [0, 1].
    """
    shares = dict(device_shares)
    augmented = 0.0
    if augmented_class_sizes is not None:
        for device in source_devices:
            augmented += shares[device] * probability
            shares[device] *= 1.0 - probability
    same = sum(s * s for s in shares.values())
    if augmented_class_sizes is not None:
        total = float(sum(augmented_class_sizes))
        same += augmented**2 * sum((n / total) ** 2 for n in augmented_class_sizes)
    return same
