"""Separate frequency and time position embeddings added to the PaSST patch grid."""

import warnings

import keras

from asc_core.errors import UserError
from keras_asc.layers._utils import check_rank
from keras_asc.layers._utils import trunc_normal


@keras.saving.register_keras_serializable(package="keras_asc")
class PatchPositionEmbedding(keras.layers.Layer):
    """Adds a learned frequency embedding and a learned time embedding to each patch.

    PaSST factorises the 2D position embedding: a frequency table `[F, D]` (one row per patch
    row) and a time table `[T, D]` (one entry per patch column) are broadcast-added to the
    `[B, F', T', D]` grid. The time table covers `time_positions` patch columns (99 = 10 s at
    stride 10). Shorter inputs use a window of it:

    - training (and `random_time_offset=True`): a window starting at a random offset drawn
      uniformly from `0 .. time_positions - T'`, ONE offset for the whole batch (PaSST samples
      which 10-s part of a longer encoding a clip sees; kkoutini/PaSST issue #42);
    - inference: always the first `T'` entries.

    Inputs longer than the table are cropped to `time_positions` patch columns with a warning,
    as in kkoutini/PaSST (hear21passt would fail on them). When the length is only known at run
    time (a traced function with an unknown frame count) the crop happens without the warning.

    Args:
        frequency_positions: int. Number of patch rows `F` (12 for 128 mels at stride 10).
        time_positions: int. Number of patch columns `T` the time table covers.
        random_time_offset: bool. Whether training uses a random window of the time table.
            Defaults to `True` (kkoutini/PaSST); `False` always starts at 0 (hear21passt).
        seed: int or None. Seed of the offset draws.

    Input shape:
        `[B, F, T', D]` patch grid, `F == frequency_positions`.

    Output shape:
        `[B, F, min(T', T), D]`.
    """

    def __init__(
        self, frequency_positions, time_positions, random_time_offset=True, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.frequency_positions = frequency_positions
        self.time_positions = time_positions
        self.random_time_offset = random_time_offset
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="time_offset_seed")

    def build(self, input_shape):
        check_rank(self, input_shape, 4, "a patch grid [batch, freq, time, dim]")
        _, freq, _, dim = input_shape
        if freq is not None and freq != self.frequency_positions:
            raise UserError(
                f"{self.name}: the patch grid has {freq} frequency rows but the frequency "
                f"embedding has {self.frequency_positions}; expected mel input giving "
                f"{self.frequency_positions} patch rows (check n_mels and the stride)"
            )
        self.frequency_embedding = self.add_weight(
            name="frequency_embedding",
            shape=(1, self.frequency_positions, 1, dim),
            initializer=trunc_normal(),
        )
        self.time_embedding = self.add_weight(
            name="time_embedding",
            shape=(1, 1, self.time_positions, dim),
            initializer=trunc_normal(),
        )

    def call(self, inputs, training=None):
        static_time = inputs.shape[2]
        if static_time is not None and static_time > self.time_positions:
            warnings.warn(
                f"{self.name}: input has {static_time} time patches but the time embedding "
                f"covers {self.time_positions}; cropping the input to the first "
                f"{self.time_positions}",
                stacklevel=2,
            )
        # A no-op unless the input is longer than the table (see the warning above).
        x = inputs[:, :, : self.time_positions, :]
        num_time = keras.ops.shape(x)[2]
        if training and self.random_time_offset:
            offset = keras.random.randint(
                (),
                minval=0,
                maxval=self.time_positions - num_time + 1,
                seed=self.seed_generator,
            )
        else:
            offset = 0
        time_embedding = keras.ops.slice(
            self.time_embedding,
            (0, 0, offset, 0),
            (1, 1, num_time, keras.ops.shape(self.time_embedding)[3]),
        )
        x = x + keras.ops.cast(time_embedding, x.dtype)
        return x + keras.ops.cast(self.frequency_embedding, x.dtype)

    def compute_output_shape(self, input_shape):
        batch, freq, time, dim = input_shape
        if time is not None:
            time = min(time, self.time_positions)
        return (batch, freq, time, dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frequency_positions": self.frequency_positions,
                "time_positions": self.time_positions,
                "random_time_offset": self.random_time_offset,
                "seed": self.seed,
            }
        )
        return config
