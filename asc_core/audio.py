"""Reading and resampling audio files, with validation that names the file on every failure.

``tf.audio.decode_wav`` reads only 16-bit PCM, while TAU22 and the DIR sets are 24-bit WAVs with
extra RIFF chunks (``JUNK``, ``bext``, ``FLLR``, ...). Everything is therefore decoded with
soundfile (libsndfile) and resampled with soxr. This module imports neither TensorFlow nor Keras,
so builder worker processes can use it cheaply.

Resampling uses ``soxr.resample(..., quality="HQ")``: the same resampler and quality as
``librosa.load(..., sr=32000)`` (librosa's default ``res_type="soxr_hq"``, used by the CPJKU
reference code). HQ is a linear-phase filter with a 95 % passband (up to 15.2 kHz at 32 kHz)
and ≥ 120 dB stop-band rejection; soxr is deterministic: the same input gives the same output.
The output length is ``round(n * target_rate / rate)``, e.g. 44100 → 32000 samples.
"""

import os

import numpy as np
import soundfile
import soxr

from asc_core.errors import UserError

RESAMPLE_QUALITY = "HQ"
MONO_MODES = ("require", "downmix", "keep")


def _wav_missing_bytes(path):
    """Bytes missing from a RIFF/WAVE file's ``data`` chunk (0 when complete or not a WAV).

    libsndfile silently shortens a truncated WAV to the frames present, so the declared size
    of the ``data`` chunk is compared with the file size. Chunks are walked with their
    pad byte (odd sizes), so extra chunks (``JUNK``, ``bext``, ``FLLR``, ...) are skipped.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streamed WAV: size left unknown
                    return 0
                return max(0, offset + 8 + chunk_size - size)
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0


def resample(audio, rate, target_rate, quality=RESAMPLE_QUALITY):
    """Resamples ``audio`` from ``rate`` to ``target_rate`` with soxr.

    Args:
        audio: float array ``[samples]`` or ``[samples, channels]``.
        rate: input sample rate in Hz.
        target_rate: output sample rate in Hz.
        quality: soxr quality recipe (default ``"HQ"``, see the module docstring).

    Returns:
        float32 array ``[round(samples * target_rate / rate)(, channels)]``; the input itself
        (as float32) when the rates are equal.

    Example:

    >>> resample(np.ones(44100), 44100, 32000).shape  # 1 s of TAU22 audio at the model's rate
    (32000,)
    """
    audio = np.asarray(audio, dtype=np.float32)
    if int(rate) == int(target_rate):
        return audio
    return soxr.resample(audio, int(rate), int(target_rate), quality=quality).astype(
        np.float32, copy=False
    )


def read_audio(
    path,
    target_rate=None,
    *,
    mono="require",
    expected_rate=None,
    expected_frames=None,
    quality=RESAMPLE_QUALITY,
):
    """Reads an audio file as float32, validates it and optionally resamples it.

    Every problem raises :class:`asc_core.errors.UserError` naming ``path`` and what was
    expected: a missing file, a file libsndfile cannot decode (not audio, truncated header),
    no samples, a wrong number of channels, a wrong sample rate, a wrong number of frames
    (truncated data), or NaN/Inf samples (float WAVs).

    Args:
        path: the audio file (any format libsndfile reads: WAV of 16/24/32-bit PCM or float,
            with any extra RIFF chunks, FLAC, ...).
        target_rate: resample to this rate in Hz; None keeps the file's rate.
        mono: ``"require"`` rejects files with more than one channel, ``"downmix"`` averages
            the channels, ``"keep"`` returns every channel.
        expected_rate: if given, the file's own sample rate must equal it.
        expected_frames: if given, the file must hold exactly this many frames (before
            resampling); catches truncated files, whose header promises more data.
        quality: soxr quality recipe.

    Returns:
        ``(audio, rate)``: float32 ``[samples]`` (``[samples, channels]`` with
        ``mono="keep"``) in [-1, 1] for PCM files, and its sample rate (``target_rate`` when
        given).
    """
    if mono not in MONO_MODES:
        raise ValueError(f"mono must be one of {MONO_MODES}, got {mono!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"audio file {path} does not exist (or is not a file)")
    missing = _wav_missing_bytes(path)
    if missing:
        raise UserError(
            f"audio file {path} is truncated: its data chunk lacks {missing} bytes; "
            "expected a complete WAV file"
        )
    try:
        with soundfile.SoundFile(path) as handle:
            rate = handle.samplerate
            channels = handle.channels
            frames = handle.frames
            if expected_rate is not None and rate != int(expected_rate):
                raise UserError(
                    f"audio file {path} has sample rate {rate} Hz; expected {int(expected_rate)} Hz"
                )
            if channels != 1 and mono == "require":
                raise UserError(
                    f"audio file {path} has {channels} channels; expected mono (1 channel)"
                )
            if expected_frames is not None and frames != int(expected_frames):
                raise UserError(
                    f"audio file {path} has {frames} frames ({frames / rate:.4f} s at {rate} Hz); "
                    f"expected {int(expected_frames)} frames (truncated or wrong length?)"
                )
            audio = handle.read(dtype="float32", always_2d=True)
    except UserError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise UserError(
            f"audio file {path} cannot be decoded ({detail}); expected a readable audio file "
            "such as a PCM WAV"
        ) from None
    if audio.shape[0] == 0:
        raise UserError(f"audio file {path} contains no samples; expected audio data")
    if audio.shape[0] != frames:
        raise UserError(
            f"audio file {path} holds {audio.shape[0]} frames but its header announces {frames}; "
            "the file is truncated"
        )
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise UserError(f"audio file {path} contains {bad} NaN/Inf samples; expected finite audio")
    if mono == "downmix":
        audio = audio.mean(axis=1)
    elif mono == "require":
        audio = audio[:, 0]
    if target_rate is not None and int(target_rate) != rate:
        audio = resample(audio, rate, target_rate, quality=quality)
        rate = int(target_rate)
    return np.ascontiguousarray(audio, dtype=np.float32), rate
