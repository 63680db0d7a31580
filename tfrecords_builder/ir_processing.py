"""Pure-numpy helpers that turn a measured impulse response into a stored DIR.

The DIR builders (``micirp``, ``multi-dirs``) share these steps; every choice is a documented
default that the command line can change:

1. **Resampling gain** (:func:`resampling_gain`). Resampling an IR *as a signal* (what
   ``librosa.load(sr=32000)`` does, hence CPJKU) scales its filter gain by ``target / source``:
   a 48 kHz unit impulse becomes a 32 kHz pulse of height 2/3, so convolving with it makes audio
   3.5 dB quieter. ``"filter"`` (default) multiplies by ``source / target`` so the stored IR has
   the same frequency response, level included, as the measured one; ``"signal"`` keeps the
   librosa/CPJKU level.
2. **Onset** (:func:`detect_onset`). The onset is the first sample, at most ``lookback`` samples
   before the absolute peak, whose magnitude reaches ``threshold = max(peak * 10**(threshold_db/20),
   noise_factor * noise)``, where ``noise = median(|h|) / 0.6745`` is a robust estimate of the
   noise standard deviation (a 10-s measurement is mostly noise floor, so its median is the
   noise). Searching only just before the peak keeps isolated clicks or deconvolution artefacts far
   from the direct sound from being taken for it. Defaults: -20 dB, 5 sigma, 160 samples (5 ms
   at 32 kHz).
3. **Window** (:func:`ir_window`, :func:`cut_window`). ``length`` samples starting ``pre_roll``
   samples before the onset (zero-padded when the file starts later or ends earlier). The taper
   is a Kaiser window (beta 2 as in the paper). ``"half"`` (default): weight 1 up to the onset,
   then the falling half of a symmetric Kaiser window of length ``2 * (length - pre_roll)``, so
   the direct sound is untouched and the tail fades to ``1 / I0(beta)`` (0.44 for beta 2).
   ``"full"``: the symmetric ``numpy.kaiser(length, beta)`` over the whole cut, the literal
   reading of the paper; it scales the direct sound near the start by about 0.45 (-7 dB).
4. **Normalisation** (:func:`normalize_ir`): ``"none"`` (keep level), ``"peak"`` (max abs = 1),
   ``"energy"`` (sum of squares = 1).

The module also holds the small builder helpers both DIR builders share (finding the source
WAVs, checksums); it imports neither TensorFlow nor Keras, so worker processes stay light.
"""

import hashlib
from pathlib import Path

import numpy as np

from asc_core.errors import UserError

NORMALIZATIONS = ("none", "peak", "energy")
WINDOW_MODES = ("half", "full")
RESAMPLE_GAINS = ("filter", "signal")

# median(|x|) of zero-mean Gaussian noise is 0.6745 sigma.
_MAD_TO_SIGMA = 0.6745


def resampling_gain(source_rate, target_rate, mode="filter"):
    """Factor applied to an IR after resampling it from ``source_rate`` to ``target_rate``.

    Args:
        source_rate: int, rate of the measured IR in Hz.
        target_rate: int, rate of the stored IR in Hz.
        mode: ``"filter"`` returns ``source_rate / target_rate`` (keeps the filter's frequency
            response); ``"signal"`` returns 1 (keeps the sample values that a plain resampler
            such as ``librosa.load`` gives, as CPJKU uses them).

    Returns:
        float.
    """
    if mode not in RESAMPLE_GAINS:
        raise ValueError(f"resample gain mode must be one of {RESAMPLE_GAINS}, got {mode!r}")
    if mode == "signal":
        return 1.0
    return float(source_rate) / float(target_rate)


def noise_level(ir):
    """Robust noise standard deviation of ``ir``: ``median(|ir|) / 0.6745``.

    Args:
        ir: 1-D array ``[samples]``.

    Returns:
        float, 0 for a noiseless IR whose samples are mostly exactly zero.
    """
    return float(np.median(np.abs(np.asarray(ir, dtype=np.float64)))) / _MAD_TO_SIGMA


def detect_onset(ir, threshold_db=-20.0, noise_factor=5.0, lookback=160):
    """Index of the first sample of the direct sound (see the module docstring for the rule).

    Args:
        ir: 1-D array ``[samples]``.
        threshold_db: float <= 0, threshold relative to the absolute peak.
        noise_factor: float >= 0, the threshold is at least this many noise standard deviations
            (capped at the peak itself).
        lookback: int >= 0, how many samples before the peak are searched.

    Returns:
        int in ``[peak_index - lookback, peak_index]``.

    Raises:
        ValueError: ``ir`` is empty, not 1-D, or silent (all zeros), or a parameter is invalid.
    """
    ir = np.asarray(ir, dtype=np.float64)
    if ir.ndim != 1 or ir.size == 0:
        raise ValueError(f"expected a non-empty 1-D impulse response, got shape {ir.shape}")
    if threshold_db > 0:
        raise ValueError(f"onset threshold_db must be <= 0 dB re peak, got {threshold_db}")
    if noise_factor < 0 or lookback < 0:
        raise ValueError(
            f"noise_factor and lookback must be >= 0, got {noise_factor} and {lookback}"
        )
    magnitude = np.abs(ir)
    peak_index = int(np.argmax(magnitude))
    peak = magnitude[peak_index]
    if peak == 0:
        raise ValueError("the impulse response is silent (all samples are zero)")
    threshold = max(peak * 10.0 ** (threshold_db / 20.0), noise_factor * noise_level(ir))
    threshold = min(threshold, peak)
    start = max(0, peak_index - int(lookback))
    above = magnitude[start : peak_index + 1] >= threshold
    return start + int(np.argmax(above))


def ir_window(length, beta=2.0, pre_roll=0, mode="half"):
    """Kaiser taper for a ``length``-sample cut whose onset sits at index ``pre_roll``.

    Args:
        length: int > 0, window length in samples.
        beta: float >= 0, Kaiser shape parameter (0 gives a rectangular window).
        pre_roll: int in ``[0, length)``, samples kept before the onset.
        mode: ``"half"``: ones up to the onset, then the falling half of
            ``numpy.kaiser(2 * (length - pre_roll), beta)``; ``"full"``:
            ``numpy.kaiser(length, beta)``.

    Returns:
        float64 array ``[length]``.
    """
    if length <= 0:
        raise ValueError(f"window length must be > 0, got {length}")
    if not 0 <= pre_roll < length:
        raise ValueError(f"pre_roll must be in [0, {length}), got {pre_roll}")
    if beta < 0:
        raise ValueError(f"kaiser beta must be >= 0, got {beta}")
    if mode == "full":
        return np.kaiser(length, beta)
    if mode != "half":
        raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
    tail = length - pre_roll
    window = np.ones(length)
    window[pre_roll:] = np.kaiser(2 * tail, beta)[tail:]
    return window


def cut_window(ir, onset, length, pre_roll=0):
    """``length`` samples of ``ir`` starting at ``onset - pre_roll``, zero-padded at either end.

    The onset always lands at index ``pre_roll`` of the result, even when the IR starts less
    than ``pre_roll`` samples before it.

    Args:
        ir: 1-D array ``[samples]``.
        onset: int, onset index in ``ir``.
        length: int > 0.
        pre_roll: int >= 0.

    Returns:
        float64 array ``[length]``.
    """
    ir = np.asarray(ir, dtype=np.float64)
    start = int(onset) - int(pre_roll)
    out = np.zeros(int(length))
    src_lo, src_hi = max(start, 0), min(start + int(length), ir.size)
    if src_hi > src_lo:
        out[src_lo - start : src_hi - start] = ir[src_lo:src_hi]
    return out


def normalize_ir(ir, mode="none"):
    """Scales ``ir`` by the rule ``mode``.

    Args:
        ir: 1-D array ``[samples]``.
        mode: ``"none"``, ``"peak"`` (max abs becomes 1) or ``"energy"`` (sum of squares
            becomes 1).

    Returns:
        float64 array ``[samples]``.

    Raises:
        ValueError: unknown mode, or ``"peak"``/``"energy"`` of a silent IR.
    """
    ir = np.asarray(ir, dtype=np.float64)
    if mode == "none":
        return ir.copy()
    if mode == "peak":
        scale = float(np.max(np.abs(ir))) if ir.size else 0.0
    elif mode == "energy":
        scale = float(np.sqrt(np.sum(ir * ir)))
    else:
        raise ValueError(f"normalisation must be one of {NORMALIZATIONS}, got {mode!r}")
    if scale == 0:
        raise ValueError(f"cannot apply {mode!r} normalisation to a silent impulse response")
    return ir / scale


def window_ir(
    ir,
    length=1024,
    pre_roll=16,
    beta=2.0,
    mode="half",
    onset=None,
    threshold_db=-20.0,
    noise_factor=5.0,
    lookback=160,
):
    """Onset detection (unless ``onset`` is given), cut and Kaiser taper in one call.

    Args:
        ir: 1-D array ``[samples]`` at the target rate.
        length, pre_roll, beta, mode: see :func:`ir_window`.
        onset: int or None; None runs :func:`detect_onset` with the remaining arguments.

    Returns:
        ``(windowed, onset)``: float64 array ``[length]`` and the onset index used.
    """
    if onset is None:
        onset = detect_onset(ir, threshold_db, noise_factor, lookback)
    cut = cut_window(ir, onset, length, pre_roll)
    return cut * ir_window(length, beta, pre_roll, mode), int(onset)


# === Builder helpers ===


def find_wavs(source):
    """Every ``.wav`` under ``source`` (recursive), as sorted ``/``-separated relative paths.

    The order is the sorted relative path, as CPJKU's ``sorted(Path(p).rglob('*.wav'))``.
    macOS archive debris (``__MACOSX/`` folders and ``._*`` AppleDouble files) is ignored.

    Args:
        source: the source root folder.

    Returns:
        ``(paths, ignored)``: list of relative path strings and the number of ignored files.

    Raises:
        UserError: ``source`` is not a folder.
    """
    root = Path(source)
    if not root.is_dir():
        raise UserError(f"source {source} is not a folder; expected the folder holding the IRs")
    paths, ignored = [], 0
    for path in root.rglob("*"):
        if path.suffix.lower() != ".wav" or not path.is_file():
            continue
        rel = path.relative_to(root)
        if rel.name.startswith("._") or "__MACOSX" in rel.parts:
            ignored += 1
            continue
        paths.append(rel.as_posix())
    return sorted(paths), ignored


def combined_digest(checksums):
    """One md5 over ``"<path>  <md5>\n"`` lines in sorted path order (a whole-source digest).

    Args:
        checksums: dict relative path -> hex md5.
    """
    digest = hashlib.md5()
    for path in sorted(checksums):
        digest.update(f"{path}  {checksums[path]}\n".encode())
    return digest.hexdigest()
