"""Tests of the numpy IR helpers: onset, Kaiser windowing, normalisation, resampling gain."""

import numpy as np
import pytest
import soxr
from scipy import signal

from tfrecords_builder import ir_processing as irp


def _decaying_ir(length, delay, rng=None, noise=0.0, first=0.3):
    """A synthetic IR: silence, then a rising first sample of ``first``, a peak of 1 two samples
    later and a 2-kHz exponentially decaying ringing; optional white noise of std ``noise``."""
    ir = np.zeros(length)
    n = np.arange(length - delay)
    body = np.exp(-n / 60.0) * np.cos(2 * np.pi * 2000 * n / 32000)
    body[0], body[1], body[2] = first, 0.7, 1.0
    ir[delay:] = body
    if noise:
        ir = ir + noise * rng.standard_normal(length)
    return ir


# === Onset detection ===


@pytest.mark.parametrize("delay", [0, 1, 47, 117, 466, 3000])
def test_onset_on_a_clean_ir_is_the_known_delay(delay):
    ir = _decaying_ir(8000, delay)
    assert irp.detect_onset(ir) == delay


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("noise_db", [-60.0, -40.0, -26.0])
def test_onset_with_a_noise_floor_is_the_known_delay(seed, noise_db):
    rng = np.random.default_rng(seed)
    delay = int(rng.integers(200, 5000))
    # 10 s of 32 kHz samples: the noise maximum is ~5 sigma, i.e. near the -20 dB threshold at
    # -26 dB noise; the noise-floor guard must stop it from being taken for the onset.
    ir = _decaying_ir(320000, delay, rng, noise=10 ** (noise_db / 20), first=0.5)
    assert irp.detect_onset(ir) == delay


def test_noise_floor_guard_is_what_rejects_noise_before_the_onset():
    rng = np.random.default_rng(3)
    ir = _decaying_ir(32000, 1000, rng, noise=10 ** (-24 / 20), first=0.5)
    assert irp.detect_onset(ir) == 1000
    # Without the guard, a noise sample inside the look-back reaches -20 dB re peak first.
    assert irp.detect_onset(ir, noise_factor=0.0) < 1000


def test_onset_ignores_clicks_outside_the_lookback():
    ir = _decaying_ir(8000, 2000)
    ir[100] = 0.8  # a click long before the direct sound, but smaller than the peak
    assert irp.detect_onset(ir, lookback=160) == 2000
    assert irp.detect_onset(ir, lookback=5000) == 100


def test_onset_threshold_sets_how_early_the_onset_is():
    ir = _decaying_ir(4000, 500, first=0.05)  # -26 dB first sample, then 0.7, then the peak
    assert irp.detect_onset(ir, threshold_db=-20.0) == 501
    assert irp.detect_onset(ir, threshold_db=-30.0) == 500


def test_onset_uses_the_magnitude_so_polarity_does_not_matter():
    ir = _decaying_ir(4000, 321)
    assert irp.detect_onset(-ir) == 321


@pytest.mark.parametrize(
    "ir, kwargs, message",
    [
        (np.zeros(100), {}, "silent"),
        (np.zeros(0), {}, "non-empty 1-D"),
        (np.ones((2, 10)), {}, "non-empty 1-D"),
        (np.ones(10), {"threshold_db": 3.0}, "threshold_db must be <= 0"),
        (np.ones(10), {"lookback": -1}, "must be >= 0"),
    ],
)
def test_onset_rejects_bad_input(ir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        irp.detect_onset(ir, **kwargs)


def test_noise_level_estimates_the_gaussian_std():
    rng = np.random.default_rng(0)
    assert irp.noise_level(0.01 * rng.standard_normal(100000)) == pytest.approx(0.01, rel=0.02)
    assert irp.noise_level(np.zeros(50)) == 0.0


# === Window ===


@pytest.mark.parametrize("pre_roll", [0, 16, 100])
def test_half_window_keeps_the_direct_sound_and_tapers_the_tail(pre_roll):
    w = irp.ir_window(1024, beta=2.0, pre_roll=pre_roll, mode="half")
    assert w.shape == (1024,)
    np.testing.assert_array_equal(w[:pre_roll], 1.0)
    assert w[pre_roll] > 0.9999
    assert np.all(np.diff(w[pre_roll:]) <= 0)
    # The falling half of a symmetric Kaiser window ends at 1 / I0(beta).
    assert w[-1] == pytest.approx(1 / np.i0(2.0), rel=1e-3)
    tail = 1024 - pre_roll
    np.testing.assert_allclose(w[pre_roll:], np.kaiser(2 * tail, 2.0)[tail:])


def test_full_window_is_the_symmetric_kaiser():
    w = irp.ir_window(1024, beta=2.0, pre_roll=16, mode="full")
    np.testing.assert_allclose(w, np.kaiser(1024, 2.0))
    np.testing.assert_allclose(w, w[::-1])
    np.testing.assert_allclose(w, signal.windows.kaiser(1024, 2.0, sym=True))
    assert w[16] < 0.5  # why "half" is the default: the direct sound would lose ~7 dB


def test_beta_zero_is_rectangular():
    np.testing.assert_array_equal(irp.ir_window(64, beta=0.0, pre_roll=8), np.ones(64))
    np.testing.assert_array_equal(irp.ir_window(64, beta=0.0, mode="full"), np.ones(64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length": 0}, "length must be > 0"),
        ({"length": 8, "pre_roll": 8}, r"pre_roll must be in \[0, 8\)"),
        ({"length": 8, "beta": -1.0}, "beta must be >= 0"),
        ({"length": 8, "mode": "hann"}, "window mode must be one of"),
    ],
)
def test_window_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        irp.ir_window(**kwargs)


def test_cut_window_puts_the_onset_at_the_pre_roll_and_zero_pads():
    ir = np.arange(1, 101, dtype=float)
    np.testing.assert_array_equal(irp.cut_window(ir, 50, 8, pre_roll=2), np.arange(49, 57))
    # The IR starts less than pre_roll before the onset: zeros in front.
    np.testing.assert_array_equal(irp.cut_window(ir, 1, 5, pre_roll=3), [0, 0, 1, 2, 3])
    # The IR ends inside the window: zeros behind.
    np.testing.assert_array_equal(irp.cut_window(ir, 98, 5, pre_roll=1), [98, 99, 100, 0, 0])


def test_window_ir_combines_onset_cut_and_taper():
    ir = _decaying_ir(20000, 777)
    out, onset = irp.window_ir(ir, length=1024, pre_roll=16, beta=2.0)
    assert onset == 777
    assert out.shape == (1024,)
    np.testing.assert_array_equal(out[:16], 0.0)
    expected = ir[761 : 761 + 1024] * irp.ir_window(1024, 2.0, 16, "half")
    np.testing.assert_allclose(out, expected)
    out2, onset2 = irp.window_ir(ir, length=1024, pre_roll=16, onset=700)
    assert onset2 == 700
    np.testing.assert_allclose(out2, ir[684 : 684 + 1024] * irp.ir_window(1024, 2.0, 16, "half"))


# === Normalisation ===


def test_normalisation_rules():
    ir = np.array([0.1, -0.5, 0.25, 0.0])
    np.testing.assert_array_equal(irp.normalize_ir(ir, "none"), ir)
    peak = irp.normalize_ir(ir, "peak")
    np.testing.assert_allclose(peak, [0.2, -1.0, 0.5, 0.0])
    energy = irp.normalize_ir(ir, "energy")
    assert np.sum(energy**2) == pytest.approx(1.0)
    np.testing.assert_allclose(energy / energy[1], ir / ir[1])


def test_normalise_none_returns_a_copy():
    ir = np.array([1.0, 2.0])
    out = irp.normalize_ir(ir, "none")
    out[0] = 5.0
    assert ir[0] == 1.0


@pytest.mark.parametrize("mode", ["peak", "energy"])
def test_normalising_a_silent_ir_fails(mode):
    with pytest.raises(ValueError, match=f"cannot apply '{mode}' normalisation to a silent"):
        irp.normalize_ir(np.zeros(8), mode)


def test_unknown_normalisation_fails():
    with pytest.raises(ValueError, match="normalisation must be one of"):
        irp.normalize_ir(np.ones(3), "rms")


# === Resampling ===


def test_resampling_gain_values():
    assert irp.resampling_gain(48000, 32000) == 1.5
    assert irp.resampling_gain(44100, 32000, "filter") == pytest.approx(1.378125)
    assert irp.resampling_gain(48000, 32000, "signal") == 1.0
    with pytest.raises(ValueError, match="resample gain mode must be one of"):
        irp.resampling_gain(48000, 32000, "librosa")


def _response_db(ir, rate, freqs):
    _, h = signal.freqz(ir, worN=freqs, fs=rate)
    return 20 * np.log10(np.abs(h))


@pytest.mark.parametrize("source_rate", [44100, 48000])
def test_resampling_with_filter_gain_keeps_the_frequency_response(source_rate):
    # A known IR: a 2nd-order resonance at 3 kHz followed by a gentle 9-kHz low-pass, 60 ms long.
    b1, a1 = signal.iirpeak(3000, 2.0, fs=source_rate)
    b2, a2 = signal.butter(2, 9000, fs=source_rate)
    impulse = np.zeros(int(0.06 * source_rate))
    impulse[40] = 1.0
    ir = signal.lfilter(b2, a2, signal.lfilter(b1, a1, impulse) + 0.2 * impulse)
    resampled = soxr.resample(ir, source_rate, 32000) * irp.resampling_gain(source_rate, 32000)
    freqs = np.linspace(50, 14000, 300)
    diff = _response_db(resampled, 32000, freqs) - _response_db(ir, source_rate, freqs)
    assert np.max(np.abs(diff)) < 0.1
    # Without the gain the level drops by 20*log10(32000/source_rate) dB at every frequency.
    signal_diff = diff - 20 * np.log10(irp.resampling_gain(source_rate, 32000))
    np.testing.assert_allclose(signal_diff, 20 * np.log10(32000 / source_rate), atol=0.1)
