"""Device probe: informative embeddings → high accuracy, device-free ones → chance."""

import numpy as np
import pytest

from keras_asc.errors import UserError
from keras_asc.evaluation import probe


def synthetic(separation, counts, dim=16, seed=0):
    """Embeddings with a device-specific mean offset of size ``separation`` plus unit noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    device_ids = np.repeat(np.arange(len(counts)), counts)
    embeddings = rng.normal(size=(device_ids.size, dim)) + separation * centres[device_ids]
    return embeddings.astype(np.float32), device_ids


def test_balanced_class_weights():
    weights = probe.balanced_class_weights([0, 0, 0, 1, 3, 3], num_classes=4)
    # N = 6 over K = 3 present classes: 6 / (3 * n_k).
    np.testing.assert_allclose(weights, [2 / 3, 2.0, 0.0, 1.0])
    labels = np.array([0, 0, 0, 1, 3, 3])
    totals = np.bincount(labels, weights=weights[labels], minlength=4)
    np.testing.assert_allclose(totals, [2.0, 2.0, 0.0, 2.0])


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    normed = probe.layer_norm(rng.normal(size=(7, 5)))
    labels = rng.integers(0, 3, 7)
    weights = rng.uniform(0.5, 2.0, 7)
    params = probe.init_probe(5, 3, seed=1)
    params["gamma"] = rng.normal(size=5)
    params["beta"] = rng.normal(size=5)
    params["bias"] = rng.normal(size=3)
    _, grads = probe.weighted_loss_and_grads(params, normed, labels, weights)
    step = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[key][idx] += sign * step
                loss, _ = probe.weighted_loss_and_grads(shifted, normed, labels, weights)
                numeric[idx] += sign * loss / (2 * step)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-8, err_msg=key)


def test_numpy_probe_equals_keras_layernorm_dense():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8)).astype(np.float32) * 3 + 1
    params = probe.init_probe(8, 6, seed=2)
    params["gamma"] = rng.normal(size=8)
    params["beta"] = rng.normal(size=8)
    model = probe.build_probe(8, 6)
    model.set_weights([params[k].astype(np.float32) for k in ("gamma", "beta", "kernel", "bias")])
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(probe.probe_logits(params, probe.layer_norm(x)), expected, atol=1e-4)


def test_grouped_split_keeps_groups_whole_and_stratified():
    labels = np.repeat([0, 1, 2], 40)
    groups = np.array([f"{lab}-{i // 4}" for lab, i in zip(labels, np.tile(np.arange(40), 3))])
    fit, stop, test = probe.split_indices(labels, groups, seed=3)
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
        probe.split_indices([0, 0, 0, 1, 1], ["a", "b", "c", "d", "e"], class_names=["a", "s1"])
    with pytest.raises(UserError, match=r"class 1 has 2 clip\(s\); at least 3 are needed"):
        probe.split_indices([0, 0, 0, 1, 1])


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
