"""TFRecord writing without TensorFlow: framing, placed writes, gaps; bytes equal TF's writer."""

import os

import numpy as np
import pytest
import tensorflow as tf

from asc_core import example
from asc_core import tfrecord
from asc_core import tfrecord_io
from asc_core.errors import UserError
from asc_core.writer import OutputDir
from asc_core.writer import PlacedShards
from tfrecords_builder import parallel


def _audio(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)


def _labels(i):
    return {
        "filename": f"audio/bus-paris-21-{7 + 1000 * i}-{i % 10}-b.wav",
        "scene": "bus",
        "device": "b",
        "city": "paris",
        "location": "paris-21",
        "segment_id": 7 + 1000 * i,
        "index": i % 10,
    }


RECORDS = [
    b"",  # an empty record is legal TFRecord
    b"x",
    bytes(range(256)) * 3,
    example.encode_audio_example(_audio(32000), **_labels(1)),
    example.encode_audio_example(_audio(320000, 2), **_labels(2)),
]


def _tf_bytes(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path.read_bytes()


def _read(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def test_masked_crc_of_the_crc32c_check_value():
    # CRC-32C("123456789") = 0xE3069283 (the standard check value), then TFRecord's mask.
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(b"123456789") == expected


def test_record_writer_bytes_equal_tf_writer_and_read_back(tmp_path):
    ours = tmp_path / "ours.tfrecord"
    with tfrecord_io.RecordWriter(ours) as writer:
        for record in RECORDS:
            writer.write(record)
    assert writer.bytes_written == sum(len(r) + 16 for r in RECORDS)
    assert ours.read_bytes() == _tf_bytes(tmp_path / "tf.tfrecord", RECORDS)
    assert _read(ours) == RECORDS  # TFRecordDataset verifies both checksums of each record
    with pytest.raises(ValueError, match="the writer is closed"):
        writer.write(b"late")


def test_pieces_give_the_same_frame_as_the_joined_record():
    audio = _audio(1000, 3)
    pieces, size = example.audio_example_pieces(audio, **_labels(4))
    joined = example.encode_audio_example(audio, **_labels(4))
    assert size == len(joined) and b"".join(pieces) == joined
    assert any(p is audio for p in pieces)  # the waveform is not copied
    framed, framed_size = tfrecord.frame(pieces)
    assert framed_size == len(joined) + tfrecord.FRAME_BYTES
    assert b"".join(framed) == b"".join(tfrecord.frame(joined)[0])


@pytest.mark.parametrize(
    "labels",
    [
        _labels(3),
        {"filename": "audio/7.wav"},  # unlabelled: -1 ids are 10-byte varints
        {
            "filename": "Äö/ünïcode-ø.wav",
            "scene": "park",
            "device": "s6",
            "city": "lyon",
            "location": "lyon-1",
            "segment_id": 2**40,
            "index": 0,
        },
    ],
)
@pytest.mark.parametrize("num_samples", [0, 1, 31, 32000, 320000])
def test_size_and_layout_are_known_before_the_audio(labels, num_samples):
    audio = _audio(num_samples, num_samples)
    record = example.encode_audio_example(audio, **labels)
    assert example.audio_example_size(num_samples, **labels) == len(record)
    prefix, suffix = example.audio_example_layout(num_samples, **labels)
    assert prefix + audio.astype("<f4").tobytes() + suffix == record


def test_write_at_any_order_equals_sequential_tf_output(tmp_path):
    path = tmp_path / "placed.tfrecord"
    path.write_bytes(b"")
    offsets = np.cumsum([0] + [len(r) + 16 for r in RECORDS])
    try:
        for i in reversed(range(len(RECORDS))):  # last record first: the file is sparse
            pieces = (
                example.audio_example_pieces(_audio(32000), **_labels(1))[0]
                if i == 3
                else RECORDS[i]
            )
            assert (
                tfrecord_io.write_at(str(path), int(offsets[i]), pieces, size=len(RECORDS[i]) + 16)
                == len(RECORDS[i]) + 16
            )
    finally:
        tfrecord_io.close_files()
    assert path.read_bytes() == _tf_bytes(tmp_path / "tf.tfrecord", RECORDS)


def test_write_at_refuses_a_record_of_another_size(tmp_path):
    path = tmp_path / "f.tfrecord"
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"is 21 bytes framed but 20 were reserved"):
        tfrecord_io.write_at(str(path), 0, b"hello", size=20)
    assert path.read_bytes() == b""
    with pytest.raises(FileNotFoundError):  # never creates files: the layout owner does
        tfrecord_io.write_at(str(tmp_path / "missing"), 0, b"x")


def _write_placed(task):
    path, offset, size, record = task
    tfrecord_io.write_at(path, offset, record, size=size)
    return os.getpid()


def test_placed_shards_written_by_two_processes(tmp_path):
    records = [
        example.encode_audio_example(_audio(n, i), **_labels(i))
        for i, n in enumerate([10, 3000, 0, 77, 32000, 5, 640, 1])
    ]
    shards = PlacedShards(str(tmp_path), "train-1s", 3)
    places = [shards.place(len(r)) for r in records]
    assert [p[0] for p in places] == [shards.paths[i % 3] for i in range(len(records))]
    tasks = [(*place, record) for place, record in zip(places, records)]
    pids = list(parallel.ordered_map(_write_placed, tasks[::-1], workers=2, window=2))
    assert os.getpid() not in pids  # written by the workers, not here
    assert shards.finish() == [f"train-1s.tfrecord-0000{i}-of-00003" for i in range(3)]
    assert shards.num_examples == 8 and shards.counts == [3, 3, 2]
    for i, path in enumerate(shards.paths):
        expected = records[i::3]
        assert _read(path) == expected
        assert open(path, "rb").read() == _tf_bytes(tmp_path / f"tf{i}", expected)
        # The disk space reserved ahead of the writes (64 MB steps) was given back.
        assert os.stat(path).st_blocks * 512 < os.path.getsize(path) + (1 << 20)


def test_skipped_records_leave_no_gap(tmp_path):
    records = [bytes([i]) * (100 + 37 * i) for i in range(9)]
    shards = PlacedShards(str(tmp_path), "x", 2)
    places = [shards.place(len(r)) for r in records]
    skipped = {0, 3, 7, 8}  # first, middle, and the last record of each shard
    try:
        for i, (place, record) in enumerate(zip(places, records)):
            if i in skipped:
                shards.skip(place)
            else:
                tfrecord_io.write_at(*place[:2], record, size=place[2])
    finally:
        tfrecord_io.close_files()
    shards.finish()
    assert shards.counts == [3, 2] and shards.num_examples == 5
    for k, path in enumerate(shards.paths):
        kept = [r for i, r in enumerate(records) if i % 2 == k and i not in skipped]
        assert _read(path) == kept
        assert open(path, "rb").read() == _tf_bytes(tmp_path / f"tf{k}", kept)


def test_a_placed_record_never_written_is_reported(tmp_path):
    shards = PlacedShards(str(tmp_path), "x", 1)
    shards.place(10)
    with pytest.raises(
        RuntimeError,
        match=r"holds 0 bytes; its records take 26: a placed "
        r"record was not written",
    ):
        shards.finish()
    with pytest.raises(UserError, match="--shards must be at least 1, got 0"):
        PlacedShards(str(tmp_path), "y", 0)


def test_remove_gaps_rejects_overlapping_gaps(tmp_path):
    path = tmp_path / "g"
    path.write_bytes(bytes(100))
    with pytest.raises(ValueError, match="gaps overlap or exceed the file"):
        tfrecord_io.remove_gaps(str(path), [(10, 20), (20, 5)], 100)
    assert tfrecord_io.remove_gaps(str(path), [(90, 10), (0, 10)], 100) == 80
    assert path.stat().st_size == 80


def test_sharded_writer_round_robin_equals_tf(tmp_path):
    out = tmp_path / "dirs"
    records = RECORDS * 2
    with OutputDir(out, builder="micirp") as output:
        writer = output.sharded_writer("dirs", 3)
        for record in records:
            writer.write(record)
        output.finish({"shards": writer.names})
    for i, name in enumerate(writer.names):
        assert (out / name).read_bytes() == _tf_bytes(tmp_path / f"tf{i}", records[i::3])


def test_pure_python_crc_fallback_gives_the_same_frame(monkeypatch):
    from google_crc32c import python as crc_python

    audio = _audio(300, 5)
    pieces, _ = example.audio_example_pieces(audio, **_labels(5))
    expected = b"".join(tfrecord.frame(pieces)[0])
    monkeypatch.setattr(tfrecord, "_CRC_READS_ARRAYS", False)
    monkeypatch.setattr(tfrecord.google_crc32c, "extend", crc_python.extend)
    monkeypatch.setattr(tfrecord.google_crc32c, "value", crc_python.value)
    assert b"".join(tfrecord.frame([*pieces[:-1], bytearray(pieces[-1])])[0]) == expected
    assert b"".join(tfrecord.frame(pieces)[0]) == expected
