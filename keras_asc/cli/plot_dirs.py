"""``keras-asc plot-dirs`` (``scripts/plot_dirs.py``): the paper's Figure 1 (response bands of
DIR sets) or, with ``--mic``, Figure 2 (how: :mod:`keras_asc.evaluation.dir_plots`).
"""

import argparse

from asc_core.errors import UserError
from keras_asc.evaluation.dir_plots import REFERENCES
from keras_asc.evaluation.dir_plots import apply_reference
from keras_asc.evaluation.dir_plots import load_dir_records
from keras_asc.evaluation.dir_plots import magnitude_responses
from keras_asc.evaluation.dir_plots import plot_angle_responses
from keras_asc.evaluation.dir_plots import plot_response_bands
from keras_asc.evaluation.dir_plots import response_bands
from keras_asc.evaluation.dir_plots import select_angle_series


def _fraction(text):
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction like 1/6, got {text!r}"
        ) from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="plot_dirs.py",
        description="Figure 1 (response bands of DIR sets) or, with --mic, Figure 2 (one "
        "microphone at one distance, one curve per angle).",
    )
    parser.add_argument("--dirs", nargs="+", required=True, help="DIR TFRecord folders")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--mic", help="Figure 2: microphone name (e.g. RodeNT2A)")
    parser.add_argument("--pattern", help="Figure 2: polar pattern (e.g. cardioid)")
    parser.add_argument("--distance", type=int, help="Figure 2: distance in cm (e.g. 50)")
    parser.add_argument("--max-angle", type=int, default=180, help="Figure 2: largest angle")
    parser.add_argument(
        "--smoothing",
        type=_fraction,
        default=1 / 6,
        help="smoothing band in octaves (0 = none), e.g. 1/6",
    )
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        help="0 dB at 1 kHz for each response (Figure 1 default), for the first (smallest) "
        "angle only, keeping level differences (Figure 2 default), or none",
    )
    parser.add_argument("--title", help="figure title")
    return parser


def _ylabel(mode, what):
    if mode == "none":
        return "magnitude [dB]"
    return f"magnitude [dB re {what} at 1 kHz]"


def main(argv=None):
    args = build_parser().parse_args(argv)
    irs, records, rate = load_dir_records(args.dirs)
    if args.mic is None:
        for flag in ("pattern", "distance"):
            if getattr(args, flag) is not None:
                raise UserError(f"--{flag} selects a Figure 2 series and needs --mic")
        mode = args.reference or "each"
        freqs, db = magnitude_responses(
            irs, rate, smoothing_octaves=args.smoothing, reference_hz=None
        )
        bands = response_bands(apply_reference(freqs, db, mode))
        if len(irs) == 1:
            print(f"note: {records[0]['name']} is the only IR; the bands collapse onto it")
        title = args.title or f"{', '.join(sorted({r['set'] for r in records}))}: {len(irs)} IRs"
        what = "each IR" if mode == "each" else "the first IR"
        path = plot_response_bands(freqs, bands, args.out, title, _ylabel(mode, what))
    else:
        chosen = select_angle_series(records, args.mic, args.distance, args.pattern, args.max_angle)
        mode = args.reference or "first"
        freqs, db = magnitude_responses(
            [irs[i] for i in chosen], rate, smoothing_octaves=args.smoothing, reference_hz=None
        )
        db = apply_reference(freqs, db, mode)
        angles = [records[i]["angle_deg"] for i in chosen]
        first = records[chosen[0]]
        if len(chosen) == 1:
            print(f"note: only one angle ({angles[0]} degrees) in the selection")
        title = args.title or (
            f"{first['microphone']} {first['pattern']} at {first['distance_cm']} cm, "
            f"{angles[0]}–{angles[-1]}°"
        )
        what = "each angle" if mode == "each" else f"{angles[0]}°"
        path = plot_angle_responses(freqs, db, angles, args.out, title, _ylabel(mode, what))
    print(f"wrote {path}")
    return 0
