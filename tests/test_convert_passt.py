"""PyTorch PaSST state dict → Keras conversion: key table, checks, safe reading, CLI.

torch is the oracle here (it writes the checkpoints); the reader itself needs no torch.
"""

import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

from asc_core.errors import UserError
from keras_asc.cli.convert import main
from keras_asc.models import passt_checkpoint
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_checkpoint import checkpoint_geometry
from keras_asc.models.passt_checkpoint import load_passt_state_dict
from keras_asc.models.passt_checkpoint import passt_weight_table
from keras_asc.models.scene_classifier import SceneClassifier
from keras_asc.models.torch_checkpoint import read_torch_state_dict

sys.path.insert(0, os.path.dirname(__file__))
import torch_oracle  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 4}


def torch_passt(num_classes=527, stride=10, tdim=998, seed=0, **geometry):
    """Official hear21passt PaSST (random weights, LayerNorms randomised too), eval mode."""
    geometry = {**TINY, **geometry}
    torch.manual_seed(seed)
    net = torch_oracle.load_passt_module().PaSST(
        img_size=(128, tdim), stride=stride, distilled=True, num_classes=num_classes, **geometry
    )
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))
    return net.eval()


def numpy_state(net):
    return {key: value.numpy().copy() for key, value in net.state_dict().items()}


@pytest.fixture(scope="module")
def tiny_state():
    return numpy_state(torch_passt())


@pytest.fixture(scope="module")
def tiny_model():
    return SceneClassifier.from_preset("passt_tiny", num_classes=527)


def test_table_covers_every_official_key_exactly(tiny_state):
    table = passt_weight_table(2)
    keys = [key for key, _, _ in table]
    assert len(keys) == len(set(keys))
    assert set(keys) | {"head_dist.weight", "head_dist.bias"} == set(tiny_state)
    # Keras paths are distinct, so no weight is written twice.
    assert len({path for _, path, _ in table}) == len(table)
    assert checkpoint_geometry(tiny_state) == {
        "hidden_dim": 64,
        "num_layers": 2,
        "intermediate_dim": 256,
        "patch_size": (16, 16),
        "frequency_positions": 12,
        "time_positions": 99,
        "num_classes": 527,
    }


def test_load_assigns_with_layout_changes(tiny_state, tiny_model):
    report = load_passt_state_dict(tiny_model, tiny_state)
    assert report == {
        "loaded": 37,
        "dropped": ["head_dist.weight", "head_dist.bias"],
        "new_classifier": False,
    }
    backbone = tiny_model.backbone
    block = backbone.get_layer("transformer_layer_1")
    np.testing.assert_array_equal(
        block.attention.qkv.kernel, tiny_state["blocks.1.attn.qkv.weight"].T
    )
    np.testing.assert_array_equal(
        backbone.get_layer("patch_embedding").proj.kernel,
        tiny_state["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
    )
    position = backbone.get_layer("position_embedding")
    np.testing.assert_array_equal(
        position.time_embedding[0, 0, :, 5], tiny_state["time_new_pos_embed"][0, 5, 0, :]
    )
    np.testing.assert_array_equal(
        position.frequency_embedding[0, :, 0, 7], tiny_state["freq_new_pos_embed"][0, 7, :, 0]
    )
    np.testing.assert_array_equal(tiny_model.head_norm.gamma, tiny_state["head.0.weight"])
    np.testing.assert_array_equal(tiny_model.head_dense.bias, tiny_state["head.1.bias"])


def test_top_level_model_key_is_accepted(tiny_state, tiny_model):
    report = load_passt_state_dict(tiny_model, {"model": tiny_state, "epoch": 3})
    assert report["loaded"] == 37


def test_other_class_count_starts_a_new_classifier(tiny_state):
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    kernel_before = np.array(model.head_dense.kernel)
    report = load_passt_state_dict(model, tiny_state)
    assert report["new_classifier"] is True
    assert report["dropped"] == [
        "head_dist.weight",
        "head_dist.bias",
        "head.1.weight",
        "head.1.bias",
    ]
    np.testing.assert_array_equal(model.head_dense.kernel, kernel_before)
    np.testing.assert_array_equal(model.head_norm.beta, tiny_state["head.0.bias"])


def test_backbone_only_drops_the_head(tiny_state):
    backbone = PaSSTBackbone.from_preset("passt_tiny")
    report = load_passt_state_dict(backbone, tiny_state)
    assert report["loaded"] == 33
    assert set(report["dropped"]) == {
        "head_dist.weight",
        "head_dist.bias",
        "head.0.weight",
        "head.0.bias",
        "head.1.weight",
        "head.1.bias",
    }


@pytest.mark.parametrize(
    "geometry, message",
    [
        ({"depth": 3}, "transformer blocks: 3 in the checkpoint, 2 in the model"),
        ({"embed_dim": 32, "num_heads": 4}, "embedding width: 32 in the checkpoint, 64"),
        (
            {"stride": 16},
            "frequency positions (128 mels: 12 at stride 10, 10 at 12, 9 at 14, "
            "8 at 16): 8 in the checkpoint, 12 in the model",
        ),
        (
            {"tdim": 2000},
            "time positions (max_frames // stride: 99 for 10 s at stride 10): "
            "200 in the checkpoint, 99 in the model",
        ),
        ({"mlp_ratio": 2.0}, "MLP width: 128 in the checkpoint, 256 in the model"),
    ],
)
def test_other_architecture_is_one_clear_error(geometry, message, tiny_model):
    state = numpy_state(torch_passt(**geometry))
    with pytest.raises(UserError) as err:
        load_passt_state_dict(tiny_model, state, source="ckpt.pt")
    text = str(err.value)
    assert text.startswith("ckpt.pt is a PaSST of another architecture than the model")
    assert message in text


def test_full_size_checkpoint_names_its_presets(tiny_model):
    geometry = {
        "hidden_dim": 768,
        "num_layers": 12,
        "intermediate_dim": 3072,
        "patch_size": (16, 16),
        "frequency_positions": 9,
        "time_positions": 71,
    }
    assert passt_checkpoint.matching_presets(geometry) == [
        "passt_s_swa_p16_s14_128_ap471",
        "passt_s_p16_s14_128_ap469",
    ]


def test_missing_unused_and_mismatched_keys(tiny_state, tiny_model):
    state = dict(tiny_state)
    del state["blocks.1.mlp.fc2.bias"]
    state["blocks.0.attn.relative_bias"] = np.zeros(3, "float32")
    with pytest.raises(
        UserError,
        match=r"^ckpt does not fit the PaSST key table: missing keys: "
        r"blocks\.1\.mlp\.fc2\.bias; unused keys: blocks\.0\.attn\.relative_bias$",
    ):
        load_passt_state_dict(tiny_model, state, source="ckpt")
    state = dict(tiny_state)
    state["blocks.0.attn.qkv.bias"] = state["blocks.0.attn.qkv.bias"][:150]
    with pytest.raises(
        UserError,
        match=r"^ckpt: shape mismatch: blocks\.0\.attn\.qkv\.bias "
        r"\(150,\) -> backbone/transformer_layer_0/attention/qkv/bias expects "
        r"\(192,\)$",
    ):
        load_passt_state_dict(tiny_model, state, source="ckpt")


def test_unset_weights_are_listed(tiny_state, tiny_model, monkeypatch):
    table = passt_weight_table(2)
    monkeypatch.setattr(
        passt_checkpoint,
        "passt_weight_table",
        lambda num_layers, classifier=True: [row for row in table if row[0] != "norm.bias"],
    )
    state = {key: value for key, value in tiny_state.items() if key != "norm.bias"}
    with pytest.raises(UserError, match=r"^ckpt leaves model weights unset: final_norm/beta$"):
        load_passt_state_dict(tiny_model, state, source="ckpt")


def test_not_a_passt_state_dict(tiny_model):
    with pytest.raises(UserError, match="not a PaSST state dict, it lacks cls_token"):
        load_passt_state_dict(tiny_model, {"conv.weight": np.zeros((2, 2), "float32")})
    with pytest.raises(UserError, match="expected a state dict .*, found list"):
        load_passt_state_dict(tiny_model, [1, 2])


def test_read_torch_state_dict(tmp_path):
    net = torch_passt(depth=1)
    path = str(tmp_path / "half.pt")
    torch.save({"model": {k: v.half() for k, v in net.state_dict().items()}}, path)
    arrays = read_torch_state_dict(path)
    assert set(arrays) == set(net.state_dict())
    assert arrays["cls_token"].dtype == np.float32
    np.testing.assert_array_equal(arrays["norm.bias"], net.state_dict()["norm.bias"].half().float())


class _CreatesFile:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = str(tmp_path / "evil.pt")
    torch.save({"cls_token": torch.zeros(1), "payload": _CreatesFile(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(
        UserError,
        match=r"evil\.pt: refused, it is not a plain tensor state "
        r"dict: its pickle needs the global io\.open, which was neither imported "
        r"nor called \(only tensors, parameters and plain containers are read\)$",
    ):
        read_torch_state_dict(path)
    assert not marker.exists()


def test_unreadable_or_non_state_dict_files(tmp_path):
    listing = str(tmp_path / "list.pt")
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(UserError, match=r"list\.pt: expected a state dict .*, found list"):
        read_torch_state_dict(listing)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(
        UserError,
        match=r"notes\.pt: cannot be read as a PyTorch checkpoint "
        r"\(neither a zip archive nor a legacy torch\.save stream\)",
    ):
        read_torch_state_dict(str(text))
    with pytest.raises(UserError, match=r"nothing\.pt: no such file"):
        read_torch_state_dict(str(tmp_path / "nothing.pt"))


def test_cli_converts_and_infers_arch(tmp_path, capsys):
    net = torch_passt(num_classes=10)
    checkpoint = str(tmp_path / "tiny.pt")
    torch.save(net.state_dict(), checkpoint)
    out = str(tmp_path / "out" / "tiny.weights.h5")
    assert main(["--checkpoint", checkpoint, "--out", out]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{out}: passt_tiny, 10 classes, 37 tensors loaded, dropped head_dist.weight, "
        f"head_dist.bias; classifier loaded"
    )
    assert os.listdir(tmp_path / "out") == ["tiny.weights.h5"]
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    model.load_weights(out)
    np.testing.assert_array_equal(model.head_dense.kernel, net.state_dict()["head.1.weight"].T)


def test_conversion_needs_no_torch(tmp_path):
    """The CLI converts in a process where `import torch` fails; same weights as torch read."""
    net = torch_passt(num_classes=10, seed=4)
    checkpoint = str(tmp_path / "tiny.pt")
    torch.save(net.state_dict(), checkpoint)
    out = str(tmp_path / "tiny.weights.h5")
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch raises ImportError
        "from keras_asc.cli.convert import main\n"
        f"main(['--checkpoint', {checkpoint!r}, '--out', {out!r}])\n"
        "assert sys.modules['torch'] is None\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    converted = SceneClassifier.from_preset("passt_tiny", num_classes=10, weights=out)
    expected = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    load_passt_state_dict(expected, numpy_state(net))  # the arrays as torch reads them
    for a, b in zip(converted.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)


def test_cli_failure_keeps_existing_output(tmp_path):
    checkpoint = str(tmp_path / "tiny.pt")
    torch.save(torch_passt(depth=3).state_dict(), checkpoint)
    out = tmp_path / "model.weights.h5"
    out.write_bytes(b"previous weights")
    with pytest.raises(UserError, match="transformer blocks: 3 in the checkpoint, 2 in the model"):
        main(["--checkpoint", checkpoint, "--out", str(out), "--arch", "passt_tiny"])
    assert out.read_bytes() == b"previous weights"
    assert set(os.listdir(tmp_path)) == {"tiny.pt", "model.weights.h5"}
    with pytest.raises(
        UserError,
        match=r"--out model\.h5: expected a file name ending in "
        r"\.weights\.h5",
    ):
        main(["--checkpoint", checkpoint, "--out", "model.h5"])
    with pytest.raises(UserError, match="unknown PaSST preset 'passt_huge'"):
        main(["--checkpoint", checkpoint, "--out", str(out), "--arch", "passt_huge"])


def test_script_refuses_malicious_pickle_with_exit_2(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned.txt"
    checkpoint = str(tmp_path / "evil.pt")
    torch.save({"payload": _CreatesFile(str(marker))}, checkpoint)
    out = tmp_path / "x.weights.h5"
    script = os.path.join(ROOT, "scripts", "convert_passt_checkpoint.py")
    monkeypatch.setattr(sys, "argv", [script, "--checkpoint", checkpoint, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"error: checkpoint {checkpoint}: refused, it is not a plain tensor")
    assert "Traceback" not in stderr
    assert not marker.exists()
    assert not out.exists()
