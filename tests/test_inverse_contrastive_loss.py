"""Inverse contrastive loss against a loop-based NumPy implementation of the paper's Eq. 1-4."""

import math

import numpy as np
import pytest
import tensorflow as tf
from harness import run_loss_serialization_test

from asc_core.errors import UserError
from keras_asc.losses import InverseContrastiveLoss
from keras_asc.losses import inverse_contrastive_loss


def reference_icl(z, c, alpha, beta, normalization, num_devices=None):
    """Eq. 1-4 written pair by pair in float64 (independent of the vectorised TF code)."""
    z = np.asarray(z, np.float64)
    keep = [i for i in range(len(c)) if c[i] >= 0]
    if normalization == "pairs":
        total, pairs = 0.0, 0
        for i in keep:
            for j in keep:
                if i == j:
                    continue
                d = math.sqrt(((z[i] - z[j]) ** 2).sum())
                total += math.exp((alpha - d) / beta) if c[i] == c[j] else d * d
                pairs += 1
        return total / pairs if pairs else 0.0
    # Akash et al.: w_ij = 1 / (n_ci n_cj) over all ordered pairs, (C - 1) on same-label terms.
    counts = {k: sum(1 for i in keep if c[i] == k) for k in {c[i] for i in keep}}
    num_classes = len(counts) if num_devices is None else num_devices
    cross, within = 0.0, 0.0
    for i in keep:
        for j in keep:
            d = math.sqrt(((z[i] - z[j]) ** 2).sum())
            w = 1.0 / (counts[c[i]] * counts[c[j]])
            if c[i] == c[j]:
                within += w * math.exp((alpha - d) / beta)
            else:
                cross += w * d * d
    return cross + (num_classes - 1) * within


def random_batch(seed, batch=12, dim=5, num_devices=4, scale=0.3):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(batch, dim)) * scale).astype("float32")
    c = rng.integers(0, num_devices, size=batch)
    return z, c


@pytest.mark.parametrize("normalization", ["pairs", "blocks"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_reference(normalization, seed):
    z, c = random_batch(seed)
    alpha, beta = [(0.2, 1.0), (1.0, 0.5), (-0.3, 2.0)][seed]
    got = float(inverse_contrastive_loss(z, c, alpha, beta, normalization))
    want = reference_icl(z, c, alpha, beta, normalization)
    assert got == pytest.approx(want, rel=1e-5)


def test_blocks_with_fixed_num_devices_and_unknown_devices():
    z, c = random_batch(3, batch=10)
    c[[1, 4]] = -1  # unknown devices take no part
    got = float(inverse_contrastive_loss(z, c, 0.2, 1.0, "blocks", num_devices=9))
    assert got == pytest.approx(reference_icl(z, c, 0.2, 1.0, "blocks", 9), rel=1e-5)
    got = float(inverse_contrastive_loss(z, c, 0.2, 1.0, "pairs"))
    assert got == pytest.approx(reference_icl(z, c, 0.2, 1.0, "pairs"), rel=1e-5)
    # Dropping the unknown rows gives the same value: they are fully masked.
    keep = c >= 0
    alone = float(inverse_contrastive_loss(z[keep], c[keep], 0.2, 1.0, "pairs"))
    assert got == pytest.approx(alone, rel=1e-6)


def test_hand_computed_values():
    # Three points on a line: z0 = 0, z1 = 1 (same device as z0), z2 = 3 (other device).
    z = np.array([[0.0], [1.0], [3.0]], "float32")
    c = np.array([5, 5, 11])
    same = math.exp(0.2 - 1.0)  # f at d = 1, alpha = 0.2, beta = 1
    pairs = (2 * same + 2 * 9.0 + 2 * 4.0) / 6
    assert float(inverse_contrastive_loss(z, c)) == pytest.approx(pairs, rel=1e-6)
    # blocks: n = {5: 2, 11: 1}; cross = 2 * (9 + 4) / 2; within = (2 e^.2 + 2 f(1)) / 4 + e^.2.
    within = (2 * math.exp(0.2) + 2 * same) / 4 + math.exp(0.2)
    blocks = 13.0 + (2 - 1) * within
    got = float(inverse_contrastive_loss(z, c, normalization="blocks"))
    assert got == pytest.approx(blocks, rel=1e-6)


@pytest.mark.parametrize("normalization", ["pairs", "blocks"])
def test_edge_cases_values_and_finite_gradients(normalization):
    cases = {
        "one device": (np.random.default_rng(0).normal(size=(6, 4)), np.zeros(6, int)),
        "duplicates": (np.repeat(np.arange(8.0).reshape(4, 2), 2, axis=0), np.arange(8) % 3),
        "batch of two": (np.array([[0.0, 1.0], [2.0, 1.0]]), np.array([0, 1])),
        "batch of one": (np.array([[0.5, 1.0]]), np.array([2])),
        "all identical": (np.ones((5, 3)), np.array([0, 0, 1, 1, 2])),
    }
    for name, (z, c) in cases.items():
        z = tf.constant(z, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = inverse_contrastive_loss(z, c, normalization=normalization)
        grad = tape.gradient(loss, z).numpy()
        assert np.isfinite(grad).all(), name
        want = reference_icl(z.numpy(), c, 0.2, 1.0, normalization)
        assert float(loss) == pytest.approx(want, rel=1e-5, abs=1e-7), name
    # Two devices two units apart: loss = d**2 = 4 for "pairs", gradient pulls them together.
    z = tf.constant([[0.0, 1.0], [2.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = inverse_contrastive_loss(z, [0, 1], normalization="pairs")
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), [[-4.0, 0.0], [4.0, 0.0]])


def test_gradient_matches_finite_differences():
    z, c = random_batch(4, batch=6, dim=3)
    z64 = z.astype(np.float64)
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        loss = inverse_contrastive_loss(zt, c, normalization="blocks")
    grad = tape.gradient(loss, zt).numpy()
    eps = 1e-4
    for i, k in [(0, 0), (3, 1), (5, 2)]:
        plus, minus = z64.copy(), z64.copy()
        plus[i, k] += eps
        minus[i, k] -= eps
        numeric = (
            reference_icl(plus, c, 0.2, 1.0, "blocks") - reference_icl(minus, c, 0.2, 1.0, "blocks")
        ) / (2 * eps)
        assert grad[i, k] == pytest.approx(numeric, rel=1e-3, abs=1e-4)


def test_mixed_precision_inputs_compute_in_float32():
    z, c = random_batch(5)
    half = tf.constant(z, tf.bfloat16)
    loss = inverse_contrastive_loss(half, c)
    assert loss.dtype == tf.float32
    want = reference_icl(half.numpy().astype(np.float64), c, 0.2, 1.0, "pairs")
    assert float(loss) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("normalization", ["pairs", "blocks"])
def test_jit_compile_matches_eager(normalization):
    z, c = random_batch(6)
    fn = tf.function(
        lambda z, c: inverse_contrastive_loss(z, c, normalization=normalization),
        jit_compile=True,
    )
    got = float(fn(tf.constant(z), tf.constant(c)))
    assert got == pytest.approx(
        float(inverse_contrastive_loss(z, c, normalization=normalization)), rel=1e-5
    )


def test_bad_arguments_raise_user_error():
    z, c = random_batch(0)
    with pytest.raises(UserError, match=r"beta must be > 0 .* got beta=0.0"):
        inverse_contrastive_loss(z, c, beta=0.0)
    with pytest.raises(UserError, match=r"got beta=-1"):
        InverseContrastiveLoss(beta=-1)
    with pytest.raises(
        UserError,
        match=r"normalization must be one of \('pairs', 'blocks'\), "
        r"got 'mean'",
    ):
        inverse_contrastive_loss(z, c, normalization="mean")
    with pytest.raises(UserError, match=r"num_devices must be a positive int or None, got 0"):
        inverse_contrastive_loss(z, c, normalization="blocks", num_devices=0)


def test_keras_loss_wrapper_and_serialization():
    z, c = random_batch(7)
    loss = InverseContrastiveLoss(alpha=0.5, beta=2.0, normalization="blocks", num_devices=9)
    assert float(loss(c, z)) == pytest.approx(reference_icl(z, c, 0.5, 2.0, "blocks", 9), rel=1e-5)
    revived = run_loss_serialization_test(loss, c, z)
    assert revived.get_config()["num_devices"] == 9


# === Where ICL acts (target) ===


def _tokens(seed=3, batch=12, dim=16):
    """cls = dist (cos +1) with cross-device distances >> 1: the pull term dominates."""
    z, c = random_batch(seed, batch=batch, dim=dim, scale=1.0)
    return np.stack([z, z], axis=1), c


def _icl(target, tokens, c):
    return float(InverseContrastiveLoss(alpha=0.2, beta=1.0, target=target)(c, tokens))


def test_targets_match_the_pairwise_loss_of_their_embeddings():
    z, c = random_batch(4, dim=8, scale=1.0)
    dist = random_batch(5, dim=8, scale=1.0)[0]
    tokens = np.stack([z, dist], axis=1)
    pooled = (z + dist) / 2
    normed = (pooled - pooled.mean(-1, keepdims=True)) / pooled.std(-1, keepdims=True)
    ref = lambda e: reference_icl(e, c, 0.2, 1.0, "pairs")  # noqa: E731
    assert _icl("pooled", tokens, c) == pytest.approx(ref(pooled), rel=1e-5)
    assert _icl("tokens", tokens, c) == pytest.approx((ref(z) + ref(dist)) / 2, rel=1e-5)
    assert _icl("normalized", tokens, c) == pytest.approx(ref(normed), rel=1e-4)
    # A pooled [B, D] input is the pooled embedding itself.
    assert _icl("pooled", pooled, c) == pytest.approx(ref(pooled), rel=1e-5)


def test_cancellation_escape_lowers_only_the_pooled_loss():
    tokens, c = _tokens()
    cls = tokens[:, 0]
    noise = np.random.default_rng(9).normal(size=cls.shape).astype("float32")
    # The sidestep measured at lambda 0.05: dist -> -cls, the pooled embedding keeping a
    # residual 1000x smaller (here first along cls itself, then a random one).
    for residual, normalized_rel in ((2e-3 * cls, 1e-4), (2e-3 * noise, 0.1)):
        escaped = np.stack([cls, -cls + residual], axis=1)
        assert _icl("pooled", escaped, c) < 0.05 * _icl("pooled", tokens, c)
        assert _icl("tokens", escaped, c) == pytest.approx(_icl("tokens", tokens, c), rel=1e-2)
        # LayerNorm rescales the residual: the loss keeps its level (exactly, for a residual
        # along cls; within the geometry of random directions for a random one).
        assert _icl("normalized", escaped, c) == pytest.approx(
            _icl("normalized", tokens, c), rel=normalized_rel
        )


@pytest.mark.parametrize("factor", [0.1, 0.01])
def test_rescaling_escape_lowers_pooled_and_tokens_but_not_normalized(factor):
    tokens, c = _tokens()
    shrunk = tokens * np.float32(factor)
    assert _icl("pooled", shrunk, c) < 0.5 * _icl("pooled", tokens, c)
    # "tokens" closes the cancellation only: shrinking both tokens (the final-norm gain) still
    # lowers it.
    assert _icl("tokens", shrunk, c) < 0.5 * _icl("tokens", tokens, c)
    assert _icl("normalized", shrunk, c) == pytest.approx(_icl("normalized", tokens, c), rel=1e-5)


def test_tokens_target_needs_class_tokens():
    z, c = random_batch(0)
    with pytest.raises(UserError, match=r'target="tokens" needs the class tokens \[B, 2, D\]'):
        InverseContrastiveLoss(target="tokens")(c, z)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(target="cls"),
            r"target must be one of \('pooled', 'tokens', 'normalized'\), "
            r"got 'cls'",
        ),
        (dict(alpha="0.2"), r"alpha must be a finite number, got alpha='0.2'"),
        (dict(beta=None), r"beta must be a finite number, got beta=None"),
        (dict(alpha=float("nan")), r"alpha must be a finite number, got alpha=nan"),
        (dict(alpha=True), r"alpha must be a finite number, got alpha=True"),
    ],
)
def test_bad_target_and_non_number_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        InverseContrastiveLoss(**kwargs)


def test_target_round_trips_in_the_config():
    loss = InverseContrastiveLoss(target="normalized", num_devices=4)
    z, c = random_batch(6)
    assert run_loss_serialization_test(loss, c, z).target == "normalized"
