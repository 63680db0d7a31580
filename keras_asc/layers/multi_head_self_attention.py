"""Multi-head self-attention with one fused qkv projection (ViT / PaSST `Attention`)."""

import keras

from keras_asc.layers._utils import linear


@keras.saving.register_keras_serializable(package="keras_asc")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention whose query, key and value come from one `Dense(3 * D)`.

    The fused projection has the exact layout of PaSST's `attn.qkv` Linear: output units
    `[0:D]` are the queries, `[D:2D]` the keys and `[2D:3D]` the values, each split into
    `num_heads` contiguous heads of `D / num_heads`. So the converter maps the PyTorch
    weight with a plain transpose. Scores are `(q @ k^T) * head_dim**-0.5`, softmax over the
    keys (computed in float32 also under mixed precision), then `proj`.

    Args:
        num_heads: int. Number of heads; must divide the input dimension.
        use_qkv_bias: bool. Whether `qkv` has a bias (PaSST: `True`). Defaults to `True`.

    Input shape:
        `[B, N, D]`.

    Output shape:
        `[B, N, D]`.
    """

    def __init__(self, num_heads, use_qkv_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.use_qkv_bias = use_qkv_bias

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"{self.name}: input dimension {dim} is not divisible by num_heads={self.num_heads}"
            )
        self.head_dim = dim // self.num_heads
        self.qkv = linear(self, 3 * dim, "qkv", input_shape, use_bias=self.use_qkv_bias)
        self.proj = linear(self, dim, "proj", input_shape)

    def call(self, inputs):
        batch = keras.ops.shape(inputs)[0]
        length = keras.ops.shape(inputs)[1]
        dim = self.num_heads * self.head_dim
        qkv = keras.ops.reshape(self.qkv(inputs), (batch, length, 3, self.num_heads, self.head_dim))
        # -> [3, B, heads, N, head_dim]. Unstacked rather than indexed: the gradient of an
        # index is a zero tensor of qkv's full size per slice, summed (the PaSST-S train step
        # was 9 % slower so); that of unstack is one stack.
        qkv = keras.ops.transpose(qkv, (2, 0, 3, 1, 4))
        query, key, value = keras.ops.unstack(qkv, 3, axis=0)
        # The scale is applied to the scores, after the matmul, not to q: the one-clip PaSST-S
        # attention core took 6-10 % less time so (Intel Xeon, oneDNN off and on), although q
        # has fewer values (N * d against N * N). For d = 64 the factor 1/8 is a power of two,
        # so both orders give bit-identical scores. A matmul with `transpose_b` contracts k
        # without a transposed copy; Keras' einsum took about 1.25x its time.
        scale = keras.ops.cast(self.head_dim**-0.5, query.dtype)
        scores = _matmul_transpose_b(query, key) * scale
        weights = keras.ops.softmax(keras.ops.cast(scores, "float32"), axis=-1)
        context = keras.ops.matmul(keras.ops.cast(weights, value.dtype), value)
        context = keras.ops.reshape(
            keras.ops.transpose(context, (0, 2, 1, 3)), (batch, length, dim)
        )
        return self.proj(context)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "use_qkv_bias": self.use_qkv_bias})
        return config


def _matmul_transpose_b(a, b):
    """`a @ swapaxes(b, -1, -2)` for `[..., M, K]` and `[..., N, K]` → `[..., M, N]`."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.matmul(a, b, transpose_b=True)
    return keras.ops.matmul(a, keras.ops.swapaxes(b, -1, -2))
