"""Loading device impulse response (DIR) TFRecord sets into one padded array.

A DIR set is the output folder of ``tfrecords_builder micirp`` (the paper's "Vintage DIRs"),
``multi-dirs`` ("Multi DIRs") or a generated set: ``dirs.tfrecord-*`` shards of
``tf.train.Example`` records (``docs/design.md``). Several sets can be combined ("both").

The result is a :class:`DirBank`: an ``[N, L]`` float32 array of IRs zero-padded to the longest
one, their true lengths, and two class ids per IR for the contrastive loss's device labels: the
IR's own index and the id of its microphone (all IRs of one microphone, e.g. every angle and
distance of a Multi-DIR microphone, share a microphone id).
"""

import dataclasses
import glob
import os
from pathlib import PurePosixPath

import numpy as np

from asc_core import vocab
from asc_core.errors import UserError
from asc_core.tfrecord import data_loss_error
from keras_asc.data.schema import parse_dir_example

# The record fields :func:`read_dir_records` returns (besides the IR itself).
TEXT_FIELDS = (
    "name",
    "set",
    "microphone",
    "pattern",
    "variant",
    "transducer",
    "diaphragm_size",
    "address",
)
INT_FIELDS = ("sample_rate", "distance_cm", "angle_deg", "diaphragm_count")


# eq=False: a generated __eq__ would compare the arrays element-wise.
@dataclasses.dataclass(eq=False)
class DirBank:
    """Impulse responses of one or more DIR sets.

    Attributes:
        irs: float32 ``[N, L]``, IRs zero-padded at the end to ``L = max(lengths)``.
        lengths: int32 ``[N]``, samples of each IR before padding.
        ir_ids: int32 ``[N]``, ``0..N-1`` (one class per IR).
        microphone_ids: int32 ``[N]``, index into ``microphones``.
        microphones: list of str, ``"{set}/{microphone}"`` in first-seen order.
        names: list of str, the record ``name`` of each IR (path inside its source).
        sets: list of str, the record ``set`` of each IR.
        sample_rate: int, the rate of every IR.
    """

    irs: np.ndarray
    lengths: np.ndarray
    microphone_ids: np.ndarray
    microphones: list
    names: list
    sets: list
    sample_rate: int

    def __post_init__(self):
        self.ir_ids = np.arange(len(self.lengths), dtype=np.int32)

    def __len__(self):
        return int(self.irs.shape[0])

    def __repr__(self):
        return (
            f"DirBank({len(self)} IRs, {len(self.microphones)} microphones, "
            f"max {self.irs.shape[1]} samples at {self.sample_rate} Hz)"
        )


def dir_shard_files(path):
    """Sorted ``dirs.tfrecord-*`` shards of a DIR folder; UserError when there are none."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise UserError(
            f"dirs.sets: {path}: DIR folder not found; expected the output folder of "
            "`python -m tfrecords_builder micirp` or `multi-dirs`"
        )
    files = sorted(glob.glob(os.path.join(glob.escape(path), "dirs.tfrecord-*")))
    if not files:
        raise UserError(f"dirs.sets: {path}: no dirs.tfrecord-* shards; expected a DIR set folder")
    return files


def check_dir_shards(path):
    """The shards of a DIR folder, checked before use (cheap: record headers only).

    The same check as the audio shards' (:func:`keras_asc.data.pipeline.check_shards`): a
    truncated or overwritten shard is named, and the records must add up to ``info.json``'s
    ``num_examples`` where the builder wrote one (finds a shard cut at a record boundary).

    Returns:
        the sorted shard paths.
    """
    from keras_asc.data.shards import check_shards
    from keras_asc.data.shards import read_info

    files = dir_shard_files(path)
    try:
        count = check_shards(files)
    except UserError as err:
        raise UserError(f"dirs.sets: {err}") from None
    expected = (read_info(path) or {}).get("num_examples")
    if isinstance(expected, int) and count != expected:
        raise UserError(
            f"dirs.sets: {path}: the dirs.tfrecord-* shards hold {count} records but info.json "
            f"records {expected}; a shard is truncated or replaced; rebuild the folder with "
            "python -m tfrecords_builder"
        )
    return files


def read_dir_records(path):
    """The impulse responses of one DIR folder with their metadata, in file order.

    The shards are checked first (:func:`check_dir_shards`); a data error met while reading
    (e.g. a flipped bit) is one UserError naming the shard.

    Yields:
        ``(ir, record)``: float32 ``[L]`` and a dict of :data:`TEXT_FIELDS` (str) and
        :data:`INT_FIELDS` (int) as stored (``microphone`` may be empty: see
        :func:`microphone_name`).
    """
    import tensorflow as tf

    for file in check_dir_shards(path):
        try:
            for serialized in tf.data.TFRecordDataset(file).as_numpy_iterator():
                features = parse_dir_example(serialized)
                record = {k: features[k].numpy().decode("utf-8") for k in TEXT_FIELDS}
                record.update({k: int(features[k].numpy()) for k in INT_FIELDS})
                yield features["ir"].numpy().astype(np.float32), record
        except tf.errors.DataLossError as err:
            raise UserError(f"dirs.sets: {data_loss_error(err, [file])}") from None


def microphone_name(record):
    """The record's microphone; for a set stored without one (MicIRP before the builder wrote
    it), the file stem of its ``name``, as ``tfrecords_builder micirp`` names it today."""
    return record["microphone"] or PurePosixPath(record["name"]).stem


def load_dirs(paths, sample_rate=vocab.SAMPLE_RATE, max_ir_samples=None):
    """Reads DIR sets into a :class:`DirBank`.

    Args:
        paths: str or list of str, DIR TFRecord folders (in this order).
        sample_rate: int, the audio sample rate; every IR must be stored at this rate.
        max_ir_samples: int or None, truncate longer IRs to this many samples (the tail of a
            causal IR matters least; it bounds the FFT size of the augmentation).

    Returns:
        :class:`DirBank`.

    Raises:
        UserError: a folder is missing or has no shards, a shard is truncated or corrupted
            (naming it), an IR is stored at another sample rate, an IR is empty, or the sets
            hold no IR at all.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise UserError("dirs.sets: empty; expected at least one DIR TFRecord folder")
    irs, names, sets, mic_keys = [], [], [], []
    for path in paths:
        for ir, record in read_dir_records(path):
            name, rate = record["name"], record["sample_rate"]
            if rate != sample_rate:
                raise UserError(
                    f"dirs.sets: {path}: IR {name!r} is stored at {rate} Hz; expected "
                    f"{sample_rate} Hz, the sample rate of the audio (rebuild the DIR set with "
                    f"--sample-rate {sample_rate})"
                )
            if ir.size == 0:
                raise UserError(f"dirs.sets: {path}: IR {name!r} has no samples")
            if max_ir_samples is not None:
                ir = ir[:max_ir_samples]
            irs.append(ir)
            names.append(name)
            sets.append(record["set"])
            mic_keys.append(f"{record['set']}/{microphone_name(record)}")
    if not irs:
        raise UserError(f"dirs.sets: {', '.join(map(str, paths))}: no impulse responses found")
    lengths = np.array([len(ir) for ir in irs], dtype=np.int32)
    bank = np.zeros((len(irs), int(lengths.max())), dtype=np.float32)
    for i, ir in enumerate(irs):
        bank[i, : len(ir)] = ir
    microphones = list(dict.fromkeys(mic_keys))
    index = {key: i for i, key in enumerate(microphones)}
    microphone_ids = np.array([index[k] for k in mic_keys], dtype=np.int32)
    return DirBank(bank, lengths, microphone_ids, microphones, names, sets, sample_rate)
