"""`benchmarks/profile_model.py`: ops are grouped by layer and pass, and traces are read."""

import os
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import profile_model  # noqa: E402

BLOCK = "scene_classifier_1/passt_backbone_1/transformer_layer_3_1"


@pytest.mark.parametrize(
    ("node", "op_type", "group"),
    [
        (f"{BLOCK}/mlp_fc1_1/Erfc", "Erfc", ("mlp_fc1", "forward")),
        (f"gradient_tape/{BLOCK}/norm2_1/mul_1/Sum", "Sum", ("norm2", "backward")),
        (f"{BLOCK}/attention_1/qkv_1/BiasAdd", "_MklNativeFusedMatMul", ("attention", "forward")),
        (f"{BLOCK}/add_1", "AddV2", ("residual adds", "forward")),
        ("Exp_3", "Exp", ("(unscoped)", "backward")),  # a custom gradient's op
        ("fused_adam/ResourceApplyAdam_7", "ResourceApplyAdam", ("optimizer", "optimizer")),
        ("scene_classifier_1/frontend_1/strided_slice", "StridedSlice", ("frontend", "forward")),
        (
            "gradient_tape/scene_classifier_1/passt_backbone_1/patch_embedding_1/proj_1/conv",
            "Conv2DBackpropFilter",
            ("patch_embedding", "backward"),
        ),
    ],
)
def test_ops_are_grouped_by_layer_and_pass(node, op_type, group):
    assert profile_model.classify(node, op_type) == group


def test_op_times_reads_the_ops_of_a_profiler_trace(tmp_path):
    a = tf.random.normal((64, 64))

    @tf.function
    def run(x):
        with tf.name_scope("layer"):
            return tf.nn.relu(tf.matmul(x, a))

    run(a)
    tf.profiler.experimental.start(str(tmp_path))
    for _ in range(3):
        run(a).numpy()
    tf.profiler.experimental.stop()
    times = profile_model.op_times(str(tmp_path))
    matmuls = {node: ms for (node, op_type), ms in times.items() if "MatMul" in op_type}
    assert list(matmuls) == ["layer/MatMul"]  # oneDNN or not, the node keeps its name
    assert matmuls["layer/MatMul"] > 0
    assert all("::" not in node for node, _ in times)  # no executor events


def test_op_times_names_a_folder_without_one_trace(tmp_path):
    with pytest.raises(SystemExit, match="expected one profiler trace .* found 0"):
        profile_model.op_times(str(tmp_path))
