"""tau22 planning: CSV columns, duplicates, meta.csv look-ups, work units, record sizes (no audio).

Each test checks what the plan contains (which clips, their labels, counts, order, sizes) against
an independent oracle: a dict, the CSV text, or the encoder itself.
"""

import os
import re

import numpy as np
import pytest

from asc_core import example
from asc_core.errors import UserError
from asc_core.writer import ErrorPolicy
from tfrecords_builder import csvutil
from tfrecords_builder.tau22 import plan as tau22_plan
from tfrecords_builder.tau22 import source as tau22_source


def test_first_occurrence_matches_a_dict():
    rng = np.random.default_rng(0)
    words = [f"audio/{w}.wav".encode() for w in ("a", "bb", "a\u00e9", "c")]
    for _ in range(20):
        names = np.array([words[i] for i in rng.integers(0, len(words), 30)], dtype=np.bytes_)
        seen, expected = {}, []
        for at, name in enumerate(names.tolist()):
            expected.append(seen.setdefault(name, at))
        assert tau22_source.first_occurrence(names).tolist() == expected


def test_name_set_digest_compares_sets():
    def digest(*names):
        return tau22_source.name_set_digest(np.array(names, dtype=np.bytes_))

    assert digest(b"b", b"a", b"a") == digest(b"a", b"b")
    assert digest(b"a", b"b") != digest(b"a", b"bc")
    assert digest(b"a", b"b") != digest(b"a")
    assert digest(b"ab") != digest(b"a", b"b")


def test_table_columns_give_back_every_csv_row(tmp_path):
    path = tmp_path / "meta.csv"
    rows = [
        (f"audio/bus-paris-{i}-7-0-a.wav", "bus" if i % 3 else "tram", f"paris-{i}", "a")
        for i in range(5_000)
    ]
    rows[17] = ("audio/\u00e9-17.wav", "park", "", "s1")  # non-ASCII name, empty identifier
    text = "\n".join("\t".join(row) for row in rows)
    path.write_text("filename\tscene_label\tidentifier\tsource_label\n" + text + "\n")
    columns = tau22_source.Meta.COLUMNS
    table = tau22_source.Table(csvutil.iter_tsv(path, ["filename"]), columns)
    assert len(table) == len(rows)
    decoded = [
        (
            table.names[at].decode("utf-8"),
            *(table.strings.values[table.labels[c][at]] for c in columns),
        )
        for at in range(len(rows))
    ]
    assert decoded == rows
    assert table.lines.tolist() == list(range(2, len(rows) + 2))  # line 1 is the header
    assert [n for _, names, _ in table.chunks() for n in names] == [r[0] for r in rows]
    meta = tau22_source.Meta(table, np.arange(len(table)))
    found = meta.find(np.array([b"audio/bus-paris-42-7-0-a.wav", b"audio/nothing.wav"]))
    assert found[1] == -1 and meta.row(found[0]) == (44, "tram", "paris-42", "a")


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
        tau22_source.read_meta(root, ErrorPolicy("raise"))
    policy = ErrorPolicy("skip")
    meta, rows = tau22_source.read_meta(root, policy)
    assert rows == 51 and len(meta.names) == 50
    assert policy.skipped == [{"split": "meta", "item": name, "reason": message}]
    assert meta.row(meta.find(np.array([name.encode()]))[0])[0] == 4  # the first row counts


def _train_plan(root, policy=None):
    policy = policy or ErrorPolicy("raise")
    meta, _ = tau22_source.read_meta(root, policy)
    path = os.path.join(root, "evaluation_setup", "fold1_train.csv")
    rows = list(csvutil.iter_tsv(path, ["filename"]))
    return tau22_plan.plan_split("train", iter(rows), "train.csv", root, meta, policy), rows


def test_plan_columns_and_units_of_a_split(tiny_tau):
    root = str(tiny_tau)
    plan, rows = _train_plan(root)
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
    groups, problems = tau22_plan.group_recordings("train", plan, "train.csv")
    assert len(groups) == 3 and problems == {}
    units = list(tau22_plan.work_units(plan, groups, 0))
    assert len(units) == 3 and sorted(k for k, _ in units) == sorted(set(plan.keys))
    for key, parts in units:
        assert [c.index for c in parts] == list(range(10)) and {c.key for c in parts} == {key}


def test_work_units_hold_every_clip_once_in_a_seeded_order(tmp_path):
    from conftest import write_tau22

    root = str(tmp_path / "tau")
    recordings = [("train", "bus", "paris", k, 100 + k, "a") for k in range(12)]
    write_tau22(root, recordings)
    # Recording 3 loses part 5: its 9 other parts become single clips, not a 10-s unit.
    os.remove(os.path.join(root, "audio", "bus-paris-3-103-5-a.wav"))
    policy = ErrorPolicy("skip")
    plan, rows = _train_plan(root, policy)
    assert len(plan) == 119 and [s["item"] for s in policy.skipped] == [
        "audio/bus-paris-3-103-5-a.wav"
    ]
    groups, problems = tau22_plan.group_recordings("train", plan, "train.csv")
    assert list(problems) == ["bus-paris-3-103-a"] and len(groups) == 11
    orders = {}
    for seed in (0, 0, 1):
        units = list(tau22_plan.work_units(plan, groups, seed))
        names = [c.filename for _, clips in units for c in clips]
        assert sorted(names) == sorted(
            r["filename"] for r in rows if "-3-103-5-" not in r["filename"]
        )
        keys = [key for key, _ in units]
        assert len(units) == 11 + 9 and keys.count(None) == 9
        assert sorted(k for k in keys if k) == sorted(
            f"bus-paris-{k}-{100 + k}-a" for k in range(12) if k != 3
        )
        orders.setdefault(seed, []).append(keys)
    assert orders[0][0] == orders[0][1]  # the seed fixes the order ...
    assert orders[0][0] != orders[1][0]  # ... and another seed gives another one


def test_record_sizes_equal_the_encoded_records(tmp_path):
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
    plan, _ = _train_plan(root)
    sizes = tau22_plan.clip_record_sizes(plan)
    silence = np.zeros(tau22_source.CLIP_SAMPLES, np.float32)
    encoded = [
        len(example.encode_audio_example(silence, filename=c.filename, index=c.index, **c.labels()))
        for c in map(plan.clip, range(len(plan)))
    ]
    assert sizes.tolist() == encoded and len(set(encoded)) == 3
