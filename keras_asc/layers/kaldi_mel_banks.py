"""Kaldi-style triangular mel filterbanks, as PaSST's frontend builds them.

PaSST (``AugmentMelSTFT``) uses ``torchaudio.compliance.kaldi.get_mel_banks(n_mels, n_fft, sr,
fmin, fmax, vtln_low=100, vtln_high=-500, vtln_warp_factor=1.0)`` and appends one zero column
for the Nyquist bin. That bank is *not* librosa/Slaney/HTK: the mel scale is
``1127 ln(1 + f/700)``, the ``n_mels + 2`` band edges are equally spaced in mel between
``mel(fmin)`` and ``mel(fmax)``, the triangles peak at 1 and are evaluated at the FFT-bin centres
``k sr / n_fft`` (k < n_fft / 2), and nothing is area-normalised. With a warp factor of 1 the
VTLN options have no effect, so they are not parameters here.

Two builders with the same arithmetic:

- ``kaldi_mel_banks``: NumPy, for fixed ``fmin``/``fmax`` (eval); built once.
- ``kaldi_mel_banks_tf``: TensorFlow ops, for ``fmin``/``fmax`` drawn inside the graph (training
  jitter, a new bank per batch).

Both compute in float64 and return float32. torchaudio computes the per-bin mel values in float32
(torch's default dtype), where one rounding step of a mel value near 3500 (2.4e-4) is ~1e-5 of a
filter weight (the mel step is ~27); no float32 reimplementation reproduces torch's own ``log``
rounding, so the exact-arithmetic bank is the well-defined target: it equals torchaudio run with
float64 as default dtype to ~1e-12, and torchaudio's float32 bank to ~2e-5.
"""

import numpy as np
import tensorflow as tf

from asc_core.errors import UserError


def kaldi_mel_scale(freq_hz):
    """Kaldi mel scale ``1127 ln(1 + f / 700)`` (NumPy or Python scalar in, same out)."""
    return 1127.0 * np.log(1.0 + np.asarray(freq_hz) / 700.0)


def check_mel_bank_args(n_mels, n_fft, sample_rate, fmin, fmax):
    """Raises ``UserError`` unless the arguments give a valid Kaldi bank (torchaudio's checks)."""
    nyquist = 0.5 * sample_rate
    if int(n_mels) != n_mels or n_mels <= 3:
        raise UserError(f"n_mels={n_mels!r}: expected an integer > 3")
    if int(n_fft) != n_fft or n_fft <= 0 or n_fft % 2:
        raise UserError(f"n_fft={n_fft!r}: expected a positive even integer")
    if not 0.0 <= fmin < nyquist:
        raise UserError(f"fmin={fmin!r}: expected 0 <= fmin < sample_rate / 2 = {nyquist}")
    if not fmin < fmax <= nyquist:
        raise UserError(
            f"fmax={fmax!r}: expected fmin={fmin} < fmax <= sample_rate / 2 = {nyquist}"
        )


def kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax):
    """Kaldi mel filterbank with the zero Nyquist column, as PaSST uses it.

    Equal to ``pad(torchaudio.compliance.kaldi.get_mel_banks(n_mels, n_fft, sample_rate, fmin,
    fmax, 100.0, -500.0, 1.0)[0], (0, 1))``.

    Args:
        n_mels: int. Number of triangular filters (> 3).
        n_fft: int. FFT size (even); the bank covers ``n_fft // 2 + 1`` bins.
        sample_rate: number. Sampling rate in Hz.
        fmin: number. Lower edge of the first filter in Hz, ``0 <= fmin < sample_rate / 2``.
        fmax: number. Upper edge of the last filter in Hz, ``fmin < fmax <= sample_rate / 2``.
            (Unlike Kaldi, values <= 0 are not offsets from Nyquist: they are errors.)

    Returns:
        float32 array ``[n_mels, n_fft // 2 + 1]``; multiply a power spectrum
        ``[..., n_fft // 2 + 1, frames]`` from the left.
    """
    check_mel_bank_args(n_mels, n_fft, sample_rate, fmin, fmax)
    mel_low = kaldi_mel_scale(float(fmin))
    delta = (kaldi_mel_scale(float(fmax)) - mel_low) / (n_mels + 1)
    # Band edges: n_mels + 2 points equally spaced in mel; filter m spans edges m .. m + 2.
    left = mel_low + np.arange(n_mels, dtype=np.float64)[:, None] * delta
    center = left + delta
    right = left + 2.0 * delta
    mel = kaldi_mel_scale(np.arange(n_fft // 2, dtype=np.float64) * (sample_rate / n_fft))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    # PaSST pads the Nyquist bin with zeros to match the n_fft // 2 + 1 bins of the STFT.
    banks = np.pad(banks, [(0, 0), (0, 1)])
    return banks.astype(np.float32)


def kaldi_mel_banks_tf(n_mels, n_fft, sample_rate, fmin, fmax):
    """``kaldi_mel_banks`` with ``fmin``/``fmax`` as (possibly traced) scalar tensors.

    ``n_mels``, ``n_fft`` and ``sample_rate`` are Python numbers. ``fmin``/``fmax`` are not
    validated here (they are tensors); the caller keeps them inside the valid range.

    Returns:
        float32 tensor ``[n_mels, n_fft // 2 + 1]``.
    """
    fmin = tf.cast(fmin, tf.float64)
    fmax = tf.cast(fmax, tf.float64)
    mel_low = 1127.0 * tf.math.log(1.0 + fmin / 700.0)
    delta = (1127.0 * tf.math.log(1.0 + fmax / 700.0) - mel_low) / float(n_mels + 1)
    left = mel_low + tf.range(n_mels, dtype=tf.float64)[:, None] * delta
    center = left + delta
    right = left + 2.0 * delta
    # The FFT-bin mel values do not depend on the draw: a float64 constant.
    mel = tf.constant(
        kaldi_mel_scale(np.arange(n_fft // 2, dtype=np.float64) * (sample_rate / n_fft))[None, :]
    )
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = tf.maximum(tf.constant(0.0, tf.float64), tf.minimum(up, down))
    return tf.cast(tf.pad(banks, [[0, 0], [0, 1]]), tf.float32)
