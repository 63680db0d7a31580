"""IR-level metrics of the DIR generator against closed-form values."""

import numpy as np

from keras_asc.irgen import metrics

SR, L = 32000, 1024


def _irs(n=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(L) / SR
    return np.exp(-t * rng.uniform(100, 400, (n, 1))) * rng.normal(0, 1, (n, L))


def test_mse_and_log_spectral_distance():
    h = _irs()
    np.testing.assert_allclose(metrics.mse_per_ir(h, h), 0.0)
    np.testing.assert_allclose(metrics.mse_per_ir(h, 0 * h), np.mean(h**2, axis=1))
    np.testing.assert_allclose(metrics.log_spectral_distance(h, h), 0.0, atol=1e-9)
    # A gain of 2 is 20 log10(2) dB at every bin (the floor is negligible here).
    np.testing.assert_allclose(metrics.log_spectral_distance(h, 2 * h), 20 * np.log10(2), rtol=1e-5)
    # Only bins in [50 Hz, 16 kHz] count: a change at DC is invisible.
    shifted = h + 1e-3 * (np.fft.irfft(np.eye(L // 2 + 1)[0], L))[None]
    np.testing.assert_allclose(metrics.log_spectral_distance(h, shifted), 0.0, atol=1e-9)


def test_octave_band_levels_of_a_tone():
    t = np.arange(L) / SR
    tone = np.sin(2 * np.pi * 1000.0 * t)[None]  # 1 kHz lies exactly on bin 32
    levels = metrics.octave_band_levels(tone, SR)
    assert levels.shape == (1, 5)
    assert np.argmax(levels[0]) == 1  # the 1 kHz band
    np.testing.assert_allclose(levels[0, 1], 10 * np.log10((L / 2) ** 2), rtol=1e-6)


def test_polar_pattern_error():
    h = _irs(3, seed=1)
    records = [
        {"microphone": "M", "pattern": "cardioid", "variant": "", "distance_cm": 50, "angle_deg": a}
        for a in (0, 90, 180)
    ]
    key = ("M", "cardioid", "", 50)
    # Perfect generation: no error; 0 degrees itself is undefined (NaN).
    errors = metrics.polar_pattern_errors(records, h, h, {key: h[0]})
    assert np.isnan(errors[0]) and np.allclose(errors[1:], 0.0, atol=1e-9)
    # The generator gets the 90-degree IR 6 dB too loud relative to its own 0 degrees.
    generated = h.copy()
    generated[1] *= 2.0
    errors = metrics.polar_pattern_errors(records, h, generated, {key: h[0]})
    np.testing.assert_allclose(errors[1], 20 * np.log10(2), rtol=1e-6)
    np.testing.assert_allclose(errors[2], 0.0, atol=1e-9)
    # A global gain of the generator (same at 0 degrees) is not a pattern error.
    errors = metrics.polar_pattern_errors(records, h, 3 * h, {key: 3 * h[0]})
    np.testing.assert_allclose(errors[1:], 0.0, atol=1e-9)
    # No measured 0-degree IR in the group: undefined.
    errors = metrics.polar_pattern_errors(records[1:], h[1:], h[1:], {key: h[0]})
    assert np.all(np.isnan(errors))
