"""TAU22 plan: which clips a split keeps, its 10-s recordings, the seeded work units and the
serialized length of every record (known before any audio is decoded)."""

import array
import os
import stat
from collections import Counter

import numpy as np

from asc_core import example
from asc_core import protobuf
from asc_core import tfrecord
from asc_core.errors import UserError
from tfrecords_builder.tau22.source import CLIP_SAMPLES
from tfrecords_builder.tau22.source import PARTS
from tfrecords_builder.tau22.source import Strings
from tfrecords_builder.tau22.source import Table
from tfrecords_builder.tau22.source import first_occurrence
from tfrecords_builder.tau22.source import resolve_labels


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


class SplitPlan:
    """The usable clips of one split CSV as columns, in CSV order (see :class:`Table`).

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


def plan_split(split, rows, display, root, meta, policy):
    """The :class:`SplitPlan` of one split CSV (bad rows raised, or skipped and reported).

    Args:
        rows: the CSV's rows (:func:`csvutil.iter_tsv`), or their :class:`Table`.
        meta: the :class:`Meta` of meta.csv, or None.
    """
    table = rows if isinstance(rows, Table) else Table(rows, ["scene_label"])
    if not len(table):
        raise UserError(
            f"{display} lists no files (header only); expected at least one row for split {split!r}"
        )
    first = first_occurrence(table.names)
    in_meta = None if meta is None else meta.find(table.names)
    scene_values = table.strings.values
    strings, keys, key_codes = Strings(), [], {}
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
            labels = resolve_labels(
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


class Groups:
    """The complete 10-s recordings of a :class:`SplitPlan` (see :func:`group_recordings`).

    ``complete[k]``: whether recording ``k`` has exactly the parts 0..9 with equal labels;
    ``parts[start[k]:start[k + 1]]``: the positions of its clips, sorted by index.
    """

    def __init__(self, complete, parts, start):
        self.complete, self.parts, self.start = complete, parts, start

    def __len__(self):
        return int(np.count_nonzero(self.complete))


def group_recordings(split, plan, display):
    """Splits the clips of ``plan`` into 10-s recordings and returns ``(groups, problems)``.

    ``groups`` is a :class:`Groups`; ``problems`` maps key -> reason for the recordings
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
    return Groups(complete, parts, start), problems


class Units:
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
                recordings[k] = record_size(first, plan.keys[k])
            self._sizes = clip_record_sizes(plan), recordings
        return self._sizes

    def framed_bytes(self):
        """Bytes this split's records take in their shards (both views, TFRecord framing)."""
        clips, recordings = self.record_sizes()
        count = len(clips) + int(np.count_nonzero(self.groups.complete))
        return int(clips.sum() + recordings.sum()) + count * tfrecord.FRAME_BYTES

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


def clip_record_sizes(plan):
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
        return np.array([record_size(plan.clip(at)) for at in range(len(plan))], np.int64)
    shape = name_bytes << 40
    for shift, column in ((32, plan.scene), (24, plan.device), (16, plan.city), (8, plan.location)):
        shape |= utf8[column] << shift
    shape |= protobuf.varint_lengths(plan.segment_id).astype(np.int64) << 4
    shape |= protobuf.varint_lengths(plan.index)
    _, first, inverse = np.unique(shape, return_index=True, return_inverse=True)
    del shape
    sizes = np.array([record_size(plan.clip(at)) for at in first.tolist()], np.int64)
    return sizes[inverse.reshape(-1)]


def work_units(plan, groups, seed):
    """The :class:`Units` of a split (``groups`` from :func:`group_recordings`)."""
    return Units(plan, groups, seed)


def record_size(clip, key=None):
    """Serialized length of the 1-s record of ``clip``, or of the 10-s record ``key``."""
    if key is None:
        return example.audio_example_size(
            CLIP_SAMPLES, filename=clip.filename, index=clip.index, **clip.labels()
        )
    return example.audio_example_size(CLIP_SAMPLES * PARTS, filename=key, index=-1, **clip.labels())
