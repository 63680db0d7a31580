"""Scene metrics against values computed by hand."""

import math

import numpy as np
import pytest

from asc_core.vocab import DEVICES
from asc_core.vocab import SCENES
from keras_asc.evaluation import metrics

# Five clips, two classes, three devices (d3 absent), two families.
CLASSES = ("x", "y")
DEVICE_NAMES = ("d1", "d2", "d3")
GROUPS = {"g1": ("d1", "d2"), "g2": ("d3",)}
LABELS = np.array([0, 1, 1, 0, 0])
PROBS = np.array([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3], [0.3, 0.7]])
DEVICE_IDS = np.array([0, 0, 1, 1, 1])
# Clip losses -ln p(true): ln .8, ln .4, ln .9, ln .7, ln .3; correct: 1, 0, 1, 1, 0.
L = [-math.log(p) for p in (0.8, 0.4, 0.9, 0.7, 0.3)]


@pytest.fixture(scope="module")
def toy():
    return metrics.scene_metrics(
        LABELS,
        PROBS,
        DEVICE_IDS,
        class_names=CLASSES,
        device_names=DEVICE_NAMES,
        device_groups=GROUPS,
    )


def test_per_device_values(toy):
    d1, d2 = toy["devices"]["d1"], toy["devices"]["d2"]
    assert d1["count"] == 2 and d2["count"] == 3
    assert d1["accuracy"] == pytest.approx(0.5)
    assert d1["log_loss"] == pytest.approx((L[0] + L[1]) / 2)
    assert d2["accuracy"] == pytest.approx(2 / 3)
    assert d2["log_loss"] == pytest.approx((L[2] + L[3] + L[4]) / 3)
    # Class-wise inside d2: class y = clip 3 (acc 1), class x = clips 4, 5 (acc 1/2).
    assert d2["macro_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert d2["macro_log_loss"] == pytest.approx((L[2] + (L[3] + L[4]) / 2) / 2)


def test_absent_device_is_none_and_left_out_of_means(toy):
    d3 = toy["devices"]["d3"]
    assert d3 == {
        "count": 0,
        "accuracy": None,
        "log_loss": None,
        "macro_accuracy": None,
        "macro_log_loss": None,
    }
    assert toy["groups"]["g2"]["accuracy"] is None
    assert toy["groups"]["g2"]["devices"] == []
    # Device mean over d1, d2 only: (1/2 + 2/3) / 2, not (1/2 + 2/3 + 0) / 3.
    assert toy["overall"]["device_mean_accuracy"] == pytest.approx(7 / 12)


def test_group_is_mean_of_devices_not_pooled(toy):
    g1 = toy["groups"]["g1"]
    assert g1["devices"] == ["d1", "d2"]
    assert g1["accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert g1["log_loss"] == pytest.approx(((L[0] + L[1]) / 2 + (L[2] + L[3] + L[4]) / 3) / 2)
    assert g1["pooled_accuracy"] == pytest.approx(3 / 5)
    assert g1["pooled_log_loss"] == pytest.approx(sum(L) / 5)


def test_overall_micro_and_dcase_macro(toy):
    overall = toy["overall"]
    assert overall["count"] == 5
    assert overall["accuracy"] == pytest.approx(3 / 5)
    assert overall["log_loss"] == pytest.approx(sum(L) / 5)
    # Class x: clips 1, 4, 5 (acc 2/3); class y: clips 2, 3 (acc 1/2).
    assert overall["macro_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert overall["macro_log_loss"] == pytest.approx(
        ((L[0] + L[3] + L[4]) / 3 + (L[1] + L[2]) / 2) / 2
    )
    assert toy["classes"]["x"] == {
        "count": 3,
        "accuracy": pytest.approx(2 / 3),
        "log_loss": pytest.approx((L[0] + L[3] + L[4]) / 3),
    }


def test_dg_population_and_sample_std(toy):
    # Device accuracies 1/2 and 2/3: population std = 1/12, sample std = (1/6) / sqrt(2).
    assert toy["dg"] == pytest.approx(1 / 12)
    assert toy["dg_sample"] == pytest.approx((1 / 6) / math.sqrt(2))


def test_confusion_matrix(toy):
    # true x: predicted x, x, y; true y: predicted x, y.
    assert toy["confusion_matrix"] == [[2, 1], [1, 1]]


def test_log_loss_clipping_bounds():
    probs = np.array([[1.0, 0.0], [1.0, 0.0]])
    losses = metrics.clip_log_losses(np.array([1, 0]), probs)
    assert losses[0] == pytest.approx(-math.log(1e-15))
    assert losses[0] == pytest.approx(34.538776394910684)
    assert losses[1] == pytest.approx(-math.log1p(-1e-15), rel=1e-3)
    assert metrics.log_loss(np.array([], dtype=int), np.zeros((0, 2))) is None


def test_softmax_is_stable_and_normalised():
    p = metrics.softmax([[1000.0, 0.0, -1000.0], [0.0, 0.0, math.log(2.0)]])
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(p[1], [0.25, 0.25, 0.5])


def test_default_vocab_with_unseen_devices_absent():
    rng = np.random.default_rng(0)
    n = 60
    labels = rng.integers(0, len(SCENES), n)
    probs = metrics.softmax(rng.normal(size=(n, len(SCENES))))
    devices = np.tile(np.arange(6), n // 6)  # a..s3 only
    report = metrics.scene_metrics(labels, probs, devices)
    assert set(report["devices"]) == set(DEVICES)
    for name in ("s4", "s5", "s6"):
        assert report["devices"][name]["accuracy"] is None
    assert report["groups"]["unseen"]["accuracy"] is None
    acc = [report["devices"][d]["accuracy"] for d in DEVICES[:6]]
    assert report["dg"] == pytest.approx(np.std(acc))
    assert report["groups"]["real"]["accuracy"] == pytest.approx(np.mean(acc[:3]))
    assert np.sum(report["confusion_matrix"]) == n


def test_unknown_device_counts_only_overall():
    report = metrics.scene_metrics(
        np.array([0, 1]),
        np.array([[0.9, 0.1], [0.2, 0.8]]),
        np.array([-1, 0]),
        class_names=CLASSES,
        device_names=DEVICE_NAMES,
        device_groups=GROUPS,
    )
    assert report["overall"]["count"] == 2
    assert report["overall"]["unknown_device_count"] == 1
    assert report["devices"]["d1"]["count"] == 1


@pytest.mark.parametrize(
    "labels, devices, match",
    [
        (np.array([0, -1]), np.array([0, 0]), r"labels must lie in \[0, 2\)"),
        (np.array([0, 1]), np.array([0, 3]), r"device_ids must lie in \[-1, 3\)"),
        (np.array([0.0, 1.0]), np.array([0, 0]), "labels must be integer"),
        (np.array([0]), np.array([0]), r"labels must be \[N\] with N=2"),
    ],
)
def test_bad_inputs_raise(labels, devices, match):
    with pytest.raises(ValueError, match=match):
        metrics.scene_metrics(
            labels,
            np.array([[0.5, 0.5], [0.5, 0.5]]),
            devices[: len(labels)],
            class_names=CLASSES,
            device_names=DEVICE_NAMES,
            device_groups=GROUPS,
        )
