"""Unstructured patchout: drop random positions of the flattened patch sequence."""

import keras

from keras_asc.layers._utils import Patchout
from keras_asc.layers._utils import check_patchout
from keras_asc.layers._utils import check_rank
from keras_asc.layers._utils import kept_sorted_indices


@keras.saving.register_keras_serializable(package="keras_asc")
class UnstructuredPatchout(Patchout):
    """Randomly removes `count` patches from the flattened sequence in training.

    PaSST's `u_patchout`: applied after flattening, before the class tokens are prepended.
    One draw is shared by the whole batch and the kept patches keep their order. At
    inference the input passes unchanged.

    Args:
        count: int. Number of sequence positions to drop. Defaults to `0`.
        seed: int or None. Seed of the draws.

    Input shape:
        `[B, N, D]` patch sequence.

    Output shape:
        training: `[B, N - count, D]`; inference: `[B, N, D]`.
    """

    def __init__(self, count=0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"`count` must be an int >= 0, got {count!r}")
        self.count = count

    def _check(self, input_shape):
        check_rank(self, input_shape, 3, "a patch sequence [batch, patches, dim]")
        check_patchout(self, input_shape, 1, self.count, "patches")

    def call(self, inputs, training=None):
        if not training or not self.count:
            return inputs
        self._check(inputs.shape)
        size = keras.ops.shape(inputs)[1]
        return keras.ops.take(
            inputs, kept_sorted_indices(size, self.count, self.seed_generator), axis=1
        )

    def compute_output_shape(self, input_shape):
        # Training drops patches, so the sequence length has no fixed size when count > 0.
        batch, size, dim = input_shape
        return (batch, None if self.count else size, dim)

    def get_config(self):
        config = super().get_config()
        config.update({"count": self.count, "seed": self.seed})
        return config
