"""The ``tf.train.Example`` wire format, written with numpy alone (no TensorFlow, no protobuf).

:func:`example_pieces` / :func:`encode_example` serialize a dict of values against a feature
table (``name -> (kind, default)``, kinds ``floats``, ``int``, ``float``, ``bytes``; the tables
are :mod:`asc_core.example`'s) exactly as protobuf does for the ``tf.train.Example`` built from
the same values: map entries in sorted key order, packed float and int lists. Equal inputs give
equal bytes. Waveforms (``floats``) stay separate pieces that share the array's memory, so a
vectored write or a checksum reads them in place.

Everything about field numbers, tags and varints is in this module; :func:`varint_lengths`,
:func:`varint_length` and :func:`utf8_length` tell what a record's length depends on without
encoding it (the ``tau22`` builder sizes every record before any audio is decoded).
"""

import struct

import numpy as np

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


class Blank:
    """Stands for a waveform of ``nbytes`` bytes when only the record's bytes around it (or its
    length) are wanted: :func:`example_pieces` returns it as the waveform's piece."""

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
    data = value if isinstance(value, Blank) else np.ascontiguousarray(value, dtype="<f4")
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
        features: a feature table (``name -> (kind, default)``), e.g.
            :data:`asc_core.example.AUDIO_FEATURES`.
        values: dict with exactly the table's keys.

    Returns:
        ``(pieces, size)``: ``bytes`` and C-contiguous little-endian float32 arrays (the
        waveforms, not copied; a :class:`Blank` stays itself) whose concatenation is the
        serialized Example, and its length.
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
        features: a feature table, as in :func:`example_pieces`.
        values: dict with exactly the table's keys.

    Returns:
        bytes, the serialized Example (map entries in sorted key order).
    """
    return b"".join(example_pieces(features, values)[0])


def varint_lengths(values):
    """Bytes of the protobuf varint of each int64 value (10 for a negative one).

    An integer feature's encoded length; with the strings' UTF-8 lengths, all that a record's
    length depends on (:func:`asc_core.example.audio_example_size`).

    Args:
        values: int array ``[n]``.

    Returns:
        int32 array ``[n]``.
    """
    values = np.asarray(values, np.int64)
    lengths = np.ones(len(values), np.int32)
    for k in range(1, 9):
        lengths += values >= 1 << (7 * k)
    lengths[values < 0] = 10
    return lengths


def varint_length(value):
    """Bytes of ``_varint(value)``: 10 for negative values (two's complement int64)."""
    value = int(value)
    return 10 if value < 0 else max(1, -(-value.bit_length() // 7))


def utf8_length(value):
    """Bytes of a ``str`` (UTF-8) or ``bytes`` value as a protobuf stores it."""
    return len(value.encode("utf-8") if isinstance(value, str) else bytes(value))
