"""Preset weights: official .pt served over HTTP, cached, converted, verified, repaired."""

import hashlib

import _http_server
import numpy as np
import pytest
import torch
import torch_oracle

from asc_core import download
from asc_core.errors import UserError
from keras_asc.models import weights_cache
from keras_asc.models.passt_presets import passt_presets
from keras_asc.models.scene_classifier import SceneClassifier

RELEASE = "v-test/passt-tiny.pt"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """Bytes of an official-format PaSST state dict at the `passt_tiny` geometry."""
    torch.manual_seed(0)
    net = torch_oracle.load_passt_module().PaSST(
        img_size=(128, 998),
        stride=10,
        distilled=True,
        num_classes=527,
        embed_dim=64,
        depth=2,
        num_heads=4,
    )
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(net.state_dict(), path)
    return path.read_bytes(), {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.fixture
def served(tiny_checkpoint, monkeypatch, tmp_path):
    """A mirror serving the tiny checkpoint as the release file of preset `passt_tiny`."""
    monkeypatch.setattr(weights_cache, "fetch_resumable", download.fetch_resumable)
    srv = _http_server.serve()
    srv.files[RELEASE] = tiny_checkpoint[0]
    monkeypatch.setitem(
        passt_presets,
        "passt_tiny",
        {**passt_presets["passt_tiny"], "checkpoint": RELEASE, "num_classes": 527},
    )
    monkeypatch.setenv(weights_cache.MIRROR_ENV, srv.base)
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    yield srv
    _http_server.stop(srv)


def _requests(srv):
    return [name for name, _ in srv.log]


def test_download_convert_load_and_reuse(served, tiny_checkpoint, tmp_path):
    state = tiny_checkpoint[1]
    path = weights_cache.pretrained_weights("passt_tiny", num_classes=10)
    assert path == tmp_path / "cache" / "converted" / "passt_tiny-10classes.weights.h5"
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    model.load_weights(path)
    # head.0 (the head LayerNorm) is kept for a new class count; blocks come over by name.
    np.testing.assert_array_equal(model.head_norm.gamma.numpy(), state["head.0.weight"])
    manifest = weights_cache.WeightsCache().manifest
    assert set(manifest) == {
        "checkpoints/passt-tiny.pt",
        "converted/passt_tiny-10classes.weights.h5",
    }
    assert manifest["checkpoints/passt-tiny.pt"]["size"] == len(tiny_checkpoint[0])
    # A second use verifies the cache and fetches nothing.
    assert weights_cache.pretrained_weights("passt_tiny", num_classes=10) == path
    assert _requests(served) == [RELEASE]


def test_corrupted_entries_are_detected_and_replaced(served, tiny_checkpoint, tmp_path):
    path = weights_cache.pretrained_weights("passt_tiny", num_classes=10)
    good = path.read_bytes()
    path.write_bytes(good[:-10] + b"0123456789")  # same size, other content
    with pytest.warns(
        UserWarning, match=r"passt_tiny-10classes\.weights\.h5 is corrupted \(sha256"
    ):
        again = weights_cache.pretrained_weights("passt_tiny", num_classes=10)
    # Reconverted from the (still valid) checkpoint: verified again, same converted weights.
    # The manifest describes the new file (a later use would accept it without a warning).
    record = weights_cache.WeightsCache().manifest["converted/passt_tiny-10classes.weights.h5"]
    assert record["size"] == again.stat().st_size
    assert record["sha256"] == hashlib.sha256(again.read_bytes()).hexdigest()
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    model.load_weights(again)
    np.testing.assert_array_equal(
        model.head_norm.gamma.numpy(), tiny_checkpoint[1]["head.0.weight"]
    )
    assert _requests(served) == [RELEASE]
    checkpoint = tmp_path / "cache" / "checkpoints" / "passt-tiny.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match=r"passt-tiny\.pt is corrupted \(size 100 != recorded"):
        weights_cache.pretrained_weights("passt_tiny", num_classes=10)
    assert _requests(served) == [RELEASE, RELEASE]  # fetched again


def test_from_preset_with_audioset_weights(served, tiny_checkpoint):
    model = SceneClassifier.from_preset("passt_tiny", num_classes=527, weights="audioset")
    np.testing.assert_array_equal(
        model.head_dense.kernel.numpy(), tiny_checkpoint[1]["head.1.weight"].T
    )
    # A preset with released weights loads them by default (keras-hub's load_weights=True).
    default = SceneClassifier.from_preset("passt_tiny")
    assert default.num_classes == 527
    np.testing.assert_array_equal(
        default.backbone.get_layer("transformer_layer_1").mlp_fc2.kernel.numpy(),
        tiny_checkpoint[1]["blocks.1.mlp.fc2.weight"].T,
    )
    assert _requests(served) == [RELEASE]


def test_room_and_write_access_are_checked_before_downloading(served, monkeypatch, tmp_path):
    class Usage:
        free = 2 * 2**20

    monkeypatch.setattr(weights_cache.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(
        UserError,
        match=r"^weights cache .*cache: 2\.0 MiB free, but the "
        r"passt_tiny checkpoint and its converted weights need about 3\.\d MiB; "
        r"free some space or set KERAS_ASC_CACHE to a folder on another disk$",
    ):
        weights_cache.pretrained_weights("passt_tiny", num_classes=10)
    assert _requests(served) == []
    assert not (tmp_path / "cache" / "checkpoints").exists()
    monkeypatch.undo()
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(UserError, match=r"^weights cache .*file/cache: cannot create it"):
        weights_cache.pretrained_weights("passt_tiny", 10, cache_dir=str(blocked / "cache"))


def test_checkpoint_size_estimate_counts_every_parameter(served, tiny_checkpoint):
    parameters = sum(value.size for value in tiny_checkpoint[1].values())
    assert weights_cache.checkpoint_bytes("passt_tiny") == 4 * parameters + 2**20
    # PaSST-S with its AudioSet and distillation heads: 86,153,758 parameters in PyTorch.
    assert weights_cache.checkpoint_bytes("passt_s_swa_p16_128_ap476") == 4 * 86_153_758 + 2**20


def test_presets_without_release_and_missing_server(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_cache, "fetch_resumable", download.fetch_resumable)
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path))
    with pytest.raises(UserError, match="preset 'passt_small' has no released weights"):
        weights_cache.pretrained_weights("passt_small", num_classes=10)
    with pytest.raises(UserError, match="weights must be None, 'audioset' or"):
        SceneClassifier.from_preset("passt_tiny", weights="imagenet")
    srv = _http_server.serve()
    monkeypatch.setenv(weights_cache.MIRROR_ENV, srv.base)
    with pytest.raises(
        UserError,
        match=r"download of passt-s-f128-p16-s10-ap\.476-swa\.pt "
        r"failed: HTTP 404",
    ):
        weights_cache.pretrained_weights("passt_s_swa_p16_128_ap476", num_classes=10)
    _http_server.stop(srv)
