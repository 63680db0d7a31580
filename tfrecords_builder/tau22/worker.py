"""TAU22 worker: decodes, resamples, encodes and writes the records of one work unit.

Runs in the worker processes, which never import TensorFlow.
"""

import numpy as np

from asc_core import example
from asc_core import tfrecord_io
from asc_core import vocab
from asc_core.errors import UserError
from tfrecords_builder.tau22.source import CLIP_SAMPLES
from tfrecords_builder.tau22.source import CLIP_SECONDS
from tfrecords_builder.tau22.source import PARTS
from tfrecords_builder.tau22.source import SOURCE_RATE

# What a worker imports to run process_unit (it does so while the main process plans).
WORKER_MODULES = ("tfrecords_builder.tau22.worker", "asc_core.audio", "asc_core.example")


def clip_layouts(clips):
    """``(prefix, suffix)`` of the 1-s record of each clip (``example.audio_example_layouts``)."""
    records = [dict(filename=c.filename, index=c.index, **c.labels()) for c in clips]
    return example.audio_example_layouts(CLIP_SAMPLES, records)


def process_unit(task):
    """Decodes, validates, encodes and writes one unit; runs in a worker process.

    Args:
        task: ``(split, key, clips, display, places)``; ``display`` names the split CSV (for
            messages); ``places[i]`` is the ``(path, offset, framed size)`` reserved for the
            1-s record of ``clips[i]``, and ``places[-1]`` the one of the 10-s record when
            ``key`` is not None.

    Returns:
        ``(written_1s, written_10s, errors)``: whether each clip's 1-s record was written,
        whether the 10-s record was (False when ``key`` is None or a part failed), and
        ``(filename, message)`` for each failed clip.
    """
    from asc_core import audio as audio_lib

    split, key, clips, display, places = task
    # The bytes around each waveform first, in one tight loop (cheaper than one at a time
    # between the decoding and resampling of the recording).
    layouts = clip_layouts(clips)
    if key is not None:
        layouts.append(
            example.audio_example_layout(
                CLIP_SAMPLES * PARTS, filename=key, index=-1, **clips[0].labels()
            )
        )
    written, raws, errors = [], [], []
    for clip, reserved, layout in zip(clips, places, layouts):
        try:
            raw, _ = audio_lib.read_audio(
                clip.path, expected_rate=SOURCE_RATE, expected_frames=SOURCE_RATE * CLIP_SECONDS
            )
        except UserError as err:
            written.append(False)
            raws.append(None)
            errors.append((clip.filename, f"{display} line {clip.line} ({clip.filename}): {err}"))
            continue
        _write_wave(audio_lib.resample(raw, SOURCE_RATE, vocab.SAMPLE_RATE), layout, reserved)
        written.append(True)
        raws.append(raw)
    written_10s = False
    if key is not None and not errors:
        wave = audio_lib.resample(np.concatenate(raws), SOURCE_RATE, vocab.SAMPLE_RATE)
        _write_wave(wave, layouts[-1], places[-1])
        written_10s = True
    return written, written_10s, errors


def _write_wave(wave, layout, reserved):
    """Writes the record of a resampled waveform where it was placed.

    The waveform is stored as the resampler gave it, not clipped: what ``librosa.load(path,
    sr=32000)`` returns in the reference code (a source near full scale can exceed ±1).
    ``read_audio`` rejected non-finite samples and resampling keeps them finite, so the
    encoder's NaN/Inf check is not repeated. A waveform of another length than the one the
    layout was made for gives another record length, which ``write_at`` refuses.
    """
    prefix, suffix = layout
    wave = wave.astype("<f4", copy=False)  # the stored byte order (a no-op on x86 and ARM)
    tfrecord_io.write_at(reserved[0], reserved[1], [prefix, wave, suffix], size=reserved[2])
