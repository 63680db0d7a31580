"""TFRecord schema shared by ``tfrecords_builder`` (writing) and ``keras_asc.data`` (reading).

Two record kinds, both ``tf.train.Example`` (full description in ``docs/data_format.md``):

* audio sets (``tau22``): one 1-s clip or one reassembled 10-s recording per record;
* DIR sets (``micirp``, ``multi-dirs``, ``generated``): one device impulse response per record.

Writing needs no TensorFlow: :func:`encode_audio_example` and :func:`encode_dir_example` produce the
serialized protobuf bytes with numpy alone (keys in sorted order, packed float/int lists), so the
builders can serialize inside worker processes that never import TensorFlow. Equal inputs give
equal bytes (the builders' outputs are byte-reproducible); the message equals the
``tf.train.Example`` built from the same values. :func:`audio_example_pieces` gives the same
bytes as a list of pieces that still share the waveform's memory (for a vectored write without
joining them). Before the audio exists, :func:`audio_example_size` gives a record's length and
:func:`audio_example_layout` the bytes around its waveform (the ``tau22`` builder places every
record in its shard before decoding anything, and prepares the headers of a recording's records
in one go).

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

from asc_core import vocab

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


_SMALL_VARINTS = tuple(bytes((value,)) for value in range(128))


def _varint(value):
    """Protobuf base-128 varint; negative int64 values use their two's complement (10 bytes)."""
    if 0 <= value < 128:  # tags, most lengths and labels: no loop
        return _SMALL_VARINTS[value]
    if 0 <= value < 1 << 21:  # lengths of header fields and 1-s waveforms
        if value < 1 << 14:
            return bytes(((value & 0x7F) | 0x80, value >> 7))
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
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


# Tags of the length-delimited fields used here (wire type 2): Example.features = 1,
# Features.feature (map entry) = 1, entry key = 1, entry value = 2, Feature.bytes_list = 1,
# Feature.float_list = 2, Feature.int64_list = 3, *List.value = 1.
_TAGS = {number: _varint((number << 3) | 2) for number in (1, 2, 3)}
_KIND_TAGS = {"bytes": _TAGS[1], "float": _TAGS[2], "int": _TAGS[3]}


def _header(number, length):
    """Tag and length of a length-delimited field (wire type 2)."""
    return _TAGS[number] + _varint(length)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    return _TAGS[number] + _varint(len(payload)) + payload


class _Blank:
    """Stands for a waveform of ``nbytes`` bytes when only the record length is wanted."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes):
        self.nbytes = nbytes


def _scalar_payload(kind, value):
    """The packed ``value`` list content of a ``bytes``, ``int`` or ``float`` feature."""
    if kind == "bytes":
        if isinstance(value, str):
            value = value.encode("utf-8")
        return _field(1, bytes(value))  # BytesList.value (one element)
    if kind == "int":
        return _field(1, _varint(int(value)))  # Int64List.value, packed
    if kind == "float":
        return _field(1, struct.pack("<f", float(value)))  # FloatList.value, packed
    raise ValueError(f"unknown feature kind {kind!r}")


def _entry(key_field, feature):
    """One ``Features.feature`` map entry (its own tag and length included)."""
    entry = key_field + _TAGS[2] + _varint(len(feature)) + feature
    return _TAGS[1] + _varint(len(entry)) + entry


def _waveform_entry(key_field, value):
    """Map entry of a ``floats`` feature as ``(head bytes, data or None)``.

    Waveforms are large: the C-contiguous little-endian array itself is the data piece, so a
    join copies its bytes once and a vectored write or a checksum reads them in place.
    """
    data = value if isinstance(value, _Blank) else np.ascontiguousarray(value, dtype="<f4")
    if not data.nbytes:  # an empty packed list is an empty FloatList, as protobuf writes it
        return _entry(key_field, _header(2, 0)), None
    inner = _header(1, data.nbytes)  # FloatList.value, packed
    feature_head = _header(2, len(inner) + data.nbytes) + inner  # Feature.float_list
    entry_head = key_field + _header(2, len(feature_head) + data.nbytes) + feature_head
    return _header(1, len(entry_head) + data.nbytes) + entry_head, data


_KEY_FIELDS = {}


def _key_field(name):
    """Serialized map-entry key field of feature ``name`` (cached: schemas have few names)."""
    field = _KEY_FIELDS.get(name)
    if field is None:
        field = _KEY_FIELDS[name] = _field(1, name.encode("utf-8"))
    return field


_ENTRY_CACHE = {}


def _scalar_entry(name, kind, value):
    """Map entry of a ``bytes``/``int``/``float`` feature; cached, as labels repeat a lot."""
    if kind == "float":  # -0.0 == 0.0 as a dict key, but they serialize differently
        return _encode_scalar_entry(name, kind, value)
    cache_key = (name, kind, value)
    try:
        entry = _ENTRY_CACHE.get(cache_key)
    except TypeError:  # an unhashable value: encode it without the cache
        return _encode_scalar_entry(name, kind, value)
    if entry is None:
        entry = _encode_scalar_entry(name, kind, value)
        if len(_ENTRY_CACHE) >= 4096:  # unique values (file names) would grow it forever
            _ENTRY_CACHE.clear()
        _ENTRY_CACHE[cache_key] = entry
    return entry


def _encode_scalar_entry(name, kind, value):
    payload = _scalar_payload(kind, value)
    return _entry(_key_field(name), _KIND_TAGS[kind] + _varint(len(payload)) + payload)


def example_pieces(features, values):
    """Serializes ``values`` as a ``tf.train.Example`` in pieces, without joining them.

    Args:
        features: the schema, :data:`AUDIO_FEATURES` or :data:`DIR_FEATURES`.
        values: dict with exactly the schema's keys.

    Returns:
        ``(pieces, size)``: ``bytes`` and C-contiguous little-endian float32 arrays (the
        waveforms, not copied) whose concatenation is the serialized Example, and its length.
    """
    if values.keys() != features.keys():
        missing = sorted(set(features) - set(values))
        extra = sorted(set(values) - set(features))
        raise ValueError(f"example keys differ from the schema: missing {missing}, unknown {extra}")
    pieces = []
    size = 0
    run = []  # consecutive small entries, joined into one piece
    for name in sorted(features):
        kind = features[name][0]
        if kind == "floats":
            head, data = _waveform_entry(_key_field(name), values[name])
            run.append(head)
            if data is not None:
                joined = b"".join(run)
                pieces += (joined, data)
                size += len(joined) + data.nbytes
                run = []
            continue
        run.append(_scalar_entry(name, kind, values[name]))
    if run:
        joined = b"".join(run)
        pieces.append(joined)
        size += len(joined)
    head = _header(1, size)  # Example.features
    return [head, *pieces], len(head) + size


def encode_example(features, values):
    """Serializes ``values`` (name -> python/numpy value) as a ``tf.train.Example``.

    Args:
        features: the schema, :data:`AUDIO_FEATURES` or :data:`DIR_FEATURES`.
        values: dict with exactly the schema's keys.

    Returns:
        bytes, the serialized Example (map entries in sorted key order).
    """
    return b"".join(example_pieces(features, values)[0])


def _waveform(name, values):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D [num_samples], got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    # isfinite + all: exact, and much faster than a float64 sum (the mask is 1 byte a sample).
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return array


def _vocab_id(name, value, choices):
    if value == "":
        return -1
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)} or ''")
    return choices.index(value)


def _audio_values(audio, num_samples, filename, scene, device, city, location, segment_id, index,
                  sample_rate):
    return {
        "audio": audio,
        "num_samples": num_samples,
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
    pieces, _ = audio_example_pieces(
        audio, filename=filename, scene=scene, device=device, city=city, location=location,
        segment_id=segment_id, index=index, sample_rate=sample_rate,
    )
    return b"".join(pieces)


def audio_example_pieces(
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
    """:func:`encode_audio_example` as unjoined pieces; arguments as there.

    Returns:
        ``(pieces, size)``: ``b"".join(pieces)`` is the serialized record and ``size`` its
        length. The waveform piece is ``audio`` itself when it already is a C-contiguous
        float32 array (no copy).
    """
    audio = _waveform("audio", audio)
    values = _audio_values(audio, audio.shape[0], filename, scene, device, city, location,
                           segment_id, index, sample_rate)
    return example_pieces(AUDIO_FEATURES, values)


def audio_example_layout(
    num_samples,
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
    """The bytes around the waveform of an audio record, before the audio exists.

    Every record with these labels and ``num_samples`` values is ``prefix + waveform bytes
    (float32, little-endian) + suffix``, so a writer can prepare the headers of many records in
    one go and add each waveform as it is computed. Arguments as in
    :func:`encode_audio_example`.

    Returns:
        ``(prefix, suffix)``, two ``bytes``.
    """
    num_samples = int(num_samples)
    blank = _Blank(4 * num_samples)
    values = _audio_values(blank, num_samples, filename, scene, device, city, location,
                           segment_id, index, sample_rate)
    pieces, _ = example_pieces(AUDIO_FEATURES, values)
    at = next((i for i, piece in enumerate(pieces) if piece is blank), len(pieces))
    return b"".join(pieces[:at]), b"".join(pieces[at + 1:])


_SIZE_CACHE = {}


def _varint_length(value):
    """Bytes of ``_varint(value)``: 10 for negative values (two's complement int64)."""
    value = int(value)
    return 10 if value < 0 else max(1, -(-value.bit_length() // 7))


def _utf8_length(value):
    return len(value.encode("utf-8") if isinstance(value, str) else bytes(value))


def audio_example_size(
    num_samples,
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
    """Length in bytes of :func:`encode_audio_example` for a waveform of ``num_samples`` values.

    The length does not depend on the sample values, so it is known before the audio is
    decoded. Other arguments as in :func:`encode_audio_example`.
    """
    num_samples = int(num_samples)
    scene_id = _vocab_id("scene", scene, vocab.SCENES)
    device_id = _vocab_id("device", device, vocab.DEVICES)
    # Every field is a varint or length-delimited, so the length depends only on the lengths of
    # the strings and varints: records with the same ones share a cached answer (a builder
    # asks for ~10^5 records with a handful of distinct shapes).
    shape = (num_samples, _utf8_length(filename), _utf8_length(scene), scene_id < 0,
             _utf8_length(device), device_id < 0, _utf8_length(city), _utf8_length(location),
             _varint_length(segment_id), _varint_length(index), _varint_length(sample_rate))
    size = _SIZE_CACHE.get(shape)
    if size is None:
        values = _audio_values(_Blank(4 * num_samples), num_samples, filename, scene, device,
                               city, location, segment_id, index, sample_rate)
        size = example_pieces(AUDIO_FEATURES, values)[1]
        if len(_SIZE_CACHE) >= 4096:
            _SIZE_CACHE.clear()
        _SIZE_CACHE[shape] = size
    return size


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

    Example:

    >>> record = encode_audio_example(np.array([0.5, -0.25]), filename="x.wav", device="b")
    >>> features = parse_audio_example(record)
    >>> features["audio"].numpy().tolist(), int(features["device_id"])
    ([0.5, -0.25], 1)
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
