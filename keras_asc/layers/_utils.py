"""Small helpers shared by the PaSST layers (not public API)."""

import keras


def as_pair(value, what):
    """`10` → `(10, 10)`; `(10, 12)` → `(10, 12)`; anything else is a ValueError naming `what`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"`{what}` must be an int or a pair of ints, got {value!r}")
    return pair


def trunc_normal():
    """PaSST's `trunc_normal_(std=.02)` init for tokens, position embeddings and Linear kernels."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def kept_sorted_indices(size, drop, seed_generator):
    """`size - drop` distinct indices out of `range(size)`, drawn at random and sorted.

    One draw serves the whole batch, and sorting keeps the patches in their original order
    (PaSST: `randperm(size)[:size - drop].sort()`). `size` may be a traced scalar.
    """
    permutation = keras.random.shuffle(keras.ops.arange(size, dtype="int32"), seed=seed_generator)
    return keras.ops.sort(permutation[: size - drop])
