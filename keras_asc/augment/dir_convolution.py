"""Batched linear convolution by FFT, cropped to the input length (the DIR augmentation kernel).

CPJKU applies a device impulse response as ``scipy.signal.convolve(x, ir, "full")[:len(x)]``: a
causal full convolution truncated to the original length. :func:`fft_convolve` is the same
operation for a batch, with ``tf.signal`` so it runs in ``tf.data``, in a ``train_step`` and
under XLA.
"""

import math

import tensorflow as tf

from asc_core.errors import UserError


def _next_power_of_two(n):
    """Smallest power of two >= n (Python int or int32 scalar tensor)."""
    if isinstance(n, int):
        return 1 << max(n - 1, 0).bit_length()
    # Rounding in log2 can only overshoot an exact power of two, giving a (still correct)
    # twice larger FFT.
    exponent = tf.math.ceil(tf.math.log(tf.cast(n, tf.float64)) / math.log(2.0))
    return tf.cast(2.0**exponent, tf.int32)


def _static_or_dynamic(tensor, axis):
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def fft_convolve(x, irs):
    """Full linear convolution of each row of ``x`` with its own impulse response, cropped.

    ``y[b] = scipy.signal.convolve(x[b], irs[b])[:N]``. Only the first ``N`` taps of an impulse
    response can reach the first ``N`` outputs, so longer responses are truncated to ``N``
    first, and the FFT size is the next power of two >= ``N + min(M, N) - 1`` (65536 for a 1-s
    clip at 32 kHz and a 0.5-s response), which makes the circular convolution equal to the
    linear one on the kept samples. Zero padding at the end of an impulse response changes
    nothing, so a zero-padded IR bank can be used directly.

    The FFT runs in float32; the result has ``x``'s dtype.

    Args:
        x: float ``[B, N]`` signals, or ``[N]``.
        irs: float ``[B, M]`` impulse responses (one per row of ``x``), or ``[M]`` (then ``x``
            must be ``[N]`` too).

    Returns:
        ``[B, N]`` (or ``[N]``), the convolved signals.
    """
    x = tf.convert_to_tensor(x)
    irs = tf.convert_to_tensor(irs)
    if x.shape.rank != irs.shape.rank or x.shape.rank not in (1, 2):
        raise UserError(
            f"fft_convolve: x and irs must both be [B, N] and [B, M] (or both 1-D), got shapes "
            f"{x.shape} and {irs.shape}"
        )
    if x.shape.rank == 1:
        return fft_convolve(x[None, :], irs[None, :])[0]
    out_dtype = x.dtype
    n = _static_or_dynamic(x, 1)
    m = _static_or_dynamic(irs, 1)
    if isinstance(m, int) and isinstance(n, int):
        m = min(m, n)
        irs = irs[:, :m]
    else:
        m = tf.minimum(m, n)
        irs = irs[:, :m]
    fft_length = _next_power_of_two(n + m - 1)
    fft_arg = [fft_length] if isinstance(fft_length, int) else tf.reshape(fft_length, [1])
    spectrum = tf.signal.rfft(tf.cast(x, tf.float32), fft_length=fft_arg)
    spectrum *= tf.signal.rfft(tf.cast(irs, tf.float32), fft_length=fft_arg)
    y = tf.signal.irfft(spectrum, fft_length=fft_arg)[:, :n]
    return tf.cast(y, out_dtype)
