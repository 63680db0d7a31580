"""Parsing the TFRecord schema with TensorFlow (writing is :mod:`asc_core.example`).

Two record kinds, both ``tf.train.Example`` (full description in ``docs/data_format.md``):
audio sets (``tau22``) and DIR sets (``micirp``, ``multi-dirs``, ``generated``); their feature
tables (:data:`AUDIO_FEATURES`, :data:`DIR_FEATURES`) and the TensorFlow-free encoders live in
:mod:`asc_core.example`, which the builders import.

:func:`parse_audio_example` / :func:`parse_dir_example` accept a scalar string tensor (one
record) or a vector (a batch) and work eagerly and inside ``Dataset.map``. The waveform length
is not part of the schema (1 s and 10 s records share it), so the waveform is parsed as a
:class:`tf.io.RaggedFeature`: a dense ``[num_samples]`` tensor for one record and a
``tf.RaggedTensor`` ``[batch, None]`` for a batch. When every record is known to have the same
length, pass ``num_samples=`` to parse it as a ``FixedLenFeature`` into a dense tensor instead
(faster; parsing fails loudly on a record of another length).
"""

from asc_core.example import AUDIO_FEATURES
from asc_core.example import DIR_FEATURES


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

    >>> import numpy as np
    >>> from asc_core.example import encode_audio_example
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
