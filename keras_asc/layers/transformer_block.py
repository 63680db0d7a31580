"""Pre-norm transformer encoder block of PaSST / ViT."""

import keras

from keras_asc.layers._utils import exact_gelu
from keras_asc.layers._utils import linear
from keras_asc.layers.fast_layer_normalization import FastLayerNormalization
from keras_asc.layers.multi_head_self_attention import MultiHeadSelfAttention


@keras.saving.register_keras_serializable(package="keras_asc")
class TransformerBlock(keras.layers.Layer):
    """`x + attention(norm1(x))`, then `x + mlp(norm2(x))`, with an exact-GELU MLP.

    Sub-layer names follow the PyTorch module names (`norm1`, `attention` ↔ `attn`, `norm2`,
    `mlp_fc1` ↔ `mlp.fc1`, `mlp_fc2` ↔ `mlp.fc2`) so the converter can map them by name.

    Args:
        num_heads: int. Attention heads.
        intermediate_dim: int. Hidden size of the MLP (PaSST-S: 3072 = 4 × 768).
        use_qkv_bias: bool. Bias on the fused qkv projection. Defaults to `True`.
        layer_norm_epsilon: float. Epsilon of both LayerNorms. Defaults to `1e-6` (PaSST).

    Input shape:
        `[B, N, D]`.

    Output shape:
        `[B, N, D]`.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        use_qkv_bias=True,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.use_qkv_bias = use_qkv_bias
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.norm1 = FastLayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm1"
        )
        self.norm1.build(input_shape)
        self.attention = MultiHeadSelfAttention(
            self.num_heads,
            use_qkv_bias=self.use_qkv_bias,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention.build(input_shape)
        self.norm2 = FastLayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm2"
        )
        self.norm2.build(input_shape)
        # nn.GELU() is the exact erf form (keras.ops.gelu defaults to the tanh form). Inside
        # mlp_fc1 it runs before FusedDense's reshape, so eval fuses matmul + bias + GELU.
        self.mlp_fc1 = linear(
            self, self.intermediate_dim, "mlp_fc1", input_shape, activation=exact_gelu
        )
        hidden_shape = tuple(input_shape[:-1]) + (self.intermediate_dim,)
        self.mlp_fc2 = linear(self, dim, "mlp_fc2", hidden_shape)

    def call(self, inputs):
        x = inputs + self.attention(self.norm1(inputs))
        return x + self.mlp_fc2(self.mlp_fc1(self.norm2(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "use_qkv_bias": self.use_qkv_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
