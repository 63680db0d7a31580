"""Synthetic acoustic-scene textures for the TAU22-like corpus (numpy only).

Each scene is a recipe: a list of components (shaped noise beds, tonal sources, event trains),
each with a level in dB and an optional amplitude envelope. Scenes differ in spectral colour
*and* in temporal texture (event types and rates, tonal content, modulation), so a model can
separate them without relying on colour alone; that matters because device colorations change
colour (see ``synthetic.py``). Variation inside a scene comes from per-location jitter
(`location_params`: levels, slopes, rates, pitches, occasional missing components) and
per-segment jitter in `render_scene`.
"""

import functools

import numpy as np
import scipy.fft

# (component type, params, level dB, envelope or None); envelope = (kind, rate Hz, depth[, key]).
# Components sharing an envelope key get the same envelope (e.g. a passing car: rumble + hiss).
SCENE_RECIPES = {
    "airport": [
        ("noise", {"slope": -3.0, "lo": 40.0, "hi": 12000.0}, 0.0, ("swell", 0.08, 0.3)),
        ("noise", {"slope": -9.0, "lo": 30.0, "hi": 500.0}, -3.0, ("swell", 0.05, 0.8)),
        ("noise", {"slope": -1.0, "lo": 300.0, "hi": 3500.0}, -9.0, ("syllabic", 4.0, 1.0)),
        ("events", {"kind": "chime", "rate": 0.25, "freq": 650.0}, -2.0, None),
    ],
    "bus": [
        ("noise", {"slope": -6.0, "lo": 20.0, "hi": 6000.0}, 0.0, ("sine", 0.25, 0.3)),
        ("tone", {"freq": 85.0, "harmonics": 6, "rolloff": 4.0, "drift": 0.03}, -5.0, None),
        ("events", {"kind": "click", "rate": 2.0, "freq": 2500.0}, -12.0, None),
        ("noise", {"slope": -1.0, "lo": 300.0, "hi": 3500.0}, -14.0, ("syllabic", 4.0, 1.0)),
    ],
    "metro": [
        ("noise", {"slope": -4.5, "lo": 30.0, "hi": 8000.0}, 0.0, ("swell", 0.2, 0.5)),
        ("events", {"kind": "rail", "rate": 2.2, "freq": 1500.0}, -3.0, None),
        (
            "tone",
            {"freq": 2800.0, "harmonics": 2, "rolloff": 8.0, "drift": 0.02},
            -14.0,
            ("swell", 0.15, 1.5),
        ),
        ("noise", {"slope": -8.0, "lo": 20.0, "hi": 300.0}, -4.0, None),
    ],
    "metro_station": [
        ("noise", {"slope": -2.0, "lo": 100.0, "hi": 10000.0}, -4.0, None),
        ("noise", {"slope": -1.0, "lo": 250.0, "hi": 3500.0}, 0.0, ("syllabic", 4.5, 1.0)),
        ("events", {"kind": "beep", "rate": 0.25, "freq": 1800.0}, -6.0, None),
        ("noise", {"slope": -7.0, "lo": 30.0, "hi": 400.0}, -8.0, ("swell", 0.1, 1.0)),
    ],
    "park": [
        ("noise", {"slope": -7.0, "lo": 20.0, "hi": 2500.0}, 0.0, ("swell", 0.12, 0.9)),
        ("events", {"kind": "chirp", "rate": 2.5, "freq": 3500.0}, 0.0, None),
        ("noise", {"slope": 0.0, "lo": 2000.0, "hi": 9000.0}, -16.0, ("swell", 0.3, 0.6)),
    ],
    "public_square": [
        ("noise", {"slope": -3.0, "lo": 50.0, "hi": 10000.0}, 0.0, None),
        ("noise", {"slope": -1.0, "lo": 300.0, "hi": 3500.0}, -3.0, ("syllabic", 4.0, 1.0)),
        ("events", {"kind": "click", "rate": 2.0, "freq": 900.0}, -8.0, None),
        ("noise", {"slope": 0.0, "lo": 1500.0, "hi": 10000.0}, -10.0, None),
    ],
    "shopping_mall": [
        ("noise", {"slope": -3.5, "lo": 80.0, "hi": 8000.0}, -2.0, None),
        ("noise", {"slope": -1.0, "lo": 250.0, "hi": 3500.0}, 0.0, ("syllabic", 5.0, 1.0)),
        ("events", {"kind": "music", "rate": 1.5, "freq": 440.0}, -6.0, None),
        ("events", {"kind": "click", "rate": 1.5, "freq": 900.0}, -14.0, None),
    ],
    "street_pedestrian": [
        ("noise", {"slope": -4.0, "lo": 40.0, "hi": 8000.0}, 0.0, None),
        ("events", {"kind": "click", "rate": 3.5, "freq": 900.0}, -3.0, None),
        ("noise", {"slope": -1.0, "lo": 300.0, "hi": 3500.0}, -6.0, ("syllabic", 3.5, 1.0)),
        ("noise", {"slope": -6.0, "lo": 30.0, "hi": 3000.0}, -6.0, ("swell", 0.2, 0.8)),
    ],
    "street_traffic": [
        ("noise", {"slope": -5.0, "lo": 30.0, "hi": 10000.0}, 0.0, ("swell", 0.3, 0.9, "car")),
        ("noise", {"slope": 1.0, "lo": 1500.0, "hi": 9000.0}, -5.0, ("swell", 0.3, 0.9, "car")),
        (
            "tone",
            {"freq": 45.0, "harmonics": 5, "rolloff": 3.0, "drift": 0.08},
            -10.0,
            ("swell", 0.2, 0.6),
        ),
        ("events", {"kind": "horn", "rate": 0.1, "freq": 420.0}, -4.0, None),
    ],
    "tram": [
        ("noise", {"slope": -5.0, "lo": 30.0, "hi": 8000.0}, 0.0, ("sine", 0.15, 0.2)),
        ("tone", {"freq": 320.0, "harmonics": 4, "rolloff": 5.0, "drift": 0.12}, -7.0, None),
        ("events", {"kind": "rail", "rate": 1.0, "freq": 1500.0}, -6.0, None),
        ("events", {"kind": "chime", "rate": 0.05, "freq": 1200.0}, -6.0, None),
    ],
}

# Overall level offsets per scene (dB); a park is quieter than a street.
SCENE_LEVEL_DB = {"park": -8.0, "street_traffic": 3.0, "metro": 2.0, "bus": 1.0}
TARGET_RMS_DB = -26.0
CONTROL_RATE = 100  # Hz, envelopes are drawn at this rate and interpolated.


def location_params(rng, scene):
    """Draws the fixed character of one recording location of `scene`.

    Returns:
        dict with `components` (jittered copy of the recipe) and `gain_db`.
    """
    components = []
    for index, (ctype, params, level, env) in enumerate(SCENE_RECIPES[scene]):
        p = dict(params)
        if ctype == "noise":
            p["slope"] += rng.uniform(-1.0, 1.0)
            p["lo"] *= rng.uniform(0.8, 1.25)
            p["hi"] *= rng.uniform(0.8, 1.25)
        elif ctype == "tone":
            p["freq"] *= rng.uniform(0.85, 1.18)
        else:
            p["rate"] *= rng.uniform(0.6, 1.6)
            p["freq"] *= rng.uniform(0.85, 1.18)
        if env is not None:
            env = (env[0], env[1] * rng.uniform(0.7, 1.4), env[2]) + tuple(env[3:])
        # The bed (first component) is always there; others are occasionally absent.
        present = index == 0 or rng.uniform() < 0.9
        level_db = level + rng.uniform(-3.0, 3.0)
        components.append((ctype, p, level_db, env, present))
    gain_db = SCENE_LEVEL_DB.get(scene, 0.0) + rng.uniform(-3.0, 3.0)
    return {"components": components, "gain_db": gain_db}


def render_scene(rng, location, num_samples, sample_rate):
    """Renders one continuous segment of a location.

    Args:
        rng: `np.random.Generator` for this segment.
        location: output of `location_params`.
        num_samples: length of the segment.
        sample_rate: Hz.

    Returns:
        float32 array `[num_samples]` at about -26 dBFS RMS (scene and segment dependent).
    """
    mix = np.zeros(num_samples, dtype=np.float32)
    # Independent Gaussian noises that share an envelope (or have none) add up to one Gaussian
    # noise whose power spectrum is the sum of theirs: render each such group with one FFT.
    noise_power = {}
    envelopes = {}
    for index, (ctype, params, level_db, env, present) in enumerate(location["components"]):
        if not present:
            continue
        gain = 10.0 ** ((level_db + rng.uniform(-1.5, 1.5)) / 20.0)
        key = None if env is None else (env[3] if len(env) > 3 else index)
        if env is not None and key not in envelopes:
            envelopes[key] = _envelope(rng, num_samples, sample_rate, *env[:3])
        if ctype == "noise":
            power = gain**2 * np.square(_noise_amplitude(num_samples, sample_rate, **params))
            noise_power[key] = noise_power.get(key, 0.0) + power
            continue
        if ctype == "tone":
            x = _tone(rng, num_samples, sample_rate, **params)
        else:
            x = _events(rng, num_samples, sample_rate, **params)
        if env is not None:
            x = x * envelopes[key]
        mix += x * np.float32(gain)
    for key, power in noise_power.items():
        x = _noise_from_amplitude(rng, num_samples, np.sqrt(power))
        mix += x if key is None else x * envelopes[key]
    level = TARGET_RMS_DB + location["gain_db"] + rng.uniform(-3.0, 3.0)
    return mix * np.float32(10.0 ** (level / 20.0) / (_rms(mix) + 1e-12))


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def shaped_noise(rng, num_samples, sample_rate, slope=0.0, lo=20.0, hi=20000.0):
    """Gaussian noise with a `slope` dB/octave colour, band-limited to about [lo, hi] Hz.

    Returns:
        float32 `[num_samples]` with an expected RMS of 1.
    """
    amp = _noise_amplitude(num_samples, sample_rate, slope, lo, hi)
    return _noise_from_amplitude(rng, num_samples, amp)


def _noise_amplitude(num_samples, sample_rate, slope=0.0, lo=20.0, hi=20000.0):
    """rfft-bin amplitudes (float32) of `shaped_noise`, scaled for an expected RMS of 1."""
    log_f, f4, inv_f4 = _frequency_tables(num_samples, sample_rate)
    # 10^(slope * log2(f/1k) / 20) = exp(slope * ln(f/1k) / (20 log10(2))); the band edges are
    # fourth-order shelves, sqrt(1 / ((1 + (lo/f)^4) (1 + (f/hi)^4))).
    amp = np.exp(np.float32(slope / (20.0 * np.log10(2.0))) * log_f)
    shelves = (1.0 + np.float32(lo**4) * inv_f4) * (1.0 + f4 * np.float32(hi**-4.0))
    amp /= np.sqrt(shelves)
    # irfft of unit complex Gaussians times amp has variance ~ 4 * sum(amp^2) / N^2.
    return amp * np.float32(num_samples / np.sqrt(4.0 * np.sum(np.square(amp, dtype=np.float64))))


def _noise_from_amplitude(rng, num_samples, amp):
    spectrum = rng.standard_normal(2 * len(amp), dtype=np.float32).view(np.complex64)
    return scipy.fft.irfft(spectrum * amp, num_samples).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _frequency_tables(num_samples, sample_rate):
    """Cached float32 tables over the rfft bins: ln(f / 1 kHz), f^4 and f^-4 (0 Hz -> 1 Hz)."""
    f = np.maximum(np.fft.rfftfreq(num_samples, 1.0 / sample_rate), 1.0)
    tables = (np.log(f / 1000.0), f**4, f**-4.0)
    tables = tuple(t.astype(np.float32) for t in tables)
    for t in tables:
        t.flags.writeable = False
    return tables


def _slow_noise(rng, num_points, rate, centre=0.0):
    """Gaussian process at CONTROL_RATE, low-pass (`centre=0`) or band-pass around `centre` Hz.

    Drawn over at least 20 s so that very slow processes are still random (not a constant)
    inside a short clip; returns the first `num_points` values, unit variance overall.
    """
    length = max(num_points, 20 * CONTROL_RATE)
    n_bins = length // 2 + 1
    f = np.fft.rfftfreq(length, 1.0 / CONTROL_RATE)
    spectrum = rng.standard_normal(n_bins) + 1j * rng.standard_normal(n_bins)
    spectrum *= np.exp(-0.5 * ((f - centre) / rate) ** 2)
    spectrum[0] = 0.0
    z = np.fft.irfft(spectrum, length)
    return z[:num_points] / (np.std(z) + 1e-12)


def _envelope(rng, num_samples, sample_rate, kind, rate, depth):
    """Amplitude envelope with mean about 1: `sine`, `swell` (log-normal) or `syllabic`."""
    num_points = int(num_samples * CONTROL_RATE / sample_rate) + 2
    t = np.arange(num_points) / CONTROL_RATE
    if kind == "sine":
        env = 1.0 + depth * np.sin(2.0 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    elif kind == "swell":
        env = np.exp(depth * _slow_noise(rng, num_points, rate))
    else:  # syllabic: speech-like 3-6 Hz on/off pattern
        z = _slow_noise(rng, num_points, 1.5, centre=rate)
        env = np.maximum(z + 0.3, 0.0) ** 1.5 * depth + (1.0 - depth)
    env /= np.mean(env) + 1e-12
    return _upsample(env, num_samples, sample_rate)


def _upsample(values, num_samples, sample_rate):
    """Linear interpolation of a CONTROL_RATE sequence to `num_samples` audio samples (float32)."""
    if sample_rate % CONTROL_RATE == 0:
        return upsample_linear(values, sample_rate // CONTROL_RATE, num_samples)
    t = np.arange(num_samples, dtype=np.float64) * (CONTROL_RATE / sample_rate)
    return np.interp(t, np.arange(len(values)), values).astype(np.float32)


def upsample_linear(values, factor, num_samples):
    """Linear interpolation by an integer `factor` (value i at sample i * factor), float32.

    Holds the last value if `values` is too short; faster than `np.interp` for long outputs.
    """
    v = np.asarray(values, dtype=np.float32)
    count = -(-num_samples // factor)
    if len(v) < count + 1:
        v = np.concatenate([v, np.full(count + 1 - len(v), v[-1], dtype=np.float32)])
    ramp = np.arange(factor, dtype=np.float32) / np.float32(factor)
    out = v[:count, None] + (v[1 : count + 1] - v[:count])[:, None] * ramp[None, :]
    return out.reshape(-1)[:num_samples]


def _tone(rng, num_samples, sample_rate, freq, harmonics, rolloff, drift):
    """Harmonic tone with a slowly drifting pitch, RMS about 1."""
    num_points = int(num_samples * CONTROL_RATE / sample_rate) + 2
    wobble = _slow_noise(rng, num_points, 0.3)
    inst = freq * (1.0 + drift * wobble)
    inst = _upsample(inst, num_samples, sample_rate).astype(np.float64)
    # Phase wrapped in float64; harmonics by the Chebyshev recurrence
    # sin((h+1)p) = 2 cos(p) sin(hp) - sin((h-1)p), which needs one sine and one cosine only.
    phase = 2.0 * np.pi * np.cumsum(inst) / sample_rate + rng.uniform(0.0, 2.0 * np.pi)
    phase = np.mod(phase, 2.0 * np.pi).astype(np.float32)
    two_cos = np.float32(2.0) * np.cos(phase)
    previous, current = np.zeros_like(phase), np.sin(phase)
    x = np.zeros(num_samples, dtype=np.float32)
    for h in range(1, harmonics + 1):
        if h * freq * (1.0 + 3.0 * drift) >= sample_rate / 2:
            break
        x += np.float32(10.0 ** (-rolloff * (h - 1) / 20.0)) * current
        previous, current = current, two_cos * current - previous
    return x / (_rms(x) + 1e-12)


def _event_wave(rng, kind, freq, sample_rate):
    """One event waveform (RMS 1 over its own length)."""
    if kind == "click":  # footstep / rattle: decaying low-passed noise burst
        n = int(rng.uniform(0.02, 0.05) * sample_rate)
        t = np.arange(n) / sample_rate
        x = rng.standard_normal(n) * np.exp(-t / rng.uniform(0.004, 0.012))
        width = max(1, int(sample_rate / (2.0 * freq)))
        x = np.convolve(x, np.ones(width) / width, mode="same")
    elif kind == "rail":  # clack-clack pair of sharp clicks
        gap = int(rng.uniform(0.08, 0.14) * sample_rate)
        n = gap + int(0.03 * sample_rate)
        x = np.zeros(n)
        for start in (0, gap):
            m = int(0.03 * sample_rate)
            t = np.arange(m) / sample_rate
            click = rng.standard_normal(m) * np.exp(-t / 0.004)
            click += np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.01)
            x[start : start + m] += click
    elif kind == "chirp":  # bird: a short trill of falling or rising sweeps
        pieces = []
        for _ in range(int(rng.integers(1, 5))):
            m = int(rng.uniform(0.04, 0.12) * sample_rate)
            f0 = freq * rng.uniform(0.7, 1.4)
            f1 = f0 * rng.uniform(0.6, 1.6)
            inst = np.linspace(f0, f1, m)
            pieces.append(np.sin(2 * np.pi * np.cumsum(inst) / sample_rate) * np.hanning(m))
            pieces.append(np.zeros(int(rng.uniform(0.02, 0.06) * sample_rate)))
        x = np.concatenate(pieces)
    elif kind in ("chime", "beep", "horn"):
        duration = {"chime": 0.7, "beep": 0.15, "horn": 0.45}[kind]
        m = int(duration * sample_rate)
        t = np.arange(m, dtype=np.float32) / np.float32(sample_rate)
        if kind == "chime":  # two notes a major third apart, bell-like decay
            half = m // 2
            x = np.zeros(m)
            for k, f in enumerate((freq, freq * 1.26)):
                tt = t[: m - k * half]
                note = np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(2 * np.pi * 2 * f * tt)
                x[k * half :] += note * np.exp(-tt / 0.25)
        else:
            partials = 1 if kind == "beep" else 5
            x = sum(
                np.sin(2 * np.pi * f * (p + 1) * t) / (p + 1)
                for p, f in enumerate([freq] * partials)
            )
            ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
            x = x * ramp
    else:  # music: a chord held for 1/rate s (three notes of a major scale)
        m = int(rng.uniform(0.4, 0.9) * sample_rate)
        t = np.arange(m, dtype=np.float32) / np.float32(sample_rate)
        steps = np.array([0, 2, 4, 5, 7, 9, 11, 12])
        notes = freq * 2.0 ** (rng.choice(steps, size=3, replace=False) / 12.0)
        x = sum(np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t) for f in notes)
        x = x * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.03)
    return x / (_rms(x) + 1e-12)


def _events(rng, num_samples, sample_rate, kind, rate, freq):
    """Event train: Poisson onsets (rail: quasi-periodic, music: back-to-back chords)."""
    x = np.zeros(num_samples, dtype=np.float32)
    duration = num_samples / sample_rate
    if kind == "rail":
        period = 1.0 / rate
        onsets = np.arange(rng.uniform(0, period), duration, period)
        onsets += rng.normal(0.0, 0.02 * period, size=onsets.shape)
    elif kind == "music":
        onsets = np.arange(0.0, duration, 1.0 / rate)
    else:
        onsets = np.sort(rng.uniform(0.0, duration, size=rng.poisson(rate * duration)))
    for onset in onsets:
        wave = _event_wave(rng, kind, freq, sample_rate) * 10.0 ** (rng.uniform(-3, 3) / 20.0)
        start = int(max(onset, 0.0) * sample_rate)
        stop = min(num_samples, start + len(wave))
        if stop > start:
            x[start:stop] += wave[: stop - start]
    return x
