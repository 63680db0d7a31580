"""One parametric family of microphone responses, shared by the synthetic DIR sets and devices.

Every synthetic response in the corpus (MicIRP-like IRs, Surrey-like IRs at any angle and
distance, and the colorations of the recording devices) is a minimum-phase filter whose
magnitude, in dB over frequency ``f`` in Hz, is

    hp(f) + lp(f) + tilt * log2(f / 1 kHz) + sum of resonances + polar(f, angle, distance)

- ``hp``/``lp``: Butterworth-shaped roll-offs, ``-10 log10(1 + (fc/f)^(2n))`` and its mirror;
- resonances: Gaussian bumps (or dips) in log-frequency, ``gain * exp(-(log2(f/fc)/w)^2 / 2)``;
- ``polar``: first-order pattern ``|A + (1 - A) cos(theta) * p(f, d)|`` where ``A`` is 1 for omni,
  0.5 for cardioid, 0 for figure-8, ``p = sqrt(1 + 1/(k d)^2)`` is the proximity effect of the
  pressure-gradient part (bass boost at short distance), ``A`` drifts towards a narrower pattern
  above a few kHz, and a 5-m source also loses some treble (air absorption).

Because one family generates everything, convolving device-``a`` audio with the synthetic DIRs
moves it towards the colorations of the unseen devices ``s4``-``s6`` (see ``synthetic.py``).
"""

import numpy as np

SPEED_OF_SOUND = 343.0

# Low-frequency first-order pattern coefficient A in A + (1 - A) cos(theta).
PATTERN_COEFFICIENTS = {
    "omni": 1.0,
    "subcardioid": 0.7,
    "cardioid": 0.5,
    "supercardioid": 0.37,
    "hypercardioid": 0.25,
    "shotgun": 0.3,
    "bidirectional": 0.0,
}

# Ranges of the family per transducer kind: (low, high) for uniform draws, log-uniform for Hz.
# One row a parameter, one column a kind.
_KINDS = ("condenser", "dynamic", "ribbon", "vintage")
_RANGES = {
    "hp_hz": ((20.0, 60.0), (50.0, 160.0), (25.0, 70.0), (60.0, 320.0)),
    "hp_order": ((1, 2), (1, 2), (1, 2), (1, 3)),
    "lp_hz": ((14000.0, 20000.0), (8000.0, 15000.0), (5000.0, 12000.0), (3500.0, 11000.0)),
    "lp_order": ((1, 3), (2, 3), (1, 2), (2, 4)),
    "tilt": ((-0.5, 0.8), (-1.0, 1.0), (-1.8, -0.3), (-2.0, 1.5)),
    "num_res": ((1, 2), (1, 3), (0, 2), (1, 3)),
    "res_hz": ((2500.0, 12000.0), (1500.0, 7000.0), (80.0, 400.0), (250.0, 6000.0)),
    "res_db": ((-3.0, 6.0), (-4.0, 7.0), (1.0, 5.0), (-10.0, 10.0)),
    "res_oct": ((0.3, 0.9), (0.3, 0.8), (0.4, 1.0), (0.2, 0.6)),
}
MIC_KINDS = {
    kind: {key: ranges[i] for key, ranges in _RANGES.items()} for i, kind in enumerate(_KINDS)
}


def magnitude_db(
    freqs,
    hp_hz=20.0,
    hp_order=1,
    lp_hz=20000.0,
    lp_order=1,
    tilt=0.0,
    resonances=(),
):
    """Magnitude response in dB of the family's on-axis part.

    Args:
        freqs: array `[F]` of frequencies in Hz (0 is treated as 1 Hz).
        hp_hz, hp_order: high-pass corner and Butterworth order.
        lp_hz, lp_order: low-pass corner and Butterworth order.
        tilt: spectral tilt in dB per octave around 1 kHz.
        resonances: iterable of `(centre_hz, gain_db, width_octaves)`.

    Returns:
        float64 array `[F]` in dB.
    """
    f = np.maximum(np.asarray(freqs, dtype=np.float64), 1.0)
    db = -10.0 * np.log10(1.0 + (hp_hz / f) ** (2 * hp_order))
    db -= 10.0 * np.log10(1.0 + (f / lp_hz) ** (2 * lp_order))
    db += tilt * np.log2(f / 1000.0)
    for centre, gain, width in resonances:
        db += gain * np.exp(-0.5 * (np.log2(f / centre) / width) ** 2)
    return db


def polar_db(freqs, pattern, angle_deg, distance_m):
    """Angle- and distance-dependent part of the family, in dB.

    Args:
        freqs: array `[F]` in Hz.
        pattern: a key of `PATTERN_COEFFICIENTS`.
        angle_deg: incidence angle, 0 = on axis.
        distance_m: source distance in metres.

    Returns:
        float64 array `[F]` in dB (0 dB on axis, far away, at low frequency).
    """
    f = np.maximum(np.asarray(freqs, dtype=np.float64), 20.0)
    a_low = PATTERN_COEFFICIENTS[pattern]
    # Real capsules get more directional at high frequencies; shotguns much more so.
    narrowing = 0.55 if pattern == "shotgun" else 0.3
    rise = 1.0 / (1.0 + (5000.0 / f) ** 2)
    a_eff = a_low * (1.0 - narrowing * rise)
    k = 2.0 * np.pi * f / SPEED_OF_SOUND
    proximity = np.sqrt(1.0 + 1.0 / (k * distance_m) ** 2)
    gain = np.abs(a_eff + (1.0 - a_eff) * np.cos(np.deg2rad(angle_deg)) * proximity)
    # Nulls are never perfect: diffuse pickup and the rig keep them ~30 dB down.
    floor = 10.0 ** (-30.0 / 20.0)
    db = 10.0 * np.log10(gain**2 + floor**2)
    # Air absorption and the far-field drop of the proximity term, about -2.5 dB at 10 kHz for 5 m.
    db -= 0.5 * distance_m * (f / 10000.0) ** 2
    return db


def minimum_phase_ir(mag_db, length):
    """Minimum-phase impulse response for a magnitude on an rfft grid (real cepstrum method).

    Args:
        mag_db: array `[n_fft // 2 + 1]` of magnitudes in dB on the rfft grid of an even `n_fft`.
        length: number of taps to keep (`<= n_fft`); the last quarter gets a half-Hann fade.

    Returns:
        float64 array `[length]`.
    """
    n_fft = 2 * (len(mag_db) - 1)
    log_mag = np.asarray(mag_db, dtype=np.float64) * (np.log(10.0) / 20.0)
    cepstrum = np.fft.irfft(log_mag, n_fft)
    folded = np.zeros(n_fft)
    folded[0] = cepstrum[0]
    folded[1 : n_fft // 2] = 2.0 * cepstrum[1 : n_fft // 2]
    folded[n_fft // 2] = cepstrum[n_fft // 2]
    ir = np.fft.irfft(np.exp(np.fft.rfft(folded)), n_fft)[:length]
    fade = length // 4
    ir[length - fade :] *= np.hanning(2 * fade)[fade:]
    return ir


def sample_response(rng, kind):
    """Draws on-axis family parameters for a transducer kind (a key of `MIC_KINDS`).

    Returns:
        dict of `magnitude_db` keyword arguments (plain Python numbers, JSON-serialisable).
    """
    r = MIC_KINDS[kind]

    def log_uniform(lo, hi):
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    resonances = []
    for _ in range(int(rng.integers(r["num_res"][0], r["num_res"][1] + 1))):
        resonances.append(
            (
                round(log_uniform(*r["res_hz"]), 1),
                round(float(rng.uniform(*r["res_db"])), 2),
                round(float(rng.uniform(*r["res_oct"])), 3),
            )
        )
    return {
        "hp_hz": round(log_uniform(*r["hp_hz"]), 1),
        "hp_order": int(rng.integers(r["hp_order"][0], r["hp_order"][1] + 1)),
        "lp_hz": round(log_uniform(*r["lp_hz"]), 1),
        "lp_order": int(rng.integers(r["lp_order"][0], r["lp_order"][1] + 1)),
        "tilt": round(float(rng.uniform(*r["tilt"])), 3),
        "resonances": resonances,
    }


def response_ir(sample_rate, length, params, pattern="omni", angle_deg=0.0, distance_m=None):
    """Minimum-phase IR of one family member.

    Args:
        sample_rate: Hz.
        length: taps.
        params: `magnitude_db` keyword arguments.
        pattern, angle_deg, distance_m: polar part; `distance_m=None` leaves it out.

    Returns:
        float64 array `[length]`.
    """
    n_fft = 8192
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    db = magnitude_db(freqs, **params)
    if distance_m is not None:
        db = db + polar_db(freqs, pattern, angle_deg, distance_m)
    return minimum_phase_ir(db, length)
