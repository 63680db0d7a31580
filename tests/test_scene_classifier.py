"""SceneClassifier: forward contract, compile/fit on (waveform, scene_id), saving, presets."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_asc
from asc_core.errors import UserError
from keras_asc.models.scene_classifier import SceneClassifier

NUM_CLASSES = 3


def _waveforms(batch=4, samples=32000, seed=0):
    rng = np.random.RandomState(seed)
    return rng.uniform(-0.5, 0.5, (batch, samples)).astype("float32")


def _json(config):
    return json.loads(json.dumps(config))


@pytest.fixture(scope="module")
def model():
    return SceneClassifier.from_preset(
        "passt_tiny", num_classes=NUM_CLASSES, frequency_patchout=6, seed=0
    )


def test_forward_contract(model):
    x = _waveforms()
    out = model(x)
    assert set(out) == {"logits", "embedding"}
    assert tuple(out["logits"].shape) == (4, NUM_CLASSES)
    assert tuple(out["embedding"].shape) == (4, 64)
    # The parts compose as documented: embedding = backbone(frontend(x)), logits = head(emb).
    mel = model.frontend(x)
    assert tuple(mel.shape) == (4, 128, 100)
    embedding = model.backbone(mel)["embedding"]
    np.testing.assert_allclose(out["embedding"], embedding, rtol=1e-5, atol=1e-6)
    logits = model.head_dense(model.head_norm(embedding))
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-6)
    assert model.head_norm.epsilon == 1e-5
    # Inference is deterministic (no patchout, no SpecAugment, fixed time offset).
    np.testing.assert_array_equal(model(x)["logits"], out["logits"])


def test_compute_loss_uses_logits_with_sparse_ce(model):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = _waveforms()
    y = np.array([0, 1, 2, 1])
    y_pred = model(x)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    expected = keras.losses.sparse_categorical_crossentropy(y, y_pred["logits"], from_logits=True)
    np.testing.assert_allclose(float(loss), float(np.mean(expected)), rtol=1e-6)


def test_compile_defaults():
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES, seed=0)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 1e-5)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


def test_fit_on_waveform_scene_id_dataset(model):
    x = _waveforms(batch=4)
    y = np.array([0, 1, 2, 0])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    def eval_loss():
        return float(model.compute_loss(x=x, y=y, y_pred=model(x), training=False))

    before = eval_loss()
    history = model.fit(dataset, epochs=5, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert len(history.history["loss"]) == 5
    assert np.all(np.isfinite(history.history["loss"]))
    # Five Adam steps on one batch must lower its inference-mode loss.
    assert eval_loss() < before


def test_loss_and_metrics_dicts_keyed_by_output_name():
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        metrics={"logits": [keras.metrics.SparseCategoricalAccuracy(name="acc")]},
    )
    x = _waveforms(batch=4)
    y = np.array([0, 1, 2, 0])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history
    assert set(history) == {"loss", "acc"}
    # The dict's loss is the plain loss on the logits.
    logits = model.predict(x, verbose=0)["logits"]
    expected = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    loss = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, float(np.mean(expected)), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"loss": {"scene": "mse"}},
            r"loss keys \['scene'\] are not outputs; expected the output name 'logits'",
        ),
        (
            {"loss": {"logits": "sparse_categorical_crossentropy", "embedding": "mse"}},
            r"loss for \['embedding'\]: only 'logits' takes a compiled loss",
        ),
        (
            {"metrics": {"class_tokens": ["mae"]}},
            r"metrics for \['class_tokens'\]: only 'logits' takes a compiled metrics",
        ),
    ],
)
def test_bad_compile_dicts(kwargs, message):
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES, seed=0)
    with pytest.raises(UserError, match=message):
        model.compile(**kwargs)


def test_keras_save_load_identical(model, tmp_path):
    x = _waveforms(batch=2, seed=1)
    path = str(tmp_path / "classifier.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SceneClassifier)
    assert isinstance(loaded.backbone, keras_asc.PaSSTBackbone)
    assert isinstance(loaded.frontend, keras_asc.KaldiMelSpectrogram)
    expected = model.predict(x, verbose=0)
    got = loaded.predict(x, verbose=0)
    for key in ("logits", "embedding"):
        np.testing.assert_array_equal(got[key], expected[key])
    assert _json(loaded.get_config()) == _json(model.get_config())


def test_config_round_trip(model):
    config = model.get_config()
    assert config["num_classes"] == NUM_CLASSES
    assert config["backbone"]["config"]["frequency_patchout"] == 6
    clone = SceneClassifier.from_config(json.loads(json.dumps(config)))
    assert _json(clone.get_config()) == _json(config)
    assert clone.count_params() == model.count_params()


def test_from_preset_arguments():
    model = SceneClassifier.from_preset(
        "passt_tiny", frontend={"timem": 0, "hop_length": 160}, time_patchout=2, seed=3
    )
    assert model.num_classes == len(keras_asc.vocab.SCENES)
    assert model.backbone.time_patchout == 2 and model.backbone.seed == 3
    assert model.frontend.timem == 0 and model.frontend.hop_length == 160
    assert model.frontend.n_mels == 128
    with pytest.raises(UserError, match="unknown PaSST preset 'passt_xl'; expected one of: "):
        SceneClassifier.from_preset("passt_xl")


def test_official_preset_parameter_count():
    # 527-class PaSST-S of the released checkpoints: 86,153,758 parameters in PyTorch, of which
    # head_dist (527 * 768 + 527 = 405,263) is unused by forward and not built here.
    model = SceneClassifier.from_preset("passt_s_swa_p16_128_ap476", load_weights=False)
    assert model.num_classes == 527
    assert model.count_params() == 86_153_758 - 405_263


def test_mixed_bfloat16(model):
    x = _waveforms(batch=2)
    y = np.array([1, 2])
    mixed = SceneClassifier.from_preset(
        "passt_tiny", num_classes=NUM_CLASSES, frequency_patchout=6, dtype="mixed_bfloat16"
    )
    mixed.set_weights(model.get_weights())
    assert mixed.backbone.get_layer("transformer_layer_1").dtype_policy.name == "mixed_bfloat16"
    assert mixed.head_dense.dtype_policy.name == "mixed_bfloat16"
    assert mixed.head_dense.kernel.dtype == "float32"
    out = mixed(x)
    assert out["logits"].dtype == "float32"  # the outputs leave the bf16 graph in float32
    np.testing.assert_allclose(
        np.asarray(tf.cast(out["logits"], tf.float32)), model(x)["logits"], atol=0.1
    )
    with tf.GradientTape() as tape:
        logits = tf.cast(mixed(x, training=True)["logits"], tf.float32)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )
    grads = tape.gradient(loss, mixed.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)


def test_wrong_input_rank_and_length(model):
    with pytest.raises(ValueError, match=r"Expected shape \(None, None\)"):
        model(np.zeros((2, 32000, 3), "float32"))
    with pytest.raises(UserError, match="has 10 frames; expected at least 16"):
        model(np.zeros((2, 3000), "float32"))
