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

import os
import warnings
from pathlib import PurePosixPath

import numpy as np

from asc_core import vocab
from asc_core.audio import read_audio
from asc_core.audio import resample
from asc_core.errors import UserError
from tfrecords_builder import ir_processing as irp

SET_NAME = "micirp"
BUILDER = "micirp"

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


def add_arguments(parser):
    """Adds the ``micirp`` command's arguments to an argparse parser."""
    parser.add_argument("--source", required=True, help="folder tree holding the MicIRP .wav files")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument(
        "--normalize",
        choices=irp.NORMALIZATIONS,
        default="none",
        help="level rule: none (raw level, default, as CPJKU), peak (max abs 1), "
        "energy (sum of squares 1)",
    )
    parser.add_argument(
        "--resample-gain",
        choices=irp.RESAMPLE_GAINS,
        default="filter",
        help="filter (default): keep the IR's frequency response and level across the rate "
        "change; signal: keep the resampled sample values (librosa/CPJKU)",
    )
    parser.add_argument(
        "--downmix",
        action="store_true",
        help="average the channels of multichannel files instead of rejecting them",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=vocab.SAMPLE_RATE,
        help=f"rate of the stored IRs in Hz (default {vocab.SAMPLE_RATE}, the model's rate)",
    )
    parser.add_argument("--shards", type=int, default=1, help="number of TFRecord files")
    parser.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="raise (default) stops at the first bad file; skip leaves it out and reports it",
    )


def run(args):
    """Runs the command from parsed arguments."""
    out = build(
        args.source,
        args.out,
        normalize=args.normalize,
        resample_gain=args.resample_gain,
        downmix=args.downmix,
        sample_rate=args.sample_rate,
        shards=args.shards,
        on_error=args.on_error,
    )
    print(f"wrote {out}")
    return 0


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


def process_file(
    path, *, normalize="none", resample_gain="filter", downmix=False, sample_rate=vocab.SAMPLE_RATE
):
    """Reads one MicIRP file and turns it into the stored IR.

    Args:
        path: the WAV file.
        normalize, resample_gain: see :mod:`tfrecords_builder.ir_processing`.
        downmix: average the channels of a multichannel file (else it is an error).
        sample_rate: rate of the stored IR in Hz.

    Returns:
        dict with ``ir`` (float32 ``[n]`` at ``sample_rate``), ``source_sample_rate``,
        ``source_num_samples`` and ``source_peak``.

    Raises:
        UserError: unreadable, multichannel (without ``downmix``), below ``sample_rate``, or
            silent.
    """
    audio, rate = read_audio(path, mono="downmix" if downmix else "require")
    if rate < sample_rate:
        raise UserError(
            f"audio file {path} has sample rate {rate} Hz; expected at least "
            f"{sample_rate} Hz (an IR cannot be upsampled without losing its top band)"
        )
    ir = resample(audio, rate, sample_rate).astype(np.float64)
    ir *= irp.resampling_gain(rate, sample_rate, resample_gain)
    try:
        ir = irp.normalize_ir(ir, normalize)
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


def _planned_bytes(source, paths, sample_rate):
    """Bytes of the records the build will write, from the WAV headers (an IR is stored whole:
    ``round(frames * sample_rate / rate)`` float32 samples, plus its metadata and framing).

    A file whose header cannot be read counts nothing: it fails (or is skipped) in its turn.
    """
    import soundfile

    from asc_core.example import encode_dir_example
    from asc_core.tfrecord import FRAME_BYTES

    total = 0
    for rel in paths:
        try:
            header = soundfile.info(os.path.join(os.fspath(source), rel))
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError):
            continue
        samples = round(header.frames * sample_rate / header.samplerate)
        total += FRAME_BYTES + len(
            encode_dir_example(
                np.zeros(max(samples, 1), np.float32),
                name=rel,
                set=SET_NAME,
                source_sample_rate=header.samplerate,
                sample_rate=sample_rate,
                microphone=PurePosixPath(rel).stem,
            )
        )
    return total


def build(
    source,
    out,
    *,
    normalize="none",
    resample_gain="filter",
    downmix=False,
    sample_rate=vocab.SAMPLE_RATE,
    shards=1,
    on_error="raise",
):
    """Builds the MicIRP DIR TFRecords.

    Args:
        source: folder tree holding the ``.wav`` files.
        out: output folder.
        normalize: ``none`` (default), ``peak`` or ``energy``.
        resample_gain: ``filter`` (default) or ``signal``.
        downmix: average multichannel files instead of rejecting them.
        sample_rate: rate of the stored IRs in Hz (default 32000).
        shards: number of TFRecord files.
        on_error: ``raise`` or ``skip``.

    Returns:
        the output folder path.

    Raises:
        UserError: no IRs under ``source`` (or none left after skipping), a bad file with
            ``on_error="raise"``, or less free space than the records need (checked first).
    """
    from asc_core.example import encode_dir_example
    from tfrecords_builder.writer import ErrorPolicy
    from tfrecords_builder.writer import OutputDir
    from tfrecords_builder.writer import check_free_space
    from tfrecords_builder.writer import md5_file

    if sample_rate <= 0:
        raise UserError(f"--sample-rate must be > 0 Hz, got {sample_rate}")
    paths, ignored = irp.find_wavs(source)
    if not paths:
        raise UserError(f"--source {source} holds no .wav files; expected the MicIRP IRs")
    notes = []
    count_warning = check_count([PurePosixPath(p).stem for p in paths])
    if count_warning:
        warnings.warn(count_warning, stacklevel=2)
        notes.append(count_warning)

    policy = ErrorPolicy(on_error)
    check_free_space(out, _planned_bytes(source, paths, sample_rate), BUILDER)
    items, checksums, rates, microphones = [], {}, {}, {}
    with OutputDir(out, builder=BUILDER, policy=policy) as output:
        writer = output.sharded_writer("dirs", shards)
        for rel in paths:
            full = os.path.join(os.fspath(source), rel)
            try:
                result = process_file(
                    full,
                    normalize=normalize,
                    resample_gain=resample_gain,
                    downmix=downmix,
                    sample_rate=sample_rate,
                )
            except UserError as err:
                policy.fail("dirs", rel, str(err))
                continue
            ir = result["ir"]
            stem = PurePosixPath(rel).stem
            writer.write(
                encode_dir_example(
                    ir,
                    name=rel,
                    set=SET_NAME,
                    source_sample_rate=result["source_sample_rate"],
                    sample_rate=sample_rate,
                    microphone=stem,
                )
            )
            checksums[rel] = md5_file(full)
            rate_key = str(result["source_sample_rate"])
            rates[rate_key] = rates.get(rate_key, 0) + 1
            microphones[stem] = microphones.get(stem, 0) + 1
            items.append(
                {
                    "name": rel,
                    "num_samples": int(ir.shape[0]),
                    "peak": float(np.max(np.abs(ir))),
                    "source_sample_rate": result["source_sample_rate"],
                    "source_num_samples": result["source_num_samples"],
                    "source_peak": result["source_peak"],
                }
            )
        if not items:
            raise UserError(
                f"no usable IRs under --source {source}: all {len(paths)} files were skipped "
                f"(first: {policy.skipped[0]['reason']})"
            )
        info = {
            "set": SET_NAME,
            "sample_rate": sample_rate,
            "num_examples": writer.num_examples,
            "shards": list(writer.names),
            "shard_counts": list(writer.counts),
            "source": os.path.abspath(os.fspath(source)),
            "processing": {
                "resampler": "soxr HQ",
                "resample_gain": resample_gain,
                "normalize": normalize,
                "downmix": bool(downmix),
                "window": None,
            },
            "counts": {
                "source_sample_rate": dict(sorted(rates.items())),
                "microphone": dict(sorted(microphones.items())),
            },
            "ignored_files": ignored,
            "warnings": notes,
            "items": items,
            "source_checksums": checksums,
            "source_digest": irp.combined_digest(checksums),
        }
        return output.finish(info)
