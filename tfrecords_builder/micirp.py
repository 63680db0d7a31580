"""``micirp`` builder: the MicIRP vintage microphone impulse responses (micirp.blogspot.com).

The real set, as CPJKU uses it, is 66 mono 24-bit WAVs at 44.1 kHz (61) or 48 kHz (5), 0.34-0.5 s
long, with extra RIFF chunks (``JUNK``, ``bext``, ``FLLR``, ...) and awkward names (``B&O_BM2``,
``Doremi_``). Every ``.wav`` under ``--source`` is taken in sorted relative-path order (CPJKU's
``sorted(rglob('*.wav'))``), read with soundfile, resampled to 32 kHz with soxr HQ (librosa's
default resampler, which CPJKU uses) and stored whole:

* level: raw by default (``--normalize none``; CPJKU does not normalise). The resampling gain
  ``--resample-gain filter`` (default) multiplies by ``source_rate / 32000`` so the stored IR
  filters audio with the measured frequency response and level; ``signal`` keeps the sample
  values a plain resampler gives (CPJKU's ``librosa.load``), which are 2.8 dB (44.1 kHz) or
  3.5 dB (48 kHz) lower as a filter. See :mod:`tfrecords_builder.ir_processing`.
* channels: a file with more than one channel is an error unless ``--downmix`` (mean of the
  channels) is given.
* sample rate: sources below the target rate (``--sample-rate``, default 32 kHz) are errors
  (upsampling cannot restore the missing band).
* count: zero IRs is an error; a folder whose names are mostly the known 66 but that does not
  hold exactly those 66 gets a warning naming the missing and extra files.

Each record stores the name (relative path), ``microphone`` = the file stem, the source rate and
``peak``; ``info.json`` adds per-file source length, rate, peak and md5.
"""

import dataclasses
import os
import warnings
from pathlib import PurePosixPath

import numpy as np

from asc_core.errors import UserError
from tfrecords_builder import ir_processing as irp
from tfrecords_builder import ir_set

SET_NAME = "micirp"

# The 66 files of CPJKU's set (fschmid56/cpjku_dcase23 datasets/dirs), by stem.
KNOWN_NAMES = (
    "Altec_639", "Altec_670A", "Altec_670B", "American_R331", "Amperite_RA", "B&O_BM2", "B&O_BM6",
    "BBCmarconi_B", "Beomic_1000", "Beyer_M260", "Beyer_M360", "Coles_4038", "Doremi_",
    "EMI_ribbon", "EV_RE20_Flat", "EV_RE20_HPF", "FilmIndustries_M8", "GEC_2373",
    "GEC_bigdynamic", "Grampian_GR2", "IR_AKGD12", "IR_AKG_FaultyD12", "IR_Astatic77",
    "IR_BeyerM500Stock", "IR_FosterDynamicDF1", "IR_GaumontKalee", "IR_Lomo52A5M", "IR_Meazzi",
    "IR_MelodiumRM6", "IR_OktavaMD57", "IR_OktavaMK18Silver", "IR_OktavaMK18_Overload",
    "IR_OktavaML16", "IR_RCAKU3a", "IR_ResloCR600", "IR_ResloDynamic", "IR_ResloURA",
    "IR_STC4033_Cardioid", "IR_STC4033_Pressure", "IR_STC4033_Ribbon", "IR_STC4035",
    "IR_Shure510C", "Melodium_42B_1", "Melodium_Model12", "Oktava_ML19", "RCA_44BX_1",
    "RCA_44BX_2", "RCA_74B", "RCA_77DX_1", "RCA_77DX_2", "RCA_KU3a_1", "RCA_PB90",
    "RCA_varacoustic_fig8", "Reslo_RB250", "Reslo_RB_RedLabel", "Reslo_RV", "Reslo_SR1",
    "Reslo_VMC2", "Shure315_HPF", "Shure315_flat", "Sony_C37Fet", "Telefunken_M201",
    "Toshiba_BK5", "Toshiba_TypeG", "Toshiba_TypeK_HPF", "Toshiba_TypeK_flat",
)  # fmt: skip
# A folder "looks like the real set" when it has at least this many known names and they are at
# least half of its files; then any difference from the 66 is worth a warning.
_REAL_SET_MIN_KNOWN = 20


_NORMALIZE_HELP = (
    "level rule: none (raw level, default, as CPJKU), peak (max abs 1), energy (sum of squares 1)"
)
_DOWNMIX_HELP = "average the channels of multichannel files instead of rejecting them"


@dataclasses.dataclass(frozen=True)
class MicIRPProcessing(ir_set.Processing):
    """How each MicIRP file becomes the stored IR (see the module docstring).

    Attributes:
        sample_rate: rate of the stored IRs in Hz.
        resample_gain: ``filter`` (default) or ``signal``.
        normalize: ``none`` (default, as CPJKU), ``peak`` or ``energy``.
        downmix: average the channels of a multichannel file (else it is an error).
    """

    normalize: str = ir_set.option("none", _NORMALIZE_HELP, irp.NORMALIZATIONS)
    downmix: bool = ir_set.option(False, _DOWNMIX_HELP)


def check_count(stems):
    """Warning text when ``stems`` look like the real set but are not exactly its 66, else None.

    Args:
        stems: file stems found under the source.
    """
    found = set(stems)
    known = found & set(KNOWN_NAMES)
    if len(known) < _REAL_SET_MIN_KNOWN or 2 * len(known) < len(found):
        return None
    missing = sorted(set(KNOWN_NAMES) - found)
    extra = sorted(found - set(KNOWN_NAMES))
    if not missing and not extra and len(stems) == len(KNOWN_NAMES):
        return None
    parts = [f"found {len(stems)} MicIRP IRs; the reference set has {len(KNOWN_NAMES)}"]
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"not in the reference set: {', '.join(extra)}")
    if len(stems) != len(found):
        parts.append("some names occur in several folders")
    return "; ".join(parts)


def process_file(path, processing):
    """Reads one MicIRP file and turns it into the stored IR.

    Args:
        path: the WAV file.
        processing: a :class:`MicIRPProcessing`.

    Returns:
        dict with ``ir`` (float32 ``[n]`` at ``processing.sample_rate``), ``source_sample_rate``,
        ``source_num_samples`` and ``source_peak``.

    Raises:
        UserError: unreadable, multichannel (without ``downmix``), below the target rate, or
            silent.
    """
    mono = "downmix" if processing.downmix else "require"
    ir, audio, rate = ir_set.read_resampled(path, processing, mono=mono)
    try:
        ir = irp.normalize_ir(ir, processing.normalize)
    except ValueError as err:
        raise UserError(f"audio file {path}: {err}") from None
    if not np.any(ir):
        raise UserError(f"audio file {path} is silent (all samples are zero); expected an IR")
    return {
        "ir": ir.astype(np.float32),
        "source_sample_rate": int(rate),
        "source_num_samples": int(audio.shape[0]),
        "source_peak": float(np.max(np.abs(audio))),
    }


def process_files(task):
    """The worker function: ``(source, [relative path], processing)`` → ``(entries, None)``."""
    from asc_core.writer import md5_file

    source, paths, processing = task
    entries = []
    for rel in paths:
        full = os.path.join(source, rel)
        try:
            entries.append({"ok": True, **process_file(full, processing), "md5": md5_file(full)})
        except UserError as err:
            entries.append({"ok": False, "reason": str(err)})
    return entries, None


def _planned_samples(path, sample_rate):
    """``(stored samples, source rate)`` from the WAV header (an IR is stored whole), or
    ``(None, sample_rate)`` when the header cannot be read."""
    import soundfile

    try:
        header = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError):
        return None, sample_rate
    return round(header.frames * sample_rate / header.samplerate), header.samplerate


class MicIRP(ir_set.IRSet):
    """The MicIRP set: every ``.wav`` under the source, one task each, in sorted path order."""

    BUILDER = "micirp"
    SET_NAME = SET_NAME
    SOURCE_HINT = "the MicIRP IRs"
    Processing = MicIRPProcessing
    process = staticmethod(process_files)

    def discover(self, paths, ignored):
        self.ignored, self.notes = ignored, []
        self.items, self.microphones = [], {}
        count_warning = check_count([PurePosixPath(p).stem for p in paths])
        if count_warning:
            warnings.warn(count_warning, stacklevel=4)
            self.notes.append(count_warning)
        tasks = []
        for rel in paths:
            full = os.path.join(os.fspath(self.source), rel)
            samples, rate = _planned_samples(full, self.processing.sample_rate)
            metadata = {"microphone": PurePosixPath(rel).stem}
            tasks.append([ir_set.Planned(rel, metadata, samples, rate)])
        return tasks

    def account(self, planned, entry):
        stem = planned.metadata["microphone"]
        self.microphones[stem] = self.microphones.get(stem, 0) + 1
        ir = entry["ir"]
        self.items.append(
            {
                "name": planned.name,
                "num_samples": int(ir.shape[0]),
                "peak": float(np.max(np.abs(ir))),
                "source_sample_rate": entry["source_sample_rate"],
                "source_num_samples": entry["source_num_samples"],
                "source_peak": entry["source_peak"],
            }
        )

    def info(self):
        processing = self.processing
        return {
            "processing": {
                "resampler": "soxr HQ",
                "resample_gain": processing.resample_gain,
                "normalize": processing.normalize,
                "downmix": bool(processing.downmix),
                "window": None,
            },
            "counts": {
                "source_sample_rate": dict(sorted(self.rates.items())),
                "microphone": dict(sorted(self.microphones.items())),
            },
            "ignored_files": self.ignored,
            "warnings": self.notes,
            "items": self.items,
        }


def build(source, out, *, processing=None, shards=1, on_error="raise"):
    """Builds the MicIRP DIR TFRecords.

    Args:
        source: folder tree holding the ``.wav`` files.
        out: output folder.
        processing: a :class:`MicIRPProcessing` (None: the defaults).
        shards: number of TFRecord files.
        on_error: ``raise`` or ``skip``.

    Returns:
        the output folder path.

    Raises:
        UserError: no IRs under ``source`` (or none left after skipping), a bad file with
            ``on_error="raise"``, or less free space than the records need (checked first).
    """
    processing = MicIRPProcessing() if processing is None else processing
    return ir_set.build(MicIRP, source, out, processing, shards=shards, on_error=on_error)


def add_arguments(parser):
    """Adds the ``micirp`` command's arguments to an argparse parser."""
    ir_set.add_arguments(parser, MicIRP, "folder tree holding the MicIRP .wav files", workers=False)


def run(args):
    """Runs the command from parsed arguments."""
    return ir_set.run(MicIRP, args)
