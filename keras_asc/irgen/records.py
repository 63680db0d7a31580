"""DIR records with their microphone metadata, as the generator trains on them.

:func:`load_dir_set` reads the ``dirs.tfrecord-*`` shards of a DIR set (``docs/design.md``)
through :func:`keras_asc.data.schema.parse_dir_example` and keeps every metadata field, which
:func:`keras_asc.data.dirs.load_dirs` (the augmentation loader) drops.
"""

import csv
import dataclasses
import os

import numpy as np

from asc_core.errors import UserError
from asc_core.files import replacing
from asc_core.vocab import MICROPHONE_COLUMNS

METADATA_FIELDS = (
    "microphone",
    "pattern",
    "variant",
    "distance_cm",
    "angle_deg",
    "transducer",
    "diaphragm_size",
    "diaphragm_count",
    "address",
)


@dataclasses.dataclass
class DirSet:
    """One DIR set in memory.

    Attributes:
        irs: float32 ``[N, L]`` (every IR of a generator set has the same length ``L``).
        records: list of N dicts with ``name``, ``set`` and :data:`METADATA_FIELDS`.
        sample_rate: int.
        path: the folder it was read from.
    """

    irs: np.ndarray
    records: list
    sample_rate: int
    path: str

    def __len__(self):
        return len(self.records)


def load_dir_set(path, length=None):
    """Reads a DIR set folder with its metadata.

    Args:
        path: a DIR TFRecord folder (``multi-dirs`` or ``generated`` output).
        length: int or None; every IR must have this many samples (None: the first IR's).

    Returns:
        :class:`DirSet`, records in file order.

    Raises:
        UserError: a missing folder or shards, IRs of different lengths or sample rates, or a set
            whose records carry no microphone metadata (e.g. MicIRP).
    """
    from keras_asc.data.dirs import read_dir_records

    irs, records, rates = [], [], set()
    for ir, record in read_dir_records(path):
        expected = length if length is not None else (len(irs[0]) if irs else ir.size)
        if ir.size != expected:
            raise UserError(
                f"{path}: IR {record['name']!r} has {ir.size} samples; expected {expected} like "
                "the others (the generator needs one fixed length, e.g. multi-dirs --length 1024)"
            )
        rates.add(record.pop("sample_rate"))
        irs.append(ir)
        records.append(record)
    if not records:
        raise UserError(f"{path}: the DIR set holds no impulse response")
    if len(rates) > 1:
        raise UserError(f"{path}: IRs are stored at several sample rates {sorted(rates)}")
    missing = [
        r for r in records if not r["microphone"] or r["distance_cm"] < 0 or r["angle_deg"] < 0
    ]
    if missing:
        first = missing[0]
        raise UserError(
            f"{path}: {len(missing)} of {len(records)} IRs carry no microphone metadata (first: "
            f"{first['name']!r}: microphone {first['microphone']!r}, distance_cm "
            f"{first['distance_cm']}, angle_deg {first['angle_deg']}); the generator needs a set "
            "built by `python -m tfrecords_builder multi-dirs` (with its microphone table)"
        )
    return DirSet(np.stack(irs), records, rates.pop(), os.fspath(path))


def configuration_key(record):
    """A measured configuration: one microphone setting (all its angles and distances)."""
    return (record["microphone"], record["pattern"], record["variant"])


def configuration_token(record):
    """A readable id of a configuration: ``RodeK2/cardioid`` (+ ``/variant``)."""
    parts = [record["microphone"], record["pattern"]]
    if record["variant"]:
        parts.append(record["variant"])
    return "/".join(parts)


# === Microphone tables ===


def microphone_rows(records):
    """One microphone-table row per configuration of ``records`` (first-seen order).

    The ``config`` column is the configuration token (:func:`configuration_token` with ``/``
    replaced by ``_``), so the table can be read by
    :func:`asc_core.microphones.load_microphones`.
    """
    rows = {}
    for r in records:
        key = configuration_key(r)
        if key in rows:
            continue
        rows[key] = {
            "config": configuration_token(r).replace("/", "_"),
            "microphone": r["microphone"],
            "variant": r["variant"],
            "model": "",
            "pattern": r["pattern"],
            "transducer": r["transducer"],
            "diaphragm_size": r["diaphragm_size"],
            "diaphragm_count": "" if r["diaphragm_count"] < 0 else str(r["diaphragm_count"]),
            "address": r["address"],
            "unverified": "",
            "notes": "",
        }
    return list(rows.values())


def write_microphone_table(rows, path):
    """Writes rows in the ``surrey_microphones.csv`` format (temp file, then rename)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("# Microphone configurations of a DIR generator's training set (keras_asc.irgen)\n")
        writer = csv.DictWriter(f, fieldnames=MICROPHONE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path
