"""Small helpers shared by the PaSST layers (not public API)."""

import math

import keras

from asc_core.errors import UserError
from keras_asc.layers.fused_dense import FusedDense


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


def check_rank(layer, input_shape, rank, expected):
    """UserError naming `layer` unless `input_shape` has `rank` axes; `expected` describes them."""
    if len(input_shape) != rank:
        raise UserError(f"{layer.name}: expected {expected}, got shape {tuple(input_shape)}")


def check_patchout(layer, input_shape, axis, drop, what):
    """UserError naming `layer` when dropping `drop` of axis `axis` (`what`) leaves nothing."""
    size = input_shape[axis]
    if drop and size is not None and drop >= size:
        raise UserError(
            f"{layer.name}: patchout of {drop} {what} leaves nothing of the {size} in the input "
            f"of shape {tuple(input_shape)}; expected fewer than {size}"
        )


def linear(layer, units, name, input_shape, use_bias=True, activation=None):
    """PaSST's `nn.Linear` in `layer`: a trunc-normal `FusedDense` in its dtype policy, built."""
    dense = FusedDense(
        units,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=trunc_normal(),
        dtype=layer.dtype_policy,
        name=name,
    )
    dense.build(input_shape)
    return dense


class Patchout(keras.layers.Layer):
    """Base of the patchout layers: the seed of their draws and a shape check at build.

    Subclasses define `_check(input_shape)`, a UserError for a shape they cannot drop from,
    and call it again in `call`, where a traced shape may first be known.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="patchout_seed")

    def build(self, input_shape):
        self._check(input_shape)


def kept_sorted_indices(size, drop, seed_generator):
    """`size - drop` distinct indices out of `range(size)`, drawn at random and sorted.

    One draw serves the whole batch, and sorting keeps the patches in their original order
    (PaSST: `randperm(size)[:size - drop].sort()`). `size` may be a traced scalar.
    """
    permutation = keras.random.shuffle(keras.ops.arange(size, dtype="int32"), seed=seed_generator)
    return keras.ops.sort(permutation[: size - drop])


@keras.saving.register_keras_serializable(package="keras_asc")
def exact_gelu(x):
    """PyTorch's `nn.GELU()`: `x Φ(x) = 0.5 x erfc(-x / √2)`, the exact erf form.

    In float32 the forward is `tf.nn.gelu(x, approximate=False)`'s expression, so outputs are
    unchanged (and grappler still fuses it into a preceding matmul + bias in eval graphs). The
    gradient `Φ(x) + x φ(x)` is written out: autodiff of the forward (through `erfc`) takes
    about a dozen elementwise ops over the `[B, N, 3072]` MLP activations per block, this takes
    eight, and the PaSST-S train step is about 4 % faster so. A bfloat16/float16 `x` is computed
    in float32 and rounded once: TensorFlow's bfloat16 `erfc` took 4x its float32 time on Intel
    Xeon (AMX), and the mixed_bfloat16 PaSST-S train step is 9 % faster so (and the result is
    rounded once instead of at every op). Any shape; returns `x`'s dtype. A plain
    function (an activation Keras serializes by name) around the custom-gradient op.
    """
    return _exact_gelu(x)


@keras.ops.custom_gradient
def _exact_gelu(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    x = keras.ops.cast(x, "float32") if dtype in ("bfloat16", "float16") else x
    erfc = keras.ops.erfc(-x * keras.ops.cast(math.sqrt(0.5), x.dtype))
    outputs = keras.ops.cast(0.5 * x * erfc, dtype)

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        density = keras.ops.exp(-0.5 * keras.ops.square(x))
        slope = 0.5 * erfc + x * keras.ops.cast(1.0 / math.sqrt(2.0 * math.pi), x.dtype) * density
        return upstream * keras.ops.cast(slope, dtype)

    return outputs, grad
