"""Frequency responses of device impulse response (DIR) sets: the paper's Figures 1 and 2.

- Figure 1: the distribution of the magnitude responses of a whole DIR set on a log-frequency
  axis: bands holding 100 % (min–max), 80 % (10–90 % quantiles) and 50 % (25–75 %) of the
  responses, and their mean.
- Figure 2: one microphone at one distance, one curve per incidence angle 0°–180°, coloured by
  angle (the paper shows the Røde NT2-A cardioid at 50 cm: ``--mic RodeNT2A --pattern cardioid
  --distance 50``).

Responses are computed as follows (the paper does not say how its figure was made, so these are
our choices, all arguments): power spectrum of the zero-padded IR (``n_fft`` ≥ 8192, i.e. ≤ 4 Hz
bins at 32 kHz); averaged over ``smoothing_octaves``-wide bands centred on ``num_points``
log-spaced frequencies from ``f_min`` to ``f_max``; in dB. Figure 1 shifts each response to
0 dB at 1 kHz (the IRs keep their own gains; only shapes are compared); Figure 2 shifts all
curves by one offset, putting the smallest angle at 0 dB at 1 kHz, so that level differences
between angles (the cardioid's notch at 180°) stay visible — meaningful only for IRs stored
without per-IR normalisation (``multi-dirs --normalize none``; the builder's default is peak
normalisation, which leaves only the shapes). ``--reference`` overrides either choice.
Quantiles use NumPy's default linear interpolation; the mean is the mean of the dB values.
"""

import os

import numpy as np

from asc_core.errors import UserError

MIN_FFT = 8192
BAND_QUANTILES = {"q10": 0.10, "q90": 0.90, "q25": 0.25, "q75": 0.75}


# === Arrays ===


def magnitude_responses(
    irs,
    sample_rate,
    num_points=512,
    f_min=20.0,
    f_max=None,
    smoothing_octaves=1 / 6,
    reference_hz=1000.0,
    n_fft=None,
):
    """Smoothed magnitude responses in dB on a log-frequency grid.

    Args:
        irs: list of 1-D arrays (any lengths) or an ``[N, L]`` array.
        sample_rate: Hz.
        num_points: grid size.
        f_min, f_max: grid limits in Hz (``f_max`` defaults to the Nyquist frequency).
        smoothing_octaves: band width of the power averaging; ``0``/``None`` = no smoothing
            (linear interpolation of the bins).
        reference_hz: each response is shifted to 0 dB here; ``None`` keeps absolute levels.
        n_fft: FFT size (default: the next power of two ≥ the longest IR, at least 8192).

    Returns:
        ``(freqs [P], responses_db [N, P])``.
    """
    irs = [np.asarray(ir, dtype=np.float64).ravel() for ir in irs]
    if not irs:
        raise UserError("no impulse responses to analyse")
    longest = max(ir.size for ir in irs)
    if n_fft is None:
        n_fft = max(MIN_FFT, 1 << int(np.ceil(np.log2(max(longest, 1)))))
    nyquist = sample_rate / 2.0
    f_max = nyquist if f_max is None else min(f_max, nyquist)
    if not 0 < f_min < f_max:
        raise ValueError(f"need 0 < f_min < f_max, got f_min={f_min}, f_max={f_max}")
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    power = np.stack([np.abs(np.fft.rfft(ir, n_fft)) ** 2 for ir in irs])
    freqs = np.geomspace(f_min, f_max, num_points)
    if smoothing_octaves:
        half = 2.0 ** (smoothing_octaves / 2.0)
        lo = np.searchsorted(bins, freqs / half, side="left")
        hi = np.searchsorted(bins, freqs * half, side="right")
        # Bands holding fewer than two bins (low frequencies) interpolate the bins instead,
        # which avoids a staircase of single bins.
        narrow = hi - lo < 2
        hi = np.where(narrow, lo + 1, hi)
        cumulative = np.concatenate([np.zeros((power.shape[0], 1)), power.cumsum(axis=1)], axis=1)
        smoothed = (cumulative[:, hi] - cumulative[:, lo]) / (hi - lo)
        if narrow.any():
            smoothed[:, narrow] = np.stack([np.interp(freqs[narrow], bins, p) for p in power])
    else:
        smoothed = np.stack([np.interp(freqs, bins, p) for p in power])
    db = 10.0 * np.log10(np.maximum(smoothed, 1e-30))
    if reference_hz is not None:
        db = apply_reference(freqs, db, "each", reference_hz)
    return freqs, db


REFERENCES = ("each", "first", "none")


def apply_reference(freqs, responses_db, mode, reference_hz=1000.0):
    """Shifts absolute responses (``magnitude_responses(..., reference_hz=None)``) in dB.

    Args:
        freqs: ``[P]`` grid.
        responses_db: ``[N, P]``.
        mode: ``"each"``: every response is 0 dB at ``reference_hz`` (compares shapes);
            ``"first"``: all responses move by the offset that puts the FIRST one at 0 dB there
            (keeps the level differences, e.g. between angles); ``"none"``: unchanged.
        reference_hz: the reference frequency.

    Returns:
        ``[N, P]`` shifted responses.
    """
    if mode not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {mode!r}")
    db = np.asarray(responses_db, dtype=np.float64)
    if mode == "none":
        return db
    log_f = np.log(freqs)
    levels = np.array([np.interp(np.log(reference_hz), log_f, row) for row in db])
    offsets = levels if mode == "each" else np.full_like(levels, levels[0])
    return db - offsets[:, None]


def response_bands(responses_db):
    """Per-frequency distribution of responses ``[N, P]``.

    Returns:
        dict of ``[P]`` arrays: ``min``, ``max`` (the 100 % band), ``q10``, ``q90`` (80 %),
        ``q25``, ``q75`` (50 %), ``mean``; and ``count`` = N. With one response every array equals
        it.
    """
    db = np.asarray(responses_db, dtype=np.float64)
    if db.ndim != 2 or db.shape[0] == 0:
        raise ValueError(f"responses_db must be [N, P] with N >= 1, got shape {db.shape}")
    bands = {"min": db.min(axis=0), "max": db.max(axis=0), "mean": db.mean(axis=0)}
    for key, q in BAND_QUANTILES.items():
        bands[key] = np.quantile(db, q, axis=0)
    bands["count"] = int(db.shape[0])
    return bands


# === Figures ===


def _freq_axis(ax, freqs):
    ax.set_xscale("log")
    ax.set_xlim(freqs[0], freqs[-1])
    ax.set_xlabel("frequency [Hz]")
    ax.grid(which="both", alpha=0.25)


def plot_response_bands(freqs, bands, path, title=None, ylabel="magnitude [dB re 1 kHz]"):
    """Figure 1: 100 %, 80 % and 50 % bands and the mean on a log-frequency axis."""
    from keras_asc.evaluation.plots import _pyplot
    from keras_asc.evaluation.plots import save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(
        freqs, bands["min"], bands["max"], color="tab:blue", alpha=0.15, lw=0, label="100 %"
    )
    ax.fill_between(
        freqs, bands["q10"], bands["q90"], color="tab:blue", alpha=0.3, lw=0, label="80 %"
    )
    ax.fill_between(
        freqs, bands["q25"], bands["q75"], color="tab:blue", alpha=0.55, lw=0, label="50 %"
    )
    ax.plot(freqs, bands["mean"], color="black", lw=1.2, label="mean")
    _freq_axis(ax, freqs)
    ax.set_ylabel(ylabel)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or f"{bands['count']} impulse responses")
    return save_figure(fig, path)


def plot_angle_responses(
    freqs, responses_db, angles, path, title=None, ylabel="magnitude [dB re 1 kHz]"
):
    """Figure 2: one curve per angle, coloured by angle (viridis), with a colour bar."""
    from keras_asc.evaluation.plots import _pyplot
    from keras_asc.evaluation.plots import save_figure

    plt = _pyplot()
    import matplotlib

    angles = np.asarray(angles, dtype=np.float64)
    order = np.argsort(angles)
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=max(float(angles.max()), 1.0))
    cmap = matplotlib.colormaps["viridis"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i in order:
        ax.plot(freqs, responses_db[i], color=cmap(norm(angles[i])), lw=1.0)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="angle [°]")
    _freq_axis(ax, freqs)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# === DIR TFRecords ===


def load_dir_records(paths):
    """Reads DIR TFRecord folders with their metadata.

    Args:
        paths: list of DIR set folders (``micirp``, ``multi-dirs`` builder outputs).

    Returns:
        ``(irs, records, sample_rate)``: list of float32 IR arrays, list of metadata dicts
        (``name``, ``set``, ``microphone`` (the file stem when the record has none),
        ``pattern``, ``variant``, ``distance_cm``, ``angle_deg``, ``folder``) and the common
        sample rate.
    """
    from keras_asc.data.dirs import microphone_name
    from keras_asc.data.dirs import read_dir_records

    irs, records, rates = [], [], set()
    keep = ("name", "set", "microphone", "pattern", "variant", "distance_cm", "angle_deg")
    for path in paths:
        for ir, record in read_dir_records(path):
            records.append(
                {
                    **{k: record[k] for k in keep},
                    "microphone": microphone_name(record),
                    "folder": os.fspath(path),
                }
            )
            irs.append(ir)
            rates.add(record["sample_rate"])
    if not irs:
        folders = " ".join(map(str, paths))
        raise UserError(f"--dirs {folders}: the DIR sets hold no impulse response")
    if len(rates) > 1:
        raise UserError(
            f"--dirs: the sets store IRs at different sample rates {sorted(rates)}; rebuild them "
            "at one rate"
        )
    return irs, records, rates.pop()


def select_angle_series(records, microphone, distance_cm=None, pattern=None, max_angle=180):
    """Indices of one microphone's IRs at one distance, angles ``0..max_angle``, sorted by angle.

    ``microphone`` matches the record's ``microphone`` case-insensitively. A microphone measured
    with several patterns needs ``pattern``; one measured at several distances needs
    ``distance_cm``.

    Raises:
        UserError: naming what is available when nothing (or more than one series) matches.
    """
    mic = microphone.lower()
    matches = [i for i, r in enumerate(records) if r["microphone"].lower() == mic]
    if not matches:
        known = sorted({r["microphone"] for r in records if r["microphone"]})
        raise UserError(
            f"--mic {microphone}: no IR of that microphone; the sets hold "
            f"{', '.join(known) if known else 'no microphone names'}"
        )
    if all(records[i]["angle_deg"] < 0 for i in matches):
        raise UserError(
            f"--mic {microphone}: its IRs carry no angle (angle_deg = -1); Figure 2 needs a set "
            "measured at several angles, such as multi-dirs"
        )
    patterns = sorted({records[i]["pattern"] for i in matches})
    if pattern is not None:
        matches = [i for i in matches if records[i]["pattern"].lower() == pattern.lower()]
        if not matches:
            raise UserError(
                f"--pattern {pattern}: {microphone} was measured with {', '.join(patterns)}"
            )
    elif len(patterns) > 1:
        raise UserError(
            f"--mic {microphone}: measured with several patterns ({', '.join(patterns)}); "
            "choose one with --pattern"
        )
    distances = sorted({records[i]["distance_cm"] for i in matches})
    if distance_cm is not None:
        if distance_cm not in distances:
            raise UserError(
                f"--distance {distance_cm}: {microphone} was measured at "
                f"{', '.join(f'{d} cm' for d in distances)}"
            )
        matches = [i for i in matches if records[i]["distance_cm"] == distance_cm]
    elif len(distances) > 1:
        raise UserError(
            f"--mic {microphone}: measured at several distances "
            f"({', '.join(f'{d} cm' for d in distances)}); choose one with --distance"
        )
    matches = [i for i in matches if 0 <= records[i]["angle_deg"] <= max_angle]
    if not matches:
        raise UserError(f"--mic {microphone}: no IR with an angle in [0, {max_angle}] degrees")
    seen = {}
    for i in matches:
        angle = records[i]["angle_deg"]
        if angle in seen:
            raise UserError(
                f"--mic {microphone}: two IRs at {angle} degrees ({records[seen[angle]]['name']}, "
                f"{records[i]['name']}); narrow the selection (--pattern, --distance) or pass one "
                "DIR set"
            )
        seen[angle] = i
    return sorted(matches, key=lambda i: records[i]["angle_deg"])
