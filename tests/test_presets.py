"""Presets as keras-hub has them: weights by default, `presets`, local preset directories,
and the one weights rule shared by `from_preset`, the training runner and `keras_asc.hear`."""

import json
import os

import numpy as np
import pytest

from asc_core.errors import UserError
from keras_asc import hear
from keras_asc.config import resolve_config
from keras_asc.models import preset_dir
from keras_asc.models import weights_cache
from keras_asc.models.passt_presets import passt_presets
from keras_asc.models.scene_classifier import SceneClassifier
from keras_asc.training.runner import build_model

NUM_CLASSES = 3


def _waveforms(batch=2, samples=16000, seed=0):
    return np.random.RandomState(seed).uniform(-0.5, 0.5, (batch, samples)).astype("float32")


@pytest.fixture(scope="module")
def saved_weights(tmp_path_factory):
    """A `passt_tiny` model (3 classes) and its weights file."""
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES, seed=1)
    path = str(tmp_path_factory.mktemp("weights") / "tiny.weights.h5")
    model.save_weights(path)
    return model, path


@pytest.fixture
def released_tiny(monkeypatch, saved_weights, tmp_path):
    """`passt_tiny` posing as an official checkpoint; "downloads" are recorded, not made (the
    "converted" weights of 3 classes are `saved_weights`, of other counts fresh ones)."""
    calls = []

    def fake_pretrained_weights(name, num_classes, cache_dir=None):
        calls.append((name, num_classes))
        if num_classes == NUM_CLASSES:
            return saved_weights[1]
        path = str(tmp_path / f"converted-{num_classes}.weights.h5")
        SceneClassifier.from_preset(name, False, num_classes=num_classes).save_weights(path)
        return path

    monkeypatch.setitem(
        passt_presets, "passt_tiny", {**passt_presets["passt_tiny"], "checkpoint": "v/t.pt"}
    )
    monkeypatch.setattr(weights_cache, "pretrained_weights", fake_pretrained_weights)
    return calls


def _json(config):
    return json.loads(json.dumps(config))


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_presets_lists_every_name_with_its_description():
    presets = SceneClassifier.presets
    assert list(presets) == list(passt_presets)
    assert presets["passt_s_swa_p16_128_ap476"] == (
        "PaSST-S, stride 10, SWA, AudioSet mAP .476 (the TAU22 starting point)"
    )
    assert len(presets) == 17 and all(isinstance(v, str) and v for v in presets.values())


def test_official_preset_loads_its_weights_by_default(released_tiny, saved_weights):
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES, seed=7)
    assert released_tiny == [("passt_tiny", NUM_CLASSES)]
    assert _same_weights(model, saved_weights[0])
    random = SceneClassifier.from_preset(
        "passt_tiny", load_weights=False, num_classes=NUM_CLASSES, seed=7
    )
    assert released_tiny == [("passt_tiny", NUM_CLASSES)]  # the opt-out fetches nothing
    assert not _same_weights(random, saved_weights[0])
    explicit = SceneClassifier.from_preset(
        "passt_tiny", num_classes=NUM_CLASSES, weights=saved_weights[1]
    )
    assert _same_weights(explicit, saved_weights[0]) and len(released_tiny) == 1


def test_small_sizes_have_no_weights(monkeypatch):
    monkeypatch.setattr(weights_cache, "pretrained_weights", pytest.fail)
    model = SceneClassifier.from_preset("passt_tiny", num_classes=NUM_CLASSES)
    assert model.num_classes == NUM_CLASSES


WEIGHT_ERRORS = {
    "opt-out and weights": (
        {"load_weights": False, "weights": "audioset"},
        r"^load_weights=False contradicts weights='audioset'; give one$",
    ),
    "missing file": (
        {"weights": "nowhere.weights.h5"},
        r"^weights must be None, 'audioset' or an existing \.weights\.h5 file, got "
        r"'nowhere\.weights\.h5' \(no such file; scripts/convert_passt_checkpoint\.py "
        r"writes one\)$",
    ),
    "not a path": (
        {"weights": 3},
        r"^weights must be None, 'audioset' or a \.weights\.h5 path, "
        r"got 3$",
    ),
    "small size with audioset": (
        {"weights": "audioset"},
        r"^preset 'passt_tiny' has no released weights \(it is a size for tests and demos\); "
        r"leave out weights='audioset'",
    ),
    "another class count": (
        {"num_classes": 5, "weights": "SAVED"},
        r"^weights .*tiny\.weights\.h5: does not fit preset passt_tiny with 5 classes: .*"
        r"variable\.shape=\(64, 5\), Received: value\.shape=\(64, 3\)\.$",
    ),
    "unknown name": (
        {"preset": "passt_xxl"},
        r"^unknown PaSST preset 'passt_xxl'; expected one of: passt_l_kd_p16_128_ap47, .*"
        r"passt_tiny, or a directory written by SceneClassifier\.save_to_preset$",
    ),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_ERRORS))
def test_bad_weights_one_clear_error(case, saved_weights, tmp_path, monkeypatch):
    kwargs, message = WEIGHT_ERRORS[case]
    kwargs = {k: saved_weights[1] if v == "SAVED" else v for k, v in kwargs.items()}
    preset = kwargs.pop("preset", "passt_tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(UserError, match=message):
        SceneClassifier.from_preset(preset, **kwargs)
    assert not os.path.exists(tmp_path / "cache" / "checkpoints")


# === Local preset directories ===


def test_save_to_preset_round_trip(saved_weights, tmp_path):
    model = saved_weights[0]
    directory = tmp_path / "my_preset"
    assert model.save_to_preset(str(directory)) == str(directory)
    assert sorted(os.listdir(directory)) == ["config.json", "metadata.json", "model.weights.h5"]
    assert sorted(os.listdir(tmp_path)) == ["my_preset"]  # no temporary folder left
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["format_version"] == preset_dir.PRESET_FORMAT_VERSION == 1
    assert metadata["class_name"] == "SceneClassifier"
    assert metadata["parameter_count"] == model.count_params()
    loaded = SceneClassifier.from_preset(str(directory))
    assert _json(loaded.get_config()) == _json(model.get_config())
    x = _waveforms()
    np.testing.assert_array_equal(loaded(x)["logits"], model(x)["logits"])
    np.testing.assert_array_equal(loaded(x)["embedding"], model(x)["embedding"])
    random = SceneClassifier.from_preset(directory, load_weights=False)
    assert _json(random.get_config()) == _json(model.get_config())
    assert not _same_weights(random, model)
    embedder = hear.load_model(str(directory), mode="embed_only")
    np.testing.assert_allclose(
        hear.get_scene_embeddings(x, embedder).numpy(), model(x)["embedding"], atol=1e-6
    )


def test_save_to_preset_replaces_a_preset_but_nothing_else(saved_weights, tmp_path):
    directory = tmp_path / "p"
    saved_weights[0].save_to_preset(directory)
    other = SceneClassifier.from_preset("passt_tiny", num_classes=2)
    other.save_to_preset(directory)  # replaces the previous preset
    assert SceneClassifier.from_preset(directory).num_classes == 2
    assert sorted(os.listdir(tmp_path)) == ["p"]
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("precious")
    with pytest.raises(
        UserError,
        match=r"preset directory .*notes: exists and is not a preset "
        r"directory \(no metadata\.json\); refusing to replace it",
    ):
        other.save_to_preset(foreign)
    assert os.listdir(foreign) == ["todo.txt"]
    assert sorted(os.listdir(tmp_path)) == ["notes", "p"]


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


PRESET_DIR_ERRORS = {
    "newer format": (
        lambda d: _edit_json(d / "metadata.json", format_version=2),
        r"format_version 2; this keras-asc reads versions up to 1",
    ),
    "another class": (
        lambda d: _edit_json(d / "metadata.json", class_name="PaSSTBackbone"),
        r"holds a PaSSTBackbone; expected a SceneClassifier",
    ),
    "no config": (
        lambda d: (d / "config.json").unlink(),
        r"no config\.json; expected a folder "
        r"written by SceneClassifier",
    ),
    "broken config": (
        lambda d: (d / "config.json").write_text("{"),
        r"config\.json: cannot be read",
    ),
    "overrides": (
        lambda d: None,
        r"a saved preset fixes its architecture and weights; got "
        r"\{'num_classes': 4\}",
    ),
}


@pytest.mark.parametrize("case", sorted(PRESET_DIR_ERRORS))
def test_bad_preset_directory_one_clear_error(case, saved_weights, tmp_path):
    damage, message = PRESET_DIR_ERRORS[case]
    directory = tmp_path / "p"
    saved_weights[0].save_to_preset(directory)
    damage(directory)
    before = sorted(os.listdir(directory))
    kwargs = {"num_classes": 4} if case == "overrides" else {}
    with pytest.raises(UserError, match=message):
        SceneClassifier.from_preset(str(directory), **kwargs)
    assert sorted(os.listdir(directory)) == before


# === The runner and hear resolve weights the same way ===


def _config(weights, preset="passt_tiny"):
    return resolve_config(
        {
            "seed": 0,
            "data": {"path": "unused", "batch_size": 2},
            "model": {"preset": preset, "weights": weights},
            "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
            "schedule": {"name": "plateau", "patience": 2, "factor": 0.5},
            "training": {"epochs": 1, "verbose": 0},
            "wandb": {"mode": "disabled"},
        }
    )


def test_runner_follows_model_weights_not_the_preset_default(released_tiny, tmp_path):
    # model.weights: null is a random start even for a preset with released weights.
    build_model(_config(None))
    assert released_tiny == []
    build_model(_config("audioset"))
    assert released_tiny == [("passt_tiny", 10)]
    reference = SceneClassifier.from_preset("passt_tiny", load_weights=False, seed=3)
    path = str(tmp_path / "ten.weights.h5")
    reference.save_weights(path)
    assert _same_weights(build_model(_config(path)), reference)
    with pytest.raises(
        UserError,
        match=r"^model\.weights must be None, 'audioset' or an "
        r"existing \.weights\.h5 file, got '.*missing\.weights\.h5' \(no such",
    ):
        build_model(_config(str(tmp_path / "missing.weights.h5")))


def test_hear_uses_the_same_rule(released_tiny, saved_weights):
    model = hear.load_model("passt_tiny", num_classes=NUM_CLASSES)  # weights="audioset"
    assert released_tiny == [("passt_tiny", NUM_CLASSES)]
    assert _same_weights(model.model, saved_weights[0])
    hear.load_model("passt_tiny", weights=None, num_classes=NUM_CLASSES)
    assert len(released_tiny) == 1
