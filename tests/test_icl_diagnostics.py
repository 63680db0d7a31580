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
