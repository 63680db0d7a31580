"""Device probe: informative embeddings → high accuracy, device-free ones → chance."""

import numpy as np
import pytest

from asc_core.errors import UserError
from keras_asc.evaluation import probe
from keras_asc.evaluation import probe_model
from keras_asc.evaluation import probe_splits


def synthetic(separation, counts, dim=16, seed=0):
    """Embeddings with a device-specific mean offset of size ``separation`` plus unit noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    device_ids = np.repeat(np.arange(len(counts)), counts)
    embeddings = rng.normal(size=(device_ids.size, dim)) + separation * centres[device_ids]
    return embeddings.astype(np.float32), device_ids


def test_balanced_class_weights():
    weights = probe_model.balanced_class_weights([0, 0, 0, 1, 3, 3], num_classes=4)
    # N = 6 over K = 3 present classes: 6 / (3 * n_k).
    np.testing.assert_allclose(weights, [2 / 3, 2.0, 0.0, 1.0])
    labels = np.array([0, 0, 0, 1, 3, 3])
    totals = np.bincount(labels, weights=weights[labels], minlength=4)
    np.testing.assert_allclose(totals, [2.0, 2.0, 0.0, 2.0])


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    normed = probe_model.layer_norm(rng.normal(size=(7, 5)))
    labels = rng.integers(0, 3, 7)
    weights = rng.uniform(0.5, 2.0, 7)
    params = probe_model.init_probe(5, 3, seed=1)
    params["gamma"] = rng.normal(size=5)
    params["beta"] = rng.normal(size=5)
    params["bias"] = rng.normal(size=3)
    _, grads = probe_model.weighted_loss_and_grads(params, normed, labels, weights)
    step = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[key][idx] += sign * step
                loss, _ = probe_model.weighted_loss_and_grads(shifted, normed, labels, weights)
                numeric[idx] += sign * loss / (2 * step)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-8, err_msg=key)


def test_numpy_probe_equals_keras_layernorm_dense():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8)).astype(np.float32) * 3 + 1
    params = probe_model.init_probe(8, 6, seed=2)
    params["gamma"] = rng.normal(size=8)
    params["beta"] = rng.normal(size=8)
    model = probe_model.build_probe(8, 6)
    model.set_weights([params[k].astype(np.float32) for k in ("gamma", "beta", "kernel", "bias")])
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        probe_model.probe_logits(params, probe_model.layer_norm(x)), expected, atol=1e-4
    )


def test_grouped_split_keeps_groups_whole_and_stratified():
    labels = np.repeat([0, 1, 2], 40)
    groups = np.array([f"{lab}-{i // 4}" for lab, i in zip(labels, np.tile(np.arange(40), 3))])
    fit, stop, test = probe_splits.split_indices(labels, groups, seed=3)
    assert fit.size + stop.size + test.size == labels.size
    assert len(np.intersect1d(fit, stop)) == len(np.intersect1d(fit, test)) == 0
    sets = [set(groups[p]) for p in (fit, stop, test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    for part in (fit, stop, test):
        assert set(labels[part]) == {0, 1, 2}
    # 10 groups per class: 6 / 2 / 2.
    assert [p.size for p in (fit, stop, test)] == [72, 24, 24]


def test_split_needs_three_groups_per_class():
    with pytest.raises(UserError, match=r"s1 has 2 10-s recording\(s\); at least 3 .* clip"):
        probe_splits.split_indices(
            [0, 0, 0, 1, 1], ["a", "b", "c", "d", "e"], class_names=["a", "s1"]
        )
    with pytest.raises(UserError, match=r"class 1 has 2 clip\(s\); at least 3 are needed"):
        probe_splits.split_indices([0, 0, 0, 1, 1])


def test_informative_embeddings_are_recognised():
    embeddings, devices = synthetic(separation=4.0, counts=[100] * 6)
    result = probe.device_probe(embeddings, devices, seed=0, patience=10)
    assert result["devices"] == ["a", "b", "c", "s1", "s2", "s3"]
    assert result["chance"] == pytest.approx(1 / 6)
    assert result["balanced_accuracy"] > 0.9
    # Trained to convergence: early stopping ended it, the best weights are kept.
    assert result["best_epoch"] + 10 == result["epochs"] < 1000
    assert result["early_stopped"] is True
    assert result["counts"] == {"fit": 360, "stop": 120, "test": 120}
    assert np.sum(result["confusion_matrix"]) == 120


def test_device_free_embeddings_stay_near_chance_despite_imbalance():
    # Device a has 5x the clips of the others (as in TAU22); the embedding says nothing.
    embeddings, devices = synthetic(separation=0.0, counts=[500, 100, 100, 100, 100, 100])
    result = probe.device_probe(embeddings, devices, seed=1, patience=10)
    assert abs(result["balanced_accuracy"] - 1 / 6) < 0.1
    # The balanced loss keeps the probe from answering "a" for everything.
    matrix = np.array(result["confusion_matrix"])
    assert matrix[:, 0].sum() / matrix.sum() < 0.6


def test_probe_is_reproducible():
    embeddings, devices = synthetic(separation=1.0, counts=[60] * 6, seed=2)
    a = probe.device_probe(embeddings, devices, seed=5, patience=5, max_epochs=40)
    b = probe.device_probe(embeddings, devices, seed=5, patience=5, max_epochs=40)
    assert a == b


def test_train_device_mask():
    mask = probe.train_device_mask(np.array([0, 5, 6, 8, -1]))
    assert mask.tolist() == [True, True, False, False, False]


# === The paper's protocol: fit on training clips, test on every validation clip ===

T975_DF4 = 2.7764451051977987  # t(0.975, 4), from tables


def recordings(separation, per_device, clips=10, dim=16, seed=0):
    """Clips of 10-s recordings: ``per_device[k]`` recordings of device k, ``clips`` each.

    Device k's clips sit at ``separation`` times a unit centre that is the same for every
    ``seed`` (so a training and a test set share their devices), plus unit noise drawn from
    ``seed``.
    """
    centres = np.random.default_rng(99).normal(size=(len(per_device), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    devices = np.repeat(np.arange(len(per_device)), [n * clips for n in per_device])
    noise = np.random.default_rng(seed).normal(size=(devices.size, dim))
    groups = np.array(
        [
            f"d{d}-r{i // clips}"
            for d, i in zip(devices, np.concatenate([np.arange(n * clips) for n in per_device]))
        ]
    )
    return (noise + separation * centres[devices]).astype(np.float32), devices, groups


def test_holdout_split_keeps_recordings_whole():
    labels = np.repeat([0, 1, 2], [100, 30, 20])
    groups = np.array(
        [
            f"{lab}-{i // 10}"
            for lab, i in zip(labels, np.concatenate([np.arange(n) for n in (100, 30, 20)]))
        ]
    )
    for seed in range(4):
        fit, stop = probe_splits.holdout_split(labels, groups, seed=seed)
        assert fit.size + stop.size == labels.size and not np.intersect1d(fit, stop).size
        assert not set(groups[fit]) & set(groups[stop])
        # round(0.2 × recordings) per device held out, at least one: 2, 1 (0.6 → 1), 1 (0.4 → 1)
        held = {lab: len(set(groups[stop][labels[stop] == lab])) for lab in (0, 1, 2)}
        assert held == {0: 2, 1: 1, 2: 1}
    a, _ = probe_splits.holdout_split(labels, groups, seed=0)
    b, _ = probe_splits.holdout_split(labels, groups, seed=1)
    assert not np.array_equal(a, b)  # the seed draws another split


@pytest.mark.parametrize(
    "labels, groups, message",
    [
        (
            [0, 0, 1, 1],
            ["r1", "r1", "r2", "r3"],
            r"device probe: a has 1 training 10-s recording\(s\); at least 2 .* --split-by clip",
        ),
        ([0, 0, 1], None, r"device probe: b has 1 training clip\(s\); at least 2 are needed"),
    ],
)
def test_holdout_split_needs_two_groups_per_device(labels, groups, message):
    with pytest.raises(UserError, match=message):
        probe_splits.holdout_split(labels, groups, class_names=["a", "b"])


def test_paper_probe_finds_linearly_encoded_devices():
    # Training set imbalanced as in TAU22 (device a 5×), test balanced.
    train, train_dev, train_groups = recordings(4.0, [50, 10, 10, 10, 10, 10], seed=0)
    test, test_dev, _ = recordings(4.0, [4] * 6, seed=1)
    result = probe.paper_probe(train, train_dev, test, test_dev, train_groups, seeds=5, patience=10)
    assert result["protocol"] == "paper"
    assert result["devices"] == ["a", "b", "c", "s1", "s2", "s3"]
    assert result["balanced_accuracy"] > 0.9
    assert result["counts"] == {"train": 1000, "test": 240}
    assert [r["seed"] for r in result["per_seed"]] == [0, 1, 2, 3, 4]
    for run in result["per_seed"]:
        # every test clip is scored, by every seed; 1 of 10 (b..s3) or 10 of 50 (a) held out
        assert np.sum(run["confusion_matrix"]) == 240
        assert run["counts"] == {"fit": 800, "stop": 200}


def test_paper_probe_stays_near_chance_without_device_information():
    train, train_dev, train_groups = recordings(0.0, [50, 10, 10, 10, 10, 10], seed=1)
    test, test_dev, _ = recordings(0.0, [10] * 6, seed=2)
    result = probe.paper_probe(train, train_dev, test, test_dev, train_groups, seeds=5, patience=10)
    assert abs(result["balanced_accuracy"] - 1 / 6) < 0.08
    # The balanced loss keeps the probe from answering "a" (70 % of training) for everything.
    for run in result["per_seed"]:
        matrix = np.array(run["confusion_matrix"])
        assert matrix[:, 0].sum() / matrix.sum() < 0.5


def test_paper_probe_interval_by_hand():
    train, train_dev, train_groups = recordings(1.0, [20, 5, 5, 5, 5, 5], seed=3)
    test, test_dev, _ = recordings(1.0, [5] * 6, seed=4)
    result = probe.paper_probe(
        train,
        train_dev,
        test,
        test_dev,
        train_groups,
        seeds=[3, 4, 5, 6, 7],
        patience=5,
        max_epochs=60,
    )
    values = [r["balanced_accuracy"] for r in result["per_seed"]]
    mean = sum(values) / 5
    sd = (sum((v - mean) ** 2 for v in values) / 4) ** 0.5
    half = T975_DF4 * sd / 5**0.5
    assert result["balanced_accuracy"] == pytest.approx(mean)
    assert result["balanced_accuracy_sd"] == pytest.approx(sd)
    assert result["balanced_accuracy_ci"] == pytest.approx([mean - half, mean + half])
    assert sd > 0  # the seeds really differ
    one = probe.paper_probe(
        train, train_dev, test, test_dev, train_groups, seeds=[3], patience=5, max_epochs=60
    )
    assert one["balanced_accuracy"] == pytest.approx(values[0])
    assert one["balanced_accuracy_ci"] is None and one["balanced_accuracy_sd"] is None


def test_paper_probe_rejects_test_devices_without_training_clips():
    train, train_dev, _ = recordings(1.0, [3, 3], seed=0)
    test, test_dev, _ = recordings(1.0, [1, 1, 1], seed=0)
    with pytest.raises(UserError, match=r"test clips of devices \['c'\] that have no training"):
        probe.paper_probe(train, train_dev, test, test_dev, seeds=1)
