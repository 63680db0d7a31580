"""TAU22 source: where the dataset folder is, its split CSVs and meta.csv, labels of a row.

The CSVs are read into compact columns (:class:`Table`, :class:`Meta`): a full corpus has
10^5-10^6 rows, and the build keeps its plan in memory.
"""

import array
import hashlib
import os
import re
import sys

import numpy as np

from asc_core import vocab
from asc_core.errors import UserError
from tfrecords_builder import csvutil

SOURCE_RATE = 44100
CLIP_SECONDS = 1
PARTS = 10
CLIP_SAMPLES = vocab.SAMPLE_RATE * CLIP_SECONDS
SPLIT_FILES = (
    ("train", "fold1_train.csv"),
    ("evaluate", "fold1_evaluate.csv"),
    ("test", "fold1_test.csv"),
)
NAME_PATTERN = re.compile(
    r"^(?P<scene>[^-/]+)-(?P<city>[^-/]+)-(?P<loc>\d+)-(?P<segment>\d+)-(?P<index>\d+)"
    r"-(?P<device>[^-/]+)\.wav$"
)
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def find_root(source):
    """The dataset folder: ``source`` or its only child holding meta.csv / evaluation_setup/."""
    source = os.path.abspath(os.fspath(source))
    if not os.path.isdir(source):
        raise UserError(f"--source {source} is not a folder; expected the extracted TAU22 folder")

    def is_root(path):
        return os.path.isfile(os.path.join(path, "meta.csv")) or os.path.isdir(
            os.path.join(path, "evaluation_setup")
        )

    if is_root(source):
        return source
    children = sorted(
        os.path.join(source, name)
        for name in os.listdir(source)
        if os.path.isdir(os.path.join(source, name)) and is_root(os.path.join(source, name))
    )
    if len(children) == 1:
        return children[0]
    if not children:
        raise UserError(
            f"--source {source}: no meta.csv or evaluation_setup/ in it or one folder down; "
            "expected the extracted TAU-urban-acoustic-scenes-2022-mobile-* folder"
        )
    raise UserError(
        f"--source {source}: several dataset folders one level down "
        f"({', '.join(os.path.basename(c) for c in children)}); expected exactly one"
    )


_NAME_FIELDS = ("scene", "city", "location", "segment_id", "index", "device", "key")


def parse_name(filename):
    """Fields of ``…/<scene>-<city>-<loc>-<segment>-<index>-<device>.wav``, or None."""
    fields = _name_fields(filename)
    return None if fields is None else dict(zip(_NAME_FIELDS, fields))


def _name_fields(filename):
    """:func:`parse_name` as a tuple in ``_NAME_FIELDS`` order (no dict: runs once per row)."""
    match = NAME_PATTERN.match(filename.rsplit("/", 1)[-1])
    if match is None:
        return None
    scene, city, loc, segment, index, device = match.groups()
    location = f"{city}-{loc}"
    return (
        scene,
        city,
        location,
        int(segment),
        int(index),
        device,
        f"{scene}-{location}-{segment}-{device}",
    )


class Strings:
    """Small integer codes of label strings (a corpus has a few distinct values, many files)."""

    def __init__(self):
        self.values = [""]  # code 0: no value
        self.codes = {"": 0}

    def code(self, value):
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(sys.intern(value))
        return code


class Table:
    """The rows of one CSV as columns: file names (UTF-8 bytes), line numbers, label codes.

    About 50 bytes a row (the name itself and a few integers) instead of a dict per row, so
    the build's memory hardly grows with the corpus (meta.csv of a full corpus has ~10^5-10^6
    rows). Filled row by row from :func:`csvutil.iter_tsv`.

    Args:
        rows: iterable of :class:`csvutil.Row`, or of ``(line, [filename, *label values])``
            from :func:`csvutil.iter_tsv_values` (faster: no dict per row).
        label_columns: columns stored as codes into ``strings`` (``""`` where absent).
    """

    _CHUNK = 4096  # names are collected in Python lists this long, then packed

    def __init__(self, rows, label_columns=()):
        self.strings = Strings()
        code = self.strings.code
        packed, names, lines = [], [], array.array("i")
        labels = [array.array("i") for _ in label_columns]
        for row in rows:
            if isinstance(row, csvutil.Row):
                line, values = row.line, [row["filename"]]
                values += (row.get(column, "") for column in label_columns)
            else:
                line, values = row
            names.append(values[0].encode("utf-8"))
            lines.append(line)
            for codes, value in zip(labels, values[1:]):
                known = self.strings.codes.get(value)
                codes.append(code(value) if known is None else known)
            if len(names) >= self._CHUNK:
                packed.append(np.array(names, dtype=np.bytes_))
                names = []
        packed.append(np.array(names, dtype=np.bytes_) if names else np.zeros(0, "S1"))
        del names
        # numpy bytes arrays: fixed width (the longest name), no object per name
        self.names = packed[0] if len(packed) == 1 else np.concatenate(packed)
        del packed
        self.lines = np.frombuffer(lines, np.int32)
        self.labels = {c: np.frombuffer(v, np.int32) for c, v in zip(label_columns, labels)}

    def __len__(self):
        return len(self.names)

    def chunks(self):
        """Yields ``(first position, [name str], [line int])`` in pieces of a few thousand."""
        for start in range(0, len(self.names), self._CHUNK):
            stop = start + self._CHUNK
            names = [n.decode("utf-8") for n in self.names[start:stop].tolist()]
            yield start, names, self.lines[start:stop].tolist()


def csv_values(path, display, label_columns, required=("filename",)):
    """``(line, [filename, *labels])`` of each row of a CSV with (at least) ``required``."""
    return csvutil.iter_tsv_values(
        path, list(required), ["filename", *label_columns], display=display
    )


def name_set_digest(names):
    """Identifies the set of ``names`` (bytes array): equal sets give equal digests.

    Names hold no NUL byte (the CSV reader refuses one), so the padded array of the sorted
    distinct names, with its width, determines the set.
    """
    distinct = np.unique(names)
    return len(distinct), distinct.dtype.itemsize, hashlib.sha256(distinct.tobytes()).digest()


def first_occurrence(names):
    """For each position of ``names``, the position where that name first occurs."""
    order = np.argsort(names, kind="stable")  # stable: equal names keep their file order
    ordered = names[order]
    starts = np.ones(len(names), bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first = np.empty(len(names), np.intp)
    first[order] = order[starts][np.cumsum(starts) - 1]
    return first


class Meta:
    """What the build uses of meta.csv, sorted by file name for vectorised look-ups.

    Args:
        table: the :class:`Table` of meta.csv (columns ``scene_label``, ``identifier``,
            ``source_label``).
        keep: positions of the rows to keep (no duplicate names).
    """

    COLUMNS = ("scene_label", "identifier", "source_label")

    def __init__(self, table, keep):
        if len(keep) == len(table):  # no duplicates: no copy of the names to sort
            order = np.argsort(table.names, kind="stable")
        else:
            order = keep[np.argsort(table.names[keep], kind="stable")]
        self.names = table.names[order]
        self.lines = table.lines[order]
        self.codes = np.stack([table.labels[c][order] for c in self.COLUMNS], axis=1)
        self.strings = table.strings.values

    def find(self, names):
        """Positions of ``names`` (a bytes array) in this table, -1 where absent."""
        if len(self.names) == 0:
            return np.full(len(names), -1, np.intp)
        at = np.minimum(np.searchsorted(self.names, names), len(self.names) - 1)
        return np.where(self.names[at] == names, at, -1)

    def rows(self, found):
        """``[(line, scene, identifier, source) or None]`` for positions from :meth:`find`."""
        if len(self.names) == 0:
            return [None] * len(found)
        safe = np.maximum(found, 0)
        values = self.strings
        return [
            None if at < 0 else (line, values[a], values[b], values[c])
            for at, line, (a, b, c) in zip(
                found.tolist(), self.lines[safe].tolist(), self.codes[safe].tolist()
            )
        ]

    def row(self, at):
        """``(line, scene, identifier, source)`` of position ``at``."""
        scene, identifier, source = (self.strings[c] for c in self.codes[at].tolist())
        return int(self.lines[at]), scene, identifier, source


def read_meta(root, policy):
    """``(meta, number of rows)`` of ``root/meta.csv``, or ``(None, None)`` without one.

    A duplicate row is an error (or, skipping, left out: the first row of a name counts).
    """
    path = os.path.join(root, "meta.csv")
    if not os.path.isfile(path):
        return None, None
    # meta.csv exists to give labels: one without scene_label is a broken file, not an
    # unlabelled corpus (that would build a training split whose scenes are all unknown).
    table = Table(
        csv_values(path, "meta.csv", Meta.COLUMNS, ("filename", "scene_label")), Meta.COLUMNS
    )
    first = first_occurrence(table.names)
    duplicates = np.flatnonzero(first != np.arange(len(first)))
    for at in duplicates.tolist():  # in file order
        name = table.names[at].decode("utf-8")
        policy.fail(
            "meta",
            name,
            f"meta.csv line {table.lines[at]}: duplicate row for {name} "
            f"(first at line {table.lines[first[at]]}); expected each file once",
        )
    keep = np.flatnonzero(first == np.arange(len(first)))
    return Meta(table, keep), len(table)


def resolve_labels(name, where, scene, meta_row, policy, split):
    """Labels of one split-CSV row; None (after policy.fail) when the row is unusable.

    Args:
        name: the row's file name.
        where: a function giving the row's place for messages (``"<csv> line N (<name>)"``).
        scene: the row's ``scene_label`` (``""`` when absent).
        meta_row: ``(line, scene, identifier, source)`` of its meta.csv row, or None.

    Returns:
        ``(scene, device, city, location, segment_id, index, key)``; ``key`` (the recording) is
        None when the name does not follow the TAU pattern.
    """
    parsed = _name_fields(name)
    if meta_row is not None and meta_row[1]:
        if scene and scene != meta_row[1]:
            policy.fail(
                split,
                name,
                f"{where()}: scene_label {scene!r} disagrees with meta.csv "
                f"line {meta_row[0]} ({meta_row[1]!r})",
            )
            return None
        scene = meta_row[1]
    device = city = location = ""
    segment_id = index = -1
    key = None
    if parsed is not None:
        _, city, location, segment_id, index, device, key = parsed
    if meta_row is not None:
        _, _, identifier, source = meta_row
        if source:
            if parsed is not None and source != device:
                policy.fail(
                    split,
                    name,
                    f"{where()}: meta.csv line {meta_row[0]} source_label "
                    f"{source!r} disagrees with the device "
                    f"{device!r} in the file name",
                )
                return None
            device = source
        if identifier:
            location = identifier
            city = location.split("-")[0]
    if scene and scene not in vocab.SCENES:
        policy.fail(
            split,
            name,
            f"{where()}: unknown scene {scene!r}; expected one of {', '.join(vocab.SCENES)}",
        )
        return None
    if device and device not in vocab.DEVICES:
        policy.fail(
            split,
            name,
            f"{where()}: unknown device {device!r}; expected one of {', '.join(vocab.DEVICES)}",
        )
        return None
    if not -(1 << 63) <= segment_id < 1 << 63 or not -(1 << 31) <= index < 1 << 31:
        policy.fail(
            split,
            name,
            f"{where()}: segment id {segment_id} or index {index} in the "
            "file name is too large; expected the TAU pattern "
            "<scene>-<city>-<location>-<segment>-<index>-<device>.wav",
        )
        return None
    return scene, device, city, location, segment_id, index, key


def split_sources(root, split_files):
    """``[(split, csv path, display name)]`` in build order."""
    sources = []
    setup = os.path.join(root, "evaluation_setup")
    for split, name in SPLIT_FILES:
        path = os.path.join(setup, name)
        if os.path.isfile(path):
            sources.append((split, path, f"evaluation_setup/{name}"))
    for path in split_files:
        path = os.path.abspath(os.fspath(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        if not SPLIT_NAME.match(stem):
            raise UserError(
                f"--split-file {path}: split name {stem!r} (the file stem) must use "
                "only letters, digits and _"
            )
        if not os.path.isfile(path):
            raise UserError(
                f"--split-file {path} does not exist; expected a split CSV like fold1_train.csv"
            )
        if any(stem == s for s, _, _ in sources):
            raise UserError(
                f"--split-file {path}: split name {stem!r} is already used; rename the file"
            )
        sources.append((stem, path, os.path.basename(path)))
    if not sources:
        raise UserError(
            f"{root}: no evaluation_setup/fold1_*.csv and no --split-file; expected "
            "at least one split CSV"
        )
    return sources
