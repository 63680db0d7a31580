"""Mixed precision: finite bf16 forward passes, and the dtype policy kept on every path.

The bf16 tolerance: bfloat16 keeps 8 significant bits (unit roundoff 2**-9 ~ 0.2 %); through the
frontend-to-logits graph of passt_tiny the measured error is about 1 % of the largest float32
value (0.8-1.0 % for 0.25 s, 1 s and 10 s). The bound, 5 %, is five times that: it fails on an
inf/NaN or on a path that silently computes in the wrong precision, not on rounding.
"""

import os
import subprocess
import sys

import _corpus
import keras
import numpy as np
import pytest
import yaml

from asc_core.errors import UserError
from keras_asc.config.loader import load_config
from keras_asc.layers.patch_embedding import PatchEmbedding
from keras_asc.models.scene_classifier import SceneClassifier

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
BF16_TOLERANCE = 0.05
SECONDS = {"0.25s": 8000, "1s": 32000, "10s": 320000}


def relative_error(got, expected):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))


def policies(layer, prefix=""):
    """{"outer/inner/...": dtype policy name} of `layer` and every layer nested in it."""
    path = prefix + layer.name
    found = {path: layer.dtype_policy.name}
    for child in layer._flatten_layers(include_self=False, recursive=False):
        found.update(policies(child, path + "/"))
    return found


@pytest.fixture(scope="module")
def pair():
    """(float32 model, mixed_bfloat16 model with the same weights), passt_tiny, eval mode."""
    float32 = SceneClassifier.from_preset("passt_tiny", seed=0)
    mixed = SceneClassifier.from_preset("passt_tiny", dtype="mixed_bfloat16", seed=0)
    mixed.set_weights(float32.get_weights())
    return float32, mixed


@pytest.mark.parametrize("length", sorted(SECONDS))
def test_bf16_forward_is_finite_and_tracks_float32(pair, length):
    float32, mixed = pair
    # batch 4: the batch of the reported inf (4 x 0.25 s: one patch column)
    waveform = 0.3 * np.random.default_rng(0).standard_normal((4, SECONDS[length]))
    waveform = waveform.astype("float32")
    expected, got = float32(waveform), mixed(waveform)
    for key in ("logits", "embedding"):
        assert got[key].dtype == "float32"
        assert np.isfinite(np.asarray(got[key])).all(), key
        assert relative_error(got[key], expected[key]) < BF16_TOLERANCE, key


def test_patch_projection_computes_in_float32_under_mixed_precision():
    """The bf16 layer equals the float32 convolution rounded once to bf16 (no bf16 conv)."""
    mel = np.random.default_rng(1).uniform(-1.4, 2.0, (4, 128, 25)).astype("float32")
    float32 = PatchEmbedding(32)
    mixed = PatchEmbedding(32, dtype="mixed_bfloat16")
    pure = PatchEmbedding(32, dtype="bfloat16")
    expected = np.asarray(float32(mel))
    for layer in (mixed, pure):
        layer.build(mel.shape)
        layer.proj.set_weights(float32.proj.get_weights())
        out = layer(mel)
        assert out.dtype == "bfloat16" and out.shape == (4, 12, 1, 32)
        rounded = np.asarray(keras.ops.cast(keras.ops.cast(expected, "bfloat16"), "float32"))
        if layer is mixed:  # float32 kernel: exactly one rounding, at the end
            np.testing.assert_array_equal(np.asarray(keras.ops.cast(out, "float32")), rounded)
        else:  # bf16-stored kernel: the kernel is rounded too
            assert relative_error(keras.ops.cast(out, "float32"), expected) < BF16_TOLERANCE


_ONEDNN_SCRIPT = """
import sys
import numpy as np
from keras_asc.models.scene_classifier import SceneClassifier
model = SceneClassifier.from_preset("passt_tiny", dtype="mixed_bfloat16", seed=0)
model.load_weights(sys.argv[2])
waveform = (0.3 * np.random.default_rng(0).standard_normal((4, 8000))).astype("float32")
np.save(sys.argv[1], np.asarray(model(waveform)["logits"]))
"""


@pytest.mark.slow
def test_bf16_forward_agrees_with_onednn_on_and_off(pair, tmp_path):
    """Both TF CPU code paths (oneDNN kernels on Intel AMX / AVX512-BF16, and Eigen's)."""
    weights = str(tmp_path / "tiny.weights.h5")
    pair[1].save_weights(weights)
    outputs = {}
    for flag in ("0", "1"):
        out = str(tmp_path / f"onednn{flag}.npy")
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "PYTHONPATH": ROOT}
        subprocess.run(
            [sys.executable, "-c", _ONEDNN_SCRIPT, out, weights],
            env=env,
            check=True,
            capture_output=True,
        )
        outputs[flag] = np.load(out)
        assert np.isfinite(outputs[flag]).all(), f"TF_ENABLE_ONEDNN_OPTS={flag}"
    assert relative_error(outputs["1"], outputs["0"]) < BF16_TOLERANCE


def test_policy_survives_config_keras_file_and_clone(pair, tmp_path):
    _, mixed = pair
    trained = policies(mixed)
    assert trained["scene_classifier"] == "mixed_bfloat16"
    assert trained["scene_classifier/passt_backbone/transformer_layer_0"] == "mixed_bfloat16"
    assert trained["scene_classifier/head_dense"] == "mixed_bfloat16"
    waveform = np.zeros((1, 32000), "float32")
    path = str(tmp_path / "mixed.keras")
    mixed.save(path)
    expected = np.asarray(mixed(waveform)["logits"])
    for how, copy in (
        ("from_config", SceneClassifier.from_config(mixed.get_config())),
        ("load_model", keras.saving.load_model(path)),
        ("clone_model", keras.models.clone_model(mixed)),
    ):
        copy(waveform)
        found = policies(copy)
        if how == "clone_model":
            # Keras clones a Functional subclass with a custom get_config into a plain
            # Functional (keras/src/models/cloning.py), whose own policy is the default; every
            # layer in it, which is what computes, keeps its policy.
            assert found.pop("scene_classifier") == "float32"
            found["scene_classifier"] = "mixed_bfloat16"
        assert found == trained, how
        copy.set_weights(mixed.get_weights())
        np.testing.assert_array_equal(copy(waveform)["logits"], expected, err_msg=how)


# === A CLI run with --set model.dtype=mixed_bfloat16, then every consumer of its model.keras ===


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    from keras_asc.cli.train import main as train_main

    root = tmp_path_factory.mktemp("bf16run")
    data = str(root / "data")
    _corpus.write_learnable_set(data, recordings_per_scene=2, eval_per_scene=1, seconds=2)
    config = {
        "seed": 0,
        "data": {"path": data, "batch_size": 8},
        "model": {"preset": "passt_tiny"},
        "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
        "training": {"epochs": 1, "verbose": 0},
        "wandb": {"mode": "disabled"},
    }
    config_path = str(root / "bf16.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    run_dir = str(root / "run")
    train_main(
        ["--config", config_path, "--set", "model.dtype=mixed_bfloat16", "--run-dir", run_dir]
    )
    return run_dir, data


@pytest.fixture
def loaded_models(monkeypatch):
    """Every model that keras.saving.load_model returns during a test, in order."""
    seen = []
    original = keras.saving.load_model

    def spy(*args, **kwargs):
        model = original(*args, **kwargs)
        seen.append(model)
        return model

    monkeypatch.setattr(keras.saving, "load_model", spy)
    return seen


def _is_mixed(model):
    found = policies(model)
    return (
        found[model.name] == "mixed_bfloat16"
        and found[f"{model.name}/passt_backbone/transformer_layer_0"] == "mixed_bfloat16"
        and found[f"{model.name}/head_dense"] == "mixed_bfloat16"
    )


@pytest.mark.slow
def test_cli_bf16_run_is_used_as_trained_everywhere(bf16_run, loaded_models, tmp_path, capsys):
    import soundfile

    from keras_asc import hear
    from keras_asc.cli.evaluate import main as evaluate_main
    from keras_asc.cli.export import main as export_main
    from keras_asc.cli.predict import main as predict_main

    run_dir, _ = bf16_run
    assert yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))["model"]["dtype"] == (
        "mixed_bfloat16"
    )
    clip = str(tmp_path / "clip.wav")
    soundfile.write(clip, 0.1 * np.random.default_rng(0).standard_normal(32000), 32000)
    assert evaluate_main(["--run", run_dir, "--no-wandb", "--no-plots"]) == 0
    assert predict_main(["--model", run_dir, clip, "--json"]) == 0
    assert (
        export_main(
            ["--model", run_dir, "--format", "savedmodel", "--out", str(tmp_path / "saved")]
        )
        == 0
    )
    model = hear.load_model(run_dir)
    assert len(loaded_models) == 4  # evaluate, predict, export, hear
    assert all(_is_mixed(m) for m in loaded_models)
    assert np.isfinite(hear.get_scene_embeddings(np.zeros((1, 32000), "float32"), model)).all()
    capsys.readouterr()


def test_unknown_dtype_policy_is_one_clear_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"path": "x"}, "model": {"preset": "passt_tiny"}}))
    with pytest.raises(UserError, match=r"model\.dtype.*'mixed_bf16'.*mixed_bfloat16"):
        load_config(str(path), ["model.dtype=mixed_bf16"])
