"""``tau22``: TAU Urban Acoustic Scenes 2022 Mobile (development or evaluation set) → TFRecords.

Input: the extracted dataset folder (``meta.csv`` and/or ``evaluation_setup/`` at the top or one
folder down), TAB-separated CSVs with headers. Splits:

* ``evaluation_setup/fold1_train.csv`` → ``train``; ``fold1_evaluate.csv`` → ``evaluate``;
* ``fold1_test.csv`` → ``test``. In the development set it lists exactly the files of
  ``fold1_evaluate.csv`` without labels; it is then recorded as an alias of ``evaluate``
  (``info.json`` ``aliases``) instead of being written twice. When it lists other files (an
  evaluation set, which has no ``fold1_evaluate.csv``) it is written as its own split;
* each ``--split-file NAME.csv`` (e.g. the DCASE2024 subsets ``split5.csv``) → split ``NAME``.

Labels come from the split CSV's ``scene_label`` and from ``meta.csv`` (``scene_label``,
``identifier`` = ``<city>-<location>``, ``source_label`` = device); the segment id, the 1-s index
and (without ``meta.csv``) the device/city/location come from the file name
``<scene>-<city>-<location>-<segment>-<index>-<device>.wav``. Anonymised evaluation files
(``audio/<int>.wav``, ``filename`` column only) are kept unlabelled (``""`` and -1).

Each split is written twice: the ``1s`` view (one record per file, resampled 44.1 → 32 kHz,
32000 samples) and, where names carry a segment, the ``10s`` view: the ten 1-s parts of one
recording (same name without the index, grouped only within the split) concatenated in index
order at 44.1 kHz and resampled as one signal (320000 samples; no filter edges at the joins).
A recording without exactly the parts 0..9 is an error; with ``--on-error skip`` it is left out
of the 10s view and reported (its parts stay in the 1s view). Nothing is ever padded.

Records are stored in a pseudo-random order fixed by ``--seed`` (recordings of one scene are
not adjacent) and go round-robin over the shards of their split and view. The waveforms are
stored as resampled, not clipped (what ``librosa.load(path, sr=32000)`` gives the reference
code). The length of every record is known before any audio is decoded, so the main process
places each planned record (shard and byte offset) up front, and the worker processes, which
never import TensorFlow, decode, resample, encode and write their records straight into the
shards (:mod:`tfrecords_builder.tfrecord_io`); only a few bytes of status come back per
recording. The shards are therefore byte-identical for any ``--workers``. A record skipped with
``--on-error skip`` leaves a gap that is closed at the end: its shard is one record shorter. The
same lengths give the bytes of the whole build, which are checked against the free space of the
output's filesystem before anything is written (:func:`tfrecords_builder.writer.check_free_space`).
The workers start (and import their modules) while the main process plans the CSVs.
"""

import array
import collections
import contextlib
import hashlib
import os
import re
import stat
import sys
from collections import Counter

import numpy as np

from asc_core import vocab
from asc_core.errors import UserError
from tfrecords_builder import csvutil
from tfrecords_builder import parallel
from tfrecords_builder import tfrecord_io
from tfrecords_builder import writer as writer_lib

SOURCE_RATE = 44100
CLIP_SECONDS = 1
PARTS = 10
CLIP_SAMPLES = vocab.SAMPLE_RATE * CLIP_SECONDS
TARGET_SHARD_BYTES = 256 << 20
# What a worker imports to run _process_unit (it does so while the main process plans).
WORKER_MODULES = ("tfrecords_builder.tau22", "asc_core.audio", "keras_asc.data.schema")
SPLIT_FILES = (
    ("train", "fold1_train.csv"),
    ("evaluate", "fold1_evaluate.csv"),
    ("test", "fold1_test.csv"),
)
HELD_OUT = ("evaluate", "test")
NAME_PATTERN = re.compile(
    r"^(?P<scene>[^-/]+)-(?P<city>[^-/]+)-(?P<loc>\d+)-(?P<segment>\d+)-(?P<index>\d+)"
    r"-(?P<device>[^-/]+)\.wav$"
)
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")
UNKNOWN = "unknown"


def add_arguments(parser):
    parser.add_argument("--source", required=True, help="extracted TAU22 folder (meta.csv)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument(
        "--split-file",
        action="append",
        default=[],
        metavar="CSV",
        help="extra split CSV like fold1_train.csv (e.g. DCASE2024 split5.csv); split name = "
        "file stem; repeatable",
    )
    parser.add_argument("--on-error", choices=writer_lib.ON_ERROR_CHOICES, default="raise")
    parser.add_argument(
        "--shards", type=int, default=None, help="shards per split and view (default: ~256 MB)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: all cores)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the stored record order")


def run(args):
    info = build(
        args.source,
        args.out,
        split_files=args.split_file,
        on_error=args.on_error,
        shards=args.shards,
        workers=args.workers,
        seed=args.seed,
    )
    print(summary(info, args.out))
    return 0


# === Source discovery and CSVs ===


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


class _Strings:
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


class _Table:
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
        self.strings = _Strings()
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


def _values(path, display, label_columns, required=("filename",)):
    """``(line, [filename, *labels])`` of each row of a CSV with (at least) ``required``."""
    return csvutil.iter_tsv_values(
        path, list(required), ["filename", *label_columns], display=display
    )


def _name_set_digest(names):
    """Identifies the set of ``names`` (bytes array): equal sets give equal digests.

    Names hold no NUL byte (the CSV reader refuses one), so the padded array of the sorted
    distinct names, with its width, determines the set.
    """
    distinct = np.unique(names)
    return len(distinct), distinct.dtype.itemsize, hashlib.sha256(distinct.tobytes()).digest()


def _first_occurrence(names):
    """For each position of ``names``, the position where that name first occurs."""
    order = np.argsort(names, kind="stable")  # stable: equal names keep their file order
    ordered = names[order]
    starts = np.ones(len(names), bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first = np.empty(len(names), np.intp)
    first[order] = order[starts][np.cumsum(starts) - 1]
    return first


class _Meta:
    """What the build uses of meta.csv, sorted by file name for vectorised look-ups.

    Args:
        table: the :class:`_Table` of meta.csv (columns ``scene_label``, ``identifier``,
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


def _read_meta(root, policy):
    """``(meta, number of rows)`` of ``root/meta.csv``, or ``(None, None)`` without one.

    A duplicate row is an error (or, skipping, left out: the first row of a name counts).
    """
    path = os.path.join(root, "meta.csv")
    if not os.path.isfile(path):
        return None, None
    # meta.csv exists to give labels: one without scene_label is a broken file, not an
    # unlabelled corpus (that would build a training split whose scenes are all unknown).
    table = _Table(
        _values(path, "meta.csv", _Meta.COLUMNS, ("filename", "scene_label")), _Meta.COLUMNS
    )
    first = _first_occurrence(table.names)
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
    return _Meta(table, keep), len(table)


class Clip:
    """One listed 1-s file with its labels (plain data, picklable: what a worker gets).

    The plan keeps clips as columns (:class:`SplitPlan`); a ``Clip`` is made for each clip of a
    work unit when the unit is handed out.
    """

    __slots__ = (
        "line",
        "filename",
        "root",
        "scene",
        "device",
        "city",
        "location",
        "segment_id",
        "index",
        "key",
    )

    def __init__(
        self, *, line, filename, root, scene, device, city, location, segment_id, index, key
    ):
        self.line, self.filename, self.root = line, filename, root
        self.scene, self.device, self.city, self.location = scene, device, city, location
        self.segment_id, self.index, self.key = segment_id, index, key

    @property
    def path(self):
        """The audio file: ``root`` joined with the ``/``-separated CSV file name."""
        return os.path.join(self.root, self.filename)  # "/" is a separator on every platform

    def labels(self):
        return {
            "scene": self.scene,
            "device": self.device,
            "city": self.city,
            "location": self.location,
            "segment_id": self.segment_id,
        }


def _resolve_labels(name, where, scene, meta_row, policy, split):
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


def _split_sources(root, split_files):
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


# === Planning: rows → clips → work units ===


class SplitPlan:
    """The usable clips of one split CSV as columns, in CSV order (see :class:`_Table`).

    ``names`` (UTF-8 bytes), ``lines``; ``scene``, ``device``, ``city``, ``location``: codes into
    ``strings``; ``segment_id``, ``index``; ``key``: code into ``keys`` (the recording the clip
    is a part of, in order of first appearance), -1 for a name without one. About 70 bytes a
    clip.
    """

    LABELS = ("scene", "device", "city", "location")

    def __init__(self, root, names, lines, labels, strings, segment_id, index, key, keys):
        self.root, self.names, self.lines = root, names, lines
        self.scene, self.device, self.city, self.location = labels
        self.strings, self.keys = strings, keys
        self.segment_id, self.index, self.key = segment_id, index, key

    def __len__(self):
        return len(self.names)

    @property
    def labelled(self):
        return bool(np.any(self.scene != 0))

    @property
    def has_recordings(self):
        return bool(np.any(self.key >= 0))

    def clip(self, at):
        """The :class:`Clip` at position ``at``."""
        key = int(self.key[at])
        values = self.strings
        return Clip(
            line=int(self.lines[at]),
            filename=self.names[at].decode("utf-8"),
            root=self.root,
            scene=values[self.scene[at]],
            device=values[self.device[at]],
            city=values[self.city[at]],
            location=values[self.location[at]],
            segment_id=int(self.segment_id[at]),
            index=int(self.index[at]),
            key=None if key < 0 else self.keys[key],
        )


def _plan_split(split, rows, display, root, meta, policy):
    """The :class:`SplitPlan` of one split CSV (bad rows raised, or skipped and reported).

    Args:
        rows: the CSV's rows (:func:`csvutil.iter_tsv`), or their :class:`_Table`.
        meta: the :class:`_Meta` of meta.csv, or None.
    """
    table = rows if isinstance(rows, _Table) else _Table(rows, ["scene_label"])
    if not len(table):
        raise UserError(
            f"{display} lists no files (header only); expected at least one row for split {split!r}"
        )
    first = _first_occurrence(table.names)
    in_meta = None if meta is None else meta.find(table.names)
    scene_values = table.strings.values
    strings, keys, key_codes = _Strings(), [], {}
    code, known = strings.code, strings.codes
    base = os.path.join(root, "")
    kept, codes, segments, numbers = (array.array(t) for t in "iiqi")
    # Python lists a chunk at a time: indexing numpy arrays one element at a time is slow.
    for start, names, lines in table.chunks():
        stop = start + len(names)
        scenes = [scene_values[c] for c in table.labels["scene_label"][start:stop].tolist()]
        meta_rows = [None] * len(names) if meta is None else meta.rows(in_meta[start:stop])
        for at, name, line, first_at, scene, meta_row in zip(
            range(start, stop), names, lines, first[start:stop].tolist(), scenes, meta_rows
        ):
            if first_at != at:
                policy.fail(
                    split,
                    name,
                    f"{display} line {line}: duplicate row for {name} "
                    f"(first at line {table.lines[first_at]}); expected each file once",
                )
                continue
            if meta is not None and meta_row is None:
                policy.fail(
                    split,
                    name,
                    f"{display} line {line} ({name}): file is not "
                    "listed in meta.csv; expected every listed file to have a "
                    "meta.csv row",
                )
                continue
            labels = _resolve_labels(
                name,
                lambda line=line, name=name: f"{display} line {line} ({name})",
                scene,
                meta_row,
                policy,
                split,
            )
            if labels is None:
                continue
            path = name if name.startswith("/") else base + name  # os.path.join, faster
            try:
                is_file = stat.S_ISREG(os.stat(path).st_mode)
            except (OSError, ValueError):
                is_file = False
            if not is_file:
                policy.fail(
                    split,
                    name,
                    f"{display} line {line}: listed file {path} does "
                    "not exist; expected the audio file of this row",
                )
                continue
            scene, device, city, location, segment_id, index, key = labels
            kept.append(at)
            codes.extend(
                [known[v] if v in known else code(v) for v in (scene, device, city, location)]
            )
            if key is None:
                key_code = -1
            else:
                key_code = key_codes.get(key)
                if key_code is None:
                    key_code = key_codes[key] = len(keys)
                    keys.append(key)
            segments.append(segment_id)
            numbers.extend((index, key_code))
    del first, in_meta, key_codes
    kept = np.frombuffer(kept, np.int32)
    codes = np.frombuffer(codes, np.int32).reshape(-1, len(SplitPlan.LABELS))
    numbers = np.frombuffer(numbers, np.int32).reshape(-1, 2)
    if len(kept) == len(table):  # nothing dropped (the usual case): share, do not copy
        names, lines = table.names, table.lines
    else:
        names, lines = table.names[kept], table.lines[kept]
    return SplitPlan(
        root,
        names,
        lines,
        list(codes.T.copy()),
        strings.values,
        np.frombuffer(segments, np.int64),
        numbers[:, 0].copy(),
        numbers[:, 1].copy(),
        keys,
    )


class _Groups:
    """The complete 10-s recordings of a :class:`SplitPlan` (see :func:`_group`).

    ``complete[k]``: whether recording ``k`` has exactly the parts 0..9 with equal labels;
    ``parts[start[k]:start[k + 1]]``: the positions of its clips, sorted by index.
    """

    def __init__(self, complete, parts, start):
        self.complete, self.parts, self.start = complete, parts, start

    def __len__(self):
        return int(np.count_nonzero(self.complete))


def _group(split, plan, display):
    """Splits the clips of ``plan`` into 10-s recordings and returns ``(groups, problems)``.

    ``groups`` is a :class:`_Groups`; ``problems`` maps key -> reason for the recordings
    without exactly the parts 0..9 (or whose parts disagree on their labels), in order of
    first appearance.
    """
    with_key = np.flatnonzero(plan.key >= 0)
    # Stable: by recording, then by index; equal indices keep their CSV order.
    parts = with_key[np.lexsort((plan.index[with_key], plan.key[with_key]))]
    sizes = np.bincount(plan.key[parts], minlength=len(plan.keys))
    start = np.zeros(len(sizes) + 1, np.intp)
    np.cumsum(sizes, out=start[1:])
    recording = np.repeat(np.arange(len(sizes)), sizes)  # of each entry of parts
    indices = plan.index[parts]
    bad_index = (
        np.bincount(
            recording[indices != np.arange(len(parts)) - start[recording]], minlength=len(sizes)
        )
        > 0
    )
    first = parts[start[recording]]
    differs = np.zeros(len(parts), bool)
    for column in (plan.scene, plan.city, plan.location):
        differs |= column[parts] != column[first]
    disagree = np.bincount(recording[differs], minlength=len(sizes)) > 0
    complete = (sizes == PARTS) & ~bad_index & ~disagree
    problems = {}
    for k in np.flatnonzero(~complete).tolist():
        key = plan.keys[k]
        part_indices = indices[start[k] : start[k + 1]].tolist()
        if part_indices != list(range(PARTS)):
            missing = sorted(set(range(PARTS)) - set(part_indices))
            extra = sorted(
                i for i, n in Counter(part_indices).items() if n > 1 or not 0 <= i < PARTS
            )
            detail = []
            if missing:
                detail.append(f"missing index {', '.join(map(str, missing))}")
            if extra:
                detail.append(f"unexpected index {', '.join(map(str, extra))}")
            problems[key] = (
                f"{display}: recording {key!r} of split {split!r} has {len(part_indices)} of "
                f"its {PARTS} one-second parts ({'; '.join(detail)}); expected indices "
                f"0-{PARTS - 1} once each"
            )
        else:
            problems[key] = (
                f"{display}: the parts of recording {key!r} of split {split!r} "
                "disagree on scene/city/location"
            )
    return _Groups(complete, parts, start), problems


class _Units:
    """Work units of a split in a seeded pseudo-random order: a complete recording or a clip.

    Units are listed in CSV order (a recording where its first part appears), then permuted
    with ``numpy.random.default_rng(seed)``. Iterating yields ``(key, [Clip])``; ``key`` is
    None for a single clip. Only the permuted positions are stored (a few bytes per clip);
    the :class:`Clip` objects are made as the units are handed out.
    """

    def __init__(self, plan, groups, seed):
        self.plan, self.groups = plan, groups
        key = plan.key
        grouped = np.zeros(len(plan), bool)
        grouped[key >= 0] = groups.complete[key[key >= 0]]
        singles = np.flatnonzero(~grouped)
        # Recordings are numbered in order of first appearance: their first positions.
        _, first_at = np.unique(key[grouped], return_index=True)
        heads = np.flatnonzero(grouped)[first_at]
        units = np.sort(np.concatenate([singles, heads]))
        self.order = units[np.random.default_rng(seed).permutation(len(units))]
        self.grouped = grouped
        self._sizes = None

    def record_sizes(self):
        """``(clip sizes, recording sizes)``: the serialized length of each clip's 1-s record
        (int64 array in plan order) and of each complete recording's 10-s record (indexed by
        key code, 0 for an incomplete one). Computed once; :meth:`sized` and the free-space
        check both use them."""
        if self._sizes is None:
            plan, groups = self.plan, self.groups
            recordings = np.zeros(len(plan.keys), np.int64)
            for k in np.flatnonzero(groups.complete).tolist():
                first = plan.clip(int(groups.parts[groups.start[k]]))
                recordings[k] = _record_size(first, plan.keys[k])
            self._sizes = _clip_record_sizes(plan), recordings
        return self._sizes

    def framed_bytes(self):
        """Bytes this split's records take in their shards (both views, TFRecord framing)."""
        clips, recordings = self.record_sizes()
        count = len(clips) + int(np.count_nonzero(self.groups.complete))
        return int(clips.sum() + recordings.sum()) + count * tfrecord_io.FRAME_BYTES

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        for key, clips, _ in self.sized():
            yield key, clips

    def sized(self):
        """Yields ``(key, [Clip], sizes)``: ``sizes`` are the serialized lengths of the clips'
        1-s records, then (when ``key`` is not None) that of the 10-s record."""
        plan, groups = self.plan, self.groups
        sizes, recordings = self.record_sizes()
        for at in self.order.tolist():
            if not self.grouped[at]:
                yield None, [plan.clip(at)], [sizes[at]]
                continue
            k = int(plan.key[at])
            parts = groups.parts[groups.start[k] : groups.start[k + 1]].tolist()
            clips = [plan.clip(i) for i in parts]
            key = plan.keys[k]
            yield key, clips, [*sizes[parts].tolist(), int(recordings[k])]


def _varint_lengths(values):
    """Bytes of the protobuf varint of each int64 value (10 for a negative one)."""
    values = np.asarray(values, np.int64)
    lengths = np.ones(len(values), np.int32)
    for k in range(1, 9):
        lengths += values >= 1 << (7 * k)
    lengths[values < 0] = 10
    return lengths


def _clip_record_sizes(plan):
    """Serialized length of the 1-s record of each clip of ``plan`` (int64 array).

    A record's length depends only on the lengths of its strings (an empty scene or device
    also has vocabulary id -1) and varints, so clips are grouped by those, packed into one
    integer per clip (a few bytes: the plan of a large corpus stays small), and one clip of
    each group (a handful) is measured.
    """
    if not len(plan):
        return np.zeros(0, np.int64)
    utf8 = np.array([len(value.encode("utf-8")) for value in plan.strings], np.int64)
    name_bytes = np.char.str_len(plan.names).astype(np.int64)
    if utf8.max() >= 256 or name_bytes.max() >= 1 << 16:  # does not pack: measure each clip
        return np.array([_record_size(plan.clip(at)) for at in range(len(plan))], np.int64)
    shape = name_bytes << 40
    for shift, column in ((32, plan.scene), (24, plan.device), (16, plan.city), (8, plan.location)):
        shape |= utf8[column] << shift
    shape |= _varint_lengths(plan.segment_id).astype(np.int64) << 4
    shape |= _varint_lengths(plan.index)
    _, first, inverse = np.unique(shape, return_index=True, return_inverse=True)
    del shape
    sizes = np.array([_record_size(plan.clip(at)) for at in first.tolist()], np.int64)
    return sizes[inverse.reshape(-1)]


def _units(plan, groups, seed):
    """The :class:`_Units` of a split (``groups`` from :func:`_group`)."""
    return _Units(plan, groups, seed)


# === Worker (no TensorFlow) ===


def _process_unit(task):
    """Decodes, validates, encodes and writes one unit; runs in a worker process.

    Args:
        task: ``(split, key, clips, display, places)``; ``display`` names the split CSV (for
            messages); ``places[i]`` is the ``(path, offset, framed size)`` reserved for the
            1-s record of ``clips[i]``, and ``places[-1]`` the one of the 10-s record when
            ``key`` is not None.

    Returns:
        ``(written_1s, written_10s, errors)``: whether each clip's 1-s record was written,
        whether the 10-s record was (False when ``key`` is None or a part failed), and
        ``(filename, message)`` for each failed clip.
    """
    from asc_core import audio as audio_lib
    from keras_asc.data import schema

    split, key, clips, display, places = task
    # The bytes around each waveform first, in one tight loop (cheaper than one at a time
    # between the decoding and resampling of the recording).
    layouts = _clip_layouts(clips)
    if key is not None:
        layouts.append(
            schema.audio_example_layout(
                CLIP_SAMPLES * PARTS, filename=key, index=-1, **clips[0].labels()
            )
        )
    written, raws, errors = [], [], []
    for clip, reserved, layout in zip(clips, places, layouts):
        try:
            raw, _ = audio_lib.read_audio(
                clip.path, expected_rate=SOURCE_RATE, expected_frames=SOURCE_RATE * CLIP_SECONDS
            )
        except UserError as err:
            written.append(False)
            raws.append(None)
            errors.append((clip.filename, f"{display} line {clip.line} ({clip.filename}): {err}"))
            continue
        _write_wave(audio_lib.resample(raw, SOURCE_RATE, vocab.SAMPLE_RATE), layout, reserved)
        written.append(True)
        raws.append(raw)
    written_10s = False
    if key is not None and not errors:
        wave = audio_lib.resample(np.concatenate(raws), SOURCE_RATE, vocab.SAMPLE_RATE)
        _write_wave(wave, layouts[-1], places[-1])
        written_10s = True
    return written, written_10s, errors


def _clip_layouts(clips):
    """``(prefix, suffix)`` of the 1-s record of each clip (see ``audio_example_layout``).

    The parts of a recording differ only in their file name (same length) and index (0-9),
    so the layout of the first part is computed, and the others are copies of it with those
    bytes replaced: a protobuf stores a string's bytes verbatim and a value below 128 as one
    byte, and equal lengths keep every other byte. Where the bytes are found, from a second
    layout with another index, is checked; any clip that does not fit (another name length,
    index or labels) gets its layout computed in full.
    """
    from keras_asc.data import schema

    def computed(clip, index=None):
        return schema.audio_example_layout(
            CLIP_SAMPLES,
            filename=clip.filename,
            index=clip.index if index is None else index,
            **clip.labels(),
        )

    first = clips[0]
    base = computed(first)
    if len(clips) == 1 or not 0 <= first.index < 128:
        return [base] + [computed(clip) for clip in clips[1:]]
    prefix, suffix = base
    probe_prefix, probe_suffix = computed(first, first.index ^ 1)
    name = first.filename.encode("utf-8")
    at_name = suffix.find(name)
    if len(probe_suffix) != len(suffix):
        return [base] + [computed(clip) for clip in clips[1:]]
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
        return [base] + [computed(clip) for clip in clips[1:]]
    at_index = int(differ[0])
    labels = first.labels()
    layouts = [base]
    for clip in clips[1:]:
        encoded = clip.filename.encode("utf-8")
        if len(encoded) != len(name) or not 0 <= clip.index < 128 or clip.labels() != labels:
            layouts.append(computed(clip))
            continue
        spliced = bytearray(suffix)
        spliced[at_name : at_name + len(name)] = encoded
        spliced[at_index] = clip.index
        layouts.append((prefix, bytes(spliced)))
    return layouts


def _write_wave(wave, layout, reserved):
    """Writes the record of a resampled waveform where it was placed.

    The waveform is stored as the resampler gave it, not clipped: what ``librosa.load(path,
    sr=32000)`` returns in the reference code (a source near full scale can exceed ±1).
    ``read_audio`` rejected non-finite samples and resampling keeps them finite, so the
    encoder's NaN/Inf check is not repeated. A waveform of another length than the one the
    layout was made for gives another record length, which ``write_at`` refuses.
    """
    prefix, suffix = layout
    wave = wave.astype("<f4", copy=False)  # the stored byte order (a no-op on x86 and ARM)
    tfrecord_io.write_at(reserved[0], reserved[1], [prefix, wave, suffix], size=reserved[2])


def _record_size(clip, key=None):
    """Serialized length of the 1-s record of ``clip``, or of the 10-s record ``key``."""
    from keras_asc.data import schema

    if key is None:
        return schema.audio_example_size(
            CLIP_SAMPLES, filename=clip.filename, index=clip.index, **clip.labels()
        )
    return schema.audio_example_size(CLIP_SAMPLES * PARTS, filename=key, index=-1, **clip.labels())


def _placed_tasks(tasks, views, issued):
    """Adds to each task the places of its records, in task order (lazily: memory stays flat).

    Args:
        tasks: ``(split, key, clips, display, sizes)`` in build order (``sizes`` from
            :meth:`_Units.sized`).
        views: ``{(split, view): PlacedShards}``.
        issued: a deque that receives each placed task as it is yielded.

    Yields:
        ``(split, key, clips, display, places)``, see :func:`_process_unit`.
    """
    for split, key, clips, display, sizes in tasks:
        one_second = views[(split, "1s")]
        places = [one_second.place(size) for size in sizes[: len(clips)]]
        if key is not None:
            places.append(views[(split, "10s")].place(sizes[-1]))
        task = (split, key, clips, display, places)
        issued.append(task)
        yield task


# === Build ===


def _auto_shards(num_records, samples):
    record_bytes = samples * 4 + 400
    return max(1, min(num_records, -(-num_records * record_bytes // TARGET_SHARD_BYTES)))


def _count_table(counter):
    """``{device: {scene: n}}`` in vocabulary order, ``unknown`` last, zero cells left out."""
    devices = list(vocab.DEVICES) + [UNKNOWN]
    scenes = list(vocab.SCENES) + [UNKNOWN]
    table = {}
    for device in devices:
        row = {scene: counter[(device, scene)] for scene in scenes if counter[(device, scene)]}
        if row:
            table[device] = row
    return table


def build(
    source,
    out,
    *,
    split_files=(),
    on_error="raise",
    shards=None,
    workers=None,
    seed=0,
    progress=None,
):
    """Builds the TAU22 TFRecords; see the module docstring.

    Args:
        source: extracted dataset folder (or its parent).
        out: output folder; replaced only when the new build is complete.
        split_files: extra split CSVs (split name = file stem).
        on_error: ``"raise"`` or ``"skip"`` (skip bad rows/files/recordings and report them).
        shards: shards per split and view (None: about 256 MB each).
        workers: decoding processes (None: all cores; 0: in this process).
        seed: seed of the stored record order.
        progress: show progress (None or True: a bar on a terminal, a plain line every 10 % or
            30 s otherwise; False: none).

    Returns:
        the info dict written to ``OUT/info.json``.
    """
    policy = writer_lib.ErrorPolicy(on_error)
    if shards is not None and shards < 1:
        raise UserError(f"--shards must be at least 1, got {shards}")
    workers = parallel.default_workers() if workers is None else max(0, int(workers))
    root = find_root(source)
    sources = _split_sources(root, split_files)
    # The workers start now and import their modules on the other cores while this process
    # reads and plans the CSVs (about half a second of CPU each; see parallel.WorkerPool).
    with parallel.WorkerPool(workers, warm=WORKER_MODULES) as pool:
        return _plan_and_write(
            pool, root, sources, out, policy, shards=shards, seed=seed, progress=progress
        )


def _plan_and_write(pool, root, sources, out, policy, *, shards, seed, progress):
    """The body of :func:`build` once its worker pool is starting."""
    from asc_core.progress import progress as progress_display

    on_error = policy.mode
    meta, meta_rows = _read_meta(root, policy)

    checksums = {}
    if meta is not None:
        checksums["meta.csv"] = {
            "md5": writer_lib.md5_file(os.path.join(root, "meta.csv")),
            "rows": meta_rows,
        }
    # Each CSV is planned as soon as it is read, into compact columns: the plan of a whole
    # corpus stays in memory during the build, the CSV rows never are all at once.
    plans, aliases, evaluate_names = {}, {}, None
    for split, path, display in sources:
        table = _Table(_values(path, display, ["scene_label"]), ["scene_label"])
        checksums[display] = {"md5": writer_lib.md5_file(path), "rows": len(table)}
        if split == "test" and evaluate_names is not None:
            if _name_set_digest(table.names) == evaluate_names:
                aliases["test"] = "evaluate"
                continue
        if split == "evaluate":
            evaluate_names = _name_set_digest(table.names)
        plans[split] = (display, _plan_split(split, table, display, root, meta, policy))
    del table, evaluate_names, meta
    _check_disjoint(plans)
    if "train" in plans and not plans["train"][1].labelled:
        display = plans["train"][0]
        raise UserError(
            f"{display}: no row has a scene label (no 'scene_label' column, and no "
            "meta.csv row gives one); expected a labelled training split"
        )

    # Everything that can be checked without decoding audio is checked before any output exists.
    work, splits_info, view_sizes = [], {}, {}
    hint = " (--on-error skip leaves it out of the 10s view and reports it)"
    for split, (display, plan) in plans.items():
        groups, problems = _group(split, plan, display)
        incomplete = []
        for key, reason in problems.items():
            policy.fail(split, key, reason + (hint if on_error == "raise" else ""))
            incomplete.append({"key": key, "reason": reason})
        splits_info[split] = {
            "csv": display,
            "labelled": plan.labelled,
            "rows": len(plan),
            "views": {},
            "incomplete_groups": incomplete,
        }
        view_sizes[(split, "1s")] = len(plan)
        if plan.has_recordings:
            view_sizes[(split, "10s")] = len(groups)
        work.append((split, display, _units(plan, groups, seed)))
    del plans, groups
    total_clips = sum(len(units.plan) for _, _, units in work)
    writer_lib.check_free_space(out, sum(units.framed_bytes() for _, _, units in work), "tau22")
    tasks = (
        (split, key, unit_clips, display, sizes)
        for split, display, units in work
        for key, unit_clips, sizes in units.sized()
    )

    with writer_lib.OutputDir(out, builder="tau22", policy=policy) as output:
        views, counters = {}, {}
        for (split, view), count in view_sizes.items():
            if count == 0:
                continue
            samples = CLIP_SAMPLES * (PARTS if view == "10s" else 1)
            num = min(shards, count) if shards else _auto_shards(count, samples)
            views[(split, view)] = output.placed_shards(f"{split}-{view}", num)
            counters[(split, view)] = Counter()
        bar = progress_display(
            total=total_clips, unit="clip", desc="tau22", enabled=progress is not False
        )
        issued = collections.deque()
        results = pool.ordered_map(_process_unit, _placed_tasks(tasks, views, issued))
        try:
            with contextlib.closing(results), bar:
                for result in results:
                    task = issued.popleft()
                    _account_unit(task, result, policy, views, counters, splits_info)
                    bar.update(len(task[2]))
        finally:
            tfrecord_io.close_files()  # those of an in-process build (workers=0)

        for (split, view), view_shards in views.items():
            seconds = CLIP_SECONDS * (PARTS if view == "10s" else 1)
            splits_info[split]["views"][view] = {
                "num_examples": view_shards.num_examples,
                "num_samples": vocab.SAMPLE_RATE * seconds,
                "seconds": seconds,
                "shards": view_shards.finish(),
                "counts": _count_table(counters[(split, view)]),
            }
        for split, split_info in splits_info.items():
            if not any(v["num_examples"] for v in split_info["views"].values()):
                raise UserError(
                    f"split {split!r} ({split_info['csv']}) has no usable files "
                    "after skipping; see the skipped items"
                )
        info = {
            "dataset": "TAU Urban Acoustic Scenes 2022 Mobile",
            "kind": "audio",
            "sample_rate": vocab.SAMPLE_RATE,
            "source_sample_rate": SOURCE_RATE,
            "resampler": "soxr HQ (librosa's default soxr_hq); 10s = parts joined at 44.1 kHz, "
            "then resampled",
            "vocabularies": {"scene": list(vocab.SCENES), "device": list(vocab.DEVICES)},
            "source": {"root": root, "files": checksums},
            "seed": seed,
            "splits": splits_info,
            "aliases": aliases,
            "incomplete_groups": sum(len(s["incomplete_groups"]) for s in splits_info.values()),
        }
        output.finish(info)
    info = writer_lib.read_info(out)
    return info


def _account_unit(task, result, policy, views, counters, splits_info):
    """Books one processed unit (in the main process): policy, counts, gaps of skipped records."""
    split, key, unit_clips, _, places = task
    written, written_10s, errors = result
    for filename, message in errors:
        policy.fail(split, filename, message)
    for clip, done, place in zip(unit_clips, written, places):
        if done:
            counters[(split, "1s")][(clip.device or UNKNOWN, clip.scene or UNKNOWN)] += 1
        else:
            views[(split, "1s")].skip(place)
    if key is None:
        return
    if not written_10s:
        views[(split, "10s")].skip(places[len(unit_clips)])
        reason = (
            f"recording {key!r} of split {split!r} left out of the 10s view: one of its "
            "parts was skipped"
        )
        splits_info[split]["incomplete_groups"].append({"key": key, "reason": reason})
        policy.skipped.append({"split": split, "item": key, "reason": reason})
        return
    first = unit_clips[0]
    counters[(split, "10s")][(first.device or UNKNOWN, first.scene or UNKNOWN)] += 1


def _check_disjoint(plans):
    """Training splits must share no file with held-out splits (no test leakage)."""
    held = {s: np.sort(plans[s][1].names) for s in HELD_OUT if s in plans}
    for split, (display, plan) in plans.items():
        if split in HELD_OUT:
            continue
        for other, names in held.items():
            # searchsorted, not np.isin: no temporary copies of both name arrays
            at = np.minimum(np.searchsorted(names, plan.names), max(len(names) - 1, 0))
            shared = np.flatnonzero(names[at] == plan.names) if len(names) else at[:0]
            if shared.size:
                at = shared[0]
                raise UserError(
                    f"{display} line {plan.lines[at]}: {plan.names[at].decode('utf-8')} is also "
                    f"in split {other!r} ({plans[other][0]}); training and held-out files must "
                    "not overlap"
                )


def summary(info, out):
    """A few lines saying what was written."""
    lines = [f"wrote {os.path.abspath(out)}"]
    for split, split_info in info["splits"].items():
        views = ", ".join(
            f"{view}: {v['num_examples']} records in {len(v['shards'])} shard(s)"
            for view, v in split_info["views"].items()
        )
        lines.append(f"  {split:<10} {views}")
    for alias, target in info.get("aliases", {}).items():
        lines.append(f"  {alias:<10} same files as {target!r} (not written twice)")
    if info["skipped"]:
        lines.append(
            f"  skipped {len(info['skipped'])} item(s); reasons in "
            f"{os.path.join(os.path.abspath(out), writer_lib.SKIPPED_NAME)}"
        )
    return "\n".join(lines)
