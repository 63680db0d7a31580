"""The 12-variable microphone condition of the DIR generator (paper Sec. 5.3).

The paper conditions its FAST-RIR-like generator on "the microphone characteristics (1)
directivity (2) transducer (3) diaphragm properties and angle/distance in cartesian coordinates
in total of 12 variables" without giving the split. Ours, in this order:

===== =========================== =========================================================
index name                        value
===== =========================== =========================================================
0-4   directivity one-hot         omni, cardioid, super/hypercardioid, bidirectional, shotgun
5-7   transducer one-hot          condenser, dynamic, ribbon
8-9   diaphragm size one-hot      large, small (a ribbon's diaphragm, and an unknown size,
                                  are both 0)
10    x = d cos(theta) / scale    d: distance in metres, theta: angle (0 deg = on axis)
11    y = d sin(theta) / scale    ``scale = coordinate_scale_m`` (default 5 m, so |x|, |y| <= 1
                                  for the Surrey distances 0.5, 1.25 and 5 m)
===== =========================== =========================================================

One-hot entries are 0 or 1. Supercardioid and hypercardioid share one entry (the paper names
only omni, cardioid, supercardioid and bidirectional; the C414 "Hyper" setting is the only
hypercardioid in the Surrey set). Diaphragm count and address are not encoded: for every row of
``asc_core/data/surrey_microphones.csv`` they follow from transducer and size (two
diaphragms and side address exactly for the large condensers), so they would add no information
for this data.

Metadata comes from the DIR records (``docs/design.md``: ``pattern``, ``transducer``,
``diaphragm_size``, ``distance_cm``, ``angle_deg``). Pattern, transducer, distance and angle are
required; an empty diaphragm size means unknown (zeros). A value outside the vocabularies raises
a :class:`~asc_core.errors.UserError` naming the microphone and the field.

:meth:`ConditionEncoder.decode` inverts :meth:`ConditionEncoder.encode` up to the merged
categories: it returns the *canonical* metadata (``hypercardioid`` comes back as
``supercardioid``, the first member of its group; distance and angle are rounded to whole
centimetres and degrees), and ``encode(decode(v)) == v`` for every encoded ``v``.
"""

import math

import numpy as np

from asc_core.errors import UserError

# Directivity groups: (encoded name, member patterns). The first member is the canonical one.
DIRECTIVITY_GROUPS = (
    ("omni", ("omni",)),
    ("cardioid", ("cardioid",)),
    ("super_hypercardioid", ("supercardioid", "hypercardioid")),
    ("bidirectional", ("bidirectional",)),
    ("shotgun", ("shotgun",)),
)
TRANSDUCERS = ("condenser", "dynamic", "ribbon")
# A size outside ENCODED_SIZES but in ZERO_SIZES encodes as all zeros.
ENCODED_SIZES = ("large", "small")
ZERO_SIZES = ("ribbon", "")

CONDITION_NAMES = (
    "omni",
    "cardioid",
    "super_hypercardioid",
    "bidirectional",
    "shotgun",
    "condenser",
    "dynamic",
    "ribbon",
    "large_diaphragm",
    "small_diaphragm",
    "x",
    "y",
)
CONDITION_DIM = len(CONDITION_NAMES)
_PATTERN_INDEX = {p: i for i, (_, members) in enumerate(DIRECTIVITY_GROUPS) for p in members}
PATTERNS = tuple(_PATTERN_INDEX)
_DIRECTIVITY = slice(0, 5)
_TRANSDUCER = slice(5, 8)
_SIZE = slice(8, 10)


def _describe(meta):
    """``microphone`` (+ pattern, name) for error messages."""
    parts = [str(meta.get("microphone") or "<unnamed microphone>")]
    if meta.get("name"):
        parts.append(f"(record {meta['name']})")
    return " ".join(parts)


class ConditionEncoder:
    """Maps microphone metadata to the 12-dim condition vector and back.

    Args:
        coordinate_scale_m: float > 0, metres that map to 1.0 in the x/y entries.

    Example::

        encoder = ConditionEncoder()
        v = encoder.encode({"microphone": "RodeNT2A", "pattern": "cardioid",
                            "transducer": "condenser", "diaphragm_size": "large",
                            "distance_cm": 50, "angle_deg": 90})
        # v[1] == 1 (cardioid), v[5] == 1 (condenser), v[8] == 1 (large), v[10:] ~ (0, 0.1)
    """

    def __init__(self, coordinate_scale_m=5.0):
        if not (isinstance(coordinate_scale_m, int | float) and coordinate_scale_m > 0):
            raise UserError(
                f"encoding.coordinate_scale_m: got {coordinate_scale_m!r}; expected a number > 0"
            )
        self.coordinate_scale_m = float(coordinate_scale_m)

    def get_config(self):
        return {"coordinate_scale_m": self.coordinate_scale_m}

    # === Encoding ===

    def encode(self, meta):
        """One condition vector.

        Args:
            meta: mapping with ``pattern``, ``transducer``, ``diaphragm_size`` (str),
                ``distance_cm``, ``angle_deg`` (int); ``microphone`` and ``name`` are used in
                error messages.

        Returns:
            float32 array ``[12]``.

        Raises:
            UserError: a required field is missing/unknown (``""`` or -1) or a value is not in
                its vocabulary; the message names the microphone, the field and the value.
        """
        who = _describe(meta)
        vector = np.zeros(CONDITION_DIM, np.float32)
        pattern = str(meta.get("pattern", ""))
        if pattern not in _PATTERN_INDEX:
            raise UserError(self._category_error(who, "pattern", pattern, PATTERNS))
        vector[_PATTERN_INDEX[pattern]] = 1.0
        transducer = str(meta.get("transducer", ""))
        if transducer not in TRANSDUCERS:
            raise UserError(self._category_error(who, "transducer", transducer, TRANSDUCERS))
        vector[5 + TRANSDUCERS.index(transducer)] = 1.0
        size = str(meta.get("diaphragm_size", ""))
        if size in ENCODED_SIZES:
            vector[8 + ENCODED_SIZES.index(size)] = 1.0
        elif size not in ZERO_SIZES:
            raise UserError(
                f"{who}: diaphragm_size {size!r} is not one of large, small, ribbon "
                "(or empty for unknown)"
            )
        distance_cm = meta.get("distance_cm", -1)
        angle_deg = meta.get("angle_deg", -1)
        for field, value in (("distance_cm", distance_cm), ("angle_deg", angle_deg)):
            if not isinstance(value, int | np.integer) or value < 0:
                raise UserError(
                    f"{who}: {field} is {value!r}; expected a non-negative whole number (the "
                    "DIR record has no measurement geometry; build the set with `multi-dirs`)"
                )
        if distance_cm == 0:
            raise UserError(f"{who}: distance_cm is 0; expected a positive distance")
        vector[10:] = self.coordinates(distance_cm, angle_deg)
        return vector

    def encode_many(self, metas):
        """``[N, 12]`` float32 for a sequence of metadata mappings."""
        metas = list(metas)
        if not metas:
            return np.zeros((0, CONDITION_DIM), np.float32)
        return np.stack([self.encode(m) for m in metas])

    def coordinates(self, distance_cm, angle_deg):
        """``(x, y)`` entries: ``d (cos theta, sin theta) / scale`` with d in metres."""
        d = float(distance_cm) / 100.0 / self.coordinate_scale_m
        theta = math.radians(float(angle_deg))
        return np.array([d * math.cos(theta), d * math.sin(theta)], np.float32)

    @staticmethod
    def _category_error(who, field, value, choices):
        if value == "":
            return (
                f"{who}: {field} is unknown (empty); the generator needs it (is this a DIR set "
                "without microphone metadata, or a microphone table row without it?)"
            )
        return f"{who}: {field} {value!r} is not one of {', '.join(choices)}"

    # === Decoding ===

    def decode(self, vector):
        """Canonical metadata of a condition vector (see the module docstring).

        Args:
            vector: array ``[12]`` as produced by :meth:`encode`.

        Returns:
            dict with ``pattern``, ``transducer``, ``diaphragm_size``, ``distance_cm``,
            ``angle_deg``.

        Raises:
            ValueError: the one-hot groups are not one-hot.
        """
        v = np.asarray(vector, np.float64).reshape(-1)
        if v.shape != (CONDITION_DIM,):
            raise ValueError(f"a condition vector has {CONDITION_DIM} entries, got {v.shape}")
        directivity = _one_hot_index(v[_DIRECTIVITY], "directivity")
        transducer = TRANSDUCERS[_one_hot_index(v[_TRANSDUCER], "transducer")]
        size_bits = v[_SIZE]
        if np.all(size_bits == 0):
            size = "ribbon" if transducer == "ribbon" else ""
        else:
            size = ENCODED_SIZES[_one_hot_index(size_bits, "diaphragm size")]
        x, y = v[10:] * self.coordinate_scale_m
        distance_cm = int(round(math.hypot(x, y) * 100.0))
        angle_deg = int(round(math.degrees(math.atan2(y, x)))) % 360
        return {
            "pattern": DIRECTIVITY_GROUPS[directivity][1][0],
            "transducer": transducer,
            "diaphragm_size": size,
            "distance_cm": distance_cm,
            "angle_deg": angle_deg,
        }

    def canonical(self, meta):
        """The metadata :meth:`decode` returns for ``encode(meta)`` (without encoding)."""
        return self.decode(self.encode(meta))

    # === Category keys ===

    @staticmethod
    def category_key(meta):
        """``(directivity, transducer, size)`` as encoded: equal keys give equal one-hots."""
        size = meta.get("diaphragm_size", "")
        if size in ZERO_SIZES:
            size = ""
        directivity = DIRECTIVITY_GROUPS[_PATTERN_INDEX[meta["pattern"]]][0]
        return (directivity, meta["transducer"], size)


def _one_hot_index(bits, group):
    ones = np.flatnonzero(bits == 1.0)
    if ones.size != 1 or np.count_nonzero(bits) != 1:
        raise ValueError(f"the {group} entries {bits.tolist()} are not one-hot")
    return int(ones[0])
