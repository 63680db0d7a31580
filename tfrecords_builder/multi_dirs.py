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
the shipped ``asc_core/data/surrey_microphones.csv``).
"""

from pathlib import Path

from asc_core.errors import UserError
from asc_core.microphones import DEFAULT_MICROPHONES
from asc_core.microphones import load_microphones
from tfrecords_builder import ir_set
from tfrecords_builder.surrey_names import parse_surrey_path
from tfrecords_builder.surrey_names import select_files
from tfrecords_builder.surrey_processing import SurreyProcessing
from tfrecords_builder.surrey_processing import process_group

SET_NAME = "multi"

# === Microphone table (read by asc_core.microphones) ===


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
            f"table {where}; add a row for it (see the table's header) or give another table "
            "(microphones, --microphones)"
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


class Surrey(ir_set.IRSet):
    """The Surrey set: the selected IRs, one worker task per (type, config, distance) group."""

    BUILDER = "multi-dirs"
    SET_NAME = SET_NAME
    SOURCE_HINT = "the Surrey microphone IRs (the extracted Microphone_Impulse_Responses folder)"
    TASK_UNIT = "group"
    Processing = SurreyProcessing
    process = staticmethod(process_group)

    def __init__(
        self, source, processing, policy, *, bit_depth=24, ir_type="auto", microphones=None
    ):
        super().__init__(source, processing, policy)
        self.bit_depth, self.ir_type = bit_depth, ir_type
        self.table_path = Path(microphones) if microphones is not None else DEFAULT_MICROPHONES
        self.table = load_microphones(self.table_path)
        self.counts, self.patterns, self.group_onsets = {}, {}, {}

    @classmethod
    def add_selection_arguments(cls, parser):
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

    @classmethod
    def selection_from_args(cls, args):
        return {
            "bit_depth": args.bit_depth,
            "ir_type": args.ir_type,
            "microphones": args.microphones,
        }

    def discover(self, paths, ignored):
        policy, opt = self.policy, self.processing
        names = []
        for rel in paths:
            try:
                names.append(parse_surrey_path(rel))
            except UserError as err:
                policy.fail("dirs", rel, str(err))
        selected, selection = select_files(names, bit_depth=self.bit_depth, ir_type=self.ir_type)
        self.selection = {
            "wav_files": len(paths),
            "ignored_files": ignored,
            "bit_depth": self.bit_depth,
            **selection,
        }
        groups = {}
        for name in selected:
            try:
                info = lookup_microphone(self.table, name, self.table_path)
            except UserError as err:
                policy.fail("dirs", name.path, str(err))
                continue
            # Every IR is stored cut to `length` samples, so its bytes are known up front (the
            # source rate, unknown until read, is a 3-byte varint at 44.1 or 48 kHz).
            planned = ir_set.Planned(
                name.path,
                record_metadata(name, info),
                opt.length,
                opt.source_rate or opt.sample_rate,
            )
            groups.setdefault(name.group, []).append(planned)
        if not groups:
            raise ir_set.ParameterError(
                "no usable IRs under {source} {0}: {1} .wav files, none left after parsing and "
                "selection{2}",
                self.source,
                len(paths),
                f" (first problem: {policy.skipped[0]['reason']})" if policy.skipped else "",
            )
        self.group_keys = list(groups)
        return list(groups.values())

    def account(self, planned, entry):
        metadata = planned.metadata
        mic, dist = metadata["microphone"], str(metadata["distance_cm"])
        self.counts.setdefault(mic, {}).setdefault(dist, 0)
        self.counts[mic][dist] += 1
        self.patterns[metadata["pattern"]] = self.patterns.get(metadata["pattern"], 0) + 1

    def account_task(self, task, entries, extra):
        if not entries:
            return
        onsets = [entry["onset"] for entry in entries]
        _, config, distance = parse_surrey_path(task[0].name).group
        self.group_onsets[f"{config}_{distance}cm"] = {
            "onset": extra,
            "file_onsets_min": min(onsets),
            "file_onsets_max": max(onsets),
        }

    def info(self):
        return {
            "selection": self.selection,
            "processing": self.processing.info(self.table_path),
            "counts": {
                "microphone_distance_cm": {
                    m: dict(sorted(d.items(), key=lambda kv: int(kv[0])))
                    for m, d in sorted(self.counts.items())
                },
                "pattern": dict(sorted(self.patterns.items())),
                "source_sample_rate": dict(sorted(self.rates.items())),
            },
            "group_onsets": self.group_onsets,
        }


def build(
    source,
    out,
    *,
    processing=None,
    bit_depth=24,
    ir_type="auto",
    microphones=None,
    shards=1,
    workers=None,
    on_error="raise",
):
    """Builds the Surrey multi-angle, multi-distance DIR TFRecords (see the module docstring).

    Args:
        source: the extracted archive folder (any of the known layouts).
        out: output folder.
        processing: a :class:`SurreyProcessing` (None: the defaults).
        bit_depth: 24 or 32, the depth used when an IR exists at both.
        ir_type: ``auto``, ``normalised`` or ``raw``.
        microphones: microphone table CSV, None for the shipped one.
        shards: number of TFRecord files.
        workers: decoding processes; None uses every CPU core, 0 decodes in this process.
        on_error: ``raise`` or ``skip``.

    Returns:
        the output folder path.
    """
    return ir_set.build(
        Surrey,
        source,
        out,
        SurreyProcessing() if processing is None else processing,
        shards=shards,
        workers=workers,
        on_error=on_error,
        bit_depth=bit_depth,
        ir_type=ir_type,
        microphones=microphones,
    )


# === Command ===


def add_arguments(parser):
    """Adds the ``multi-dirs`` command's arguments to an argparse parser."""
    ir_set.add_arguments(parser, Surrey, "the extracted Microphone_Impulse_Responses folder")


def run(args):
    """Runs the command from parsed arguments."""
    return ir_set.run(Surrey, args)
