"""Surrey IR names: what the path of one file says (configuration, distance, angle, IR type, bit
depth), and which files of a source are used (one per logical IR and one IR type).

See :mod:`tfrecords_builder.multi_dirs` for the layouts.
"""

import dataclasses
import re
from pathlib import Path

from asc_core.errors import UserError

_DISTANCE = r"(?P<distance>\d+(?:\.\d+)?(?:cm|m))"
_GROUP_FOLDER = re.compile(
    rf"^(?P<config>[A-Za-z0-9][A-Za-z0-9_\-]*?)_{_DISTANCE}(?:_(?P<type>normali[sz]ed|raw)_irs)?$",
    re.IGNORECASE,
)
_FILE_STEM = re.compile(
    r"^(?:(?P<prefix>.*)_)?(?P<angle>\d+)deg(?:_(?P<variant>[A-Za-z0-9\-]+))?$", re.IGNORECASE
)
_PREFIX = re.compile(rf"^(?P<config>[A-Za-z0-9][A-Za-z0-9_\-]*?)_{_DISTANCE}$", re.IGNORECASE)
_TYPE_FOLDER = re.compile(r"^(?:.*_)?(?P<type>normali[sz]ed|raw)(?:_irs)?$", re.IGNORECASE)
_BIT_FOLDER = re.compile(r"^(?P<bits>\d+)[ _\-]?bits?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SurreyName:
    """What the path of one Surrey IR says.

    Attributes:
        path: the path relative to the source root, ``/``-separated.
        config: the configuration token, e.g. ``AKGC414Bidirect``.
        distance_cm: int, source-to-microphone distance.
        angle_deg: int in [0, 360).
        name_variant: the token after ``<angle>Deg_``, ``""`` when absent.
        ir_type: ``"normalised"``, ``"raw"`` or ``""`` when the path does not say.
        bit_depth: int (24, 32) or None when the path does not say.
    """

    path: str
    config: str
    distance_cm: int
    angle_deg: int
    name_variant: str
    ir_type: str
    bit_depth: int | None

    @property
    def key(self):
        """The logical IR: equal keys at different bit depths are copies of one IR."""
        return (self.ir_type, self.config, self.distance_cm, self.angle_deg, self.name_variant)

    @property
    def group(self):
        """The (type, config, distance) group that shares one onset with ``--onset group``."""
        return (self.ir_type, self.config, self.distance_cm)


def _distance_cm(token, path):
    token = token.lower()
    value = float(token[:-2]) if token.endswith("cm") else 100.0 * float(token[:-1])
    if value != int(value) or value <= 0:
        raise UserError(f"{path}: distance {token!r} is not a positive whole number of centimetres")
    return int(value)


def _ir_type(token):
    return "raw" if token.lower() == "raw" else "normalised"


def parse_surrey_path(path):
    """Parses the relative path of one Surrey IR.

    Args:
        path: str or PurePath relative to the source root, e.g.
            ``Normalised_IRs/AKGC414Bidirect_125cm/24bit/AKGC414Bidirect_125cm_90Deg.wav`` or
            ``ShureSM58_125cm_Normalised_IRs/IRs/ShureSM58_125cm_5Deg.wav``.

    Returns:
        :class:`SurreyName`.

    Raises:
        UserError: the name does not follow either layout (the message names the path).
    """
    parts = Path(path).parts
    rel = "/".join(parts)
    stem_match = _FILE_STEM.match(Path(parts[-1]).stem) if parts else None
    if not parts or Path(parts[-1]).suffix.lower() != ".wav" or stem_match is None:
        raise UserError(
            f"{rel}: malformed Surrey IR name; expected a .wav file named "
            "'<Config>_<distance>_<angle>Deg[_<x>].wav' (e.g. 'ShureSM57_50cm_90Deg.wav')"
        )
    angle = int(stem_match["angle"])
    if not 0 <= angle < 360:
        raise UserError(f"{rel}: angle {angle} Deg is outside [0, 360)")

    ir_type, bit_depth, folder = "", None, None
    for part in reversed(parts[:-1]):
        group_match = _GROUP_FOLDER.match(part)
        if folder is None and group_match:
            folder = group_match
        type_match = _TYPE_FOLDER.match(part)
        if not ir_type and type_match:
            ir_type = _ir_type(type_match["type"])
        bit_match = _BIT_FOLDER.match(part)
        if bit_depth is None and bit_match:
            bit_depth = int(bit_match["bits"])

    prefix = _PREFIX.match(stem_match["prefix"] or "")
    if folder is None and prefix is None:
        raise UserError(
            f"{rel}: malformed Surrey IR name; neither a folder '<Config>_<distance>' "
            "(e.g. 'AKGC414Bidirect_125cm') nor the file name gives the microphone and distance"
        )
    source = folder if folder is not None else prefix
    config, distance = source["config"], _distance_cm(source["distance"], rel)
    if folder is not None and prefix is not None:
        file_config, file_distance = prefix["config"], _distance_cm(prefix["distance"], rel)
        if (file_config, file_distance) != (config, distance):
            raise UserError(
                f"{rel}: the file name says {file_config} at {file_distance} cm but its folder "
                f"says {config} at {distance} cm"
            )
    return SurreyName(
        path=rel,
        config=config,
        distance_cm=distance,
        angle_deg=angle,
        name_variant=stem_match["variant"] or "",
        ir_type=ir_type,
        bit_depth=bit_depth,
    )


def select_files(names, bit_depth=24, ir_type="auto"):
    """Keeps one file per logical IR and one IR type.

    Args:
        names: iterable of :class:`SurreyName`.
        bit_depth: preferred bit depth when an IR exists at several.
        ir_type: ``"auto"`` (normalised if any, else raw, else untyped), ``"normalised"`` or
            ``"raw"``.

    Returns:
        ``(selected, stats)``: the chosen names sorted by (config, distance, angle, variant,
        path), and a dict with ``ir_type``, ``duplicates_dropped`` (copies at the other depth)
        and ``other_depth_used`` (IRs found only at a non-preferred depth).

    Raises:
        UserError: the requested type is absent, or two files claim the same IR at the same
            depth.
    """
    names = list(names)
    types = {name.ir_type for name in names}
    if ir_type == "auto":
        chosen_type = next(t for t in ("normalised", "raw", "") if t in types) if types else ""
    else:
        chosen_type = ir_type
        if chosen_type not in types:
            found = ", ".join(sorted(t or "untyped" for t in types)) or "none"
            raise UserError(f"no {chosen_type} IRs found (IR types present: {found})")
    by_key = {}
    for name in names:
        if name.ir_type != chosen_type:
            continue
        by_key.setdefault(name.key, []).append(name)
    selected, dropped, other_depth = [], 0, 0
    for key, candidates in by_key.items():
        depths = {}
        for candidate in candidates:
            if candidate.bit_depth in depths:
                raise UserError(
                    f"{depths[candidate.bit_depth].path} and {candidate.path} are the same IR "
                    f"{key[1]} {key[2]} cm {key[3]} Deg at the same bit depth; keep only one"
                )
            depths[candidate.bit_depth] = candidate
        if bit_depth in depths:
            pick = depths[bit_depth]
        else:
            # Prefer the deepest remaining depth; an unmarked depth (None) comes last.
            pick = depths[max(depths, key=lambda d: -1 if d is None else d)]
            other_depth += pick.bit_depth is not None
        dropped += len(depths) - 1
        selected.append(pick)
    selected.sort(key=lambda n: (n.config, n.distance_cm, n.angle_deg, n.name_variant, n.path))
    stats = {
        "ir_type": chosen_type,
        "duplicates_dropped": dropped,
        "other_depth_used": other_depth,
    }
    return selected, stats
