"""Config loading: schema validation, --set overrides, extends, and every shipped config."""

import glob
import json
import os

import numpy as np
import pytest
import yaml

from asc_core.errors import UserError
from keras_asc.config import load_config
from keras_asc.config import parse_override
from keras_asc.config import read_config_file
from keras_asc.config import resolve_config
from keras_asc.config import save_config
from keras_asc.config.loader import config_differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))

BASE = {
    "seed": 3,
    "data": {"path": "data/tau22", "batch_size": 16},
    "model": {"preset": "passt_tiny", "frequency_patchout": 6, "frontend": {"freqm": 48}},
    "optimizer": {"name": "adam", "learning_rate": 4.2e-4, "beta_1": 0.957, "beta_2": 0.9514},
    "schedule": {"name": "plateau", "patience": 10, "factor": 0.5},
    "training": {"epochs": 2},
}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def error_of(config, **kwargs):
    with pytest.raises(UserError) as info:
        resolve_config(config, source="cfg.yaml", **kwargs)
    return str(info.value)


def with_value(section, key, value):
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    if section == "dirs":
        config["dirs"] = {"sets": ["d"]}
    config.setdefault(section, {})[key] = value
    return config


def test_resolved_config_fills_defaults_and_keeps_given_values():
    config = resolve_config(BASE, source="cfg.yaml")
    assert list(config) == [
        "seed", "data", "dirs", "augment", "model", "loss", "optimizer", "schedule",
        "training", "wandb", "distribute",
    ]  # fmt: skip
    assert config["seed"] == 3
    assert config["data"]["batch_size"] == 16
    assert config["data"]["window_samples"] == 32000  # default filled in
    assert config["optimizer"] == {
        **config["optimizer"],
        "name": "adam",
        "learning_rate": 4.2e-4,
        "beta_1": 0.957,
        "beta_2": 0.9514,
    }
    assert config["optimizer"]["epsilon"] == 1e-7  # Keras' Adam default
    assert config["schedule"]["monitor"] == "val_loss"
    assert config["training"]["epochs"] == 2
    assert config["wandb"]["mode"] == "offline"
    assert config["distribute"]["strategy"] == "none"
    assert config["dirs"] is None
    # The preset supplies the model values: only the given keys are listed.
    assert config["model"] == {
        "preset": "passt_tiny",
        "frontend": {"freqm": 48},
        "frequency_patchout": 6,
    }


def test_unknown_key_names_full_path_and_suggestion():
    message = error_of(with_value("optimizer", "betta", 0.9))
    assert message.startswith("cfg.yaml: optimizer.betta: unknown key; expected one of ")
    assert "beta_1, beta_2" in message and message.endswith("?)")
    assert "(did you mean 'beta_" in message


def test_unknown_section_and_nested_key():
    assert error_of({**BASE, "trainig": {}}).startswith("cfg.yaml: trainig: unknown key")
    config = with_value("model", "frontend", {"freqmm": 4})
    assert error_of(config).startswith("cfg.yaml: model.frontend.freqmm: unknown key")


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("training", "epochs", "ten", "training.epochs: got 'ten'; expected an integer >= 1"),
        ("training", "epochs", 0, "training.epochs: got 0; expected an integer >= 1"),
        ("training", "epochs", 2.5, "training.epochs: got 2.5; expected an integer >= 1"),
        ("data", "batch_size", True, "data.batch_size: got True; expected an integer >= 1"),
        ("data", "device_balanced", "yes", "data.device_balanced: got 'yes'; expected true or"),
        ("data", "train_view", "5s", "data.train_view: got '5s'; expected one of '10s', '1s'"),
        ("optimizer", "beta_1", 0.0, "optimizer.beta_1: got 0.0; expected a number > 0 and < 1"),
        ("optimizer", "beta_2", -0.5, "optimizer.beta_2: got -0.5; expected a number > 0 and"),
        ("optimizer", "beta_1", 1.0, "optimizer.beta_1: got 1.0; expected a number > 0 and < 1"),
        ("schedule", "factor", 1.5, "schedule.factor: got 1.5; expected a number > 0 and < 1"),
        ("loss", "icl_beta", 0.0, "loss.icl_beta: got 0.0; expected a number > 0"),
        ("loss", "icl_beta", -1, "loss.icl_beta: got -1; expected a number > 0"),
        ("loss", "icl_weight", -0.5, "loss.icl_weight: got -0.5; expected a number >= 0"),
        ("loss", "icl_normalization", "x", "loss.icl_normalization: got 'x'; expected one of"),
        (
            "loss",
            "icl_target",
            "cls",
            "loss.icl_target: got 'cls'; expected one of 'pooled', 'tokens', 'normalized'",
        ),
        ("loss", "icl_alpha", "0.2", "loss.icl_alpha: got '0.2'; expected a number"),
        ("loss", "icl_beta", [1], "loss.icl_beta: got [1]; expected a number > 0"),
        (
            "dirs",
            "device_labels",
            "per_device",
            "dirs.device_labels: got 'per_device'; expected "
            "one of 'per_ir', 'per_microphone', 'shared'",
        ),
        ("augment", "mixstyle_p", 1.5, "augment.mixstyle_p: got 1.5; expected a number >= 0 and"),
        ("dirs", "probability", 2, "dirs.probability: got 2; expected a number >= 0 and <= 1"),
        ("wandb", "mode", "cloud", "wandb.mode: got 'cloud'; expected one of 'offline'"),
        ("model", "preset", "passt_huge", "model.preset: got 'passt_huge'; expected one of the"),
        ("distribute", "strategy", "tpu", "distribute.strategy: got 'tpu'; expected one of"),
    ],
)
def test_wrong_types_and_values(section, key, value, expected):
    assert error_of(with_value(section, key, value)).startswith("cfg.yaml: " + expected)


def test_number_without_dot_gets_a_yaml_hint(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {path: d}\nmodel: {preset: passt_tiny}\noptimizer: {learning_rate: 1e-5}\n"
    )
    with pytest.raises(UserError) as info:
        load_config(str(path))
    assert str(info.value) == (
        f"{path}: optimizer.learning_rate: got '1e-5'; expected a number > 0 "
        "(YAML reads a number without a dot as a string: write e.g. 1.0e-5)"
    )


def test_missing_required_keys():
    assert error_of({"model": {"preset": "passt_tiny"}}) == (
        "cfg.yaml: data.path: missing; expected a string"
    )
    assert error_of({"data": {"path": "d"}}) == (
        "cfg.yaml: model.preset: missing; expected a preset name (keras_asc.models.passt_presets)"
    )


def test_dispatch_section_name():
    message = error_of(with_value("optimizer", "name", "sgd"))
    assert message == "cfg.yaml: optimizer.name: got 'sgd'; expected one of 'adam', 'adamw'"
    # AdamW accepts weight_decay; a cpjku schedule does not accept plateau's patience.
    config = resolve_config(with_value("optimizer", "name", "adamw"))
    assert config["optimizer"]["weight_decay"] == 0.004  # Keras' AdamW default
    bad = {**BASE, "schedule": {"name": "cpjku", "patience": 3}}
    assert error_of(bad).startswith("cfg.yaml: schedule.patience: unknown key")


def test_overrides_are_yaml_typed(tmp_path):
    path = write(tmp_path, "c.yaml", BASE)
    config = load_config(
        path,
        [
            "training.epochs=7",
            "optimizer.learning_rate=1.0e-4",
            "model.weights=null",
            "wandb.tags=[a, b]",
            "data.device_balanced=true",
            "dirs.sets=[x/multi]",
        ],
    )
    assert config["training"]["epochs"] == 7
    assert config["optimizer"]["learning_rate"] == 1e-4
    assert config["model"]["weights"] is None
    assert config["wandb"]["tags"] == ["a", "b"]
    assert config["data"]["device_balanced"] is True
    assert config["dirs"]["sets"] == ["x/multi"]


def test_override_that_changes_the_schedule_starts_it_afresh(tmp_path):
    path = write(tmp_path, "c.yaml", BASE)
    config = load_config(path, ["schedule.name=cpjku"])
    assert config["schedule"] == {
        "name": "cpjku",
        "warmup_epochs": 3,
        "rampdown_start": 3,
        "rampdown_epochs": 10,
        "last_value": 0.01,
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("optimizer", "--set optimizer: expected KEY.PATH=VALUE"),
        ("=3", "--set =3: expected KEY.PATH=VALUE"),
        ("a..b=3", "--set a..b=3: expected KEY.PATH=VALUE"),
        ("training.epochs=[1", "--set training.epochs=[1: the value is not valid YAML"),
    ],
)
def test_bad_override_syntax(text, expected):
    with pytest.raises(UserError) as info:
        parse_override(text)
    assert str(info.value).startswith(expected)


def test_bad_override_values_name_the_override(tmp_path):
    path = write(tmp_path, "c.yaml", BASE)
    with pytest.raises(UserError) as info:
        load_config(path, ["optimizer.betta=0.9"])
    assert str(info.value).startswith("--set optimizer.betta=0.9: optimizer.betta: unknown key")
    with pytest.raises(UserError) as info:
        load_config(path, ["training.epochs=-1"])
    assert str(info.value) == (
        "--set training.epochs=-1: training.epochs: got -1; expected an integer >= 1"
    )
    with pytest.raises(UserError) as info:
        load_config(path, ["seed.x=1"])
    assert str(info.value) == "--set seed.x=1: seed is 3, not a section; cannot set a key in it"


def test_extends_merges_and_detects_cycles(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        {"extends": "base.yaml", "training": {"epochs": 9}, "model": {"frontend": {"timem": 24}}},
    )
    config = load_config(child)
    assert config["training"]["epochs"] == 9
    assert config["data"]["batch_size"] == 16  # from the base
    assert config["model"]["frontend"] == {"freqm": 48, "timem": 24}  # merged key by key
    write(tmp_path, "a.yaml", {"extends": "b.yaml"})
    write(tmp_path, "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(UserError) as info:
        load_config(str(tmp_path / "a.yaml"))
    assert "extends forms a cycle" in str(info.value)


def test_saved_config_loads_back_identical(tmp_path):
    config = load_config(write(tmp_path, "c.yaml", BASE), ["dirs.sets=[m]", "dirs.probability=0.4"])
    saved = str(tmp_path / "resolved.yaml")
    save_config(config, saved)
    assert load_config(saved) == config
    assert config_differences(config, load_config(saved)) == []
    other = load_config(saved, ["training.epochs=5", "optimizer.beta_1=0.9"])
    assert config_differences(config, other) == ["optimizer.beta_1", "training.epochs"]
    assert config_differences(config, other, ignore=("training.epochs",)) == ["optimizer.beta_1"]


def test_not_a_mapping_and_bad_yaml(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="expected a mapping of sections, got list"):
        load_config(str(path))
    path = tmp_path / "broken.yaml"
    path.write_text("data: {path: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(str(path))
    with pytest.raises(
        UserError,
        match=r"missing\.yaml: neither a file nor a shipped config; "
        r"shipped configs: .*\bicl\b.*\bmulti_icl\b",
    ):
        load_config(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("name", ["icl", "icl.yaml", "configs/icl.yaml", "grid/lambda_0.5"])
def test_shipped_configs_load_by_name_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    config = load_config(name, ["data.path=x"])
    expected = load_config(
        os.path.join(
            ROOT, "configs", name.removeprefix("configs/").removesuffix(".yaml") + ".yaml"
        ),
        ["data.path=x"],
    )
    assert config == expected and config["loss"]["icl_weight"] > 0


def test_configs_directory_is_not_empty():
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in CONFIGS}
    for name in ["passt.yaml", "vintage_dirs.yaml", "multi_dirs.yaml", "icl.yaml",
                 "multi_icl.yaml", "cpjku.yaml", "demo.yaml"]:  # fmt: skip
        assert name in names


# Sections that only the DIR generator's configs (configs/irgen/, scripts/train_irgen.py) have.
IRGEN_SECTIONS = {"holdout", "encoding", "generator", "discriminator", "gan"}


@pytest.fixture(scope="module")
def tiny_dir_set(tmp_path_factory):
    """A 4-IR DIR folder at 32 kHz that stands in for every config's ``dirs.sets``."""
    from _corpus import write_dir_set

    folder = str(tmp_path_factory.mktemp("dirs") / "dirs")
    write_dir_set(folder)
    return folder


@pytest.fixture
def cheap_truncated_normal(monkeypatch):
    """Zeros for TruncatedNormal initializers: drawing 85 M truncated-normal values takes 5 of
    the 7 s a PaSST-S build needs here, and their values are not what these tests check (the
    preset tests cover the initialization); every layer and weight shape is still built."""
    import keras

    monkeypatch.setattr(
        keras.initializers.TruncatedNormal,
        "__call__",
        lambda self, shape, dtype=None: keras.ops.zeros(shape, dtype=dtype),
    )


def _build_irgen_networks(path):
    from keras_asc.irgen.condition_encoding import CONDITION_DIM
    from keras_asc.irgen.config import load_irgen_config
    from keras_asc.irgen.train import build_networks

    config = load_irgen_config(path)
    generator_cfg = config["generator"]
    # The generator upsamples its initial length by every stride: the IR length it fits.
    length = generator_cfg["initial_length"] * int(np.prod(generator_cfg["strides"]))
    generator, discriminator, gan = build_networks(config, output_length=length)
    condition = np.random.default_rng(0).uniform(0, 1, (2, CONDITION_DIM)).astype("float32")
    fake = generator(condition)
    assert tuple(fake.shape) == (2, length)
    score = discriminator((fake, condition))
    assert tuple(score.shape) == (2,)
    assert np.all((np.asarray(score) >= 0) & (np.asarray(score) <= 1))
    assert gan.generator is generator and gan.discriminator is discriminator
    channels = [layer.filters for layer in generator.layers if hasattr(layer, "filters")]
    assert generator_cfg["channels"][-1] in channels


# model section (JSON) -> trainable parameter count, of the architectures already run forward.
_FORWARD_DONE = {}


def _trainable_count(model):
    # Trainable only: a DIR bank is a (non-trainable) weight whose size depends on the IR set.
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _build_scene_classifier(path, dir_set):
    from keras_asc.models.passt_presets import passt_presets
    from keras_asc.training.runner import build_model

    # The runner's build, with pretrained weights off and the DIR sets replaced by a tiny one.
    config = load_config(path, ["model.weights=null"])
    if config["dirs"] is not None:
        config = load_config(path, ["model.weights=null", f"dirs.sets=[{dir_set}]"])
    model = build_model(config)
    architecture = json.dumps({k: v for k, v in config["model"].items() if k != "weights"})
    if architecture in _FORWARD_DONE:
        # The same network as a config already run (the grid's ICL settings): same parameters.
        assert _trainable_count(model) == _FORWARD_DONE[architecture]
    else:
        waveform = 0.1 * np.random.default_rng(0).standard_normal((1, 32000)).astype("float32")
        outputs = model(waveform)  # 1 s: the training window of every config
        backbone = passt_presets[config["model"]["preset"]]["backbone"]
        assert tuple(outputs["logits"].shape) == (1, 10)
        assert tuple(outputs["embedding"].shape) == (1, backbone["hidden_dim"])
        assert np.isfinite(np.asarray(outputs["logits"])).all()
        _FORWARD_DONE[architecture] = _trainable_count(model)
    # The sections landed in the model: ICL, DIR augmentation, Freq-MixStyle, frontend masks.
    loss = config["loss"]
    assert model.auxiliary_loss_weight == loss.get("icl_weight", 0.0)
    assert (model.auxiliary_loss is None) == (loss.get("icl_weight", 0.0) == 0)
    if "icl_alpha" in loss and model.auxiliary_loss is not None:
        assert model.auxiliary_loss.alpha == loss["icl_alpha"]
    assert (model.dir_augmentation is None) == (config["dirs"] is None)
    if config["dirs"] is not None:
        assert model.dir_augmentation.probability == config["dirs"]["probability"]
    assert (model.freq_mix_style is None) == (not config["augment"].get("mixstyle_p"))
    frontend = config["model"].get("frontend") or {}
    for key in ("freqm", "timem"):
        if key in frontend:
            assert model.frontend.get_config()[key] == frontend[key]
    return model


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_shipped_config_becomes_a_model(path, tiny_dir_set, cheap_truncated_normal):
    """Every shipped config builds the way its runner builds it (pretrained weights off; the DIR
    sets a tiny stand-in) and runs one forward pass: 1 s of audio through the scene classifier
    (PaSST-S-sized configs with their real architecture, initialized to zeros instead of a
    truncated normal for speed; a config whose model section repeats one already run, as the
    grid's do, is built and its parameter count compared instead), or a condition through the DIR
    generator and discriminator."""
    if set(read_config_file(path)) & IRGEN_SECTIONS:
        _build_irgen_networks(path)
    else:
        _build_scene_classifier(path, tiny_dir_set)
