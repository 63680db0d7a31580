"""IR-level metrics of the DIR generator (NumPy; research notes Sec. 4.6).

All metrics compare a generated IR with the measured IR of the same condition, both the stored
1024-sample windows (multi-dirs convention: 32 kHz, cut 16 samples before the group onset,
half-Kaiser taper with beta 2, peak normalised to 1):

* :func:`mse_per_ir`: time-domain mean squared error. The paper's "final MSE of 0.00527" is the
  reference point, but it depends on those preprocessing conventions (window position, taper,
  normalisation), which the paper does not state, so the numbers are not directly comparable.
* :func:`log_spectral_distance`: ``sqrt(mean_f (20 log10 |H(f)| - 20 log10 |G(f)|)^2)`` in dB
  over the rFFT bins of the window in [50 Hz, 16 kHz] (31.25 Hz bins), with a 1e-7 magnitude
  floor.
* :func:`polar_pattern_errors`: the dB error of the angle-dependent octave-band level relative
  to 0 degrees: for each configuration and distance, ``|(Lg(theta, f) - Lg(0, f)) -
  (Lm(theta, f) - Lm(0, f))|`` averaged over the octave bands (0.5-8 kHz centres), where ``L``
  is the band energy in dB of the generated (g) or measured (m) IR. Because every stored IR is
  peak-normalised, this compares how the *spectral shape* changes with angle, not absolute
  sensitivity.
"""

import numpy as np

OCTAVE_CENTRES_HZ = (500.0, 1000.0, 2000.0, 4000.0, 8000.0)
LSD_BAND_HZ = (50.0, 16000.0)
MAGNITUDE_FLOOR = 1e-7


def mse_per_ir(measured, generated):
    """``[N]`` mean squared error of ``[N, L]`` IRs."""
    measured = np.asarray(measured, np.float64)
    generated = np.asarray(generated, np.float64)
    return np.mean((measured - generated) ** 2, axis=-1)


def _band(length, sample_rate, fmin, fmax):
    freqs = np.fft.rfftfreq(length, 1.0 / sample_rate)
    band = (freqs >= fmin) & (freqs <= fmax)
    if not band.any():
        raise ValueError(f"no FFT bin in [{fmin}, {fmax}] Hz")
    return band


def log_spectral_distance(
    measured,
    generated,
    sample_rate=32000,
    fmin=LSD_BAND_HZ[0],
    fmax=LSD_BAND_HZ[1],
    floor=MAGNITUDE_FLOOR,
):
    """``[N]`` log-spectral distance in dB (see the module docstring)."""
    measured = np.asarray(measured, np.float64)
    generated = np.asarray(generated, np.float64)
    band = _band(measured.shape[-1], sample_rate, fmin, fmax)
    hm = np.abs(np.fft.rfft(measured, axis=-1))[..., band]
    hg = np.abs(np.fft.rfft(generated, axis=-1))[..., band]
    diff = 20.0 * (np.log10(hm + floor) - np.log10(hg + floor))
    return np.sqrt(np.mean(diff**2, axis=-1))


def octave_band_levels(irs, sample_rate=32000, centres=OCTAVE_CENTRES_HZ):
    """``[N, K]`` energy in dB of the octave bands ``[fc / sqrt 2, fc sqrt 2)``."""
    irs = np.asarray(irs, np.float64)
    freqs = np.fft.rfftfreq(irs.shape[-1], 1.0 / sample_rate)
    power = np.abs(np.fft.rfft(irs, axis=-1)) ** 2
    levels = []
    for fc in centres:
        band = (freqs >= fc / np.sqrt(2.0)) & (freqs < fc * np.sqrt(2.0))
        if not band.any():
            raise ValueError(f"the octave band at {fc} Hz holds no FFT bin")
        levels.append(10.0 * np.log10(power[..., band].sum(axis=-1) + 1e-20))
    return np.stack(levels, axis=-1)


def polar_pattern_error(measured_levels, generated_levels, measured_reference, generated_reference):
    """``[N]`` mean over bands of the relative-level error in dB.

    Args:
        measured_levels, generated_levels: ``[N, K]`` band levels at the angles of interest.
        measured_reference, generated_reference: ``[K]`` band levels at 0 degrees.
    """
    measured_rel = np.asarray(measured_levels) - np.asarray(measured_reference)
    generated_rel = np.asarray(generated_levels) - np.asarray(generated_reference)
    return np.mean(np.abs(generated_rel - measured_rel), axis=-1)


def polar_pattern_errors(
    records, measured, generated, generated_on_axis, sample_rate=32000, centres=OCTAVE_CENTRES_HZ
):
    """Per-record polar-pattern error; NaN where it is undefined.

    Args:
        records: list of N record dicts (``microphone``, ``pattern``, ``variant``,
            ``distance_cm``, ``angle_deg``).
        measured, generated: ``[N, L]`` IRs of those records.
        generated_on_axis: dict ``(microphone, pattern, variant, distance_cm)`` -> ``[L]``
            generated IR at 0 degrees.
        sample_rate: Hz.
        centres: octave-band centres in Hz.

    Returns:
        ``[N]`` errors in dB: NaN for a record at 0 degrees (zero by definition) or whose group
        has no measured 0-degree IR among ``records``.
    """
    measured_levels = octave_band_levels(measured, sample_rate, centres)
    generated_levels = octave_band_levels(generated, sample_rate, centres)
    measured_on_axis = {}
    for i, r in enumerate(records):
        if r["angle_deg"] == 0:
            measured_on_axis[_group(r)] = measured_levels[i]
    errors = np.full(len(records), np.nan)
    for i, r in enumerate(records):
        key = _group(r)
        if r["angle_deg"] == 0 or key not in measured_on_axis or key not in generated_on_axis:
            continue
        reference = octave_band_levels(
            np.asarray(generated_on_axis[key])[None], sample_rate, centres
        )[0]
        errors[i] = polar_pattern_error(
            measured_levels[i : i + 1],
            generated_levels[i : i + 1],
            measured_on_axis[key],
            reference,
        )[0]
    return errors


def _group(record):
    return (record["microphone"], record["pattern"], record["variant"], record["distance_cm"])


def group_key(record):
    """The (configuration, distance) key of the polar-pattern error."""
    return _group(record)
