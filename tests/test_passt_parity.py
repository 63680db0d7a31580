"""Keras PaSST == the official hear21passt PaSST, through the checkpoint converter.

The oracle is the installed `hear21passt` code (random weights, nothing downloaded): its state
dict goes through `torch.save` → `scripts/convert_passt_checkpoint.py`'s `main` →
`SceneClassifier.load_weights`, and both models then see the same input.
"""

import copy
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from keras_asc.cli.convert import main as convert_main
from keras_asc.layers.transformer_block import TransformerBlock
from keras_asc.models.scene_classifier import SceneClassifier

sys.path.insert(0, os.path.dirname(__file__))
import torch_oracle  # noqa: E402
from numerics import assert_float32_parity  # noqa: E402


def randomise(net, seed=0):
    """Random values for every parameter (PaSST's init would leave LayerNorms at 1 and 0).

    Matrices get std 1/sqrt(fan_in), so activations keep their scale through the blocks as in
    a trained network; much larger weights make attention so peaked that float32 rounding
    alone decides the output of a 12-block model.
    """
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "head.0.weight")):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif param.ndim >= 2 and "pos_embed" not in name and "token" not in name:
                param.copy_(torch.randn_like(param) / param[0].numel() ** 0.5)
            else:
                param.copy_(0.2 * torch.randn_like(param))
    return net.eval()


def convert(net, tmp_path, *args):
    checkpoint = str(tmp_path / "passt.pt")
    torch.save(net.state_dict(), checkpoint)
    out = str(tmp_path / "passt.weights.h5")
    assert convert_main(["--checkpoint", checkpoint, "--out", out, *args]) == 0
    return out


def mel_batch(frames, batch=2, seed=1):
    # Normalised log-mels lie in about [-1.4, 2]; this covers that range.
    return np.random.RandomState(seed).uniform(-1.4, 2.0, (batch, 128, frames)).astype("float32")


def keras_from_mel(model, mel):
    embedding = model.backbone(mel)["embedding"]
    return model.head_dense(model.head_norm(embedding)), embedding


def torch_from_mel(net, mel):
    with torch.no_grad():
        logits, features = net(torch.from_numpy(mel)[:, None])
    return logits.numpy(), features.numpy()


def float64_copy(net):
    """The same torch network in float64: the exact result the float32 ones are judged by."""
    return copy.deepcopy(net).double()


def assert_parity(net, logits, embedding, mel):
    """Our logits/embedding against the torch net in float32 and float64 (tests/numerics.py)."""
    expected_logits, expected_embedding = torch_from_mel(net, mel)
    exact_logits, exact_embedding = torch_from_mel(float64_copy(net), mel.astype(np.float64))
    assert_float32_parity(embedding, expected_embedding, exact_embedding, what="embedding")
    assert_float32_parity(logits, expected_logits, exact_logits, what="logits")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """(torch PaSST, converted Keras SceneClassifier) at the passt_tiny geometry, 527 classes."""
    passt = torch_oracle.load_passt_module()
    net = randomise(
        passt.PaSST(
            img_size=(128, 998),
            stride=10,
            embed_dim=64,
            depth=2,
            num_heads=4,
            distilled=True,
            num_classes=527,
        )
    )
    weights = convert(net, tmp_path_factory.mktemp("tiny"), "--arch", "passt_tiny")
    model = SceneClassifier.from_preset("passt_tiny", num_classes=527)
    model.load_weights(weights)
    return net, model


def block_pair():
    """(torch `Block`, Keras `TransformerBlock` with its weights, the weight-name map)."""
    passt = torch_oracle.load_passt_module()
    torch.manual_seed(3)
    block = passt.Block(
        dim=64, num_heads=4, mlp_ratio=4.0, qkv_bias=True, norm_layer=torch.nn.LayerNorm
    ).eval()
    block.norm1.eps = block.norm2.eps = 1e-6
    with torch.no_grad():
        for param in block.parameters():
            param.copy_(0.3 * torch.randn_like(param))
    layer = TransformerBlock(num_heads=4, intermediate_dim=256)
    layer.build((None, None, 64))
    state = {key: value.numpy() for key, value in block.state_dict().items()}
    names = {}  # Keras variable path -> (torch parameter name, transposed?)
    for name in ("norm1", "norm2"):
        norm = getattr(layer, name)
        norm.gamma.assign(state[f"{name}.weight"])
        norm.beta.assign(state[f"{name}.bias"])
        names[norm.gamma.path] = (f"{name}.weight", False)
        names[norm.beta.path] = (f"{name}.bias", False)
    for keras_dense, key in (
        (layer.attention.qkv, "attn.qkv"),
        (layer.attention.proj, "attn.proj"),
        (layer.mlp_fc1, "mlp.fc1"),
        (layer.mlp_fc2, "mlp.fc2"),
    ):
        keras_dense.kernel.assign(state[f"{key}.weight"].T)
        keras_dense.bias.assign(state[f"{key}.bias"])
        names[keras_dense.kernel.path] = (f"{key}.weight", True)
        names[keras_dense.bias.path] = (f"{key}.bias", False)
    return block, layer, names


def test_transformer_block_matches_torch_block():
    block, layer, _ = block_pair()
    x = np.random.RandomState(0).randn(2, 20, 64).astype("float32")
    with torch.no_grad():
        expected = block(torch.from_numpy(x)).numpy()
        exact = copy.deepcopy(block).double()(torch.from_numpy(x.astype(np.float64))).numpy()
    assert_float32_parity(layer(x), expected, exact, what="block")


def test_transformer_block_gradients_match_torch_block():
    """The backward pass too: our gradients (the written-out GELU derivative, the unstacked
    qkv) against torch's autograd of the same block, for the input and all 12 weights."""
    block, layer, names = block_pair()
    rng = np.random.RandomState(1)
    x = rng.randn(2, 20, 64).astype("float32")
    cotangent = rng.randn(2, 20, 64).astype("float32")  # a generic upstream gradient

    def torch_gradients(net, dtype):
        inputs = torch.tensor(x.astype(dtype), requires_grad=True)
        (net(inputs) * torch.from_numpy(cotangent.astype(dtype))).sum().backward()
        grads = {"input": inputs.grad.numpy()}
        params = dict(net.named_parameters())
        for path, (key, transposed) in names.items():
            grad = params[key].grad.numpy()
            grads[path] = grad.T if transposed else grad
        return grads

    expected = torch_gradients(block, np.float32)
    exact = torch_gradients(copy.deepcopy(block).double(), np.float64)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(layer(inputs) * cotangent)
    grads = tape.gradient(loss, [inputs, *layer.trainable_weights])
    paths = ["input", *(v.path for v in layer.trainable_weights)]
    assert sorted(paths[1:]) == sorted(names)  # every weight is compared
    for path, grad in zip(paths, grads):
        assert_float32_parity(grad, expected[path], exact[path], what=f"gradient of {path}")


@pytest.mark.parametrize("frames", [100, 1000])  # 1 s and 10 s
def test_mel_to_logits_parity(tiny_pair, frames):
    net, model = tiny_pair
    mel = mel_batch(frames)
    logits, embedding = keras_from_mel(model, mel)
    assert_parity(net, logits, embedding, mel)


def test_waveform_to_logits_end_to_end(tiny_pair):
    net, model = tiny_pair
    # The TAU22 recipe's frontend (fmax_aug_range=1000 → eval fmax 15500 Hz), eval mode.
    mel_layer = torch_oracle.load_augment_mel_stft()(
        n_mels=128,
        sr=32000,
        win_length=800,
        hopsize=320,
        n_fft=1024,
        freqm=48,
        timem=20,
        fmin=0.0,
        fmax=None,
        fmin_aug_range=1,
        fmax_aug_range=1000,
    ).eval()
    rng = np.random.RandomState(2)
    waveform = (0.3 * rng.randn(2, 32000)).astype("float32")
    with torch.no_grad():
        mel = mel_layer(torch.from_numpy(waveform))
        expected_logits, expected_embedding = (t.numpy() for t in net(mel[:, None]))
        # The float64 path runs the same frontend in float64 (its bank in the default dtype).
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            mel64 = copy.deepcopy(mel_layer).double()(torch.from_numpy(waveform.astype(np.float64)))
            exact_logits, exact_embedding = (t.numpy() for t in float64_copy(net)(mel64[:, None]))
        finally:
            torch.set_default_dtype(previous)
    out = model(waveform)
    assert_float32_parity(out["embedding"], expected_embedding, exact_embedding, what="embedding")
    assert_float32_parity(out["logits"], expected_logits, exact_logits, what="logits")


@pytest.mark.slow
def test_full_passt_s_geometry_parity(tmp_path):
    """PaSST-S (768 wide, 12 blocks, 12 heads, stride 10, 99 time positions), 10 classes."""
    passt = torch_oracle.load_passt_module()
    net = randomise(
        passt.get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False, n_classes=10)
    )
    weights = convert(net, tmp_path)  # architecture inferred from the checkpoint
    model = SceneClassifier.from_preset(
        "passt_s_swa_p16_128_ap476", load_weights=False, num_classes=10
    )
    model.load_weights(weights)
    for frames in (100, 1000):
        mel = mel_batch(frames, batch=1, seed=frames)
        logits, embedding = keras_from_mel(model, mel)
        assert_parity(net, logits, embedding, mel)
    keras.backend.clear_session()
