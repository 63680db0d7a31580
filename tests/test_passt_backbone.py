"""PaSSTBackbone: output contract, training-mode patchout shapes, presets, config, saving."""

import numpy as np
import pytest
from harness import run_serialization_test

from asc_core.errors import UserError
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_presets import passt_presets


def _mel(frames, batch=2, seed=0):
    return np.random.RandomState(seed).uniform(-1.4, 2.0, (batch, 128, frames)).astype("float32")


@pytest.fixture(scope="module")
def backbone():
    return PaSSTBackbone.from_preset(
        "passt_tiny", frequency_patchout=6, time_patchout=2, unstructured_patchout=5, seed=0
    )


@pytest.mark.parametrize("frames, patches", [(100, 12 * 9), (1000, 12 * 99)])
def test_inference_outputs(backbone, frames, patches):
    out = backbone(_mel(frames))
    assert set(out) == {"embedding", "tokens"}
    tokens = np.asarray(out["tokens"])
    assert tokens.shape == (2, 2 + patches, 64)
    # The embedding is the mean of the normed cls and dist outputs.
    np.testing.assert_allclose(out["embedding"], tokens[:, :2].mean(axis=1), rtol=1e-6, atol=1e-6)
    # Final LayerNorm (gamma 1, beta 0 at init): every token has zero mean, unit variance.
    np.testing.assert_allclose(tokens.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_array_equal(backbone(_mel(frames))["tokens"], tokens)


def test_training_patchout_sequence_lengths():
    # TAU22: s_patchout_f=6 on the 1-s grid of 12 x 9 patches -> 6 x 9 patches + cls + dist.
    tau22 = PaSSTBackbone.from_preset("passt_tiny", frequency_patchout=6, seed=1)
    assert tuple(tau22(_mel(100), training=True)["tokens"].shape) == (2, 2 + 6 * 9, 64)
    assert tuple(tau22(_mel(100))["tokens"].shape) == (2, 2 + 12 * 9, 64)


def test_training_all_patchouts_and_seeded_draws(backbone):
    mel = _mel(100)
    first = backbone(mel, training=True)
    # time 9 - 2 = 7 columns, 12 - 6 = 6 rows, then 5 of the 42 patches dropped.
    assert tuple(first["tokens"].shape) == (2, 2 + 6 * 7 - 5, 64)
    second = backbone(mel, training=True)
    assert not np.allclose(first["embedding"], second["embedding"])
    # A backbone with the same seed and weights repeats the same random draws.
    twin = PaSSTBackbone.from_config(backbone.get_config())
    twin.set_weights(backbone.get_weights())
    np.testing.assert_allclose(
        twin(mel, training=True)["embedding"], first["embedding"], rtol=1e-5, atol=1e-6
    )


def test_longer_input_is_cropped_with_a_warning():
    backbone = PaSSTBackbone.from_preset("passt_tiny")
    with pytest.warns(
        UserWarning, match="input has 109 time patches but the time embedding covers 99; cropping"
    ):
        out = backbone(_mel(1100, batch=1))
    assert tuple(out["tokens"].shape) == (1, 2 + 12 * 99, 64)
    cropped = backbone(_mel(1100, batch=1)[:, :, :1000])  # exactly 99 time patches
    np.testing.assert_allclose(out["embedding"], cropped["embedding"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, grid, time_positions",
    [
        ({"stride": 12}, (10, 83), 83),
        ({"stride": 14}, (9, 71), 71),
        ({"stride": 16}, (8, 62), 62),
        ({"max_frames": 2000}, (12, 99), 200),
        ({"max_frames": 3000}, (12, 99), 300),
    ],
)
def test_strides_and_time_encodings(overrides, grid, time_positions):
    backbone = PaSSTBackbone.from_preset("passt_tiny", **overrides)
    assert backbone.get_layer("position_embedding").time_embedding.shape == (
        1,
        1,
        time_positions,
        64,
    )
    assert tuple(backbone(_mel(1000, batch=1))["tokens"].shape) == (1, 2 + grid[0] * grid[1], 64)


def test_official_presets_geometry():
    expected = {
        "passt_s_swa_p16_128_ap476": (12, 10, 998),
        "passt_l_kd_p16_128_ap47": (7, 10, 998),
        "passt_s_p16_s16_128_ap468": (12, 16, 998),
        "passt_s_swa_p16_s14_128_ap471": (12, 14, 998),
        "passt_s_swa_p16_s12_128_ap473": (12, 12, 998),
        "passt_s_f128_20sec_p16_s10_ap474_swa": (12, 10, 2000),
        "passt_s_f128_30sec_p16_s10_ap473_swa": (12, 10, 3000),
        "passt_s_swa_f128_stfthop100_p16_s10_ap473": (12, 10, 3200),
    }
    for name, (depth, stride, max_frames) in expected.items():
        kwargs = passt_presets[name]["backbone"]
        assert (kwargs["num_layers"], kwargs["stride"], kwargs["max_frames"]) == (
            depth,
            stride,
            max_frames,
        ), name
        assert (kwargs["hidden_dim"], kwargs["num_heads"], kwargs["intermediate_dim"]) == (
            768,
            12,
            3072,
        )
        assert passt_presets[name]["num_classes"] == 527
    assert passt_presets["passt_s_swa_f128_stfthop100_p16_s10_ap473"]["frontend"] == {
        "hop_length": 100
    }


def test_config_round_trip_and_keras_saving(backbone, tmp_path):
    config = backbone.get_config()
    assert config["frequency_patchout"] == 6 and config["unstructured_patchout"] == 5
    loaded = run_serialization_test(backbone, _mel(100, seed=3), tmp_path)
    assert loaded.get_config()["time_patchout"] == 2


def test_errors():
    with pytest.raises(
        UserError,
        match=r"num_mels=100 with patch_size=16, stride=10 gives 9 patch "
        r"rows but 10 frequency positions",
    ):
        PaSSTBackbone.from_preset("passt_tiny", num_mels=100)
    with pytest.raises(UserError, match="unknown PaSST preset 'passt_s'; expected one of: "):
        PaSSTBackbone.from_preset("passt_s")
    backbone = PaSSTBackbone.from_preset("passt_tiny")
    with pytest.raises(
        ValueError,
        match=r"expected shape=\(None, 128, None\), found "
        r"shape=\(2, 64, 100\)",
    ):
        backbone(np.zeros((2, 64, 100), "float32"))
    with pytest.raises(UserError, match="has 10 frames; expected at least 16"):
        backbone(np.zeros((2, 128, 10), "float32"))
    with pytest.raises(UserError, match="patchout of 9 time columns leaves nothing of the 9"):
        PaSSTBackbone.from_preset("passt_tiny", time_patchout=9)(_mel(100), training=True)
