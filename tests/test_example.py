"""asc_core.example's byte-layout helpers (spliced record layouts) and protobuf varint lengths."""

import numpy as np
import pytest

from asc_core import example
from asc_core import protobuf

CLIP_SAMPLES = 32000


def test_varint_lengths_match_protobuf():
    values = [0, 1, 127, 128, 16383, 16384, 2**35, 2**56 - 1, 2**56, 2**63 - 1, -1, -(2**63)]
    expected = [1, 1, 1, 2, 2, 3, 6, 8, 9, 9, 10, 10]
    assert protobuf.varint_lengths(np.array(values, np.int64)).tolist() == expected


def _record(name, index, scene="bus", device="a", city="paris", location="paris-2", segment=7):
    return {
        "filename": name,
        "index": index,
        "scene": scene,
        "device": device,
        "city": city,
        "location": location,
        "segment_id": segment,
    }


def _computed(record):
    return example.audio_example_layout(CLIP_SAMPLES, **record)


def test_spliced_layouts_equal_computed_ones():
    parts = [_record(f"audio/bus-paris-2-7-{k}-a.wav", k) for k in range(10)]
    units = [
        parts,
        parts[::-1],  # the first part need not have index 0
        [_record("audio/x-0.wav", 127), _record("audio/x-1.wav", 5), _record("audio/x-2.wav", 200)],
        [_record("audio/x-0.wav", 300), _record("audio/x-1.wav", 1)],  # first index >= 128
        [_record("audio/x-0.wav", 0), _record("audio/x-10.wav", 10)],  # another name length
        [_record("audio/x-0.wav", 0), _record("audio/x-1.wav", 1, scene="park")],  # other labels
        [_record("audio/\u00e9-0.wav", 0), _record("audio/\u00e9-1.wav", 1)],  # non-ASCII name
        [_record("audio/0.wav", 0), _record("audio/1.wav", 1)],  # "0" is also a byte
        [_record(f"audio/paris-{k}.wav", k, location="audio/paris-0.wav") for k in range(3)],
        parts[:1],
    ]
    for records in units:
        assert example.audio_example_layouts(CLIP_SAMPLES, records) == [
            _computed(r) for r in records
        ]


def test_spliced_layouts_compute_two_per_recording(monkeypatch):
    calls = []
    layout = example.audio_example_layout
    monkeypatch.setattr(
        example,
        "audio_example_layout",
        lambda *a, **k: calls.append(k["filename"]) or layout(*a, **k),
    )
    parts = [_record(f"audio/bus-paris-2-7-{k}-a.wav", k) for k in range(10)]
    assert len(example.audio_example_layouts(CLIP_SAMPLES, parts)) == 10
    assert calls == [parts[0]["filename"]] * 2  # the first part, and its probe with index 1


def test_spliced_layouts_join_to_the_encoded_records():
    rng = np.random.default_rng(0)
    records = [_record(f"audio/bus-paris-2-7-{k}-a.wav", k) for k in range(3)]
    for record, (prefix, suffix) in zip(
        records, example.audio_example_layouts(CLIP_SAMPLES, records)
    ):
        wave = rng.standard_normal(CLIP_SAMPLES).astype(np.float32)
        joined = prefix + wave.astype("<f4").tobytes() + suffix
        assert joined == example.encode_audio_example(wave, **record)


def test_cached_sizes_still_check_the_labels():
    # "park" and "tram" share a record length (a cached answer); an unknown scene of the same
    # length is refused all the same, and a label that is not a field is a TypeError.
    wave = np.zeros(CLIP_SAMPLES, np.float32)
    sizes = [
        example.audio_example_size(CLIP_SAMPLES, filename="f.wav", scene=s)
        for s in ("park", "tram")
    ]
    assert sizes == [len(example.encode_audio_example(wave, filename="f.wav", scene="tram"))] * 2
    with pytest.raises(ValueError, match="unknown scene 'xxxx'"):
        example.audio_example_size(CLIP_SAMPLES, filename="f.wav", scene="xxxx")
    with pytest.raises(TypeError, match="colour"):
        example.audio_example_layout(CLIP_SAMPLES, filename="f.wav", colour="red")
    with pytest.raises(TypeError, match="filename"):
        example.encode_audio_example(wave, scene="park")
