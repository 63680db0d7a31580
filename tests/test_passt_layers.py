"""PaSST building blocks: shapes, numerics against NumPy, training-mode semantics.

The layer contract and the .keras round trip of each are in test_serialization_registry.py.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from scipy.special import erf
from scipy.special import erfc

from asc_core.errors import UserError
from keras_asc.layers import ClassTokens
from keras_asc.layers import FastLayerNormalization
from keras_asc.layers import FusedDense
from keras_asc.layers import MultiHeadSelfAttention
from keras_asc.layers import PatchEmbedding
from keras_asc.layers import PatchPositionEmbedding
from keras_asc.layers import StructuredPatchout
from keras_asc.layers import TransformerBlock
from keras_asc.layers import UnstructuredPatchout
from keras_asc.layers._utils import exact_gelu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def _index_grid(batch, freq, time, dim=4):
    """Grid whose channels say (example, row, column, 1): patches can be traced after dropping."""
    grid = np.zeros((batch, freq, time, dim), "float32")
    grid[..., 0] = np.arange(batch)[:, None, None]
    grid[..., 1] = np.arange(freq)[None, :, None]
    grid[..., 2] = np.arange(time)[None, None, :]
    grid[..., 3] = 1.0
    return grid


# === PatchEmbedding ===


@pytest.mark.parametrize(
    "stride, frames, grid",
    [
        (10, 100, (12, 9)),
        (10, 1000, (12, 99)),
        (12, 1000, (10, 83)),
        (14, 1000, (9, 71)),
        (16, 1000, (8, 62)),
        ((10, 16), 100, (12, 6)),
    ],
)
def test_patch_embedding_grid(stride, frames, grid):
    layer = PatchEmbedding(8, stride=stride)
    assert tuple(layer(np.zeros((1, 128, frames), "float32")).shape) == (1, *grid, 8)
    assert layer.compute_output_shape((1, 128, frames)) == (1, *grid, 8)


def test_patch_embedding_is_the_strided_patch_projection():
    layer = PatchEmbedding(5, stride=10)
    mel = _rand(2, 128, 100)
    out = np.asarray(layer(mel))
    kernel = np.asarray(layer.proj.kernel)[:, :, 0, :]  # [16, 16, D]
    bias = np.asarray(layer.proj.bias)
    for f, t in ((0, 0), (3, 8), (11, 4)):  # frames 0..95 are covered, 96..99 unused
        patch = mel[:, 10 * f : 10 * f + 16, 10 * t : 10 * t + 16]
        expected = np.einsum("bij,ijd->bd", patch, kernel) + bias
        np.testing.assert_allclose(out[:, f, t], expected, rtol=1e-4, atol=1e-5)


def test_patch_embedding_errors():
    with pytest.raises(
        UserError,
        match=r"expected a mel spectrogram of shape \[batch, n_mels, "
        r"frames\], got shape \(2, 128, 100, 1\)",
    ):
        PatchEmbedding(4)(np.zeros((2, 128, 100, 1), "float32"))
    with pytest.raises(UserError, match=r"has 12 frames; expected at least 16"):
        PatchEmbedding(4)(np.zeros((2, 128, 12), "float32"))
    with pytest.raises(ValueError, match="`stride` must be an int or a pair of ints"):
        PatchEmbedding(4, stride=(10, 10, 10))


# === PatchPositionEmbedding ===


def _position_layer(time_positions=99, **kwargs):
    layer = PatchPositionEmbedding(12, time_positions, **kwargs)
    layer.build((None, 12, None, 4))
    # Time entry t holds t in channel 0; frequency row f holds 1000 f in channel 1.
    time = np.zeros((1, 1, time_positions, 4), "float32")
    time[0, 0, :, 0] = np.arange(time_positions)
    freq = np.zeros((1, 12, 1, 4), "float32")
    freq[0, :, 0, 1] = 1000 * np.arange(12)
    layer.time_embedding.assign(time)
    layer.frequency_embedding.assign(freq)
    return layer


def test_position_embedding_inference_starts_at_zero():
    layer = _position_layer()
    out = np.asarray(layer(np.zeros((3, 12, 9, 4), "float32")))
    np.testing.assert_array_equal(out[..., 0], np.broadcast_to(np.arange(9), (3, 12, 9)))
    np.testing.assert_array_equal(
        out[..., 1], np.broadcast_to(1000 * np.arange(12)[:, None], (3, 12, 9))
    )


def test_position_embedding_training_offsets_one_per_batch_in_range():
    layer = _position_layer(seed=7)
    x = np.zeros((4, 12, 9, 4), "float32")
    offsets = []
    for _ in range(40):
        time = np.asarray(layer(x, training=True))[..., 0]
        offset = time[0, 0, 0]
        # One window for the whole batch, consecutive entries of the table.
        np.testing.assert_array_equal(time, offset + np.broadcast_to(np.arange(9), time.shape))
        offsets.append(int(offset))
    assert min(offsets) >= 0 and max(offsets) <= 99 - 9
    assert len(set(offsets)) > 10
    # Same seed, same draws.
    again = _position_layer(seed=7)
    first = [int(np.asarray(again(x, training=True))[0, 0, 0, 0]) for _ in range(5)]
    assert first == offsets[:5]
    fixed = _position_layer(random_time_offset=False)
    assert float(np.asarray(fixed(x, training=True))[0, 0, 0, 0]) == 0.0


def test_position_embedding_crops_longer_inputs_with_a_warning():
    layer = _position_layer(time_positions=20)
    with pytest.warns(
        UserWarning,
        match="input has 25 time patches but the time embedding covers "
        "20; cropping the input to the first 20",
    ):
        out = layer(_index_grid(1, 12, 25))
    assert tuple(out.shape) == (1, 12, 20, 4)
    np.testing.assert_array_equal(np.asarray(out)[0, 0, :, 2], np.arange(20))


def test_position_embedding_frequency_mismatch():
    layer = PatchPositionEmbedding(12, 99)
    with pytest.raises(
        UserError, match="the patch grid has 10 frequency rows but the frequency embedding has 12"
    ):
        layer(np.zeros((1, 10, 9, 4), "float32"))


# === Patchout ===


def test_structured_patchout_shapes_order_and_batch_sharing():
    layer = StructuredPatchout(frequency=6, time=3, seed=1)
    grid = _index_grid(4, 12, 9)
    np.testing.assert_array_equal(layer(grid), grid)  # inference: unchanged
    seen_rows = set()
    for _ in range(10):
        out = np.asarray(layer(grid, training=True))
        assert out.shape == (4, 6, 6, 4)
        rows, cols = out[0, :, 0, 1], out[0, 0, :, 2]
        assert np.all(np.diff(rows) > 0) and np.all(np.diff(cols) > 0)  # order kept
        # Every example keeps the same rows and columns, and each patch is intact.
        expected = grid[:, rows.astype(int)][:, :, cols.astype(int)]
        np.testing.assert_array_equal(out, expected)
        seen_rows.add(tuple(rows))
    assert len(seen_rows) > 1


def test_structured_patchout_too_large():
    with pytest.raises(UserError, match="patchout of 12 frequency rows leaves nothing of the 12"):
        StructuredPatchout(frequency=12)(np.zeros((1, 12, 9, 2), "float32"), training=True)


def test_unstructured_patchout_shapes_order_and_batch_sharing():
    layer = UnstructuredPatchout(5, seed=2)
    sequence = np.repeat(np.arange(20, dtype="float32")[None, :, None], 3, axis=0)
    sequence = np.concatenate(
        [sequence, np.arange(3, dtype="float32")[:, None, None] + np.zeros((3, 20, 1), "float32")],
        axis=-1,
    )
    np.testing.assert_array_equal(layer(sequence), sequence)
    out = np.asarray(layer(sequence, training=True))
    assert out.shape == (3, 15, 2)
    kept = out[0, :, 0]
    assert np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(out, sequence[:, kept.astype(int)])


# === Tokens, attention, block ===


def test_class_tokens_prepend_cls_and_dist_with_positions():
    layer = ClassTokens()
    x = _rand(2, 7, 4)
    out = np.asarray(layer(x))
    assert out.shape == (2, 9, 4)
    cls, dist, pos = (
        np.asarray(v) for v in (layer.cls_token, layer.dist_token, layer.token_position_embedding)
    )
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(cls[0, 0] + pos[0, 0], (2, 4)))
    np.testing.assert_allclose(out[:, 1], np.broadcast_to(dist[0, 0] + pos[0, 1], (2, 4)))
    np.testing.assert_array_equal(out[:, 2:], x)


def test_attention_matches_numpy_with_fused_qkv_layout():
    layer = MultiHeadSelfAttention(num_heads=2)
    x = _rand(2, 5, 8)
    out = np.asarray(layer(x))
    qkv = x @ np.asarray(layer.qkv.kernel) + np.asarray(layer.qkv.bias)  # [B, N, 24]
    heads = []
    for h in range(2):
        q, k, v = (qkv[..., part * 8 + h * 4 : part * 8 + (h + 1) * 4] for part in range(3))
        scores = q @ k.transpose(0, 2, 1) / 2.0  # head_dim ** 0.5
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads.append(weights @ v)
    expected = np.concatenate(heads, -1) @ np.asarray(layer.proj.kernel) + np.asarray(
        layer.proj.bias
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="input dimension 8 is not divisible by num_heads=3"):
        MultiHeadSelfAttention(num_heads=3)(x)


def test_transformer_block_residuals_epsilon_and_exact_gelu():
    block = TransformerBlock(num_heads=2, intermediate_dim=16)
    block(_rand(1, 3, 8))
    assert block.norm1.epsilon == block.norm2.epsilon == 1e-6
    # No attention output, and an MLP that passes the first 8 hidden units straight through:
    # the block is x + gelu(layer_norm(x)).
    block.attention.proj.kernel.assign(np.zeros((8, 8), "float32"))
    block.attention.proj.bias.assign(np.zeros(8, "float32"))
    block.mlp_fc1.kernel.assign(np.eye(8, 16, dtype="float32"))
    block.mlp_fc1.bias.assign(np.zeros(16, "float32"))
    block.mlp_fc2.kernel.assign(np.eye(16, 8, dtype="float32"))
    block.mlp_fc2.bias.assign(np.zeros(8, "float32"))
    x = 2.0 * _rand(2, 3, 8, seed=1)
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    expected_gelu = 0.5 * normed * (1.0 + erf(normed / np.sqrt(2.0)))
    np.testing.assert_allclose(block(x), x + expected_gelu, rtol=1e-5, atol=2e-6)


# === Twins: our layers that replace a Keras layer for speed, with its weights and outputs ===


def _twins(ours, theirs, input_shape, weight_offset=0.0):
    """`ours` and the Keras layer it replaces, built on `input_shape`, same random weights."""
    for layer in (ours, theirs):
        layer.build(input_shape)
    weights = theirs.get_weights()
    theirs.set_weights([weight_offset + _rand(*w.shape, seed=i) for i, w in enumerate(weights)])
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _outputs_and_gradients(layers, x, traced, cotangent=None):
    """Per layer: its output on `x` and the gradients w.r.t. `x` and its weights of the output
    (summed) or, given a `cotangent`, of `sum(output * cotangent)`."""

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            target = y if cotangent is None else tf.reduce_sum(tf.cast(y, "float32") * cotangent)
        return y, tape.gradient(target, [x, *layer.trainable_weights])

    run = tf.function(run) if traced else run
    return [run(layer) for layer in layers]


def _assert_all_close(ours, theirs, tolerance):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(
            tf.cast(a, "float32"), tf.cast(b, "float32"), rtol=tolerance, atol=tolerance
        )


# === FusedDense (the PaSST linears: one 2-D matmul + bias_add, fused by grappler) ===


def _dense_pair(policy="float32", **kwargs):
    return _twins(
        FusedDense(6, dtype=policy, **kwargs),
        keras.layers.Dense(6, dtype=policy, **kwargs),
        (None, 8),
    )


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize(
    "shape", [(5, 8), (2, 5, 8), (2, 3, 5, 8)], ids=["rank2", "rank3", "rank4"]
)
def test_fused_dense_is_dense(traced, policy, shape):
    fused, plain = _dense_pair(policy, activation="relu")
    x = tf.constant(_rand(*shape))
    (y, grads), (y_plain, grads_plain) = _outputs_and_gradients([fused, plain], x, traced)
    assert y.shape == shape[:-1] + (6,) and y.dtype == y_plain.dtype == fused.compute_dtype
    # Bit-identical on AMD EPYC; elsewhere oneDNN may sum the 2-D and the batched matmul (and
    # the kernel gradient's batch reduction) in another order, so two ulps of the compute dtype.
    tolerance = 2.0**-7 if fused.compute_dtype == "bfloat16" else 2e-6
    _assert_all_close([y, *grads], [y_plain, *grads_plain], tolerance)


def test_fused_dense_graph_is_a_2d_matmul_with_bias_add():
    """What lets grappler fuse: a 2-D MatMul feeding BiasAdd, for any number of leading axes
    (also unknown ones); rank-2 inputs, no bias and quantized layers keep Dense's own call."""
    fused, _ = _dense_pair()
    graph = tf.function(fused).get_concrete_function(tf.TensorSpec((None, None, 8))).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("MatMul") == types.count("BiasAdd") == 1 and "BatchMatMulV2" not in types
    bias_add = next(op for op in graph.get_operations() if op.type == "BiasAdd")
    assert bias_add.inputs[0].op.type == "MatMul"
    no_bias, plain = _dense_pair(use_bias=False)
    x = _rand(2, 5, 8)
    np.testing.assert_array_equal(no_bias(x), plain(x))
    # Quantized, it is a Dense (Keras refuses Dense subclasses unless told otherwise).
    fused.quantize("int8")
    plain = keras.layers.Dense(6)
    plain.build((None, 8))
    plain.set_weights(_dense_pair()[1].get_weights())
    plain.quantize("int8")
    assert fused.quantization_mode == "int8"
    np.testing.assert_array_equal(fused(x), plain(x))


def test_transformer_block_gelu_takes_the_bias_add_directly():
    """Grappler fuses MatMul + BiasAdd + GELU only where nothing sits between them: mlp_fc1's
    GELU runs on the 2-D bias add, before FusedDense's reshape back to tokens."""
    block = TransformerBlock(num_heads=2, intermediate_dim=32)
    block.build((None, None, 16))
    graph = tf.function(block).get_concrete_function(tf.TensorSpec((None, None, 16))).graph
    (bias_add,) = [
        op for op in graph.get_operations() if op.type == "BiasAdd" and "mlp_fc1" in op.name
    ]
    consumers = {op.type for op in bias_add.outputs[0].consumers()}
    assert "Reshape" not in consumers and consumers <= {"Mul", "Neg", "IdentityN"}
    (erfc,) = [op for op in graph.get_operations() if op.type == "Erfc"]
    assert erfc.outputs[0].shape.rank == 2  # the GELU is computed on the flat [B*N, 32]
    x = _rand(2, 5, 16)
    hidden = block.mlp_fc1(block.norm2(x))
    np.testing.assert_array_equal(
        hidden,
        exact_gelu(
            tf.nn.bias_add(
                tf.reshape(block.norm2(x), (10, 16)) @ block.mlp_fc1.kernel, block.mlp_fc1.bias
            )
        )
        .numpy()
        .reshape(2, 5, 32),
    )


# === FastLayerNormalization (PyTorch's LayerNorm arithmetic, Keras' LayerNormalization API) ===


def _norm_pair(policy="float32", shape=(2, 5, 8), **kwargs):
    return _twins(
        FastLayerNormalization(epsilon=1e-6, dtype=policy, **kwargs),
        keras.layers.LayerNormalization(epsilon=1e-6, dtype=policy, **kwargs),
        shape,
        weight_offset=1.0,
    )


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize(
    "shape", [(5, 8), (2, 5, 8), (2, 3, 5, 8)], ids=["rank2", "rank3", "rank4"]
)
def test_fast_layer_normalization_is_layer_normalization(traced, policy, shape):
    fast, plain = _norm_pair(policy, shape)
    # Offset and spread as in PaSST's residual stream: a large mean is where the two
    # formulations round differently (Keras subtracts mean * inv at the end).
    x = tf.cast(3.0 * tf.constant(_rand(*shape)) + 20.0, fast.compute_dtype)
    cotangent = tf.constant(_rand(*shape, seed=9))
    (y, grads), (y_plain, grads_plain) = _outputs_and_gradients([fast, plain], x, traced, cotangent)
    assert y.shape == shape and y.dtype == y_plain.dtype == fast.compute_dtype
    assert [g.dtype for g in grads] == [g.dtype for g in grads_plain]
    # Both normalize in float32; they differ only in the order of float32 roundings, a few
    # float32 ulps of values of order one, so one bfloat16 rounding (2**-8 relative) at most.
    tolerance = 2.0**-7 if fast.compute_dtype == "bfloat16" else 2e-5
    _assert_all_close([y, *grads], [y_plain, *grads_plain], tolerance)
    gamma, beta = fast.get_weights()
    x64 = np.asarray(tf.cast(x, "float32"), "float64")
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(
        tf.cast(y, "float32"), expected * gamma + beta, rtol=tolerance, atol=tolerance
    )


def test_fast_layer_normalization_graph_and_fallbacks():
    """Normalizing the last axis takes two reductions and one pass per factor; the layout
    Keras folds (`x * inv + (beta - mean * inv)`) is gone. Other axes, `rms_scaling` and no
    `beta`/`gamma` run Keras' own call, bit-identically."""
    fast, _ = _norm_pair()
    graph = tf.function(fast).get_concrete_function(tf.TensorSpec((None, None, 8))).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("Mean") == 2 and types.count("Rsqrt") == 1 and "Neg" not in types
    x = _rand(2, 5, 8)
    for kwargs in ({"axis": 1}, {"axis": (1, 2)}, {"center": False}, {"scale": False}):
        fast, plain = _norm_pair(**kwargs)
        np.testing.assert_array_equal(fast(x), plain(x))
        revived = FastLayerNormalization.from_config(fast.get_config())
        revived.build(x.shape)
        revived.set_weights(fast.get_weights())
        np.testing.assert_array_equal(revived(x), fast(x))
    with pytest.warns(UserWarning, match="rms_scaling"):  # deprecated in Keras, still served
        fast, plain = _norm_pair(rms_scaling=True)
        np.testing.assert_array_equal(fast(x), plain(x))


_OPTIMIZED_GRAPH_SCRIPT = """
import numpy as np, tensorflow as tf
from keras_asc.layers import FastLayerNormalization
layer = FastLayerNormalization(epsilon=1e-6)
layer.build((1, 110, 768))
tf.function(lambda x: layer(x) + x)(np.ones((1, 110, 768), "float32"))
"""


def test_fast_layer_normalization_runs_no_outer_product_after_grappler(tmp_path):
    """In an inference graph, grappler's MinimizeBroadcasts reorders `centred * inverse *
    gamma` into `(inverse * gamma) * centred`, a `[N, 1] * [D]` outer product (2-4x slower on
    CPU), unless the per-token factor is broadcast first. Checked on the graph TensorFlow runs,
    dumped after its optimizations (in a subprocess: the dump is set up from the environment
    at import)."""
    env = {
        **os.environ,
        "TF_DUMP_GRAPH_PREFIX": str(tmp_path),
        "TF_DUMP_GRAPH_NAME_FILTER": "*",
        "TF_DUMP_GRAPH_GROUPS": "main",
        "PYTHONPATH": ROOT,
    }
    subprocess.run(
        [sys.executable, "-c", _OPTIMIZED_GRAPH_SCRIPT], env=env, check=True, capture_output=True
    )
    (dump,) = [p for p in tmp_path.iterdir() if p.name.endswith("after_partition_passes.pbtxt")]
    graph = text_format.Parse(dump.read_text(), tf.compat.v1.GraphDef())
    op_types = {node.name: node.op for node in graph.node}
    mul_inputs = [
        {op_types[name.split(":")[0]] for name in node.input if not name.startswith("^")}
        for node in graph.node
        if node.op == "Mul"
    ]
    assert len(mul_inputs) == 2 and {"ReadVariableOp"} < set.union(*mul_inputs)
    assert not any({"Rsqrt", "ReadVariableOp"} <= inputs for inputs in mul_inputs), mul_inputs


# === exact_gelu (the MLP activation, with a written-out gradient) ===


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_exact_gelu_forward_is_tf_gelu_and_gradient_is_exact(traced, dtype):
    x64 = np.concatenate([np.linspace(-9.0, 9.0, 361), 3.0 * _rand(500).astype(np.float64)])
    upstream64 = 0.5 + np.abs(_rand(x64.size, seed=1).astype(np.float64))
    x, upstream = tf.constant(x64, dtype), tf.constant(upstream64, dtype)

    def forward_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = exact_gelu(x)
        return y, tape.gradient(y, x, output_gradients=upstream)

    run = tf.function(forward_and_gradient) if traced else forward_and_gradient
    y, grad = run(x)
    assert y.dtype == grad.dtype == tf.as_dtype(dtype)
    # Forward: bit-identical to tf.nn.gelu's exact form (which the block used before) in
    # float32; a bfloat16 input is computed in float32 and rounded once.
    x32 = tf.cast(x, "float32")
    np.testing.assert_array_equal(y, tf.cast(keras.activations.gelu(x32, approximate=False), dtype))
    # Gradient: upstream * (Phi(x) + x phi(x)) in float64, to a few ulps of the dtype.
    xq = np.asarray(tf.cast(x, "float64"))  # the values actually fed (bf16-rounded)
    slope = 0.5 * erfc(-xq / np.sqrt(2.0)) + xq * np.exp(-0.5 * xq**2) / np.sqrt(2.0 * np.pi)
    expected = np.asarray(tf.cast(upstream, "float64")) * slope
    ulp = 2.0**-23 if dtype == "float32" else 2.0**-7
    np.testing.assert_allclose(
        np.asarray(tf.cast(grad, "float64")), expected, rtol=8 * ulp, atol=8 * ulp
    )
