"""Structured patchout: drop whole frequency rows / time columns of the patch grid."""

import keras

from keras_asc.layers._utils import Patchout
from keras_asc.layers._utils import check_patchout
from keras_asc.layers._utils import check_rank
from keras_asc.layers._utils import kept_sorted_indices


@keras.saving.register_keras_serializable(package="keras_asc")
class StructuredPatchout(Patchout):
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
        super().__init__(seed=seed, **kwargs)
        for value, what in ((frequency, "frequency"), (time, "time")):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"`{what}` patchout must be an int >= 0, got {value!r}")
        self.frequency = frequency
        self.time = time

    def _check(self, input_shape):
        check_rank(self, input_shape, 4, "a patch grid [batch, freq, time, dim]")
        check_patchout(self, input_shape, 1, self.frequency, "frequency rows")
        check_patchout(self, input_shape, 2, self.time, "time columns")

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
