"""TFRecord schema shared by ``tfrecords_builder`` (writing) and ``keras_asc.data`` (reading).

Two record kinds, both ``tf.train.Example`` (full description in ``docs/data_format.md``):

* audio sets (``tau22``): one 1-s clip or one reassembled 10-s recording per record;
* DIR sets (``micirp``, ``multi-dirs``, ``generated``): one device impulse response per record.

Writing needs no TensorFlow: :func:`encode_audio_example` and :func:`encode_dir_example` produce the
serialized protobuf bytes with numpy alone (keys in sorted order, packed float/int lists), so the
builders can serialize inside worker processes that never import TensorFlow. Equal inputs give
equal bytes (the builders' outputs are byte-reproducible); the message equals the
``tf.train.Example`` built from the same values.

Reading uses TensorFlow: :func:`parse_audio_example` / :func:`parse_dir_example` accept a scalar
string tensor (one record) or a vector (a batch) and work eagerly and inside ``Dataset.map``.
The waveform length is not part of the schema (1 s and 10 s records share it), so the waveform
is parsed as a :class:`tf.io.RaggedFeature`: a dense ``[num_samples]`` tensor for one record and
a ``tf.RaggedTensor`` ``[batch, None]`` for a batch. When every record is known to have the same
length, pass ``num_samples=`` to parse it as a ``FixedLenFeature`` into a dense tensor instead
(faster; parsing fails loudly on a record of another length).
"""

import struct

import numpy as np

from keras_asc import vocab

AUDIO_KIND = "audio"
DIR_KIND = "dir"

# name -> (kind, default). kind: "floats" (variable-length float list), "int", "float", "bytes".
AUDIO_FEATURES = {
    "audio": ("floats", None),
    "num_samples": ("int", None),
    "sample_rate": ("int", None),
    "filename": ("bytes", None),
    "scene": ("bytes", ""),
    "scene_id": ("int", -1),
    "device": ("bytes", ""),
    "device_id": ("int", -1),
    "city": ("bytes", ""),
    "location": ("bytes", ""),
    "segment_id": ("int", -1),
    "index": ("int", -1),
}

DIR_FEATURES = {
    "ir": ("floats", None),
    "num_samples": ("int", None),
    "sample_rate": ("int", None),
    "source_sample_rate": ("int", None),
    "name": ("bytes", None),
    "set": ("bytes", None),
    "peak": ("float", None),
    "microphone": ("bytes", ""),
    "pattern": ("bytes", ""),
    "variant": ("bytes", ""),
    "distance_cm": ("int", -1),
    "angle_deg": ("int", -1),
    "transducer": ("bytes", ""),
    "diaphragm_size": ("bytes", ""),
    "address": ("bytes", ""),
    "diaphragm_count": ("int", -1),
}

DIR_SETS = ("micirp", "multi", "generated")


# === Encoding (numpy only) ===


def _varint(value):
    """Protobuf base-128 varint; negative int64 values use their two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _header(number, length):
    """Tag and length of a length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(length)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    return _header(number, len(payload)) + payload


def _feature(kind, value):
    """Serialized ``tf.train.Feature`` as a list of byte pieces (joined once by the caller)."""
    if kind == "bytes":
        if isinstance(value, str):
            value = value.encode("utf-8")
        return [_field(1, _field(1, bytes(value)))]  # bytes_list { value: ... }
    if kind == "int":
        return [_field(3, _field(1, _varint(int(value))))]  # int64_list, packed
    if kind == "float":
        return [_field(2, _field(1, struct.pack("<f", float(value))))]  # float_list, packed
    if kind == "floats":
        # Waveforms are large: a memoryview lets the final join copy their bytes only once.
        data = memoryview(np.ascontiguousarray(value, dtype="<f4")).cast("B")
        if not data.nbytes:  # an empty packed list is an empty FloatList, as protobuf writes it
            return [_header(2, 0)]
        inner = _header(1, data.nbytes)
        return [_header(2, len(inner) + data.nbytes), inner, data]
    raise ValueError(f"unknown feature kind {kind!r}")


def encode_example(features, values):
    """Serializes ``values`` (name -> python/numpy value) as a ``tf.train.Example``.

    Args:
        features: the schema, :data:`AUDIO_FEATURES` or :data:`DIR_FEATURES`.
        values: dict with exactly the schema's keys.

    Returns:
        bytes, the serialized Example (map entries in sorted key order).
    """
    missing = sorted(set(features) - set(values))
    extra = sorted(set(values) - set(features))
    if missing or extra:
        raise ValueError(f"example keys differ from the schema: missing {missing}, unknown {extra}")
    pieces = []
    for name in sorted(features):
        key = name.encode("utf-8")
        feature = _feature(features[name][0], values[name])
        feature_length = sum(_nbytes(p) for p in feature)
        entry = [_header(1, len(key)), key, _header(2, feature_length), *feature]
        pieces.append(_header(1, sum(_nbytes(p) for p in entry)))
        pieces.extend(entry)
    return b"".join([_header(1, sum(_nbytes(p) for p in pieces)), *pieces])


def _nbytes(piece):
    return piece.nbytes if isinstance(piece, memoryview) else len(piece)


def _waveform(name, values):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D [num_samples], got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    # One pass without a temporary mask: a float64 sum of float32 values cannot overflow, so it
    # is finite exactly when every value is.
    if not np.isfinite(np.sum(array, dtype=np.float64)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return array


def _vocab_id(name, value, choices):
    if value == "":
        return -1
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)} or ''")
    return choices.index(value)


def encode_audio_example(
    audio,
    *,
    filename,
    scene="",
    device="",
    city="",
    location="",
    segment_id=-1,
    index=-1,
    sample_rate=vocab.SAMPLE_RATE,
):
    """Serializes one audio record (a 1-s clip or a 10-s recording).

    Args:
        audio: float array ``[num_samples]``, mono waveform at ``sample_rate``.
        filename: 1s: the CSV name (``audio/airport-lisbon-1000-40000-3-a.wav``); 10s: the
            group key (``airport-lisbon-1000-40000-a``).
        scene: a label of ``vocab.SCENES`` or ``""`` when unlabelled (``scene_id`` -1).
        device: a name of ``vocab.DEVICES`` or ``""`` when unknown (``device_id`` -1).
        city, location: ``lisbon``, ``lisbon-1000``; ``""`` when unknown.
        segment_id: the 10-s segment id from the name, -1 when unknown.
        index: the 1-s index 0..9 inside the segment, -1 for 10-s records.
        sample_rate: the rate of ``audio`` in Hz.

    Returns:
        bytes, the serialized ``tf.train.Example``.
    """
    audio = _waveform("audio", audio)
    values = {
        "audio": audio,
        "num_samples": audio.shape[0],
        "sample_rate": sample_rate,
        "filename": filename,
        "scene": scene,
        "scene_id": _vocab_id("scene", scene, vocab.SCENES),
        "device": device,
        "device_id": _vocab_id("device", device, vocab.DEVICES),
        "city": city,
        "location": location,
        "segment_id": segment_id,
        "index": index,
    }
    return encode_example(AUDIO_FEATURES, values)


def encode_dir_example(
    ir,
    *,
    name,
    set,  # noqa: A002 - the feature is called "set" in the format
    source_sample_rate,
    sample_rate=vocab.SAMPLE_RATE,
    microphone="",
    pattern="",
    variant="",
    distance_cm=-1,
    angle_deg=-1,
    transducer="",
    diaphragm_size="",
    address="",
    diaphragm_count=-1,
):
    """Serializes one device impulse response record.

    Args:
        ir: float array ``[num_samples]``, the impulse response at ``sample_rate``.
        name: path relative to the source root, ``/``-separated.
        set: ``micirp``, ``multi`` or ``generated``.
        source_sample_rate: the rate of the source file before resampling.
        sample_rate: the rate of ``ir`` in Hz.
        microphone, pattern, variant, transducer, diaphragm_size, address: metadata strings,
            ``""`` when unknown.
        distance_cm, angle_deg, diaphragm_count: metadata integers, -1 when unknown.

    Returns:
        bytes, the serialized ``tf.train.Example``; ``peak`` is computed as ``max(abs(ir))``.
    """
    ir = _waveform("ir", ir)
    if set not in DIR_SETS:
        raise ValueError(f"unknown DIR set {set!r}; expected one of {', '.join(DIR_SETS)}")
    values = {
        "ir": ir,
        "num_samples": ir.shape[0],
        "sample_rate": sample_rate,
        "source_sample_rate": source_sample_rate,
        "name": name,
        "set": set,
        "peak": float(np.max(np.abs(ir))) if ir.size else 0.0,
        "microphone": microphone,
        "pattern": pattern,
        "variant": variant,
        "distance_cm": distance_cm,
        "angle_deg": angle_deg,
        "transducer": transducer,
        "diaphragm_size": diaphragm_size,
        "address": address,
        "diaphragm_count": diaphragm_count,
    }
    return encode_example(DIR_FEATURES, values)


# === Parsing (TensorFlow) ===


def feature_spec(features, waveform_key, num_samples=None):
    """``tf.io`` parsing spec for a schema.

    Args:
        features: :data:`AUDIO_FEATURES` or :data:`DIR_FEATURES`.
        waveform_key: ``"audio"`` or ``"ir"``.
        num_samples: fixed waveform length, or None for a variable-length (ragged) waveform.

    Returns:
        dict name -> ``tf.io.FixedLenFeature`` / ``tf.io.RaggedFeature``.
    """
    import tensorflow as tf

    dtypes = {"int": tf.int64, "float": tf.float32, "bytes": tf.string}
    spec = {}
    for name, (kind, default) in features.items():
        if name == waveform_key:
            if num_samples is None:
                spec[name] = tf.io.RaggedFeature(tf.float32)
            else:
                spec[name] = tf.io.FixedLenFeature([int(num_samples)], tf.float32)
        else:
            spec[name] = tf.io.FixedLenFeature([], dtypes[kind], default_value=default)
    return spec


def audio_feature_spec(num_samples=None):
    """Parsing spec of audio records; see :func:`feature_spec`."""
    return feature_spec(AUDIO_FEATURES, "audio", num_samples)


def dir_feature_spec(num_samples=None):
    """Parsing spec of DIR records; see :func:`feature_spec`."""
    return feature_spec(DIR_FEATURES, "ir", num_samples)


def _parse(serialized, spec):
    import tensorflow as tf

    serialized = tf.convert_to_tensor(serialized, dtype=tf.string)
    rank = serialized.shape.rank
    if rank == 0:
        return tf.io.parse_single_example(serialized, spec)
    if rank == 1:
        return tf.io.parse_example(serialized, spec)
    raise ValueError(
        f"serialized examples must be a scalar or a vector of strings, got shape {serialized.shape}"
    )


def parse_audio_example(serialized, num_samples=None):
    """Parses serialized audio records.

    Args:
        serialized: string tensor, scalar (one record) or ``[batch]``.
        num_samples: expected waveform length (e.g. 32000 for the 1s view) or None.

    Returns:
        dict of tensors with the keys of :data:`AUDIO_FEATURES`. ``audio`` is float32
        ``[num_samples]`` for a scalar input; for a batch it is a ``tf.RaggedTensor``
        ``[batch, None]``, or a dense ``[batch, num_samples]`` tensor when ``num_samples`` is
        given. The other features are scalars (``[batch]`` for a batch): int64 or string.
    """
    return _parse(serialized, audio_feature_spec(num_samples))


def parse_dir_example(serialized, num_samples=None):
    """Parses serialized DIR records.

    Args:
        serialized: string tensor, scalar (one record) or ``[batch]``.
        num_samples: expected impulse response length, or None (variable).

    Returns:
        dict of tensors with the keys of :data:`DIR_FEATURES`; ``ir`` as in
        :func:`parse_audio_example` (dense for a scalar input, ragged for a batch unless
        ``num_samples`` is given).
    """
    return _parse(serialized, dir_feature_spec(num_samples))
