"""Fixed recording-device models of the synthetic TAU22-like corpus.

A device is a member of the microphone family of ``synthetic_mics`` (linear, minimum phase)
followed by a fixed non-linearity (dynamic range compression and soft clipping) and self-noise.
The models do not depend on the corpus seed: a device keeps its identity across corpora.

- ``a``: near-flat reference (the majority device, like the binaural rig of TAU22).
- ``b``, ``c``: consumer devices: band-limited (high-pass, low-pass), a presence bump or dip,
  compression; ``c`` adds soft clipping.
- ``s1``-``s3``: "simulated" devices: further band-limiting EQs plus compression.
- ``s4``-``s6`` (evaluation only): microphones of the family, inside the ranges that the DIR sets
  draw from (``synthetic_mics.MIC_KINDS``), in regions the training devices never show: a
  figure-8 ribbon close up (proximity bass boost, dark top), a cardioid heard from 150 degrees
  off axis (rear notch, treble loss), and a vintage dynamic with a strong narrow resonance. All
  training devices cut the bass and have at most mild resonances, so nothing in the training
  audio looks like these; the synthetic MicIRP and Surrey DIR sets do.
"""

import functools

import numpy as np
import scipy.fft

from tfrecords_builder.synthetic_mics import response_ir
from tfrecords_builder.synthetic_scenes import upsample_linear

IR_LENGTH = 2048

# The linear part, a member of the synthetic_mics family (`magnitude_db` arguments):
# (hp_hz, hp_order, lp_hz, lp_order, tilt in dB/octave, resonances as (centre Hz, gain dB, width
# in octaves)); None leaves an argument out.
_RESPONSES = {
    "a": (25.0, 1, 19000.0, 2, None, None),
    "b": (300.0, 2, 8000.0, 3, None, [(2500.0, 5.0, 0.5)]),
    "c": (150.0, 2, 11000.0, 2, None, [(1200.0, -6.0, 0.4), (5500.0, 6.0, 0.4)]),
    "s1": (100.0, 1, 7000.0, 2, None, [(800.0, 4.0, 0.7)]),
    "s2": (400.0, 1, 14000.0, 1, 1.5, None),
    "s3": (80.0, 2, 5000.0, 4, None, [(3000.0, -6.0, 0.5)]),
    "s4": (40.0, 1, 9000.0, 1, -1.0, [(120.0, 3.0, 0.6)]),
    "s5": (30.0, 1, 17000.0, 2, None, [(9000.0, 5.0, 0.5)]),
    "s6": (120.0, 2, 9000.0, 4, None, [(1800.0, 10.0, 0.25), (4500.0, -8.0, 0.3)]),
}
_RESPONSE_KEYS = ("hp_hz", "hp_order", "lp_hz", "lp_order", "tilt", "resonances")

# The rest of the chain: (polar part as (pattern, angle in degrees, distance in m) or None for
# on axis and far, compression as (threshold dB, ratio) or None, soft-clipping drive or None,
# self-noise dB, gain dB).
_CHAINS = {
    "a": (None, None, None, -90.0, 0.0),
    "b": (None, (-32.0, 3.0), None, -72.0, 2.0),
    "c": (None, (-30.0, 2.0), 3.0, -74.0, 1.0),
    "s1": (None, (-34.0, 4.0), None, -80.0, 0.0),
    "s2": (None, (-30.0, 2.5), None, -80.0, -1.0),
    "s3": (None, (-32.0, 3.0), 2.0, -80.0, 1.0),
    # figure-8 ribbon at 50 cm on axis: proximity bass boost, dark top
    "s4": (("bidirectional", 0.0, 0.5), (-32.0, 3.0), None, -80.0, -3.0),
    # cardioid condenser, source 150 degrees off axis at 1.25 m
    "s5": (("cardioid", 150.0, 1.25), (-30.0, 2.5), None, -80.0, 9.0),
    # vintage dynamic: narrow +10 dB resonance, dip, steep low-pass
    "s6": (None, (-32.0, 3.0), 2.0, -80.0, -4.0),
}


def _device_model(response, polar, compression, drive, noise_db, gain_db):
    """One entry of `DEVICE_MODELS` (its key order is that of the corpus manifest)."""
    model = {"response": {k: v for k, v in zip(_RESPONSE_KEYS, response) if v is not None}}
    if polar is not None:
        model["polar"] = polar
    model.update(compression=compression, drive=drive, noise_db=noise_db, gain_db=gain_db)
    return model


DEVICE_MODELS = {
    device: _device_model(_RESPONSES[device], *_CHAINS[device]) for device in _RESPONSES
}


def device_ir(device, sample_rate):
    """Linear part of a device model: minimum-phase IR `[IR_LENGTH]` at `sample_rate`."""
    model = DEVICE_MODELS[device]
    pattern, angle, distance = model.get("polar", ("omni", 0.0, None))
    return response_ir(sample_rate, IR_LENGTH, model["response"], pattern, angle, distance)


def _compress(x, sample_rate, threshold_db, ratio):
    """Feed-forward RMS compressor with 10-ms frames and ~50-ms smoothing, applied per sample."""
    frame = sample_rate // 100
    num_frames = len(x) // frame
    power = np.mean(np.square(x[: num_frames * frame]).reshape(num_frames, frame), axis=1)
    power = np.convolve(power, np.ones(5) / 5.0, mode="same")
    level_db = 10.0 * np.log10(power + 1e-12)
    gain_db = np.minimum(0.0, (threshold_db - level_db) * (1.0 - 1.0 / ratio))
    # Gain value i applies at sample i * frame; repeat the last one to cover a partial frame.
    gain = 10.0 ** (np.concatenate([gain_db, gain_db[-1:], gain_db[-1:]]) / 20.0)
    return x * upsample_linear(gain, frame, len(x))


@functools.lru_cache(maxsize=32)
def device_transfer(device, sample_rate, num_samples):
    """rfft `[num_samples // 2 + 1]` (complex64, read-only) of `device_ir` zero-padded."""
    h = scipy.fft.rfft(device_ir(device, sample_rate), num_samples).astype(np.complex64)
    h.flags.writeable = False
    return h


def apply_device(x, sample_rate, device, rng, spectrum=None):
    """Records a scene signal with a device.

    The linear part is a circular convolution (one FFT pair): the scene textures are
    stationary, so the wrapped 2048-tap tail sounds like the scene went on before the
    recording started, where a linear convolution would fade in from silence.

    Args:
        x: float32 `[samples]` scene signal.
        sample_rate: Hz.
        device: a key of `DEVICE_MODELS`.
        rng: generator for the device self-noise.
        spectrum: optional `scipy.fft.rfft(x)`, shared by parallel recordings of one scene.

    Returns:
        float32 `[samples]`, clipped to the 24-bit range.
    """
    model = DEVICE_MODELS[device]
    if spectrum is None:
        spectrum = scipy.fft.rfft(x)
    y = scipy.fft.irfft(spectrum * device_transfer(device, sample_rate, len(x)), len(x))
    if model["compression"] is not None:
        threshold_db, ratio = model["compression"]
        y = _compress(y, sample_rate, threshold_db, ratio)
        # Make-up gain, as phone AGCs do, so the level stays comparable to the input.
        y *= np.float32(10.0 ** ((-threshold_db - 26.0) * (1.0 - 1.0 / ratio) / 20.0))
    y *= np.float32(10.0 ** (model["gain_db"] / 20.0))
    if model["drive"] is not None:
        drive = np.float32(model["drive"])
        y = np.tanh(drive * y) / drive
    noise_gain = np.float32(10.0 ** (model["noise_db"] / 20.0))
    y += rng.standard_normal(len(y), dtype=np.float32) * noise_gain
    return np.clip(y, -1.0, 1.0 - 2.0**-23).astype(np.float32)
