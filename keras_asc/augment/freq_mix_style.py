"""Freq-MixStyle: mixes per-frequency statistics of log-mel spectrograms across the batch."""

import keras
import tensorflow as tf

from asc_core.errors import UserError
from keras_asc.augment import _random
from keras_asc.augment.base import AugmentationLayer

_SALT = 3


def freq_mix_style_params(batch_size, batch_index, *, probability, alpha, seed):
    """The random parameters :func:`freq_mix_style` uses for one batch.

    Returns:
        ``(apply bool [], lmda float32 [B], perm int32 [B])``, all from ``(seed, batch_index)``.
    """
    keys = tf.random.experimental.stateless_split(
        _random.make_key(seed, _SALT, batch_index), num=3, alg=_random.ALG
    )
    apply = _random.uniform([], keys[0]) < probability
    lmda = _random.beta(tf.reshape(batch_size, [1]), float(alpha), keys[1])
    perm = _random.permutation(batch_size, keys[2])
    return apply, lmda, perm


def freq_mix_style(x, batch_index, *, probability, alpha, seed, eps=1e-6):
    """Freq-MixStyle of one batch (CPJKU ``helpers/utils.py: mixstyle``).

    With probability ``probability`` the whole batch is processed, otherwise it is returned
    unchanged. Each spectrogram's per-frequency mean ``mu`` and standard deviation
    ``sig = sqrt(var + eps)`` are taken over time (unbiased variance, as ``torch.var``), treated
    as constants (no gradient), and replaced by a mix with those of a randomly permuted
    batch-mate: ``(x - mu) / sig * (l sig + (1 - l) sig[perm]) + l mu + (1 - l) mu[perm]`` with
    ``l ~ Beta(alpha, alpha)`` per example. Statistics are computed in float32.

    All draws (gate, ``l``, permutation) come from a key ``(seed, batch_index)``.

    Args:
        x: float ``[B, F, T]`` log-mel batch (any rank >= 3; statistics over the last axis).
        batch_index: int scalar, the batch number (unique over the run).
        probability: float in ``[0, 1]`` (cpjku_dcase23 PaSST: 0.4).
        alpha: float > 0, Beta parameter (cpjku_dcase23 PaSST: 0.4).
        seed: int.
        eps: float added to the variance.

    Returns:
        ``[B, F, T]``, same dtype.
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank is None or x.shape.rank < 3:
        raise UserError(
            f"freq_mix_style: expected a batch of spectrograms [B, F, T], got shape {x.shape}"
        )
    apply, lmda, perm = freq_mix_style_params(
        tf.shape(x)[0], batch_index, probability=probability, alpha=alpha, seed=seed
    )

    values = tf.cast(x, tf.float32)
    frames = tf.cast(tf.shape(values)[-1], tf.float32)
    mu = tf.reduce_mean(values, axis=-1, keepdims=True)
    var = tf.reduce_sum(tf.square(values - mu), axis=-1, keepdims=True) / (frames - 1.0)
    mu = tf.stop_gradient(mu)
    sig = tf.stop_gradient(tf.sqrt(var + eps))
    lmda = tf.reshape(lmda, [-1] + [1] * (x.shape.rank - 1))
    mu_mix = lmda * mu + (1.0 - lmda) * tf.gather(mu, perm)
    sig_mix = lmda * sig + (1.0 - lmda) * tf.gather(sig, perm)
    mixed = (values - mu) / sig * sig_mix + mu_mix
    return tf.where(apply, tf.cast(mixed, x.dtype), x)


@keras.saving.register_keras_serializable(package="keras_asc")
class FreqMixStyle(AugmentationLayer):
    """Freq-MixStyle on a log-mel batch (training only); see :func:`freq_mix_style`.

    Keeps a saved int64 counter of the batches seen, used as the ``batch_index`` of the draws.
    The paper does not use it ("we do not use mixstyle augmentation to compare augmentation and
    contrastive learning properly"); cpjku_dcase23 PaSST uses ``p = 0.4, alpha = 0.4``.

    Args:
        probability: float in ``[0, 1]``, probability of processing a batch.
        alpha: float > 0, Beta(alpha, alpha) mixing parameter.
        eps: float added to the variance.
        seed: int.

    Input shape: ``[B, F, T]``. Output shape: ``[B, F, T]``.
    """

    counter_name = "batches_seen"
    config_keys = ("probability", "alpha", "eps", "seed")

    def __init__(self, probability=0.4, alpha=0.4, eps=1e-6, seed=0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= float(probability) <= 1.0:
            raise UserError(f"FreqMixStyle: probability must be in [0, 1], got {probability!r}")
        if not float(alpha) > 0.0:
            raise UserError(f"FreqMixStyle: alpha must be > 0, got {alpha!r}")
        self.probability = probability
        self.alpha = alpha
        self.eps = eps

    def call(self, x, training=None):
        return self.run(x, training=training)

    def augment(self, x, index, constants=None):
        return freq_mix_style(
            x, index, probability=self.probability, alpha=self.alpha, seed=self.seed, eps=self.eps
        )
