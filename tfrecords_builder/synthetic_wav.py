"""WAV writing for the synthetic corpus: soundfile for the samples, byte-level RIFF chunk edits.

Real MicIRP files carry extra RIFF chunks (`JUNK`, `LIST`, a non-standard `FLLR` before
`data`); readers must tolerate them, so the generator writes them. soundfile adds a `PEAK`
chunk with a time stamp to float files, which would break byte-identical output; it is dropped.
"""

import io
import os
import struct

import soundfile as sf


def _split_chunks(riff):
    """Splits a RIFF/WAVE byte string into a list of `(id, payload)` pairs."""
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE byte string")
    chunks = []
    pos = 12
    while pos + 8 <= len(riff):
        cid = riff[pos : pos + 4]
        (size,) = struct.unpack("<I", riff[pos + 4 : pos + 8])
        chunks.append((cid, riff[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _join_chunks(chunks):
    parts = [b"WAVE"]
    for cid, payload in chunks:
        parts += [cid, struct.pack("<I", len(payload)), payload, b"\0" * (len(payload) & 1)]
    body = b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def list_info_chunk(software):
    """A `LIST`/`INFO` payload with one `ISFT` (software) entry."""
    text = software.encode("ascii") + b"\0"
    if len(text) & 1:
        text += b"\0"
    return b"INFO" + b"ISFT" + struct.pack("<I", len(text)) + text


def wav_bytes(data, sample_rate, subtype="PCM_24", before_fmt=(), after_fmt=(), before_data=()):
    """Encodes mono `data` `[samples]` as WAV bytes with extra chunks inserted.

    Args:
        data: float array `[samples]` in [-1, 1].
        sample_rate: Hz.
        subtype: soundfile subtype (`PCM_24`, `FLOAT`, ...).
        before_fmt, after_fmt, before_data: sequences of `(4-byte id, payload bytes)`.

    Returns:
        bytes of a RIFF/WAVE file (no `PEAK`/`fact`-free guarantee for PCM; `PEAK` removed).
    """
    buffer = io.BytesIO()
    sf.write(buffer, data, sample_rate, subtype=subtype, format="WAV")
    chunks = [c for c in _split_chunks(buffer.getvalue()) if c[0] != b"PEAK"]
    out = list(before_fmt)
    for cid, payload in chunks:
        if cid == b"data":
            out.extend(before_data)
        out.append((cid, payload))
        if cid == b"fmt ":
            out.extend(after_fmt)
    return _join_chunks(out)


def chunk_ids(path):
    """The chunk ids of a WAV file, in order (e.g. `['JUNK', 'fmt ', 'LIST', 'data']`)."""
    with open(path, "rb") as f:
        return [cid.decode("latin-1") for cid, _ in _split_chunks(f.read())]


def write_wav(path, data, sample_rate, subtype="PCM_24", **chunks):
    """Writes `wav_bytes(...)` to `path`, creating parent folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(wav_bytes(data, sample_rate, subtype=subtype, **chunks))
