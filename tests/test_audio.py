"""read_audio / resample: 24-bit and odd RIFF chunks, validation messages, soxr resampling."""

import struct

import numpy as np
import pytest
import soundfile as sf

from asc_core.audio import read_audio
from asc_core.audio import resample
from asc_core.errors import UserError


def _sine(freq, rate, seconds=1.0, amplitude=0.5):
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x)


def _wav_with_chunks(pcm24, rate, extra_chunks):
    """A 24-bit mono WAV with extra chunks (odd sizes padded) between fmt and data."""
    ints = np.round(np.asarray(pcm24) * (2**23 - 1)).astype("<i4")
    data = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 3, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for chunk_id, payload in extra_chunks:
        body += chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body, ints


def test_24bit_with_odd_chunks_reads_exact_values(tmp_path):
    x = _sine(440, 44100, 0.1)
    chunks = [(b"JUNK", b"\0" * 27), (b"bext", b"x" * 5), (b"FLLR", b"\0" * 13)]
    blob, ints = _wav_with_chunks(x, 44100, chunks)
    path = tmp_path / "odd.wav"
    path.write_bytes(blob)
    audio, rate = read_audio(path, expected_rate=44100, expected_frames=len(x))
    assert rate == 44100 and audio.dtype == np.float32 and audio.shape == (len(x),)
    np.testing.assert_array_equal(audio, (ints / 2.0**23).astype(np.float32))


def test_resampling_keeps_the_frequency_and_length(tmp_path):
    path = tmp_path / "sine.wav"
    sf.write(path, _sine(1000.0, 44100), 44100, subtype="PCM_24")
    audio, rate = read_audio(path, target_rate=32000)
    assert rate == 32000 and audio.shape == (32000,)
    assert _peak_hz(audio, 32000) == pytest.approx(1000.0, abs=1.0)
    # Level kept: a 0.5 sine has RMS 0.5/sqrt(2) (edges excluded).
    assert np.sqrt(np.mean(audio[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    again, _ = read_audio(path, target_rate=32000)
    np.testing.assert_array_equal(audio, again)  # deterministic
    # A tone above the new Nyquist frequency (16 kHz) is removed, not aliased.
    high = resample(_sine(20000.0, 44100), 44100, 32000)
    assert np.max(np.abs(high[2000:-2000])) < 1e-3


def test_resample_same_rate_is_identity():
    x = _sine(300, 32000)
    np.testing.assert_array_equal(resample(x, 32000, 32000), x)


def test_stereo_require_downmix_keep(tmp_path):
    left, right = _sine(500, 44100, 0.1), _sine(700, 44100, 0.1, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 44100, subtype="FLOAT")
    with pytest.raises(UserError, match=r"stereo\.wav has 2 channels; expected mono"):
        read_audio(path)
    mono, _ = read_audio(path, mono="downmix")
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = read_audio(path, mono="keep")
    assert both.shape == (len(left), 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_rejected(tmp_path, bad):
    x = _sine(500, 44100, 0.1)
    x[10] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    with pytest.raises(UserError, match=r"nan\.wav contains 1 NaN/Inf samples"):
        read_audio(path)


def test_truncated_wav_rejected_even_without_expected_frames(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _sine(500, 44100), 44100, subtype="PCM_24")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 3000])
    with pytest.raises(UserError, match=r"cut\.wav is truncated: its data chunk lacks 3000 bytes"):
        read_audio(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not audio at all", r"junk\.wav cannot be decoded .*expected a readable audio"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", r"junk\.wav cannot be decoded"),
    ],
)
def test_non_audio_rejected(tmp_path, content, message):
    path = tmp_path / "junk.wav"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_audio(path)


def test_empty_audio_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 44100, subtype="PCM_16")
    with pytest.raises(UserError, match=r"empty\.wav contains no samples"):
        read_audio(path)


def test_rate_and_length_expectations(tmp_path):
    path = tmp_path / "r48.wav"
    sf.write(path, _sine(500, 48000), 48000, subtype="PCM_24")
    with pytest.raises(UserError, match=r"r48\.wav has sample rate 48000 Hz; expected 44100 Hz"):
        read_audio(path, expected_rate=44100)
    with pytest.raises(UserError, match=r"r48\.wav has 48000 frames .* expected 44100 frames"):
        read_audio(path, expected_frames=44100)
    audio, rate = read_audio(path, target_rate=32000, expected_rate=48000)
    assert rate == 32000 and audio.shape == (32000,)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.wav does not exist"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(ValueError, match="mono must be one of"):
        read_audio(tmp_path / "nope.wav", mono=True)
