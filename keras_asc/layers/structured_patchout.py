"""Structured patchout: drop whole frequency rows / time columns of the patch grid."""

import keras

from asc_core.errors import UserError
from keras_asc.layers._utils import kept_sorted_indices


@keras.saving.register_keras_serializable(package="keras_asc")
class StructuredPatchout(keras.layers.Layer):
    """Randomly removes whole time columns and frequency rows of the patch grid in training.

    PaSST's structured patchout (arXiv:2110.05069, Sec. 2.2): time columns are dropped first,
    then frequency rows. One random choice is shared by the whole batch and the kept patches
    keep their order. At inference the input passes unchanged.

    Args:
        frequency: int. Rows to drop (`s_patchout_f`; TAU22 recipes use 6). Defaults to `0`.
        time: int. Columns to drop (`s_patchout_t`; AudioSet uses 40). Defaults to `0`.
        seed: int or None. Seed of the draws.

    Input shape:
        `[B, F, T, D]` patch grid.

    Output shape:
        training: `[B, F - frequency, T - time, D]`; inference: `[B, F, T, D]`.
    """

    def __init__(self, frequency=0, time=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for value, what in ((frequency, "frequency"), (time, "time")):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"`{what}` patchout must be an int >= 0, got {value!r}")
        self.frequency = frequency
        self.time = time
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="patchout_seed")

    def _check(self, input_shape):
        if len(input_shape) != 4:
            raise UserError(
                f"{self.name}: expected a patch grid [batch, freq, time, dim], "
                f"got shape {tuple(input_shape)}"
            )
        for size, drop, what in (
            (input_shape[1], self.frequency, "frequency rows"),
            (input_shape[2], self.time, "time columns"),
        ):
            if drop and size is not None and drop >= size:
                raise UserError(
                    f"{self.name}: patchout of {drop} {what} leaves nothing of the "
                    f"{size} in the input of shape {tuple(input_shape)}; expected fewer than "
                    f"{size}"
                )

    def build(self, input_shape):
        self._check(input_shape)

    def call(self, inputs, training=None):
        if not training or not (self.frequency or self.time):
            return inputs
        self._check(inputs.shape)
        x = inputs
        if self.time:
            size = keras.ops.shape(x)[2]
            x = keras.ops.take(x, kept_sorted_indices(size, self.time, self.seed_generator), axis=2)
        if self.frequency:
            size = keras.ops.shape(x)[1]
            x = keras.ops.take(
                x, kept_sorted_indices(size, self.frequency, self.seed_generator), axis=1
            )
        return x

    def compute_output_shape(self, input_shape):
        # Training drops patches, so a dimension that patchout touches has no fixed size.
        batch, freq, time, dim = input_shape
        return (batch, None if self.frequency else freq, None if self.time else time, dim)

    def get_config(self):
        config = super().get_config()
        config.update({"frequency": self.frequency, "time": self.time, "seed": self.seed})
        return config
