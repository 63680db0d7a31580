"""tau22 planning: compact columns, duplicates, meta.csv look-ups, work units (no audio)."""

import os
import re

import numpy as np
import pytest

from asc_core.errors import UserError
from tfrecords_builder import csvutil
from tfrecords_builder import tau22
from tfrecords_builder.writer import ErrorPolicy


def test_first_occurrence_matches_a_dict():
    rng = np.random.default_rng(0)
    words = [f"audio/{w}.wav".encode() for w in ("a", "bb", "a\u00e9", "c")]
    for _ in range(20):
        names = np.array([words[i] for i in rng.integers(0, len(words), 30)], dtype=np.bytes_)
        seen, expected = {}, []
        for at, name in enumerate(names.tolist()):
            expected.append(seen.setdefault(name, at))
        assert tau22._first_occurrence(names).tolist() == expected


def test_name_set_digest_compares_sets():
    def digest(*names):
        return tau22._name_set_digest(np.array(names, dtype=np.bytes_))

    assert digest(b"b", b"a", b"a") == digest(b"a", b"b")
    assert digest(b"a", b"b") != digest(b"a", b"bc")
    assert digest(b"a", b"b") != digest(b"a")
    assert digest(b"ab") != digest(b"a", b"b")


def test_table_stores_a_few_bytes_beyond_each_name(tmp_path):
    path = tmp_path / "meta.csv"
    rows = [f"audio/bus-paris-{i}-7-0-a.wav\tbus\tparis-{i}\ta" for i in range(10_000)]
    path.write_text("filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
    table = tau22._Table(csvutil.iter_tsv(path, ["filename"]), tau22._Meta.COLUMNS)
    assert len(table) == 10_000 and table.names.dtype.itemsize == len(rows[-1].split("\t")[0])
    stored = table.names.nbytes + table.lines.nbytes + sum(v.nbytes for v in table.labels.values())
    assert stored == 10_000 * (table.names.dtype.itemsize + 4 + 3 * 4)
    assert table.strings.values[table.labels["identifier"][123]] == "paris-123"
    assert table.lines[[0, -1]].tolist() == [2, 10_001]
    meta = tau22._Meta(table, np.arange(len(table)))
    found = meta.find(np.array([b"audio/bus-paris-42-7-0-a.wav", b"audio/nothing.wav"]))
    assert found[1] == -1 and meta.row(found[0]) == (44, "bus", "paris-42", "a")


def _append(path, line):
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def test_duplicate_meta_row_raises_or_is_skipped(tiny_tau):
    root = str(tiny_tau)
    meta_path = os.path.join(root, "meta.csv")
    with open(meta_path, encoding="utf-8") as f:
        lines = f.read().splitlines(True)
    _append(meta_path, lines[3])  # data row of line 4, again at line 52
    name = lines[3].split("\t")[0]
    message = (
        f"meta.csv line 52: duplicate row for {name} (first at line 4); expected each file once"
    )
    with pytest.raises(UserError, match=re.escape(message)):
        tau22._read_meta(root, ErrorPolicy("raise"))
    policy = ErrorPolicy("skip")
    meta, rows = tau22._read_meta(root, policy)
    assert rows == 51 and len(meta.names) == 50
    assert policy.skipped == [{"split": "meta", "item": name, "reason": message}]
    assert meta.row(meta.find(np.array([name.encode()]))[0])[0] == 4  # the first row counts


def test_plan_columns_and_units_of_a_split(tiny_tau):
    root = str(tiny_tau)
    policy = ErrorPolicy("raise")
    meta, _ = tau22._read_meta(root, policy)
    path = os.path.join(root, "evaluation_setup", "fold1_train.csv")
    rows = list(csvutil.iter_tsv(path, ["filename"]))
    plan = tau22._plan_split("train", iter(rows), "train.csv", root, meta, policy)
    assert len(plan) == 30 and plan.labelled and plan.has_recordings
    clips = [plan.clip(i) for i in range(len(plan))]
    assert [c.filename for c in clips] == [r["filename"] for r in rows]
    assert [c.line for c in clips] == [r.line for r in rows]
    first = clips[0]  # audio/airport-lisbon-1000-40000-0-a.wav
    assert (
        first.scene,
        first.device,
        first.city,
        first.location,
        first.segment_id,
        first.index,
        first.key,
    ) == ("airport", "a", "lisbon", "lisbon-1000", 40000, 0, "airport-lisbon-1000-40000-a")
    groups, problems = tau22._group("train", plan, "train.csv")
    assert len(groups) == 3 and problems == {}
    units = list(tau22._units(plan, groups, 0))
    assert len(units) == 3 and sorted(k for k, _ in units) == sorted(set(plan.keys))
    for key, parts in units:
        assert [c.index for c in parts] == list(range(10)) and {c.key for c in parts} == {key}
    assert [k for k, _ in tau22._units(plan, groups, 0)] == [k for k, _ in units]  # seeded


def test_record_sizes_per_shape_equal_each_clips_size(tmp_path):
    from conftest import write_tau22

    root = str(tmp_path / "tau")
    write_tau22(
        root,
        [
            ("train", "airport", "lisbon", 1000, 40000, "a"),
            ("train", "bus", "paris", 2, 7, "s1"),
            ("train", "tram", "vienna", 123456, 2**40, "b"),
        ],
        parts=range(2),
    )
    policy = ErrorPolicy("raise")
    meta, _ = tau22._read_meta(root, policy)
    rows = csvutil.iter_tsv(os.path.join(root, "evaluation_setup", "fold1_train.csv"), ["filename"])
    plan = tau22._plan_split("train", rows, "train.csv", root, meta, policy)
    sizes = tau22._clip_record_sizes(plan)
    assert sizes.tolist() == [tau22._record_size(plan.clip(i)) for i in range(len(plan))]
    assert len(set(sizes.tolist())) == 3
