"""TFRecord schema: numpy encoders vs tf.train.Example, parsing eagerly / in Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf
from harness import assert_tf_data_parity

from asc_core import example
from asc_core import protobuf
from asc_core import vocab
from keras_asc.data import schema


def _audio(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)


def _tf_example(values, features):
    """The same record built with the TensorFlow protobuf API."""
    feature = {}
    for name, (kind, _) in features.items():
        value = values[name]
        if kind == "floats":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value))
        elif kind == "float":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        elif kind == "int":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[value.encode("utf-8")])
            )
    return tf.train.Example(features=tf.train.Features(feature=feature))


AUDIO_LABELS = {
    "filename": "audio/airport-lisbon-1000-40000-3-a.wav",
    "scene": "street_traffic",
    "device": "s2",
    "city": "lisbon",
    "location": "lisbon-1000",
    "segment_id": 40000,
    "index": 3,
}


def test_audio_record_equals_tf_example_message():
    audio = _audio(50)
    serialized = example.encode_audio_example(audio, **AUDIO_LABELS)
    expected = dict(
        AUDIO_LABELS, audio=audio, num_samples=50, sample_rate=32000, scene_id=8, device_id=4
    )
    assert tf.train.Example.FromString(serialized) == _tf_example(expected, example.AUDIO_FEATURES)
    # Same inputs, same bytes (the builders rely on it for byte-identical shards).
    assert example.encode_audio_example(audio, **AUDIO_LABELS) == serialized


def test_dir_record_equals_tf_example_message_with_unicode_and_negative_ints():
    ir = _audio(17, seed=1)
    kwargs = {
        "name": "sub/B&O_BM2 Ø.wav",
        "set": "micirp",
        "source_sample_rate": 48000,
        "microphone": "Røde NT2-A",
        "distance_cm": 50,
        "angle_deg": -1,
    }
    serialized = example.encode_dir_example(ir, **kwargs)
    expected = {
        "ir": ir,
        "num_samples": 17,
        "sample_rate": 32000,
        "source_sample_rate": 48000,
        "name": kwargs["name"],
        "set": "micirp",
        "peak": float(np.max(np.abs(ir))),
        "microphone": "Røde NT2-A",
        "pattern": "",
        "variant": "",
        "distance_cm": 50,
        "angle_deg": -1,
        "transducer": "",
        "diaphragm_size": "",
        "address": "",
        "diaphragm_count": -1,
    }
    assert tf.train.Example.FromString(serialized) == _tf_example(expected, example.DIR_FEATURES)


def test_parse_single_audio_record_eagerly():
    audio = _audio(32000)
    parsed = schema.parse_audio_example(example.encode_audio_example(audio, **AUDIO_LABELS))
    np.testing.assert_array_equal(parsed["audio"].numpy(), audio)
    assert parsed["audio"].shape == (32000,)
    assert parsed["scene"].numpy() == b"street_traffic"
    assert parsed["scene_id"].numpy() == vocab.SCENES.index("street_traffic")
    assert parsed["device_id"].numpy() == vocab.DEVICES.index("s2")
    assert parsed["segment_id"].numpy() == 40000 and parsed["index"].numpy() == 3
    assert parsed["num_samples"].numpy() == 32000 and parsed["sample_rate"].numpy() == 32000


def test_unlabelled_record_defaults():
    record = example.encode_audio_example(_audio(8), filename="audio/7.wav")
    parsed = schema.parse_audio_example(record)
    assert parsed["scene"].numpy() == b"" and parsed["scene_id"].numpy() == -1
    assert parsed["device"].numpy() == b"" and parsed["device_id"].numpy() == -1
    assert parsed["city"].numpy() == b"" and parsed["location"].numpy() == b""
    assert parsed["segment_id"].numpy() == -1 and parsed["index"].numpy() == -1


def test_batched_parse_is_ragged_or_dense_with_num_samples():
    a, b = _audio(5, 1), _audio(3, 2)
    records = [
        example.encode_audio_example(a, filename="x"),
        example.encode_audio_example(b, filename="y", scene="bus"),
    ]
    parsed = schema.parse_audio_example(tf.constant(records))
    assert isinstance(parsed["audio"], tf.RaggedTensor)
    assert parsed["audio"].row_lengths().numpy().tolist() == [5, 3]
    np.testing.assert_array_equal(parsed["audio"][1].numpy(), b)
    assert parsed["scene_id"].numpy().tolist() == [-1, 1]
    same = [example.encode_audio_example(a, filename=n) for n in "pq"]
    dense = schema.parse_audio_example(tf.constant(same), num_samples=5)
    assert isinstance(dense["audio"], tf.Tensor) and dense["audio"].shape == (2, 5)
    np.testing.assert_array_equal(dense["audio"].numpy(), np.stack([a, a]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        schema.parse_audio_example(tf.constant(records), num_samples=5)


def test_parse_inside_dataset_map_unbatched_and_batched():
    clips = [_audio(32000, s) for s in range(5)]
    records = [
        example.encode_audio_example(c, filename=f"f{i}", device=vocab.DEVICES[i])
        for i, c in enumerate(clips)
    ]
    unbatched = tf.data.Dataset.from_tensor_slices(records).map(schema.parse_audio_example)
    assert unbatched.element_spec["audio"].shape.as_list() == [None]
    got = list(unbatched.as_numpy_iterator())
    for i, item in enumerate(got):
        np.testing.assert_array_equal(item["audio"], clips[i])
        assert item["device_id"] == i
    # Fixed-length parsing: one example or a batch, eagerly or in Dataset.map, the same.
    parsed = assert_tf_data_parity(
        lambda s: schema.parse_audio_example(s, num_samples=32000), np.array(records)
    )
    np.testing.assert_array_equal(parsed["audio"], np.stack(clips))
    np.testing.assert_array_equal(parsed["device_id"], np.arange(5))
    ragged = tf.data.Dataset.from_tensor_slices(records).batch(3).map(schema.parse_audio_example)
    first = next(iter(ragged))
    assert first["audio"].shape.as_list() == [3, None]


def test_dir_parse_scalar_and_batch_in_map():
    irs = [_audio(n, n) for n in (10, 20)]
    records = [
        example.encode_dir_example(
            ir,
            name=f"m{i}.wav",
            set="multi",
            source_sample_rate=48000,
            distance_cm=125,
            angle_deg=90,
        )
        for i, ir in enumerate(irs)
    ]
    one = schema.parse_dir_example(records[1])
    np.testing.assert_array_equal(one["ir"].numpy(), irs[1])
    assert one["peak"].numpy() == pytest.approx(np.max(np.abs(irs[1])))
    assert one["distance_cm"].numpy() == 125 and one["diaphragm_count"].numpy() == -1
    batched = tf.data.Dataset.from_tensor_slices(records).batch(2).map(schema.parse_dir_example)
    batch = next(iter(batched))
    assert batch["ir"].row_lengths().numpy().tolist() == [10, 20]
    assert batch["set"].numpy().tolist() == [b"multi", b"multi"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: example.encode_audio_example(np.zeros((2, 3)), filename="x"), "1-D"),
        (lambda: example.encode_audio_example(np.array([0.0, np.nan]), filename="x"), "NaN"),
        (
            lambda: example.encode_audio_example(np.zeros(3), filename="x", scene="beach"),
            "unknown scene 'beach'",
        ),
        (
            lambda: example.encode_audio_example(np.zeros(3), filename="x", device="s7"),
            "unknown device 's7'",
        ),
        (
            lambda: example.encode_dir_example(
                np.zeros(3), name="x", set="vintage", source_sample_rate=1
            ),
            "unknown DIR set 'vintage'",
        ),
        (lambda: protobuf.encode_example(example.AUDIO_FEATURES, {"audio": [0.0]}), "missing"),
        (lambda: schema.parse_audio_example(tf.constant([["a"]])), "scalar or a vector"),
    ],
)
def test_invalid_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
