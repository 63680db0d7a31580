"""FAST-RIR's stage-I generator, adapted to 1024-sample microphone IRs."""

import math

import keras

from keras_asc.irgen.condition_encoding import CONDITION_DIM


def normal_init(stddev, seed, offset, mean=0.0):
    """FAST-RIR's ``weights_init``: N(mean, stddev); ``seed + offset`` when a seed is given."""
    return keras.initializers.RandomNormal(
        mean=mean, stddev=stddev, seed=None if seed is None else seed + offset
    )


def batch_norm(layer, name, offset):
    """FAST-RIR's BatchNorm (torch's momentum 0.1, eps 1e-5) in ``layer``'s dtype policy, its
    scale initialised N(1, init_stddev) with ``layer.seed + offset``."""
    return keras.layers.BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer=normal_init(layer.init_stddev, layer.seed, offset, mean=1.0),
        dtype=layer.dtype_policy,
        name=name,
    )


def stage_lists(name, widths, strides):
    """``(widths, strides)`` as lists; ValueError unless non-empty and of equal length."""
    widths, strides = list(widths), list(strides)
    if len(widths) != len(strides) or not widths:
        raise ValueError(
            f"{name} {widths} and strides {strides} must be non-empty lists of equal length"
        )
    return widths, strides


@keras.saving.register_keras_serializable(package="keras_asc")
class DirGenerator(keras.Model):
    """Deterministic conditional generator: microphone condition → impulse response.

    FAST-RIR's ``STAGE1_G`` (Ratnarajah et al. 2022, official code) with the two ×2 up-blocks
    dropped, so ``16 × 4 × 4 × 4 = 1024`` samples come out (research notes Sec. 1.10):

    1. ``condition_net``: Dense(condition_dim → condition_units) + PReLU (FAST-RIR's COND_NET);
    2. ``fc``: Dense(→ initial_length · initial_channels, no bias) + BatchNorm + PReLU,
       reshaped to ``[initial_length, initial_channels]``;
    3. one up-block per entry of ``channels``/``strides``: Conv1DTranspose(channels[i],
       kernel_size, strides[i], "same") + BatchNorm + PReLU;
    4. ``output_conv``: Conv1DTranspose(1, kernel_size, stride 1, "same") + tanh.

    There is no noise input (FAST-RIR's released generator is deterministic). Weights are
    initialised N(0, ``init_stddev``), BatchNorm gammas N(1, ``init_stddev``); BatchNorm uses
    PyTorch's momentum 0.1 (Keras 0.9) and epsilon 1e-5; each PReLU has one shared slope
    starting at 0.25, as ``nn.PReLU()``.

    Args:
        output_length: int, samples of the generated IR (default 1024).
        condition_dim: int, size of the condition vector (default 12).
        condition_units: int or None, width of ``condition_net`` (None: ``condition_dim``).
        initial_length: int, time steps after ``fc`` (default 16).
        initial_channels: int, channels after ``fc`` (FAST-RIR: 2048).
        channels: list of int, output channels of the up-blocks.
        strides: list of int, the up-sampling factor of each up-block;
            ``initial_length · prod(strides)`` must equal ``output_length``.
        kernel_size: int, transposed-convolution kernel (FAST-RIR: 41).
        init_stddev: float, standard deviation of the initial weights (0.02).
        seed: int or None, seed of the initialisers.

    Input shape:
        ``[B, condition_dim]`` float32.

    Output shape:
        ``[B, output_length]`` float32 in (-1, 1).
    """

    def __init__(
        self,
        output_length=1024,
        condition_dim=CONDITION_DIM,
        condition_units=None,
        initial_length=16,
        initial_channels=256,
        channels=(128, 64, 32),
        strides=(4, 4, 4),
        kernel_size=41,
        init_stddev=0.02,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        channels, strides = stage_lists("channels", channels, strides)
        if initial_length * math.prod(strides) != output_length:
            raise ValueError(
                f"initial_length {initial_length} × strides {strides} gives "
                f"{initial_length * math.prod(strides)} samples, not output_length {output_length}"
            )
        self.output_length = output_length
        self.condition_dim = condition_dim
        self.condition_units = condition_units
        self.initial_length = initial_length
        self.initial_channels = initial_channels
        self.channels = channels
        self.strides = strides
        self.kernel_size = kernel_size
        self.init_stddev = init_stddev
        self.seed = seed

        units = condition_units or condition_dim
        init = lambda offset: normal_init(init_stddev, seed, offset)  # noqa: E731
        prelu = lambda name, axes: keras.layers.PReLU(  # noqa: E731
            alpha_initializer=keras.initializers.Constant(0.25),
            shared_axes=axes,
            dtype=self.dtype_policy,
            name=name,
        )
        self.condition_dense = keras.layers.Dense(
            units, kernel_initializer=init(0), dtype=self.dtype_policy, name="condition_dense"
        )
        self.condition_prelu = prelu("condition_prelu", [1])
        self.fc_dense = keras.layers.Dense(
            initial_length * initial_channels,
            use_bias=False,
            kernel_initializer=init(1),
            dtype=self.dtype_policy,
            name="fc_dense",
        )
        self.fc_norm = batch_norm(self, "fc_norm", 2)
        self.fc_prelu = prelu("fc_prelu", [1])
        self.up_convs, self.up_norms, self.up_prelus = [], [], []
        for i, (width, stride) in enumerate(zip(channels, strides)):
            self.up_convs.append(
                keras.layers.Conv1DTranspose(
                    width,
                    kernel_size,
                    strides=stride,
                    padding="same",
                    kernel_initializer=init(10 + 3 * i),
                    dtype=self.dtype_policy,
                    name=f"up_{i}_conv",
                )
            )
            self.up_norms.append(batch_norm(self, f"up_{i}_norm", 11 + 3 * i))
            self.up_prelus.append(prelu(f"up_{i}_prelu", [1, 2]))
        self.output_conv = keras.layers.Conv1DTranspose(
            1,
            kernel_size,
            strides=1,
            padding="same",
            kernel_initializer=init(9),
            dtype=self.dtype_policy,
            name="output_conv",
        )

    def build(self, input_shape):
        batch = input_shape[0]
        units = self.condition_units or self.condition_dim
        self.condition_dense.build((batch, self.condition_dim))
        self.condition_prelu.build((batch, units))
        self.fc_dense.build((batch, units))
        flat = (batch, self.initial_length * self.initial_channels)
        self.fc_norm.build(flat)
        self.fc_prelu.build(flat)
        length, width = self.initial_length, self.initial_channels
        for conv, norm, prelu, channels, stride in zip(
            self.up_convs, self.up_norms, self.up_prelus, self.channels, self.strides
        ):
            conv.build((batch, length, width))
            length, width = length * stride, channels
            norm.build((batch, length, width))
            prelu.build((batch, length, width))
        self.output_conv.build((batch, length, width))
        self.built = True

    def call(self, inputs, training=None):
        x = self.condition_prelu(self.condition_dense(inputs))
        x = self.fc_prelu(self.fc_norm(self.fc_dense(x), training=training))
        x = keras.ops.reshape(x, (-1, self.initial_length, self.initial_channels))
        for conv, norm, prelu in zip(self.up_convs, self.up_norms, self.up_prelus):
            x = prelu(norm(conv(x), training=training))
        x = keras.ops.tanh(self.output_conv(x))
        return keras.ops.squeeze(x, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_length)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_length": self.output_length,
                "condition_dim": self.condition_dim,
                "condition_units": self.condition_units,
                "initial_length": self.initial_length,
                "initial_channels": self.initial_channels,
                "channels": list(self.channels),
                "strides": list(self.strides),
                "kernel_size": self.kernel_size,
                "init_stddev": self.init_stddev,
                "seed": self.seed,
            }
        )
        return config
