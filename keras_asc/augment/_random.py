"""Stateless random draws that are bit-identical eagerly, in tf.data and under XLA.

Every augmentation in this package takes its randomness from ``(seed, salt, counter)``, where
``counter`` is a global example index (per-example ops: DIR, roll) or a batch index (per-batch
ops: Freq-MixStyle, mixup). The same triple gives the same draw wherever the op runs, which is
what makes pipeline (``Dataset.map``) and device (``train_step``) placement interchangeable.

Per-example draws need one key per example, which TF's stateless ops do not accept (a
``map_fn`` over them costs ~0.1 s per example eagerly), so they use a vectorised Philox-4x32-10
written with integer ops and checked against the Random123 known-answer vectors. Per-batch
draws use TF's Philox stateless *integer* ops with the key ``[seed * 256 + salt, counter]``.

Why not ``tf.random.stateless_uniform`` for floats, ``stateless_gamma`` or ``keras.random``:
measured with TF 2.21, the float and normal stateless ops return *different* numbers under
``jit_compile=True`` than without it (the integer draws agree), and ``StatelessRandomGammaV3``
has no XLA kernel, so Beta sampling through it fails inside a jit-compiled ``train_step`` (the
Keras default on GPU). Everything here therefore starts from Philox *integer* draws and builds
floats, normals and Beta variates from them with plain arithmetic.
"""

import math

import tensorflow as tf

ALG = "philox"
_BITS = 24  # a float32 represents every k / 2**24 exactly
_SCALE = 1.0 / (1 << _BITS)
# Marsaglia-Tsang proposals per Gamma variate. The acceptance rate is >= 0.95 for shape >= 1
# (we always sample shape alpha + 1), so 8 tries fail with probability < 1e-10.
_GAMMA_TRIES = 8


def make_key(seed, salt, counter):
    """Returns the int64 key ``[seed * 2**8 + salt, counter]`` (shape ``[2]``).

    ``salt`` separates augmentations that share one user seed (DIR and roll both key on the
    example index; without a salt they would draw the same bits).
    """
    first = tf.cast(seed, tf.int64) * 256 + salt
    return tf.stack([first, tf.cast(counter, tf.int64)])


def uniform_ints(shape, key, maxval):
    """Integers uniform in ``[0, maxval)``, int32, identical with and without XLA."""
    return tf.random.stateless_uniform(
        shape, seed=key, minval=0, maxval=maxval, dtype=tf.int32, alg=ALG
    )


def uniform(shape, key):
    """Floats uniform in the open interval ``(0, 1)`` on the grid ``(k + 0.5) / 2**24``."""
    k = uniform_ints(shape, key, 1 << _BITS)
    return (tf.cast(k, tf.float32) + 0.5) * _SCALE


_MASK32 = 0xFFFFFFFF
# Philox-4x32 round multipliers and Weyl key increments (Salmon et al., SC 2011; Random123).
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def philox4x32(counter, key, rounds=10):
    """The Philox-4x32-10 block function on uint64 tensors holding 32-bit words.

    Args:
        counter: four uint64 tensors (one broadcastable shape) with values < 2**32.
        key: two uint64 scalars with values < 2**32.

    Returns:
        Four uint64 tensors of 32-bit random words. Pure integer arithmetic (the 32x32-bit
        products are exact in uint64), so every backend, XLA included, gives the same bits.
    """
    mask = tf.constant(_MASK32, tf.uint64)
    shift = tf.constant(32, tf.uint64)
    c = [tf.cast(v, tf.uint64) for v in counter]
    k0, k1 = (tf.cast(v, tf.uint64) for v in key)
    xor = tf.bitwise.bitwise_xor
    for _ in range(rounds):
        p0 = tf.constant(_PHILOX_M[0], tf.uint64) * c[0]
        p1 = tf.constant(_PHILOX_M[1], tf.uint64) * c[2]
        c = [
            xor(xor(tf.bitwise.right_shift(p1, shift), c[1]), k0),
            tf.bitwise.bitwise_and(p1, mask),
            xor(xor(tf.bitwise.right_shift(p0, shift), c[3]), k1),
            tf.bitwise.bitwise_and(p0, mask),
        ]
        k0 = tf.bitwise.bitwise_and(k0 + tf.constant(_PHILOX_W[0], tf.uint64), mask)
        k1 = tf.bitwise.bitwise_and(k1 + tf.constant(_PHILOX_W[1], tf.uint64), mask)
    return c


def example_words(index, seed, salt):
    """Four random 32-bit words per example, from Philox keyed by ``(seed mod 2**32, salt)``.

    The counter is the example index itself, so row ``b`` depends only on
    ``(seed, salt, index[b])``: any batching or ordering of the same examples, vectorised.

    Args:
        index: int ``[B]`` global example indices (>= 0).
        seed: int, the user seed.
        salt: int, one per augmentation.

    Returns:
        Four uint64 ``[B]`` tensors with values < 2**32.
    """
    index = tf.cast(tf.reshape(index, [-1]), tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(index, _MASK32), tf.uint64)
    high = tf.cast(tf.bitwise.right_shift(index, 32), tf.uint64)
    zero = tf.zeros_like(low)
    key = (tf.constant(int(seed) & _MASK32, tf.uint64), tf.constant(int(salt), tf.uint64))
    return philox4x32((low, high, zero, zero), key)


def bounded(word, maxval):
    """Maps 32-bit words to ints uniform in ``[0, maxval)`` (``word * maxval >> 32``), int32.

    The bias is below ``maxval / 2**32`` (2e-6 for 8138 impulse responses).
    """
    maxval = tf.cast(maxval, tf.uint64)
    return tf.cast(tf.bitwise.right_shift(word * maxval, tf.constant(32, tf.uint64)), tf.int32)


def bernoulli(word, probability):
    """True with probability ``probability`` (to 2**-32) for a 32-bit word."""
    threshold = int(round(float(probability) * (1 << 32)))
    return word < tf.constant(threshold, tf.uint64)


def normal(shape, key):
    """Standard normal variates by Box-Muller from two uniform draws."""
    keys = tf.random.experimental.stateless_split(key, num=2, alg=ALG)
    u1 = uniform(shape, keys[0])
    u2 = uniform(shape, keys[1])
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos((2.0 * math.pi) * u2)


def gamma(shape, alpha, key):
    """Gamma(alpha, 1) variates, float32, for ``alpha > 0`` (a Python float).

    Marsaglia & Tsang (2000) on shape ``alpha + 1`` with a fixed number of vectorised
    proposals (the first accepted one is taken), then the ``U**(1/alpha)`` boost to shape
    ``alpha``. Fixed-size work keeps it XLA-friendly.
    """
    shape = tf.reshape(tf.cast(shape, tf.int32), [-1])  # a list or a (dynamic) tensor
    tries_shape = tf.concat([[_GAMMA_TRIES], shape], axis=0)
    keys = tf.random.experimental.stateless_split(key, num=3, alg=ALG)
    a = alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = normal(tries_shape, keys[0])
    u = uniform(tries_shape, keys[1])
    v = (1.0 + c * z) ** 3
    safe_v = tf.where(v > 0.0, v, 1.0)
    accept = (v > 0.0) & (tf.math.log(u) < 0.5 * z * z + d - d * safe_v + d * tf.math.log(safe_v))
    # Index of the first accepted proposal; if none was accepted (p < 1e-10) take the last.
    first = tf.argmax(tf.cast(accept, tf.int32), axis=0, output_type=tf.int32)
    first = tf.where(tf.reduce_any(accept, axis=0), first, _GAMMA_TRIES - 1)
    chosen = tf.reduce_sum(safe_v * tf.one_hot(first, _GAMMA_TRIES, axis=0), axis=0)
    boost = uniform(shape, keys[2]) ** (1.0 / alpha)
    return d * chosen * boost


def beta(shape, alpha, key):
    """Beta(alpha, alpha) variates, float32, as ``G1 / (G1 + G2)``."""
    keys = tf.random.experimental.stateless_split(key, num=2, alg=ALG)
    g1 = gamma(shape, alpha, keys[0])
    g2 = gamma(shape, alpha, keys[1])
    return g1 / (g1 + g2)


def permutation(n, key):
    """A uniformly random permutation of ``range(n)`` (int32 ``[n]``); ``n`` may be a tensor."""
    # argsort of i.i.d. 31-bit integers; ties (probability ~ n**2 / 2**32) are broken by
    # position, which a stable sort makes deterministic.
    scores = uniform_ints(tf.reshape(n, [1]), key, (1 << 31) - 1)
    return tf.argsort(scores, stable=True)


# === Counters kept by the layers (device placement) ===


def add_counter(layer, name):
    """A saved int64 scalar counter on ``layer``.

    Under ``tf.distribute`` only the first replica's update is applied (the optimizer's
    ``iterations`` does the same); the replicas offset their keys by their replica id instead.
    """
    return layer.add_weight(
        name=name,
        shape=(),
        dtype="int64",
        initializer="zeros",
        trainable=False,
        aggregation="only_first_replica",
    )


def _replica():
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: act as the only replica
        return tf.constant(0, tf.int64), 1
    return tf.cast(context.replica_id_in_sync_group, tf.int64), context.num_replicas_in_sync


def next_example_indices(counter, batch):
    """Global indices of this batch's examples; advances ``counter`` past the global batch.

    With ``R`` replicas each holding ``batch`` consecutive examples of the global batch (how
    ``tf.distribute`` splits it), replica ``r`` numbers its examples
    ``counter + r * batch + [0, batch)``, as ``dataset.enumerate()`` would.
    """
    replica, replicas = _replica()
    batch = tf.cast(batch, tf.int64)
    start = tf.identity(counter) + replica * batch
    counter.assign_add(batch * replicas)
    return start + tf.range(batch, dtype=tf.int64)


def next_batch_index(counter):
    """A key index unique per step and replica (``counter * R + r``); advances ``counter``."""
    replica, replicas = _replica()
    index = tf.identity(counter) * replicas + replica
    counter.assign_add(1)
    return index
