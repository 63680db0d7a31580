"""Mixup with ``lambda = max(lambda, 1 - lambda)`` and mixed cross-entropy (CPJKU ``my_mixup``)."""

import keras
import tensorflow as tf

from asc_core.errors import UserError
from keras_asc.augment import _random
from keras_asc.augment.base import AugmentationLayer

_SALT = 4


def mixup(x, batch_index, *, alpha, seed):
    """Mixes each example with a randomly permuted batch-mate.

    ``lam ~ Beta(alpha, alpha)`` per example, ``lam = max(lam, 1 - lam)`` (so the example keeps
    the larger share) and ``x_mixed = lam x + (1 - lam) x[perm]``. The loss must be mixed the
    same way, see :func:`mixup_cross_entropy`. Draws come from a key ``(seed, batch_index)``.

    Args:
        x: float ``[B, ...]`` batch (waveforms or spectrograms).
        batch_index: int scalar, the batch number (unique over the run).
        alpha: float > 0 (PaSST AudioSet/ESC-50: 0.3).
        seed: int.

    Returns:
        ``(x_mixed [B, ...], lam float32 [B], perm int32 [B])``.
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank is None or x.shape.rank < 1:
        raise UserError(f"mixup: expected a batch [B, ...], got shape {x.shape}")
    keys = tf.random.experimental.stateless_split(
        _random.make_key(seed, _SALT, batch_index), num=2, alg=_random.ALG
    )
    batch = tf.shape(x)[0]
    lam = _random.beta(tf.reshape(batch, [1]), float(alpha), keys[0])
    lam = tf.maximum(lam, 1.0 - lam)
    perm = _random.permutation(batch, keys[1])
    weight = tf.reshape(lam, [-1] + [1] * (x.shape.rank - 1))
    values = tf.cast(x, tf.float32)
    mixed = weight * values + (1.0 - weight) * tf.gather(values, perm)
    return tf.cast(mixed, x.dtype), lam, perm


def mixup_cross_entropy(y_true, logits, lam, perm):
    """Per-example ``lam CE(logits, y) + (1 - lam) CE(logits, y[perm])``, float32 ``[B]``.

    Args:
        y_true: int ``[B]`` class ids. logits: float ``[B, C]``. lam: ``[B]``. perm: int ``[B]``.
    """
    y_true = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    logits = tf.cast(logits, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    own = ce(labels=y_true, logits=logits)
    other = ce(labels=tf.gather(y_true, perm), logits=logits)
    lam = tf.cast(lam, tf.float32)
    return lam * own + (1.0 - lam) * other


@keras.saving.register_keras_serializable(package="keras_asc")
class Mixup(AugmentationLayer):
    """Mixup of a batch (training only); see :func:`mixup`.

    Keeps a saved int64 counter of the batches seen, used as the ``batch_index`` of the draws.
    Outside training it returns ``(x, ones, arange)``, i.e. no mixing.

    Args:
        alpha: float > 0, Beta(alpha, alpha) parameter.
        seed: int.

    Input shape: ``[B, ...]``. Output: ``(x_mixed [B, ...], lam [B], perm [B])``.
    """

    counter_name = "batches_seen"
    config_keys = ("alpha", "seed")

    def __init__(self, alpha=0.3, seed=0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not float(alpha) > 0.0:
            raise UserError(f"Mixup: alpha must be > 0, got {alpha!r}")
        self.alpha = alpha
        # All state exists now (none depends on the input shape), and the task calls this layer
        # only in train_step, after Model.__init__ builds the task: built from the start, or
        # Keras warns that the task "has unbuilt state".
        self.built = True

    # Three outputs from one input: Keras infers the shapes by tracing ``call``.
    compute_output_shape = keras.layers.Layer.compute_output_shape

    def call(self, x, training=None):
        return self.run(x, training=training)

    def passthrough(self, x):
        batch = tf.shape(x)[0]
        return x, tf.ones([batch], tf.float32), tf.range(batch)

    def augment(self, x, index, constants=None):
        return mixup(x, index, alpha=self.alpha, seed=self.seed)

    def compute_output_spec(self, x, training=None):
        batch = x.shape[0]
        return (
            keras.KerasTensor(x.shape, dtype=x.dtype),
            keras.KerasTensor((batch,), dtype="float32"),
            keras.KerasTensor((batch,), dtype="int32"),
        )
