"""Random circular time shift of waveforms, per example."""

import keras
import tensorflow as tf

from asc_core.errors import UserError
from keras_asc.augment import _random
from keras_asc.augment.base import AugmentationLayer

_SALT = 2


def roll_audio(audio, index, *, max_shift, seed):
    """Rolls each waveform circularly by its own shift in ``[-max_shift, max_shift]``.

    The shift of example ``b`` is an integer drawn uniformly (both ends included, as CPJKU's
    ``np.random.random_integers(-R, R)``) from a key ``(seed, index[b])``, and the output is
    ``torch.roll(x, shift)``: ``y[t] = x[(t - shift) mod N]``.

    Args:
        audio: ``[B, N]`` or ``[N]`` waveforms (any dtype).
        index: int ``[B]`` or ``[]`` global example indices.
        max_shift: int >= 0, in samples (cpjku_dcase23 PaSST: 10000; DIRAugmentation: 4000).
        seed: int.

    Returns:
        The rolled waveforms, same shape and dtype.
    """
    audio = tf.convert_to_tensor(audio)
    if audio.shape.rank == 1:
        return roll_audio(audio[None], tf.reshape(index, [1]), max_shift=max_shift, seed=seed)[0]
    words = _random.example_words(index, seed, _SALT)
    shift = _random.bounded(words[0], 2 * max_shift + 1) - max_shift
    length = tf.shape(audio)[1]
    positions = tf.math.floormod(tf.range(length)[None, :] - shift[:, None], length)
    return tf.gather(audio, positions, batch_dims=1)


@keras.saving.register_keras_serializable(package="keras_asc")
class Roll(AugmentationLayer):
    """Per-example random circular shift of waveforms along time (training only).

    Keeps a saved int64 counter of the examples seen, which numbers the examples for the random
    draws, so the layer gives what :func:`roll_audio` gives over ``dataset.enumerate()``.

    Args:
        max_shift: int >= 0, largest shift in samples (both directions).
        seed: int.

    Input shape: ``[B, N]``. Output shape: ``[B, N]``.

    Example:

    >>> layer = Roll(max_shift=0)
    >>> layer(tf.constant([[1.0, 2.0, 3.0]]), training=True).numpy().tolist()
    [[1.0, 2.0, 3.0]]
    """

    config_keys = ("max_shift", "seed")

    def __init__(self, max_shift=10000, seed=0, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(seed=seed, **kwargs)
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise UserError(f"Roll: max_shift must be an int >= 0 (samples), got {max_shift!r}")
        self.max_shift = max_shift

    def call(self, audio, training=None):
        return self.run(audio, training=training)

    def augment(self, audio, index, constants=None):
        return roll_audio(audio, index, max_shift=self.max_shift, seed=self.seed)
