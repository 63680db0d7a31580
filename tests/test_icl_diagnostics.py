"""ICL diagnostics on hand-computed batches."""

import math

import numpy as np
import pytest

from keras_asc.losses.icl_diagnostics import gradient_share
from keras_asc.losses.icl_diagnostics import icl_diagnostics


def _values(tokens, devices):
    out = icl_diagnostics(np.asarray(tokens, "float32"), np.asarray(devices))
    return {k: (float(v), float(w)) for k, (v, w) in out.items()}


def test_hand_computed_batch():
    # Pooled z = (cls + dist) / 2: (0, 0), (2, 0), (0, 2).
    cls = [[0.0, 0.0], [4.0, 0.0], [0.0, 2.0]]
    dist = [[0.0, 0.0], [0.0, 0.0], [0.0, 2.0]]
    tokens = np.stack([cls, dist], axis=1)
    got = _values(tokens, [0, 0, 1])
    assert got["icl_embedding_norm"] == (pytest.approx((0 + 2 + 2) / 3), 1.0)
    # cos: clip 0 has zero tokens (0 by convention), clip 1 has dist = 0 (0), clip 2 +1.
    assert got["icl_cos_cls_dist"][0] == pytest.approx(1 / 3)
    # mean z = (2/3, 2/3): |mean|^2 = 8/9; mean |z|^2 = 8/3 -> share 1 - 1/3.
    assert got["icl_clip_share"][0] == pytest.approx(2 / 3)
    # same-device pairs (0,1),(1,0): d = 2; cross: (0,2),(2,0) d = 2, (1,2),(2,1) d = sqrt 8.
    cross = (2 + 2 + math.sqrt(8) * 2) / 4
    assert got["icl_distance_ratio"] == (pytest.approx(2 / cross), 1.0)
    assert got["icl_same_device_fraction"] == (pytest.approx(2 / 6), 1.0)


def test_collapse_cancellation_and_undefined_ratio():
    z = np.random.default_rng(0).normal(size=(1, 4)).astype("float32")
    # Every clip the same embedding (collapse): clip share 0.
    collapsed = np.repeat(np.stack([z, z], axis=1), 5, axis=0)
    assert _values(collapsed, [0, 1, 2, 0, 1])["icl_clip_share"][0] == pytest.approx(0, abs=1e-6)
    # dist = -cls: cos -1, pooled norm 0.
    clips = np.random.default_rng(1).normal(size=(4, 4)).astype("float32")
    cancelled = _values(np.stack([clips, -clips], axis=1), [0, 0, 1, 1])
    assert cancelled["icl_cos_cls_dist"][0] == pytest.approx(-1.0)
    assert cancelled["icl_embedding_norm"][0] == pytest.approx(0.0, abs=1e-6)
    # One device only: no cross pairs, the ratio is undefined (weight 0); unknown ids (-1) are
    # left out of the pairs.
    tokens = np.stack([clips, clips], axis=1)
    single = _values(tokens, [2, 2, 2, -1])
    assert single["icl_distance_ratio"][1] == 0.0
    assert single["icl_same_device_fraction"] == (1.0, 1.0)


def test_gradient_share():
    assert float(gradient_share(np.array([3.0, 4.0]), np.array([0.0, 5.0]))) == 0.5
    assert float(gradient_share(np.zeros(2), np.zeros(2))) == 0.0


def test_expected_same_device_fraction_by_hand_and_by_the_dir_layer():
    import tensorflow as tf

    from asc_core.vocab import DEVICES
    from keras_asc.augment import DirAugmentation
    from keras_asc.losses.icl_diagnostics import expected_same_device_fraction

    shares = {"a": 0.7, "b": 0.1, "c": 0.2}
    assert expected_same_device_fraction(shares) == pytest.approx(0.49 + 0.01 + 0.04)
    # 60 % of a augmented: a keeps 0.28; the 0.42 augmented split over classes of 1 and 3 IRs.
    want = 0.28**2 + 0.01 + 0.04 + 0.42**2 * (0.25**2 + 0.75**2)
    got = expected_same_device_fraction(shares, 0.6, ("a",), [1, 3])
    assert got == pytest.approx(want)
    # The DIR layer's labels give that fraction over many clips (per_microphone, IRs 0 | 1 2 3).
    rng = np.random.default_rng(0)
    n = 20000
    names = rng.choice(list(shares), size=n, p=list(shares.values()))
    devices = np.array([DEVICES.index(d) for d in names])
    layer = DirAugmentation(
        np.eye(4, 3, dtype="float32"),
        ir_labels=[0, 1, 1, 1],
        probability=0.6,
        device_labels="per_microphone",
        seed=2,
    )
    _, out = layer(np.zeros((n, 3), "float32"), tf.constant(devices), training=True)
    counts = np.unique(out.numpy(), return_counts=True)[1]
    observed = float(((counts / n) ** 2).sum())
    assert observed == pytest.approx(want, abs=0.01)
