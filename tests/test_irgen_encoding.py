"""The 12-variable condition encoding of the DIR generator: values, round trip, bad metadata."""

import math

import numpy as np
import pytest

from asc_core.errors import UserError
from asc_core.microphones import load_microphones
from keras_asc.irgen.condition_encoding import CONDITION_DIM
from keras_asc.irgen.condition_encoding import CONDITION_NAMES
from keras_asc.irgen.condition_encoding import ConditionEncoder


def _meta(**overrides):
    meta = {
        "microphone": "RodeNT2A",
        "name": "RodeNT2ACardioid_50cm_90Deg.wav",
        "pattern": "cardioid",
        "transducer": "condenser",
        "diaphragm_size": "large",
        "distance_cm": 50,
        "angle_deg": 90,
    }
    meta.update(overrides)
    return meta


def test_layout_and_values():
    assert CONDITION_DIM == 12 and len(CONDITION_NAMES) == 12
    v = ConditionEncoder().encode(_meta())
    expected = np.zeros(12, np.float32)
    expected[1] = 1  # cardioid
    expected[5] = 1  # condenser
    expected[8] = 1  # large diaphragm
    expected[10] = 0.5 / 5.0 * math.cos(math.pi / 2)  # x = d cos(theta) / 5 m
    expected[11] = 0.5 / 5.0  # y = d sin(theta) / 5 m
    np.testing.assert_allclose(v, expected, atol=1e-7)
    assert v.dtype == np.float32
    # 5 m at 180 degrees: x = -1, y = 0; a ribbon has no diaphragm-size bit.
    v = ConditionEncoder().encode(
        _meta(
            pattern="bidirectional",
            transducer="ribbon",
            diaphragm_size="ribbon",
            distance_cm=500,
            angle_deg=180,
        )
    )
    np.testing.assert_allclose(v[:10], [0, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(v[10:], [-1.0, 0.0], atol=1e-7)
    # The coordinate scale is a parameter.
    v = ConditionEncoder(coordinate_scale_m=1.0).encode(_meta(angle_deg=0, distance_cm=125))
    np.testing.assert_allclose(v[10:], [1.25, 0.0], atol=1e-7)


def test_round_trip_over_the_shipped_microphone_table():
    encoder = ConditionEncoder()
    table = load_microphones()
    metas = [
        {**vars(info), "distance_cm": d, "angle_deg": a}
        for info in table.values()
        for d in (50, 125, 500)
        for a in (0, 5, 90, 185, 355)
    ]
    vectors = encoder.encode_many(metas)
    assert vectors.shape == (len(metas), 12)
    for meta, v in zip(metas, vectors):
        decoded = encoder.decode(v)
        assert decoded["distance_cm"] == meta["distance_cm"]
        assert decoded["angle_deg"] == meta["angle_deg"]
        assert decoded["transducer"] == meta["transducer"]
        expected_pattern = (
            "supercardioid" if meta["pattern"] == "hypercardioid" else meta["pattern"]
        )
        assert decoded["pattern"] == expected_pattern
        expected_size = (
            meta["diaphragm_size"]
            if meta["diaphragm_size"] in ("large", "small")
            else ("ribbon" if meta["transducer"] == "ribbon" else "")
        )
        assert decoded["diaphragm_size"] == expected_size
        np.testing.assert_array_equal(encoder.encode({**decoded, "microphone": "x"}), v)


def test_unknown_size_is_zero_and_collisions_are_visible():
    encoder = ConditionEncoder()
    # Sennheiser MD 441 has no diaphragm size in the table: both size bits are 0.
    v = encoder.encode(
        _meta(
            microphone="SennheiserMD441",
            pattern="supercardioid",
            transducer="dynamic",
            diaphragm_size="",
        )
    )
    np.testing.assert_array_equal(v[8:10], [0, 0])
    assert encoder.category_key(
        {"pattern": "hypercardioid", "transducer": "condenser", "diaphragm_size": "ribbon"}
    ) == ("super_hypercardioid", "condenser", "")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"pattern": "tube"},
            "RodeNT2A (record RodeNT2ACardioid_50cm_90Deg.wav): pattern 'tube' is not one of "
            "omni, cardioid, supercardioid, hypercardioid, bidirectional, shotgun",
        ),
        (
            {"transducer": "carbon"},
            "RodeNT2A (record RodeNT2ACardioid_50cm_90Deg.wav): transducer 'carbon' is not one of "
            "condenser, dynamic, ribbon",
        ),
        (
            {"diaphragm_size": "medium"},
            "RodeNT2A (record RodeNT2ACardioid_50cm_90Deg.wav): diaphragm_size 'medium' is not one "
            "of large, small, ribbon (or empty for unknown)",
        ),
        (
            {"transducer": ""},
            "RodeNT2A (record RodeNT2ACardioid_50cm_90Deg.wav): transducer is unknown (empty); the "
            "generator needs it (is this a DIR set without microphone metadata, or a microphone "
            "table row without it?)",
        ),
        (
            {"angle_deg": -1},
            "RodeNT2A (record RodeNT2ACardioid_50cm_90Deg.wav): angle_deg is -1; expected a "
            "non-negative whole number (the DIR record has no measurement geometry; build the set "
            "with `multi-dirs`)",
        ),
    ],
)
def test_bad_metadata_names_microphone_and_field(overrides, message):
    with pytest.raises(UserError) as info:
        ConditionEncoder().encode(_meta(**overrides))
    assert str(info.value) == message


def test_bad_scale_and_decode_input():
    with pytest.raises(UserError, match="coordinate_scale_m: got 0; expected a number > 0"):
        ConditionEncoder(coordinate_scale_m=0)
    with pytest.raises(ValueError, match="not one-hot"):
        ConditionEncoder().decode(np.zeros(12))
