"""Loss terms of the DIR generator GAN (FAST-RIR, official code; research notes Sec. 1.4).

With ``D`` the discriminator's probability, ``c`` the conditions, ``h`` the measured IRs and
``g = G(c)`` the generated ones (a batch of B)::

    L_D = s · [ BCE(D(h, c), 1) + w · ( BCE(D(g, c), 0) + BCE(D(h[:-1], c[1:]), 0) ) ]
    L_G = s · [ a · BCE(D(g, c), 1) + m · MSE(h, g) + k · S(h, g) ]

FAST-RIR: ``s = 5`` (``errD_total = 5·errD``, ``errG_total = 5·errG``), ``w = 0.5``, ``a = 1``,
``m = 5·L`` (``5 · 4096 · nn.MSELoss()``, L the IR length), and a gradient-free T60 term that is
meaningless for 32-ms anechoic microphone IRs and is dropped. The third D term is the
matching-aware "wrong pair": a real IR shown with the next example's condition is labelled fake.
``S`` is our optional, differentiable replacement (a documented deviation, ``k = 0`` turns it
off): the mean squared difference of log magnitudes over the FFT bins in ``[fmin, fmax]``::

    S(h, g) = mean_{b, f in band} ( log(|H_b(f)| + eps) - log(|G_b(f)| + eps) )^2

BCE is Keras' ``binary_crossentropy`` on probabilities (clipped to [1e-7, 1 - 1e-7]), mean over
the batch; MSE is the mean over every sample of every IR.
"""

import math

import keras


def bce(probabilities, target):
    """Mean binary cross-entropy of probabilities ``[B]`` against a constant target 0 or 1."""
    p = keras.ops.convert_to_tensor(probabilities)
    t = keras.ops.full_like(p, float(target))
    return keras.ops.mean(keras.ops.binary_crossentropy(t, p, from_logits=False))


def discriminator_loss(real, fake, wrong, wrong_pair_weight=0.5, loss_scale=5.0):
    """``L_D`` from D's probabilities on real, fake and wrong-condition pairs (scalar)."""
    return loss_scale * (bce(real, 1) + wrong_pair_weight * (bce(fake, 0) + bce(wrong, 0)))


def mse(real, fake):
    """Mean squared error over every sample of ``[B, L]`` IRs (scalar)."""
    return keras.ops.mean(keras.ops.square(keras.ops.subtract(real, fake)))


def band_bins(length, sample_rate, fmin, fmax):
    """``(lo, hi)``: the rFFT bins ``lo <= k < hi`` of an ``length``-point FFT in [fmin, fmax]."""
    lo = max(0, math.ceil(fmin * length / sample_rate))
    hi = min(length // 2, math.floor(fmax * length / sample_rate)) + 1
    if hi <= lo:
        raise ValueError(
            f"no FFT bin of a {length}-point FFT at {sample_rate} Hz lies in [{fmin}, {fmax}] Hz"
        )
    return lo, hi


def log_magnitude(irs, lo, hi, eps=1e-5):
    """``log(|rFFT(irs)| + eps)`` over bins ``lo:hi``; ``[B, L]`` → ``[B, hi - lo]``."""
    real, imag = keras.ops.rfft(keras.ops.convert_to_tensor(irs, "float32"))
    magnitude = keras.ops.sqrt(real[:, lo:hi] ** 2 + imag[:, lo:hi] ** 2 + 1e-20)
    return keras.ops.log(magnitude + eps)


def log_spectral_loss(real, fake, sample_rate=32000, fmin=50.0, fmax=16000.0, eps=1e-5):
    """``S(h, g)`` of the module docstring (scalar, natural-log units squared)."""
    length = real.shape[-1]
    lo, hi = band_bins(length, sample_rate, fmin, fmax)
    diff = log_magnitude(real, lo, hi, eps) - log_magnitude(fake, lo, hi, eps)
    return keras.ops.mean(keras.ops.square(diff))


def generator_loss(
    fake_probabilities,
    real,
    fake,
    adversarial_weight=1.0,
    mse_weight=5120.0,
    spectral_weight=0.0,
    loss_scale=5.0,
    sample_rate=32000,
    fmin=50.0,
    fmax=16000.0,
):
    """``L_G`` and its parts.

    Returns:
        ``(total, {"adversarial": BCE(D(g, c), 1), "mse": MSE, "spectral": S})``; ``spectral``
        is 0 (not computed) when ``spectral_weight`` is 0.
    """
    adversarial = bce(fake_probabilities, 1)
    error = mse(real, fake)
    if spectral_weight:
        spectral = log_spectral_loss(real, fake, sample_rate, fmin, fmax)
    else:
        spectral = keras.ops.zeros((), "float32")
    total = loss_scale * (
        adversarial_weight * adversarial + mse_weight * error + spectral_weight * spectral
    )
    return total, {"adversarial": adversarial, "mse": error, "spectral": spectral}
