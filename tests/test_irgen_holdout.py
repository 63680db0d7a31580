"""Hold-out protocols of the DIR generator: disjoint, complete, stable for a seed, saved lists."""

import json

import numpy as np
import pytest

from asc_core.errors import UserError
from keras_asc.irgen import holdout

ANGLES = tuple(range(0, 360, 45))


def _records():
    """4 microphones (one with 2 patterns), distances 50/125/500 cm, 8 angles: 120 records."""
    configs = [
        ("MicA", "omni"),
        ("MicA", "cardioid"),
        ("MicB", "cardioid"),
        ("MicC", "bidirectional"),
        ("MicD", "shotgun"),
    ]
    records = []
    for mic, pattern in configs:
        for distance in (50, 125, 500):
            if mic == "MicD" and distance == 50:
                continue  # like RodeNTG8, one configuration lacks a distance
            for angle in ANGLES:
                records.append(
                    {
                        "name": (
                            f"{mic}{pattern}_{distance}cm/{mic}{pattern}_{distance}cm_{angle}Deg"
                        ),
                        "microphone": mic,
                        "pattern": pattern,
                        "variant": "",
                        "distance_cm": distance,
                        "angle_deg": angle,
                    }
                )
    return records


@pytest.mark.parametrize("protocol", holdout.ALL_PROTOCOLS)
def test_splits_are_disjoint_complete_and_stable(protocol):
    records = _records()
    a = holdout.split_records(records, protocol, seed=3)
    b = holdout.split_records(list(reversed(records)), protocol, seed=3)
    indices = np.concatenate([a[s] for s in holdout.SPLITS])
    assert sorted(indices.tolist()) == list(range(len(records)))
    for split in holdout.SPLITS:
        # The same names whatever the record order.
        names_a = sorted(records[i]["name"] for i in a[split])
        names_b = sorted(records[::-1][i]["name"] for i in b[split])
        assert names_a == names_b
    assert a["validation"].size == max(1, round(0.1 * (len(records) - a["test"].size)))


def test_angles_protocol_holds_out_every_fourth_angle_per_configuration():
    records = _records()
    splits = holdout.split_records(records, "angles", seed=0, every=4)
    test = [records[i] for i in splits["test"]]
    offset = int(np.random.default_rng([0, 0]).integers(4))
    held = {ANGLES[offset], ANGLES[offset + 4]}
    assert {r["angle_deg"] for r in test} == held
    assert len(test) == 14 * 2  # 14 configuration-distance groups x 2 angles


def test_distance_and_microphone_protocols():
    records = _records()
    test = [records[i] for i in holdout.split_records(records, "distance")["test"]]
    assert {r["distance_cm"] for r in test} == {125} and len(test) == 5 * 8
    for seed in range(4):
        splits = holdout.split_records(records, "microphones", seed=seed, microphone_fraction=0.25)
        held = {records[i]["microphone"] for i in splits["test"]}
        kept = {
            records[i]["microphone"]
            for i in np.concatenate([splits["train"], splits["validation"]])
        }
        assert len(held) == 1 and not held & kept  # every pattern of a microphone on one side
    chosen = {
        seed: {
            records[i]["microphone"]
            for i in holdout.split_records(records, "microphones", seed=seed)["test"]
        }
        for seed in range(8)
    }
    assert len({tuple(sorted(v)) for v in chosen.values()}) > 1  # the seed matters


def test_saved_lists_round_trip(tmp_path):
    records = _records()
    lists = holdout.write_holdout_lists(records, tmp_path, seed=1, distance_cm=500)
    assert set(lists) == set(holdout.ALL_PROTOCOLS)
    for protocol in holdout.ALL_PROTOCOLS:
        assert holdout.read_holdout_list(tmp_path, protocol) == lists[protocol]
    summary = json.loads((tmp_path / "holdout.json").read_text())
    assert summary["protocols"]["distance"]["held_out_distances_cm"] == [500]
    assert summary["protocols"]["none"]["counts"]["test"] == 0
    header = (tmp_path / "angles.tsv").read_text().splitlines()[0]
    assert header == "name\tsplit\tmicrophone\tpattern\tvariant\tdistance_cm\tangle_deg"


def test_bad_protocol_parameters():
    records = _records()
    with pytest.raises(UserError) as info:
        holdout.split_records(records, "distance", distance_cm=200)
    assert str(info.value) == (
        "holdout.distance_cm: 200 is not a measured distance; the set has 50, 125, 500 cm"
    )
    with pytest.raises(UserError, match="holdout.protocol: got 'pattern'; expected one of"):
        holdout.split_records(records, "pattern")
    one_mic = [r for r in records if r["microphone"] == "MicB"]
    with pytest.raises(UserError, match="needs at least two microphones; the set has MicB"):
        holdout.split_records(one_mic, "microphones")
