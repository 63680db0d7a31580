"""Serialized ``tf.train.Example`` records of the TFRecord schema, written without TensorFlow.

Two record kinds, both ``tf.train.Example`` (full description in ``docs/data_format.md``):

* audio sets (``tau22``): one 1-s clip or one reassembled 10-s recording per record;
* DIR sets (``micirp``, ``multi-dirs``, ``generated``): one device impulse response per record.

:func:`encode_audio_example` and :func:`encode_dir_example` produce the serialized protobuf
bytes with numpy alone (:mod:`asc_core.protobuf`, where the wire format lives), so the builders
can serialize inside worker processes that never import TensorFlow. Equal inputs give equal
bytes (the builders' outputs are byte-reproducible); the message equals the
``tf.train.Example`` built from the same values. :func:`audio_example_pieces` gives the same
bytes as a list of pieces that still share the waveform's memory (for a vectored write without
joining them). Before the audio exists, :func:`audio_example_size` gives a record's length and
:func:`audio_example_layout` / :func:`audio_example_layouts` the bytes around its waveform (the
``tau22`` builder places every record in its shard before decoding anything, and prepares the
headers of a recording's records in one go).

The labels of an audio record are the fields of :class:`AudioLabels`; every audio function
takes them as keyword arguments.

Reading (TensorFlow) is :mod:`keras_asc.data.schema`, which parses with the feature tables
defined here.
"""

import dataclasses
import operator

import numpy as np

from asc_core import protobuf
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


@dataclasses.dataclass(frozen=True)
class AudioLabels:
    """Everything of an audio record but its waveform (keyword arguments of the audio encoders).

    Args:
        filename: 1s: the CSV name (``audio/airport-lisbon-1000-40000-3-a.wav``); 10s: the
            group key (``airport-lisbon-1000-40000-a``).
        scene: a label of ``vocab.SCENES`` or ``""`` when unlabelled (``scene_id`` -1).
        device: a name of ``vocab.DEVICES`` or ``""`` when unknown (``device_id`` -1).
        city, location: ``lisbon``, ``lisbon-1000``; ``""`` when unknown.
        segment_id: the 10-s segment id from the name, -1 when unknown.
        index: the 1-s index 0..9 inside the segment, -1 for 10-s records.
        sample_rate: the rate of the waveform in Hz.
    """

    filename: str
    scene: str = ""
    device: str = ""
    city: str = ""
    location: str = ""
    segment_id: int = -1
    index: int = -1
    sample_rate: int = vocab.SAMPLE_RATE

    def values(self, audio, num_samples):
        """The record's :data:`AUDIO_FEATURES` values; ValueError for an unknown scene/device."""
        return {
            "audio": audio,
            "num_samples": num_samples,
            "sample_rate": self.sample_rate,
            "filename": self.filename,
            "scene": self.scene,
            "scene_id": _vocab_id("scene", self.scene, vocab.SCENES),
            "device": self.device,
            "device_id": _vocab_id("device", self.device, vocab.DEVICES),
            "city": self.city,
            "location": self.location,
            "segment_id": self.segment_id,
            "index": self.index,
        }

    def length_key(self):
        """What the record's length depends on besides the waveform: the UTF-8 lengths of the
        strings and the varint lengths of the integers (a valid scene or device is empty, id
        -1, exactly when its length is 0)."""
        return tuple(
            protobuf.utf8_length(value)
            if isinstance(value, (str, bytes))
            else protobuf.varint_length(value)
            for value in _label_values(self)
        )


# The field values of an AudioLabels, in order (faster than dataclasses.astuple: no copies).
_label_values = operator.attrgetter(*(field.name for field in dataclasses.fields(AudioLabels)))


def encode_audio_example(audio, **labels):
    """Serializes one audio record (a 1-s clip or a 10-s recording).

    Args:
        audio: float array ``[num_samples]``, mono waveform at ``sample_rate``.
        **labels: the fields of :class:`AudioLabels` (``filename`` required).

    Returns:
        bytes, the serialized ``tf.train.Example``.
    """
    return b"".join(audio_example_pieces(audio, **labels)[0])


def audio_example_pieces(audio, **labels):
    """:func:`encode_audio_example` as unjoined pieces; arguments as there.

    Returns:
        ``(pieces, size)``: ``b"".join(pieces)`` is the serialized record and ``size`` its
        length. The waveform piece is ``audio`` itself when it already is a C-contiguous
        float32 array (no copy).
    """
    audio = _waveform("audio", audio)
    values = AudioLabels(**labels).values(audio, audio.shape[0])
    return protobuf.example_pieces(AUDIO_FEATURES, values)


def _blank_pieces(num_samples, record):
    """``(blank, pieces, size)`` of the audio record of :class:`AudioLabels` ``record`` whose
    waveform of ``num_samples`` values is a :class:`protobuf.Blank`."""
    blank = protobuf.Blank(4 * num_samples)
    pieces, size = protobuf.example_pieces(AUDIO_FEATURES, record.values(blank, num_samples))
    return blank, pieces, size


def audio_example_layout(num_samples, **labels):
    """The bytes around the waveform of an audio record, before the audio exists.

    Every record with these labels and ``num_samples`` values is ``prefix + waveform bytes
    (float32, little-endian) + suffix``, so a writer can prepare the headers of many records in
    one go and add each waveform as it is computed.

    Args:
        num_samples: the waveform length.
        **labels: the fields of :class:`AudioLabels`.

    Returns:
        ``(prefix, suffix)``, two ``bytes``.
    """
    blank, pieces, _ = _blank_pieces(int(num_samples), AudioLabels(**labels))
    at = next((i for i, piece in enumerate(pieces) if piece is blank), len(pieces))
    return b"".join(pieces[:at]), b"".join(pieces[at + 1 :])


def audio_example_layouts(num_samples, records):
    """:func:`audio_example_layout` of many records with ``num_samples`` values each.

    The parts of a recording differ only in their file name (same length) and index (0-9),
    so the layout of the first record is computed, and those of the others are copies of it
    with those bytes replaced: a protobuf stores a string's bytes verbatim and a value below
    128 as one byte, and equal lengths keep every other byte. Where the bytes are found, from
    a second layout with another index, is checked; any record that does not fit (another name
    length, index or labels) gets its layout computed in full. The result equals computing
    each one (only faster).

    Args:
        num_samples: the waveform length of every record.
        records: non-empty list of dicts of :func:`audio_example_layout`'s keyword arguments
            (``filename``, ``index`` and the labels).

    Returns:
        list of ``(prefix, suffix)``, one per record.
    """

    def computed(record, **changes):
        return audio_example_layout(num_samples, **{**record, **changes})

    first = records[0]
    base = computed(first)
    index = first.get("index", -1)
    if len(records) == 1 or not 0 <= index < 128:
        return [base] + [computed(record) for record in records[1:]]
    prefix, suffix = base
    probe_prefix, probe_suffix = computed(first, index=index ^ 1)
    name = first["filename"].encode("utf-8")
    at_name = suffix.find(name)
    if len(probe_suffix) != len(suffix):
        return [base] + [computed(record) for record in records[1:]]
    differ = np.flatnonzero(
        np.frombuffer(suffix, np.uint8) != np.frombuffer(probe_suffix, np.uint8)
    )
    if (
        probe_prefix != prefix
        or len(differ) != 1
        or at_name < 0
        or suffix.find(name, at_name + 1) >= 0
        or at_name <= differ[0] < at_name + len(name)
    ):
        return [base] + [computed(record) for record in records[1:]]
    at_index = int(differ[0])
    labels = {k: v for k, v in first.items() if k not in ("filename", "index")}
    layouts = [base]
    for record in records[1:]:
        encoded = record["filename"].encode("utf-8")
        index = record.get("index", -1)
        others = {k: v for k, v in record.items() if k not in ("filename", "index")}
        if len(encoded) != len(name) or not 0 <= index < 128 or others != labels:
            layouts.append(computed(record))
            continue
        spliced = bytearray(suffix)
        spliced[at_name : at_name + len(name)] = encoded
        spliced[at_index] = index
        layouts.append((prefix, bytes(spliced)))
    return layouts


_SIZE_CACHE = {}


def audio_example_size(num_samples, **labels):
    """Length in bytes of :func:`encode_audio_example` for a waveform of ``num_samples`` values.

    The length does not depend on the sample values, so it is known before the audio is
    decoded. ``labels`` as in :func:`encode_audio_example`.
    """
    num_samples = int(num_samples)
    record = AudioLabels(**labels)
    record.values(None, num_samples)  # checks the scene and device, cached or not
    # Records with the same string and varint lengths share a cached answer (a builder asks
    # for ~10^5 records with a handful of distinct shapes).
    key = (num_samples, *record.length_key())
    size = _SIZE_CACHE.get(key)
    if size is None:
        size = _blank_pieces(num_samples, record)[2]
        if len(_SIZE_CACHE) >= 4096:
            _SIZE_CACHE.clear()
        _SIZE_CACHE[key] = size
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
    return protobuf.encode_example(DIR_FEATURES, values)
