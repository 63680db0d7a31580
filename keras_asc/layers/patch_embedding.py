"""Overlapping 2D patch embedding of a mel spectrogram (PaSST `patch_embed`)."""

import keras

from asc_core.errors import UserError
from keras_asc.layers._utils import as_pair
from keras_asc.layers._utils import check_rank


@keras.saving.register_keras_serializable(package="keras_asc")
class PatchEmbedding(keras.layers.Layer):
    """Cuts a mel spectrogram into overlapping patches and projects each to `hidden_dim`.

    A single `Conv2D` with kernel `patch_size` and stride `stride`, no padding, on the
    spectrogram seen as a one-channel image with frequency as height and time as width.
    This is PaSST's `patch_embed.proj` in channels-last layout: the converter maps the
    PyTorch kernel `[D, 1, kh, kw]` to `[kh, kw, 1, D]`.

    Args:
        hidden_dim: int. Size `D` of each patch embedding.
        patch_size: int or pair `(freq, time)`. Kernel size. Defaults to `16`.
        stride: int or pair `(freq, time)`. Patch hop; `10` overlaps 16-wide patches as in
            PaSST-S, `16` gives no overlap. Defaults to `10`.

    Input shape:
        `[B, n_mels, frames]`, with `n_mels >= patch_size[0]` and `frames >= patch_size[1]`.

    Output shape:
        `[B, F', T', D]` with `F' = (n_mels - kh) // sf + 1` and `T' = (frames - kw) // st + 1`.
        For 128 mels and 100 frames (1 s) with the defaults this is `[B, 12, 9, D]`.
    """

    def __init__(self, hidden_dim, patch_size=16, stride=10, **kwargs):
        # The spectrogram stays float32 into the projection (see `proj` below).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size
        self.stride = stride
        self._kernel = as_pair(patch_size, "patch_size")
        self._strides = as_pair(stride, "stride")
        # The projection always computes in float32, whatever the policy: oneDNN's bfloat16
        # convolution (AVX512-BF16/AMX kernels on Intel Xeon) returned inf for a 16x16 kernel at
        # stride 10 on 0.25-s spectrograms (one patch column), and the projection is ~0.2 % of
        # PaSST's MACs. Its output is cast to the layer's compute dtype.
        # PyTorch's default Conv2d init (kaiming_uniform with a=sqrt(5)) is this variance scaling;
        # PaSST leaves the patch projection at that default.
        self.proj = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=self._kernel,
            strides=self._strides,
            padding="valid",
            data_format="channels_last",
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
            ),
            dtype=self.dtype_policy.variable_dtype,
            name="proj",
        )

    def build(self, input_shape):
        check_rank(self, input_shape, 3, "a mel spectrogram of shape [batch, n_mels, frames]")
        _, n_mels, frames = input_shape
        for size, kernel, what in (
            (n_mels, self._kernel[0], "mel bins"),
            (frames, self._kernel[1], "frames"),
        ):
            if size is not None and size < kernel:
                raise UserError(
                    f"{self.name}: input of shape {tuple(input_shape)} has {size} {what}; "
                    f"expected at least {kernel} (the patch size)"
                )
        self.proj.build((input_shape[0], n_mels, frames, 1))

    def call(self, inputs):
        frames = inputs.shape[-1]
        if frames is not None and frames < self._kernel[1]:
            raise UserError(
                f"{self.name}: input of shape {tuple(inputs.shape)} has {frames} frames; "
                f"expected at least {self._kernel[1]} (the patch size)"
            )
        patches = keras.ops.expand_dims(keras.ops.cast(inputs, "float32"), axis=-1)
        if self.proj.compute_dtype != "float32":  # a pure low-precision policy ("bfloat16")
            patches = keras.ops.conv(
                patches,
                keras.ops.cast(self.proj.kernel, "float32"),
                strides=self._strides,
                padding="valid",
            ) + keras.ops.cast(self.proj.bias, "float32")
        else:
            patches = self.proj(patches)
        return keras.ops.cast(patches, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        batch, n_mels, frames = input_shape

        def out(size, k, s):
            return None if size is None else (size - k) // s + 1

        return (
            batch,
            out(n_mels, self._kernel[0], self._strides[0]),
            out(frames, self._kernel[1], self._strides[1]),
            self.hidden_dim,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_dim": self.hidden_dim, "patch_size": self.patch_size, "stride": self.stride}
        )
        return config
