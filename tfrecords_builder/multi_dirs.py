"""``multi-dirs`` builder: the Surrey multi-angle, multi-distance microphone IRs (Zenodo 4633508).

The archive layout is only known from third-party listings, so nothing assumes one tree: every
``*.wav`` under ``--source`` is found by a recursive glob and described by its path alone.

* **Configuration and distance** come from the nearest folder named ``<Config>_<distance>``
  (``AKGC414Bidirect_125cm``, ``RoyerR121_5m``) or ``<Config>_<distance>_Normalised_IRs`` (an
  older layout); when no folder has one, from a file name ``<Config>_<distance>_<angle>Deg``.
  Distances are ``<n>cm`` or ``<n>m`` (``5m`` is 500 cm). A config may contain ``_``
  (``SchoepsCMC6_MK2H_KA40``).
* **Angle and name variant**: the file name ends with ``<angle>Deg`` or ``<angle>Deg_<x>``
  (integer degrees in [0, 360)); ``<x>`` is kept as the name variant.
* **IR type**: a ``Normalised_IRs``/``Raw_IRs`` folder (or a ``..._Normalised_IRs`` suffix);
  ``--ir-type auto`` uses the normalised IRs when there are any.
* **Bit depth**: a ``24bit``/``32bit`` folder. When the same IR (type, config, distance, angle,
  variant) exists at both depths, ``--bit-depth`` picks one; an IR present at only the other
  depth is still used and counted in ``info.json``.

Each IR is resampled to ``--sample-rate`` (32 kHz, soxr HQ), scaled by the resampling gain (see
:mod:`tfrecords_builder.ir_processing`), cut to ``--length`` samples from ``--pre-roll``
samples before its onset, tapered with a Kaiser window and normalised. With ``--onset group``
(default) every IR of one (type, config, distance) group is cut at the group's median onset
(the lower median of the per-file onsets): the direct sound arrives at the same time at every
angle, and a per-file onset would slide late at pattern nulls (a figure-8 at 90 degrees), where
the largest peak is a room reflection. ``--onset file`` cuts every IR at its own onset.

Microphone metadata is joined from a CSV keyed by the config token (``--microphones``, default
the shipped ``tfrecords_builder/data/surrey_microphones.csv``).
"""

import csv
import dataclasses
import io
import os
import re
from pathlib import Path

import numpy as np

from asc_core import vocab
from asc_core.audio import read_audio
from asc_core.audio import resample
from asc_core.errors import UserError
from tfrecords_builder import ir_processing as irp

SET_NAME = "multi"
BUILDER = "multi-dirs"
SOURCE_RATE = 48000
ONSET_MODES = ("group", "file")
DEFAULT_MICROPHONES = Path(__file__).parent / "data" / "surrey_microphones.csv"

PATTERNS = ("omni", "cardioid", "supercardioid", "hypercardioid", "bidirectional", "shotgun")
TRANSDUCERS = ("condenser", "dynamic", "ribbon")
DIAPHRAGM_SIZES = ("large", "small", "ribbon")
ADDRESSES = ("side", "end")
MICROPHONE_COLUMNS = (
    "config",
    "microphone",
    "variant",
    "model",
    "pattern",
    "transducer",
    "diaphragm_size",
    "diaphragm_count",
    "address",
    "unverified",
    "notes",
)

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


# === Microphone table ===


@dataclasses.dataclass(frozen=True)
class MicrophoneInfo:
    """One row of the microphone table (see ``data/surrey_microphones.csv``)."""

    config: str
    microphone: str
    variant: str
    model: str
    pattern: str
    transducer: str
    diaphragm_size: str
    diaphragm_count: int
    address: str
    unverified: tuple
    notes: str


def load_microphones(path=None):
    """Reads the microphone table.

    Args:
        path: CSV path, or None for the shipped table. Lines starting with ``#`` are comments;
            the header must hold the columns of :data:`MICROPHONE_COLUMNS` (``model``,
            ``variant``, ``unverified`` and ``notes`` may be omitted).

    Returns:
        dict config token -> :class:`MicrophoneInfo`.

    Raises:
        UserError: missing file or column, duplicate config, or a value outside the allowed set
            (the message names the file, line, column and value).
    """
    path = Path(path) if path is not None else DEFAULT_MICROPHONES
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read the microphone table ({err.strerror})") from err
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    lines = [(n, line) for n, line in lines if not line.lstrip().startswith("#")]
    if not lines:
        raise UserError(f"{path}: the microphone table is empty; expected a CSV header")
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
    required = (
        "config",
        "microphone",
        "pattern",
        "transducer",
        "diaphragm_size",
        "diaphragm_count",
        "address",
    )
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(
            f"{path}: the microphone table lacks the column(s) {', '.join(missing)}; "
            f"expected {', '.join(MICROPHONE_COLUMNS)}"
        )
    allowed = {
        "pattern": PATTERNS,
        "transducer": TRANSDUCERS,
        "diaphragm_size": DIAPHRAGM_SIZES,
        "address": ADDRESSES,
    }
    table = {}
    for (line_no, _), row in zip(lines[1:], reader):
        if None in row or any(v is None for v in row.values()):
            raise UserError(f"{path}:{line_no}: wrong number of fields for the header")
        row = {k: v.strip() for k, v in row.items()}
        where = f"{path}:{line_no}"
        if not row["config"] or not row["microphone"]:
            raise UserError(f"{where}: 'config' and 'microphone' must not be empty")
        if row["config"] in table:
            raise UserError(f"{where}: config {row['config']!r} is listed twice")
        for column, choices in allowed.items():
            if row[column] and row[column] not in choices:
                raise UserError(
                    f"{where}: {column} {row[column]!r} is not one of {', '.join(choices)} "
                    "(or empty for unknown)"
                )
        count = row["diaphragm_count"]
        if count and not (count.isdigit() and int(count) > 0):
            raise UserError(f"{where}: diaphragm_count {count!r} is not a positive integer")
        table[row["config"]] = MicrophoneInfo(
            config=row["config"],
            microphone=row["microphone"],
            variant=row.get("variant", ""),
            model=row.get("model", ""),
            pattern=row["pattern"],
            transducer=row["transducer"],
            diaphragm_size=row["diaphragm_size"],
            diaphragm_count=int(count) if count else -1,
            address=row["address"],
            unverified=tuple(f for f in row.get("unverified", "").split(";") if f),
            notes=row.get("notes", ""),
        )
    return table


def lookup_microphone(table, name, table_path=None):
    """The table row of ``name.config``.

    Raises:
        UserError: the config is not in the table (names the file and the table).
    """
    info = table.get(name.config)
    if info is None:
        where = table_path or DEFAULT_MICROPHONES
        raise UserError(
            f"{name.path}: microphone configuration {name.config!r} is not in the microphone "
            f"table {where}; add a row for it (see the table's header) or pass --microphones"
        )
    return info


def record_metadata(name, info):
    """DIR-schema metadata of one IR (keyword arguments of ``encode_dir_example``)."""
    variant = "+".join(v for v in (info.variant, name.name_variant) if v)
    return {
        "microphone": info.microphone,
        "pattern": info.pattern,
        "variant": variant,
        "distance_cm": name.distance_cm,
        "angle_deg": name.angle_deg,
        "transducer": info.transducer,
        "diaphragm_size": info.diaphragm_size,
        "address": info.address,
        "diaphragm_count": info.diaphragm_count,
    }


# === Command ===


def add_arguments(parser):
    """Adds the ``multi-dirs`` command's arguments to an argparse parser."""
    parser.add_argument(
        "--source", required=True, help="the extracted Microphone_Impulse_Responses folder"
    )
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument(
        "--bit-depth",
        type=int,
        choices=(24, 32),
        default=24,
        help="bit depth to use when an IR exists at both (default 24)",
    )
    parser.add_argument(
        "--ir-type",
        choices=("auto", "normalised", "raw"),
        default="auto",
        help="which IR variant to use when both exist (auto: normalised if present)",
    )
    parser.add_argument(
        "--microphones",
        default=None,
        help="microphone table CSV (default: the shipped data/surrey_microphones.csv)",
    )
    parser.add_argument(
        "--source-rate",
        type=int,
        default=SOURCE_RATE,
        help="expected sample rate of the files in Hz (default 48000; 0 accepts any rate >= "
        "--sample-rate)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=vocab.SAMPLE_RATE,
        help=f"rate of the stored IRs in Hz (default {vocab.SAMPLE_RATE}); --length, "
        "--pre-roll and --onset-lookback count samples at this rate",
    )
    parser.add_argument(
        "--length", type=int, default=1024, help="stored IR length in samples (default 1024)"
    )
    parser.add_argument(
        "--pre-roll",
        type=int,
        default=16,
        help="samples kept before the onset (default 16 = 0.5 ms at 32 kHz)",
    )
    parser.add_argument(
        "--kaiser-beta", type=float, default=2.0, help="Kaiser window beta (default 2, the paper)"
    )
    parser.add_argument(
        "--window",
        choices=irp.WINDOW_MODES,
        default="half",
        help="half (default): flat up to the onset, then the falling half of a Kaiser window; "
        "full: a symmetric Kaiser window over the whole cut",
    )
    parser.add_argument(
        "--onset",
        choices=ONSET_MODES,
        default="group",
        help="group (default): one onset per microphone configuration and distance (lower "
        "median of the files' onsets); file: each file's own onset",
    )
    parser.add_argument(
        "--onset-threshold-db",
        type=float,
        default=-20.0,
        help="onset threshold in dB re the peak (default -20)",
    )
    parser.add_argument(
        "--onset-noise-factor",
        type=float,
        default=5.0,
        help="the onset threshold is at least this many noise standard deviations (default 5)",
    )
    parser.add_argument(
        "--onset-lookback",
        type=int,
        default=160,
        help="samples before the peak searched for the onset (default 160 = 5 ms at 32 kHz)",
    )
    parser.add_argument(
        "--normalize",
        choices=irp.NORMALIZATIONS,
        default="peak",
        help="level rule after windowing: peak (default, max abs 1), energy (sum of squares 1), "
        "none",
    )
    parser.add_argument(
        "--resample-gain",
        choices=irp.RESAMPLE_GAINS,
        default="filter",
        help="filter (default): keep the IR's response and level across the rate change; "
        "signal: keep the resampled sample values (only matters with --normalize none)",
    )
    parser.add_argument("--shards", type=int, default=1, help="number of TFRecord files")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes (default: the CPU cores; 0 decodes in this process)",
    )
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="raise (default) stops at the first bad file; skip leaves it out and reports it "
        "(an IR whose configuration is not in the microphone table is skipped too)",
    )


def run(args):
    """Runs the command from parsed arguments."""
    out = build(
        args.source,
        args.out,
        bit_depth=args.bit_depth,
        ir_type=args.ir_type,
        microphones=args.microphones,
        source_rate=args.source_rate,
        sample_rate=args.sample_rate,
        length=args.length,
        pre_roll=args.pre_roll,
        kaiser_beta=args.kaiser_beta,
        window=args.window,
        onset=args.onset,
        onset_threshold_db=args.onset_threshold_db,
        onset_noise_factor=args.onset_noise_factor,
        onset_lookback=args.onset_lookback,
        normalize=args.normalize,
        resample_gain=args.resample_gain,
        shards=args.shards,
        workers=args.workers,
        on_error=args.on_error,
    )
    print(f"wrote {out}")
    return 0


def _check_parameters(
    length,
    pre_roll,
    kaiser_beta,
    onset_threshold_db,
    onset_noise_factor,
    onset_lookback,
    shards,
    sample_rate,
):
    checks = [
        (length > 0, f"--length must be > 0, got {length}"),
        (0 <= pre_roll < length, f"--pre-roll must be in [0, --length), got {pre_roll}"),
        (kaiser_beta >= 0, f"--kaiser-beta must be >= 0, got {kaiser_beta}"),
        (onset_threshold_db <= 0, f"--onset-threshold-db must be <= 0, got {onset_threshold_db}"),
        (onset_noise_factor >= 0, f"--onset-noise-factor must be >= 0, got {onset_noise_factor}"),
        (onset_lookback >= 0, f"--onset-lookback must be >= 0, got {onset_lookback}"),
        (shards >= 1, f"--shards must be at least 1, got {shards}"),
        (sample_rate > 0, f"--sample-rate must be > 0 Hz, got {sample_rate}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def process_group(task):
    """Reads, aligns, windows and normalises the IRs of one (type, config, distance) group.

    Runs in a worker process (picklable arguments and results, no TensorFlow).

    Args:
        task: ``(source_root, relative_paths, options)``; ``options`` holds the keyword
            arguments of :func:`build` that shape the processing.

    Returns:
        ``(results, group_onset)``: one entry per path, in order, either
        ``{"ok": True, "ir", "source_sample_rate", "source_num_samples", "onset", "md5"}`` or
        ``{"ok": False, "reason"}``; ``group_onset`` is the onset used with ``onset="group"``
        (None otherwise or when no file was readable).
    """
    from tfrecords_builder.writer import md5_file

    source, paths, opt = task
    rate = opt["sample_rate"]
    entries = []
    for rel in paths:
        full = os.path.join(source, rel)
        try:
            audio, src_rate = read_audio(full, expected_rate=opt["source_rate"] or None)
            if src_rate < rate:
                raise UserError(
                    f"audio file {full} has sample rate {src_rate} Hz; expected at least {rate} Hz"
                )
            ir = resample(audio, src_rate, rate).astype(np.float64)
            ir *= irp.resampling_gain(src_rate, rate, opt["resample_gain"])
            try:
                onset = irp.detect_onset(
                    ir, opt["onset_threshold_db"], opt["onset_noise_factor"], opt["onset_lookback"]
                )
            except ValueError as err:
                raise UserError(f"audio file {full}: {err}; expected an impulse response") from None
            entries.append(
                {
                    "ok": True,
                    "path": full,
                    "ir": ir,
                    "source_sample_rate": int(src_rate),
                    "source_num_samples": int(audio.shape[0]),
                    "onset": onset,
                    "md5": md5_file(full),
                }
            )
        except UserError as err:
            entries.append({"ok": False, "reason": str(err)})
    onsets = sorted(e["onset"] for e in entries if e["ok"])
    group_onset = onsets[(len(onsets) - 1) // 2] if onsets and opt["onset"] == "group" else None
    for entry in entries:
        if not entry["ok"]:
            continue
        onset = group_onset if group_onset is not None else entry["onset"]
        windowed, _ = irp.window_ir(
            entry.pop("ir"),
            opt["length"],
            opt["pre_roll"],
            opt["kaiser_beta"],
            opt["window"],
            onset=onset,
        )
        try:
            windowed = irp.normalize_ir(windowed, opt["normalize"])
        except ValueError as err:
            entry.update(ok=False, reason=f"audio file {entry['path']}: {err} (after windowing)")
            continue
        entry["ir"] = windowed.astype(np.float32)
    return entries, group_onset


def build(
    source,
    out,
    *,
    bit_depth=24,
    ir_type="auto",
    microphones=None,
    source_rate=SOURCE_RATE,
    sample_rate=vocab.SAMPLE_RATE,
    length=1024,
    pre_roll=16,
    kaiser_beta=2.0,
    window="half",
    onset="group",
    onset_threshold_db=-20.0,
    onset_noise_factor=5.0,
    onset_lookback=160,
    normalize="peak",
    resample_gain="filter",
    shards=1,
    workers=None,
    on_error="raise",
):
    """Builds the Surrey multi-angle, multi-distance DIR TFRecords (see the module docstring).

    Args:
        source: the extracted archive folder (any of the known layouts).
        out: output folder.
        bit_depth: 24 or 32, the depth used when an IR exists at both.
        ir_type: ``auto``, ``normalised`` or ``raw``.
        microphones: microphone table CSV, None for the shipped one.
        source_rate: expected source rate in Hz (0: any rate >= ``sample_rate``).
        sample_rate: rate of the stored IRs in Hz (default 32000).
        length, pre_roll, kaiser_beta, window: the cut and its taper
            (:func:`tfrecords_builder.ir_processing.ir_window`).
        onset: ``group`` or ``file``.
        onset_threshold_db, onset_noise_factor, onset_lookback: the onset rule
            (:func:`tfrecords_builder.ir_processing.detect_onset`).
        normalize: ``peak`` (default), ``energy`` or ``none``.
        resample_gain: ``filter`` (default) or ``signal``.
        shards: number of TFRecord files.
        workers: decoding processes; None uses every CPU core, 0 decodes in this process.
        on_error: ``raise`` or ``skip``.

    Returns:
        the output folder path.
    """
    from keras_asc.data.schema import encode_dir_example
    from tfrecords_builder.parallel import default_workers
    from tfrecords_builder.parallel import ordered_map
    from tfrecords_builder.tfrecord_io import FRAME_BYTES
    from tfrecords_builder.writer import ErrorPolicy
    from tfrecords_builder.writer import OutputDir
    from tfrecords_builder.writer import check_free_space
    from tfrecords_builder.writer import md5_file

    _check_parameters(
        length,
        pre_roll,
        kaiser_beta,
        onset_threshold_db,
        onset_noise_factor,
        onset_lookback,
        shards,
        sample_rate,
    )
    if onset not in ONSET_MODES:
        raise UserError(f"--onset {onset!r} is not valid; expected one of {', '.join(ONSET_MODES)}")
    policy = ErrorPolicy(on_error)
    table_path = Path(microphones) if microphones is not None else DEFAULT_MICROPHONES
    table = load_microphones(table_path)

    paths, ignored = irp.find_wavs(source)
    if not paths:
        raise UserError(
            f"--source {source} holds no .wav files; expected the Surrey microphone IRs "
            "(the extracted Microphone_Impulse_Responses folder)"
        )
    names = []
    for rel in paths:
        try:
            names.append(parse_surrey_path(rel))
        except UserError as err:
            policy.fail("dirs", rel, str(err))
    selected, selection = select_files(names, bit_depth=bit_depth, ir_type=ir_type)
    known = []
    for name in selected:
        try:
            known.append((name, lookup_microphone(table, name, table_path)))
        except UserError as err:
            policy.fail("dirs", name.path, str(err))
    if not known:
        raise UserError(
            f"no usable IRs under --source {source}: {len(paths)} .wav files, none left after "
            f"parsing and selection"
            + (f" (first problem: {policy.skipped[0]['reason']})" if policy.skipped else "")
        )

    groups = {}
    for name, info in known:
        groups.setdefault(name.group, []).append((name, info))
    options = {
        "source_rate": source_rate,
        "sample_rate": sample_rate,
        "resample_gain": resample_gain,
        "onset": onset,
        "onset_threshold_db": onset_threshold_db,
        "onset_noise_factor": onset_noise_factor,
        "onset_lookback": onset_lookback,
        "length": length,
        "pre_roll": pre_roll,
        "kaiser_beta": kaiser_beta,
        "window": window,
        "normalize": normalize,
    }
    source_root = os.fspath(source)
    tasks = [(source_root, [n.path for n, _ in members], options) for members in groups.values()]
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(tasks))

    # Every IR is stored cut to `length` samples, so the bytes to write are known up front
    # (the source rate, unknown until a file is read, is a 3-byte varint at 44.1 or 48 kHz).
    check_free_space(
        out,
        sum(
            FRAME_BYTES
            + len(
                encode_dir_example(
                    np.zeros(length, np.float32),
                    name=name.path,
                    set=SET_NAME,
                    source_sample_rate=source_rate or sample_rate,
                    sample_rate=sample_rate,
                    **record_metadata(name, info),
                )
            )
            for name, info in known
        ),
        BUILDER,
    )
    checksums, counts, patterns, group_onsets, rates = {}, {}, {}, {}, {}
    with OutputDir(out, builder=BUILDER, policy=policy) as output:
        writer = output.sharded_writer("dirs", shards)
        results = ordered_map(process_group, tasks, workers)
        for (group, members), (entries, group_onset) in _progress(
            zip(groups.items(), results), len(tasks)
        ):
            onsets = []
            for (name, info), entry in zip(members, entries):
                if not entry["ok"]:
                    policy.fail("dirs", name.path, entry["reason"])
                    continue
                metadata = record_metadata(name, info)
                writer.write(
                    encode_dir_example(
                        entry["ir"],
                        name=name.path,
                        set=SET_NAME,
                        source_sample_rate=entry["source_sample_rate"],
                        sample_rate=sample_rate,
                        **metadata,
                    )
                )
                checksums[name.path] = entry["md5"]
                onsets.append(entry["onset"])
                mic, dist = metadata["microphone"], str(metadata["distance_cm"])
                counts.setdefault(mic, {}).setdefault(dist, 0)
                counts[mic][dist] += 1
                patterns[metadata["pattern"]] = patterns.get(metadata["pattern"], 0) + 1
                rate_key = str(entry["source_sample_rate"])
                rates[rate_key] = rates.get(rate_key, 0) + 1
            if onsets:
                key = f"{group[1]}_{group[2]}cm"
                group_onsets[key] = {
                    "onset": group_onset,
                    "file_onsets_min": min(onsets),
                    "file_onsets_max": max(onsets),
                }
        if writer.num_examples == 0:
            raise UserError(
                f"no usable IRs under --source {source}: every file was skipped "
                f"(first: {policy.skipped[0]['reason']})"
            )
        info = {
            "set": SET_NAME,
            "sample_rate": sample_rate,
            "num_examples": writer.num_examples,
            "shards": list(writer.names),
            "shard_counts": list(writer.counts),
            "source": os.path.abspath(source_root),
            "selection": {
                "wav_files": len(paths),
                "ignored_files": ignored,
                "bit_depth": bit_depth,
                **selection,
            },
            "processing": {
                "resampler": "soxr HQ",
                "resample_gain": resample_gain,
                "expected_source_rate": source_rate,
                "onset": {
                    "mode": onset,
                    "rule": "first sample within lookback samples before the absolute peak with "
                    "|h| >= max(peak * 10**(threshold_db/20), noise_factor * median(|h|)/0.6745)",
                    "threshold_db": onset_threshold_db,
                    "noise_factor": onset_noise_factor,
                    "lookback": onset_lookback,
                },
                "length": length,
                "pre_roll": pre_roll,
                "window": {"kind": "kaiser", "beta": kaiser_beta, "mode": window},
                "normalize": normalize,
                "microphone_table": {"path": str(table_path), "md5": md5_file(table_path)},
            },
            "counts": {
                "microphone_distance_cm": {
                    m: dict(sorted(d.items(), key=lambda kv: int(kv[0])))
                    for m, d in sorted(counts.items())
                },
                "pattern": dict(sorted(patterns.items())),
                "source_sample_rate": dict(sorted(rates.items())),
            },
            "group_onsets": group_onsets,
            "source_checksums": checksums,
            "source_digest": irp.combined_digest(checksums),
        }
        return output.finish(info)


def _progress(iterable, total):
    from asc_core.progress import progress

    return progress(iterable, total=total, desc="multi-dirs groups", unit="group")
