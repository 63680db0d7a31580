"""keras_asc.hear: the HEAR 2021 API (shapes, timestamps, window conventions, inputs, errors)."""

import numpy as np
import pytest
import tensorflow as tf

from asc_core.errors import UserError
from keras_asc import hear

RATE = 32000


@pytest.fixture(scope="module")
def hear_model(tmp_path_factory):
    from keras_asc.models.scene_classifier import SceneClassifier

    path = tmp_path_factory.mktemp("hear") / "tiny.keras"
    SceneClassifier.from_preset("passt_tiny", num_classes=10).save(str(path))
    return hear.load_model(str(path), batch_size=16)


def reference_embedding(model, waveforms):
    """``[logits, embedding]`` of the Keras model, computed directly."""
    outputs = model.model(np.asarray(waveforms, np.float32), training=False)
    return np.concatenate([outputs["logits"].numpy(), outputs["embedding"].numpy()], axis=1)


def audio(n_sounds, seconds, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n_sounds, int(seconds * RATE)))).astype(np.float32)


def test_model_attributes(hear_model):
    assert isinstance(hear_model, tf.Module)  # how the HEAR validator recognises TF models
    assert hear_model.sample_rate == 32000
    assert hear_model.scene_embedding_size == hear_model.timestamp_embedding_size == 10 + 64
    assert hear_model.max_window == 10 * RATE and hear_model.scene_hop == 80000
    assert isinstance(hear_model.scene_embedding_size, int)
    assert hear_model.timestamp_window == 5120 and hear_model.timestamp_hop == 1600


def test_timestamp_embeddings_shapes_times_and_values(hear_model):
    clips = audio(2, 1.03)  # 32960 samples
    embeddings, timestamps = hear.get_timestamp_embeddings(tf.constant(clips), hear_model)
    count = 1 + 32960 // 1600
    assert isinstance(embeddings, tf.Tensor) and embeddings.dtype == tf.float32
    assert embeddings.shape == (2, count, 74) and timestamps.shape == (2, count)
    np.testing.assert_array_equal(timestamps.numpy()[1], np.arange(count) * 50.0)

    # Window i is centred on sample 1600 i of the reflect-padded clip (hear21passt's unfold).
    padded = np.pad(clips, ((0, 0), (2560, 2560)), mode="reflect")
    for i in (0, 7, count - 1):
        window = padded[:, 1600 * i : 1600 * i + 5120]
        np.testing.assert_allclose(
            embeddings.numpy()[:, i], reference_embedding(hear_model, window), atol=1e-5
        )
    # NumPy input gives the same as the tensor input.
    again, _ = hear.get_timestamp_embeddings(clips, hear_model)
    np.testing.assert_allclose(again.numpy(), embeddings.numpy(), atol=1e-6)


def test_scene_embeddings_whole_clip_and_long_clip_windows(hear_model):
    short = audio(3, 2.5, seed=1)
    scene = hear.get_scene_embeddings(short, hear_model)
    assert scene.shape == (3, 74) and scene.dtype == tf.float32
    np.testing.assert_allclose(scene.numpy(), reference_embedding(hear_model, short), atol=1e-5)

    # Longer than 10 s: mean over 10-s windows every 2.5 s, centred (reflect padding 5 s).
    long = audio(1, 11.0, seed=2)
    scene = hear.get_scene_embeddings(long, hear_model).numpy()
    padded = np.pad(long, ((0, 0), (160000, 160000)), mode="reflect")
    starts = range(0, padded.shape[1] - 320000 + 1, 80000)
    assert len(starts) == 1 + long.shape[1] // 80000 == 5
    windows = np.concatenate([padded[:, s : s + 320000] for s in starts])
    np.testing.assert_allclose(
        scene[0], reference_embedding(hear_model, windows).mean(axis=0), atol=1e-5
    )


def test_very_short_clips_are_padded(hear_model):
    tiny = audio(2, 0.05)  # 1600 samples: too short to reflect 2560, zero-padded instead
    embeddings, timestamps = hear.get_timestamp_embeddings(tiny, hear_model)
    assert embeddings.shape == (2, 2, 74)
    np.testing.assert_array_equal(timestamps.numpy()[0], [0.0, 50.0])
    padded = np.pad(tiny, ((0, 0), (2560, 2560)))
    np.testing.assert_allclose(
        embeddings.numpy()[:, 1],
        reference_embedding(hear_model, padded[:, 1600:6720]),
        atol=1e-5,
    )
    scene = hear.get_scene_embeddings(tiny, hear_model).numpy()
    zero_padded = np.pad(tiny, ((0, 0), (0, 5120 - 1600)))
    np.testing.assert_allclose(scene, reference_embedding(hear_model, zero_padded), atol=1e-5)


def test_modes(hear_model):
    clips = audio(2, 1.0, seed=3)
    full = hear.get_scene_embeddings(clips, hear_model).numpy()
    embed = hear.HearModel(hear_model.model, mode="embed_only")
    assert embed.scene_embedding_size == 64
    assert hear.HearModel(hear_model.model, mode="logits").timestamp_embedding_size == 10
    # "all" is [logits, embedding]; "embed_only" is its embedding part.
    np.testing.assert_allclose(
        hear.get_scene_embeddings(clips, embed).numpy(), full[:, 10:], atol=1e-6
    )


def test_load_model_presets_and_errors(tmp_path):
    model = hear.load_model("passt_tiny", weights=None, mode="embed_only")
    assert model.scene_embedding_size == 64 and model.sample_rate == 32000
    with pytest.raises(UserError, match="preset 'passt_tiny' has no released weights"):
        hear.load_model("passt_tiny", cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="unknown PaSST preset 'no_such_model'"):
        hear.load_model("no_such_model")
    missing = tmp_path / "missing.keras"
    with pytest.raises(UserError, match=f"model_file_path {missing}: not found"):
        hear.load_model(str(missing))
    with pytest.raises(UserError, match=r"mode='mel'; expected one of: all, embed_only, logits"):
        hear.HearModel(model.model, mode="mel")
    with pytest.raises(UserError, match=r"audio has shape \(32000,\); expected \[n_sounds"):
        hear.get_scene_embeddings(np.zeros(32000, np.float32), model)
    with pytest.raises(UserError, match="audio has dtype int16; expected floats"):
        hear.get_scene_embeddings(np.zeros((1, 32000), np.int16), model)
    with pytest.raises(UserError, match="model is a dict; expected the object"):
        hear.get_timestamp_embeddings(np.zeros((1, 32000), np.float32), {})


@pytest.mark.oracle
def test_window_and_timestamp_conventions_match_hear21passt(hear_model):
    """hear21passt's own wrapper, with a probe network that returns window samples, cuts the
    same timestamp windows at the same timestamps (and the same 10-s scene windows)."""
    torch = pytest.importorskip("torch")  # the oracle (make install-oracle)
    from hear21passt.wrapper import PasstBasicWrapper

    class Identity(torch.nn.Module):
        sr = RATE

        def forward(self, x):
            return x

    class Probe(torch.nn.Module):
        def forward(self, x):  # [B, 1, window] -> (first 3 samples, last 3 samples)
            return x[:, 0, :3], x[:, 0, -3:]

    wrapper = PasstBasicWrapper(mel=Identity(), net=Probe())
    clips = audio(2, 1.07, seed=4)
    probes, times = wrapper.get_timestamp_embeddings(torch.from_numpy(clips))
    windows = hear_model.centred_windows(clips, 5120, 1600)
    ours = np.concatenate([windows[..., :3], windows[..., -3:]], axis=-1)
    np.testing.assert_array_equal(probes.numpy(), ours)
    _, timestamps = hear.get_timestamp_embeddings(clips, hear_model)
    np.testing.assert_allclose(timestamps.numpy(), times.numpy(), atol=1e-3)
    long = audio(1, 11.0, seed=5)
    probes, _ = wrapper.get_timestamp_embeddings(
        torch.from_numpy(long), window_size=wrapper.max_model_window, hop=wrapper.scene_hop
    )
    windows = hear_model.centred_windows(long, hear_model.max_window, hear_model.scene_hop)
    assert (wrapper.max_model_window, wrapper.scene_hop) == (
        hear_model.max_window,
        hear_model.scene_hop,
    )
    ours = np.concatenate([windows[..., :3], windows[..., -3:]], axis=-1)
    np.testing.assert_array_equal(probes.numpy(), ours)
