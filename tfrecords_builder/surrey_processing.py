"""Surrey IR processing: its options (:class:`SurreyProcessing`) and the worker function that
reads, aligns, windows and normalises one (type, config, distance) group of IRs.

See :mod:`tfrecords_builder.multi_dirs` for why a group shares one onset.
"""

import dataclasses
import os

import numpy as np

from asc_core import vocab
from asc_core.errors import UserError
from tfrecords_builder import ir_processing as irp
from tfrecords_builder import ir_set

SOURCE_RATE = 48000
ONSET_MODES = ("group", "file")


@dataclasses.dataclass(frozen=True)
class SurreyProcessing(ir_set.Processing):
    """How each Surrey IR becomes the stored one (see the module docstring).

    Attributes:
        source_rate: expected source rate in Hz (0: any rate >= ``sample_rate``).
        sample_rate: rate of the stored IRs in Hz; ``length``, ``pre_roll`` and
            ``onset_lookback`` count samples at this rate.
        length, pre_roll, kaiser_beta, window: the cut and its taper
            (:func:`tfrecords_builder.ir_processing.ir_window`).
        onset: ``group`` or ``file``.
        onset_threshold_db, onset_noise_factor, onset_lookback: the onset rule
            (:func:`tfrecords_builder.ir_processing.detect_onset`).
        normalize: ``peak`` (default), ``energy`` or ``none``.
        resample_gain: ``filter`` (default) or ``signal``.
    """

    source_rate: int = ir_set.option(
        SOURCE_RATE,
        "expected sample rate of the files in Hz (default 48000; 0 accepts any rate >= "
        "--sample-rate)",
    )
    sample_rate: int = ir_set.option(
        vocab.SAMPLE_RATE,
        f"rate of the stored IRs in Hz (default {vocab.SAMPLE_RATE}); --length, "
        "--pre-roll and --onset-lookback count samples at this rate",
    )
    length: int = ir_set.option(1024, "stored IR length in samples (default 1024)")
    pre_roll: int = ir_set.option(
        16, "samples kept before the onset (default 16 = 0.5 ms at 32 kHz)"
    )
    kaiser_beta: float = ir_set.option(2.0, "Kaiser window beta (default 2, the paper)")
    window: str = ir_set.option(
        "half",
        "half (default): flat up to the onset, then the falling half of a Kaiser window; "
        "full: a symmetric Kaiser window over the whole cut",
        irp.WINDOW_MODES,
    )
    onset: str = ir_set.option(
        "group",
        "group (default): one onset per microphone configuration and distance (lower "
        "median of the files' onsets); file: each file's own onset",
        ONSET_MODES,
    )
    onset_threshold_db: float = ir_set.option(
        -20.0, "onset threshold in dB re the peak (default -20)"
    )
    onset_noise_factor: float = ir_set.option(
        5.0, "the onset threshold is at least this many noise standard deviations (default 5)"
    )
    onset_lookback: int = ir_set.option(
        160, "samples before the peak searched for the onset (default 160 = 5 ms at 32 kHz)"
    )
    normalize: str = ir_set.option(
        "peak",
        "level rule after windowing: peak (default, max abs 1), energy (sum of squares 1), none",
        irp.NORMALIZATIONS,
    )
    resample_gain: str = ir_set.option(
        "filter",
        "filter (default): keep the IR's response and level across the rate change; "
        "signal: keep the resampled sample values (only matters with --normalize none)",
        irp.RESAMPLE_GAINS,
    )

    def checks(self):
        return super().checks() + [
            (self.length > 0, "{length} must be > 0, got {0}", self.length),
            (
                0 <= self.pre_roll < self.length,
                "{pre_roll} must be in [0, {length}), got {0}",
                self.pre_roll,
            ),
            (self.kaiser_beta >= 0, "{kaiser_beta} must be >= 0, got {0}", self.kaiser_beta),
            (
                self.onset_threshold_db <= 0,
                "{onset_threshold_db} must be <= 0, got {0}",
                self.onset_threshold_db,
            ),
            (
                self.onset_noise_factor >= 0,
                "{onset_noise_factor} must be >= 0, got {0}",
                self.onset_noise_factor,
            ),
            (
                self.onset_lookback >= 0,
                "{onset_lookback} must be >= 0, got {0}",
                self.onset_lookback,
            ),
        ]

    def info(self, table_path):
        """The ``processing`` section of ``info.json``."""
        from asc_core.writer import md5_file

        return {
            "resampler": "soxr HQ",
            "resample_gain": self.resample_gain,
            "expected_source_rate": self.source_rate,
            "onset": {
                "mode": self.onset,
                "rule": "first sample within lookback samples before the absolute peak with "
                "|h| >= max(peak * 10**(threshold_db/20), noise_factor * median(|h|)/0.6745)",
                "threshold_db": self.onset_threshold_db,
                "noise_factor": self.onset_noise_factor,
                "lookback": self.onset_lookback,
            },
            "length": self.length,
            "pre_roll": self.pre_roll,
            "window": {"kind": "kaiser", "beta": self.kaiser_beta, "mode": self.window},
            "normalize": self.normalize,
            "microphone_table": {"path": str(table_path), "md5": md5_file(table_path)},
        }


def process_group(task):
    """Reads, aligns, windows and normalises the IRs of one (type, config, distance) group.

    Runs in a worker process (picklable arguments and results, no TensorFlow).

    Args:
        task: ``(source_root, relative_paths, processing)`` with a :class:`SurreyProcessing`.

    Returns:
        ``(results, group_onset)``: one entry per path, in order, either
        ``{"ok": True, "ir", "source_sample_rate", "source_num_samples", "onset", "md5"}`` or
        ``{"ok": False, "reason"}``; ``group_onset`` is the onset used with ``onset="group"``
        (None otherwise or when no file was readable).
    """
    from asc_core.writer import md5_file

    source, paths, opt = task
    entries = []
    for rel in paths:
        full = os.path.join(source, rel)
        try:
            ir, audio, src_rate = ir_set.read_resampled(
                full, opt, expected_rate=opt.source_rate or None
            )
            try:
                onset = irp.detect_onset(
                    ir, opt.onset_threshold_db, opt.onset_noise_factor, opt.onset_lookback
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
    group_onset = onsets[(len(onsets) - 1) // 2] if onsets and opt.onset == "group" else None
    for entry in entries:
        if not entry["ok"]:
            continue
        onset = group_onset if group_onset is not None else entry["onset"]
        windowed, _ = irp.window_ir(
            entry.pop("ir"), opt.length, opt.pre_roll, opt.kaiser_beta, opt.window, onset=onset
        )
        try:
            windowed = irp.normalize_ir(windowed, opt.normalize)
        except ValueError as err:
            entry.update(ok=False, reason=f"audio file {entry['path']}: {err} (after windowing)")
            continue
        entry["ir"] = windowed.astype(np.float32)
    return entries, group_onset
