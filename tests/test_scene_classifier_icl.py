"""SceneClassifier training extensions: ICL in compute_loss, DIR in train_step, mixup, saving."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_asc  # noqa: F401  (registers the serializable classes for load_model)
from asc_core.errors import UserError
from keras_asc.augment import Augmenter
from keras_asc.augment import DirAugmentation
from keras_asc.augment.mixup import mixup_cross_entropy
from keras_asc.losses import inverse_contrastive_loss
from keras_asc.models.scene_classifier import SceneClassifier
from keras_asc.models.scene_classifier import icl_task_kwargs

NUM_CLASSES = 3
SAMPLES = 8000  # 0.25 s: 25 frames, enough for the tiny PaSST and fast on a CPU


def _data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (n, SAMPLES)).astype("float32")
    y = {
        "scene": rng.integers(0, NUM_CLASSES, n),
        "device": np.resize([0, 0, 1, 3, 0, 2], n),
    }
    return x, y


def _model(
    dtype=None,
    dir_augmentation=None,
    mixstyle_p=0.0,
    mixstyle_alpha=0.4,
    mixup_alpha=0.0,
    augment_seed=0,
    **icl,
):
    """The tiny task with the config's vocabulary (loss: icl_*; augment; dirs)."""
    augmenter = Augmenter(dir_augmentation, mixstyle_p, mixstyle_alpha, mixup_alpha, augment_seed)
    return SceneClassifier.from_preset(
        "passt_tiny",
        num_classes=NUM_CLASSES,
        seed=0,
        dtype=dtype,
        augmenter=augmenter,
        **icl_task_kwargs(**icl),
    )


def _dir_layer(probability=1.0, seed=3):
    irs = np.random.default_rng(7).normal(size=(3, 40)).astype("float32") * 0.3
    return DirAugmentation(irs, probability=probability, seed=seed, name="dir_augmentation")


def _json(config):
    return json.loads(json.dumps(config))


def _ce(y, logits):
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


@pytest.fixture(scope="module")
def icl_model():
    model = _model(icl_weight=0.5, icl_alpha=0.2, icl_beta=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def test_compute_loss_is_ce_plus_weighted_icl(icl_model):
    x, y = _data()
    y_pred = icl_model(x)
    loss = float(icl_model.compute_loss(x=x, y=y, y_pred=y_pred, training=False))
    ce = _ce(y["scene"], y_pred["logits"])
    icl = float(inverse_contrastive_loss(y_pred["embedding"], y["device"], 0.2, 1.0))
    assert icl > 0
    assert loss == pytest.approx(ce + 0.5 * icl, rel=1e-5)
    # The embedding the ICL acts on is the backbone output (before the head norm).
    np.testing.assert_allclose(
        y_pred["embedding"], icl_model.backbone(icl_model.frontend(x))["embedding"], atol=1e-5
    )


def test_fit_with_icl_lowers_the_loss_and_tracks_terms(icl_model):
    x, y = _data(n=8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def inference_loss():
        return float(icl_model.compute_loss(x=x, y=y, y_pred=icl_model(x), training=False))

    before = inference_loss()
    history = icl_model.fit(dataset.repeat(3), epochs=1, verbose=0).history
    assert {"loss", "ce_loss", "icl_loss", "accuracy"} <= set(history)
    assert inference_loss() < before
    # Equal batches and no ramp: the epoch means obey loss = ce + 0.5 icl too.
    assert history["loss"][0] == pytest.approx(
        history["ce_loss"][0] + 0.5 * history["icl_loss"][0], rel=1e-5
    )
    # One evaluation batch: the tracked terms are exactly this batch's CE and ICL.
    after = icl_model.evaluate(dataset, verbose=0, return_dict=True)
    y_pred = icl_model(x)
    assert after["ce_loss"] == pytest.approx(_ce(y["scene"], y_pred["logits"]), rel=1e-4)
    icl = float(inverse_contrastive_loss(y_pred["embedding"], y["device"]))
    assert after["icl_loss"] == pytest.approx(icl, rel=1e-4)
    assert after["loss"] == pytest.approx(after["ce_loss"] + 0.5 * after["icl_loss"], rel=1e-5)
    # The trackers are Keras metrics (reset per epoch), listed in `metrics`.
    names = [m.name for m in icl_model.metrics]
    assert "ce_loss" in names and "icl_loss" in names


def test_icl_weight_ramp_up():
    model = _model(icl_weight=2.0, icl_rampup_steps=4)
    model.compile(optimizer="sgd")
    x, y = _data(n=4)
    y_pred = model(x)
    ce = _ce(y["scene"], y_pred["logits"])
    icl = float(inverse_contrastive_loss(y_pred["embedding"], y["device"]))
    for step, weight in [(0, 0.0), (1, 0.5), (2, 1.0), (4, 2.0), (9, 2.0)]:
        model.optimizer.iterations.assign(step)
        loss = float(model.compute_loss(x=x, y=y, y_pred=y_pred, training=True))
        assert loss == pytest.approx(ce + weight * icl, rel=1e-5), step


def test_plain_integer_targets_still_work():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = _data(n=4)
    history = model.fit(x, y["scene"], batch_size=4, epochs=1, verbose=0).history
    assert set(history) == {"loss", "accuracy"}
    # ICL or DIR without device labels is a clear error, not a silent CE-only run.
    icl = _model(icl_weight=0.5)
    icl.compile(optimizer="sgd")
    with pytest.raises(UserError, match=r"icl_weight > 0 needs device labels"):
        icl.compute_loss(x=x, y=y["scene"], y_pred=icl(x), training=True)
    dir_model = _model(dir_augmentation=_dir_layer())
    dir_model.compile(optimizer="sgd")
    with pytest.raises(UserError, match=r"dir_augmentation needs device labels"):
        dir_model.train_step((x, y["scene"]))


def test_evaluate_and_predict_of_an_icl_model_on_scene_only_data(icl_model):
    # ICL is a training term: evaluate() on (waveform, scene_id) reports the CE and the compiled
    # metrics, with no ICL entries (nothing was measured); predict() needs no labels at all.
    x, y = _data(n=8)
    scene_only = tf.data.Dataset.from_tensor_slices((x, y["scene"])).batch(4)
    logs = icl_model.evaluate(scene_only, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    logits = icl_model.predict(scene_only, verbose=0)["logits"]
    assert logits.shape == (8, NUM_CLASSES)
    assert logs["loss"] == pytest.approx(_ce(y["scene"], logits), rel=1e-5)
    # With device labels evaluate() still reports the ICL term.
    full = icl_model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert full["icl_loss"] > 0 and full["ce_loss"] == pytest.approx(logs["loss"], rel=1e-5)
    # Training without device labels stays one clear error.
    with pytest.raises(UserError, match=r"icl_weight > 0 needs device labels"):
        icl_model.fit(scene_only, epochs=1, verbose=0)


def _copy_network_state(source, target):
    """Weights and seed-generator states (patchout, SpecAugment) of the shared layers."""
    for name in ("frontend", "backbone", "head_norm", "head_dense"):
        src, dst = getattr(source, name), getattr(target, name)
        assert [v.path for v in src.variables] == [v.path for v in dst.variables]
        for a, b in zip(src.variables, dst.variables):
            b.assign(a)


@pytest.mark.slow
def test_dir_device_and_pipeline_placements_give_the_same_training():
    x, y = _data(n=8, seed=1)
    batch = 4
    device_model = _model(icl_weight=0.5, dir_augmentation=_dir_layer(probability=0.7))
    pipeline_model = _model(icl_weight=0.5)
    _copy_network_state(device_model, pipeline_model)
    fn = device_model.dir_augmentation.pipeline_function()

    def augment(index, element):
        audio, labels = element
        audio, device = fn(audio, labels["device"], index)
        return audio, {"scene": labels["scene"], "device": device}

    base = tf.data.Dataset.from_tensor_slices((x, y))
    pipeline_data = base.enumerate().map(augment).batch(batch)
    for model in (device_model, pipeline_model):
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    h_device = device_model.fit(base.batch(batch), epochs=1, verbose=0).history
    h_pipeline = pipeline_model.fit(pipeline_data, epochs=1, verbose=0).history
    for key in ("loss", "ce_loss", "icl_loss"):
        assert h_device[key][0] == pytest.approx(h_pipeline[key][0], rel=1e-5), key
    np.testing.assert_allclose(
        device_model.head_dense.kernel.numpy(),
        pipeline_model.head_dense.kernel.numpy(),
        rtol=1e-4,
        atol=1e-6,
    )
    assert int(device_model.dir_augmentation.examples_seen.numpy()) == 8
    # Something was augmented: some device-a clips got new device ids (>= 9).
    devices = np.concatenate([labels["device"] for _, labels in pipeline_data.as_numpy_iterator()])
    others = y["device"] != 0
    assert (devices >= 9).any() and (devices[others] == y["device"][others]).all()


def test_mixup_loss_mixes_both_labels():
    model = _model(mixup_alpha=0.3)
    model.compile(optimizer="sgd")
    x, y = _data(n=6)
    y_pred = model(x)
    lam = np.array([0.9, 0.6, 0.5, 1.0, 0.75, 0.55], "float32")
    perm = np.array([1, 0, 3, 2, 5, 4], "int32")
    targets = {"scene": y["scene"], "mixup_lambda": lam, "mixup_permutation": perm}
    loss = float(model.compute_loss(x=x, y=targets, y_pred=y_pred, training=True))
    want = np.mean(mixup_cross_entropy(y["scene"], y_pred["logits"], lam, perm))
    assert loss == pytest.approx(float(want), rel=1e-5)
    # One (eager) train step: mixup runs on the waveform and the mixed loss stays finite.
    logs = model.train_step((x, y["scene"]))
    assert np.isfinite(float(logs["loss"])) and int(model.mixup.batches_seen.numpy()) == 1


@pytest.mark.slow
def test_mixed_bfloat16_fit_with_icl_and_dir():
    model = _model(dtype="mixed_bfloat16", icl_weight=0.5, dir_augmentation=_dir_layer())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = _data(n=4)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["icl_loss"][0])
    assert history["icl_loss"][0] > 0
    assert model.dir_augmentation.irs.dtype == "float32"


def test_config_round_trip_and_keras_file(tmp_path):
    model = _model(
        icl_weight=0.5,
        icl_normalization="blocks",
        icl_num_devices=12,
        icl_rampup_steps=10,
        dir_augmentation=_dir_layer(),
        mixstyle_p=0.4,
        mixstyle_alpha=0.3,
        mixup_alpha=0.2,
        augment_seed=5,
    )
    config = model.get_config()
    revived = SceneClassifier.from_config(config)
    assert revived.get_config() == config
    assert config["version"] == 2
    assert config["augmenter"]["config"]["dir_augmentation"]["config"]["num_irs"] == 3
    assert config["auxiliary_loss"]["config"]["num_devices"] == 12
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = _data(n=4)
    model.train_step((x, y))  # advances the augmentation counters and the optimizer
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SceneClassifier)
    # (the config now also carries the build shapes of the augmentation layers)
    assert _json(loaded.get_config()) == _json(model.get_config())
    np.testing.assert_array_equal(
        loaded.dir_augmentation.irs.numpy(), model.dir_augmentation.irs.numpy()
    )
    assert int(loaded.dir_augmentation.examples_seen.numpy()) == 4
    assert int(loaded.freq_mix_style.batches_seen.numpy()) == 1
    np.testing.assert_array_equal(loaded(x)["logits"], model(x)["logits"])


def test_plain_weights_file_loads_into_an_augmented_model(tmp_path):
    # Converted PaSST weights are written from a model without augmentation state.
    plain = _model()
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    augmented = _model(
        dir_augmentation=_dir_layer(), mixstyle_p=0.4, mixup_alpha=0.3, icl_weight=0.5
    )
    irs = augmented.dir_augmentation.irs.numpy()
    augmented.load_weights(path)
    x, _ = _data(n=2)
    np.testing.assert_array_equal(augmented(x)["logits"], plain(x)["logits"])
    np.testing.assert_array_equal(augmented.dir_augmentation.irs.numpy(), irs)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: icl_task_kwargs(icl_weight=-1.0), r"icl_weight must be a number >= 0, got -1.0"),
        (lambda: icl_task_kwargs(icl_weight="0.5"), r"icl_weight must be a number >= 0"),
        (lambda: icl_task_kwargs(icl_beta=0.0), r"icl_beta must be > 0 .* got icl_beta=0.0"),
        (
            lambda: icl_task_kwargs(icl_alpha="0.2"),
            r"icl_alpha must be a finite number, got icl_alpha='0.2'",
        ),
        (lambda: icl_task_kwargs(icl_normalization="mean"), r"icl_normalization must be one of"),
        (
            lambda: icl_task_kwargs(icl_target="cls"),
            r"icl_target must be one of \('pooled', 'tokens', 'normalized'\), got 'cls'",
        ),
        (
            lambda: icl_task_kwargs(icl_rampup_steps=1.5),
            r"icl_rampup_steps must be an int >= 0, got 1.5",
        ),
        (lambda: Augmenter(mixup_alpha=-0.1), r"mixup_alpha must be a number >= 0, got -0.1"),
        (lambda: Augmenter(mixstyle_p=1.5), r"mixstyle_p must be a number >= 0 and <= 1, got 1.5"),
        (
            lambda: Augmenter(dir_augmentation="yes"),
            r"dir_augmentation must be a .*DirAugmentation",
        ),
        (
            lambda: SceneClassifier(_BACKBONE, auxiliary_loss="icl"),
            r"auxiliary_loss must be a keras_asc.losses.InverseContrastiveLoss or None, got str",
        ),
        (
            lambda: SceneClassifier(_BACKBONE, auxiliary_loss_weight=-0.5),
            r"auxiliary_loss_weight must be a number >= 0, got -0.5",
        ),
        (
            lambda: SceneClassifier(_BACKBONE, augmenter={"mixup_alpha": 0.3}),
            r"augmenter must be a keras_asc.augment.Augmenter or None, got dict",
        ),
        (
            lambda: SceneClassifier.from_preset("passt_tiny", icl_weight=0.5, mixup_alpha=0.2),
            r"from_preset: icl_weight, mixup_alpha are kwargs of config version 1; pass "
            r"auxiliary_loss=",
        ),
    ],
)
def test_bad_task_arguments(build, message):
    with pytest.raises(UserError, match=message):
        build()


_BACKBONE = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES).backbone


def _rewrite_keras_config(src, dst, edit):
    """Copies a .keras zip with ``edit(config)`` applied to the model's config.json."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                outer = json.loads(data)
                edit(outer["config"])
                data = json.dumps(outer).encode()
            zout.writestr(item, data)


def _to_version_1(config):
    """The flat layout keras_asc wrote before config version 2 (commit 5379c3a), by hand."""
    del config["version"]
    loss = config.pop("auxiliary_loss")["config"]
    augmenter = config.pop("augmenter")["config"]
    dir_config = augmenter["dir_augmentation"]["config"]
    dir_config["label_mode"] = dir_config.pop("device_labels")
    config.update(
        icl_weight=config.pop("auxiliary_loss_weight"),
        icl_rampup_steps=config.pop("auxiliary_loss_rampup_steps"),
        icl_alpha=loss["alpha"],
        icl_beta=loss["beta"],
        icl_normalization=loss["normalization"],
        icl_num_devices=loss["num_devices"],
        dir_augmentation=augmenter["dir_augmentation"],
        mixstyle_p=augmenter["mixstyle_p"],
        mixstyle_alpha=augmenter["mixstyle_alpha"],
        mixup_alpha=augmenter["mixup_alpha"],
        augment_seed=augmenter["seed"],
    )


def test_keras_file_of_config_version_1_loads(tmp_path):
    irs = np.random.default_rng(7).normal(size=(3, 40)).astype("float32") * 0.3
    layer = DirAugmentation(
        irs,
        ir_labels=[0, 1, 1],
        probability=1.0,
        seed=3,
        device_labels="per_microphone",
        name="dir_augmentation",
    )
    model = _model(
        icl_weight=0.5,
        icl_normalization="blocks",
        icl_num_devices=12,
        icl_rampup_steps=10,
        dir_augmentation=layer,
        mixstyle_p=0.4,
        mixup_alpha=0.2,
        augment_seed=5,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, y = _data(n=4)
    model.train_step((x, y))
    new, old = str(tmp_path / "v2.keras"), str(tmp_path / "v1.keras")
    model.save(new)
    _rewrite_keras_config(new, old, _to_version_1)
    with pytest.warns(UserWarning, match="upgraded a config of version 1"):
        loaded = keras.saving.load_model(old)
    assert _json(loaded.get_config()) == _json(model.get_config())
    # The augmentation state keeps its weight paths: IR bank, labels and counters load.
    np.testing.assert_array_equal(
        loaded.dir_augmentation.irs.numpy(), model.dir_augmentation.irs.numpy()
    )
    assert loaded.dir_augmentation.ir_labels.numpy().tolist() == [0, 1, 1]
    assert int(loaded.dir_augmentation.examples_seen.numpy()) == 4
    assert int(loaded.mixup.batches_seen.numpy()) == 1
    np.testing.assert_array_equal(loaded(x)["logits"], model(x)["logits"])


def test_keras_file_of_an_unknown_config_version_fails_clearly(tmp_path):
    model = _model()
    new, future = str(tmp_path / "v2.keras"), str(tmp_path / "v3.keras")
    model.save(new)
    _rewrite_keras_config(new, future, lambda config: config.update(version=3))
    with pytest.raises(
        UserError,
        match=r"saved with config version 3; this keras_asc reads "
        r"versions 1 and 2",
    ):
        keras.saving.load_model(future)


def test_icl_diagnostics_are_logged_with_the_loss_terms(icl_model):
    x, y = _data(n=8)
    logs = icl_model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    keys = {
        "icl_embedding_norm",
        "icl_cos_cls_dist",
        "icl_clip_share",
        "icl_distance_ratio",
        "icl_same_device_fraction",
        "icl_grad_share",
    }
    assert keys <= set(logs)
    tokens = icl_model(x)["class_tokens"].numpy()
    z = tokens.mean(axis=1)
    assert logs["icl_embedding_norm"] == pytest.approx(np.linalg.norm(z, axis=1).mean(), rel=1e-4)
    # devices [0, 0, 1, 3, 0, 2, 0, 0]: 5 clips of device 0 -> 20 of 56 ordered pairs.
    assert logs["icl_same_device_fraction"] == pytest.approx(20 / 56, rel=1e-6)
    assert 0.0 < logs["icl_grad_share"] < 1.0
