"""FAST-RIR's stage-I matching-aware discriminator, adapted to 1024-sample microphone IRs."""

import math

import keras

from keras_asc.irgen.condition_encoding import CONDITION_DIM
from keras_asc.irgen.generator import batch_norm
from keras_asc.irgen.generator import normal_init
from keras_asc.irgen.generator import stage_lists


@keras.saving.register_keras_serializable(package="keras_asc")
class DirDiscriminator(keras.Model):
    """Conditional discriminator: ``(impulse response, condition)`` → probability of "real".

    FAST-RIR's ``STAGE1_D`` + ``D_GET_LOGITS`` with three stride-4 convolutions instead of four,
    so a 1024-sample input reaches the same 16-step feature map and head (research notes
    Sec. 1.10):

    1. ``conv_0``: Conv1D(filters[0], kernel_size, strides[0], "same", no bias) + LeakyReLU;
    2. ``conv_i`` (i ≥ 1): Conv1D(filters[i], ...) + BatchNorm + LeakyReLU;
    3. ``projection``: Conv1D(joint_filters, kernel_size, stride 1, "same") (FAST-RIR's
       stride-1 ``ConvTranspose1d``);
    4. the condition is tiled along time and concatenated (it enters late, as in StackGAN's
       matching-aware discriminator);
    5. ``joint_conv``: Conv1D(joint_filters, 3, "same", no bias) + BatchNorm + LeakyReLU;
    6. ``logit_conv``: Conv1D(1, feature_length, "valid") over the whole feature map + sigmoid.

    ``feature_length = input_length / prod(strides)`` (16 for 1024 samples). Initialisation as
    :class:`~keras_asc.irgen.generator.DirGenerator`.

    Args:
        input_length: int, samples of an impulse response (default 1024).
        condition_dim: int, size of the condition vector (default 12).
        filters: list of int, channels of the strided convolutions (FAST-RIR: 96, 192, 384, 768).
        strides: list of int, their strides; ``prod(strides)`` must divide ``input_length``.
        kernel_size: int (FAST-RIR: 41).
        joint_filters: int, channels of the projection and the joint convolution (FAST-RIR: 48).
        negative_slope: float, LeakyReLU slope (0.2).
        init_stddev: float, standard deviation of the initial weights (0.02).
        seed: int or None, seed of the initialisers.

    Input shape:
        a list/tuple ``(ir [B, input_length], condition [B, condition_dim])``.

    Output shape:
        ``[B]`` float32 probabilities in (0, 1).
    """

    def __init__(
        self,
        input_length=1024,
        condition_dim=CONDITION_DIM,
        filters=(32, 64, 128),
        strides=(4, 4, 4),
        kernel_size=41,
        joint_filters=48,
        negative_slope=0.2,
        init_stddev=0.02,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        filters, strides = stage_lists("filters", filters, strides)
        if input_length % math.prod(strides):
            raise ValueError(
                f"strides {strides} (product {math.prod(strides)}) do not divide input_length "
                f"{input_length}"
            )
        self.input_length = input_length
        self.condition_dim = condition_dim
        self.filters = filters
        self.strides = strides
        self.kernel_size = kernel_size
        self.joint_filters = joint_filters
        self.negative_slope = negative_slope
        self.init_stddev = init_stddev
        self.seed = seed
        self.feature_length = input_length // math.prod(strides)

        init = lambda offset: normal_init(init_stddev, seed, offset)  # noqa: E731
        self.convs, self.norms = [], []
        for i, (width, stride) in enumerate(zip(filters, strides)):
            self.convs.append(
                keras.layers.Conv1D(
                    width,
                    kernel_size,
                    strides=stride,
                    padding="same",
                    use_bias=False,
                    kernel_initializer=init(10 + 2 * i),
                    dtype=self.dtype_policy,
                    name=f"conv_{i}",
                )
            )
            self.norms.append(None if i == 0 else batch_norm(self, f"conv_{i}_norm", 11 + 2 * i))
        self.projection = keras.layers.Conv1D(
            joint_filters,
            kernel_size,
            padding="same",
            kernel_initializer=init(0),
            dtype=self.dtype_policy,
            name="projection",
        )
        self.joint_conv = keras.layers.Conv1D(
            joint_filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=init(1),
            dtype=self.dtype_policy,
            name="joint_conv",
        )
        self.joint_norm = batch_norm(self, "joint_norm", 2)
        self.logit_conv = keras.layers.Conv1D(
            1,
            self.feature_length,
            padding="valid",
            kernel_initializer=init(3),
            dtype=self.dtype_policy,
            name="logit_conv",
        )

    def build(self, input_shape):
        ir_shape, _ = input_shape
        batch = ir_shape[0]
        length, width = self.input_length, 1
        for conv, norm, channels, stride in zip(self.convs, self.norms, self.filters, self.strides):
            conv.build((batch, length, width))
            length, width = length // stride, channels
            if norm is not None:
                norm.build((batch, length, width))
        self.projection.build((batch, length, width))
        self.joint_conv.build((batch, length, self.joint_filters + self.condition_dim))
        self.joint_norm.build((batch, length, self.joint_filters))
        self.logit_conv.build((batch, length, self.joint_filters))
        self.built = True

    def call(self, inputs, training=None):
        ir, condition = inputs
        x = keras.ops.expand_dims(ir, -1)
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            if norm is not None:
                x = norm(x, training=training)
            x = keras.ops.leaky_relu(x, self.negative_slope)
        x = self.projection(x)
        tiled = keras.ops.repeat(
            keras.ops.expand_dims(keras.ops.cast(condition, x.dtype), 1), self.feature_length, 1
        )
        x = keras.ops.concatenate([x, tiled], axis=-1)
        x = keras.ops.leaky_relu(
            self.joint_norm(self.joint_conv(x), training=training), self.negative_slope
        )
        logits = keras.ops.reshape(self.logit_conv(x), (-1,))
        return keras.ops.sigmoid(logits)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_length": self.input_length,
                "condition_dim": self.condition_dim,
                "filters": list(self.filters),
                "strides": list(self.strides),
                "kernel_size": self.kernel_size,
                "joint_filters": self.joint_filters,
                "negative_slope": self.negative_slope,
                "init_stddev": self.init_stddev,
                "seed": self.seed,
            }
        )
        return config
