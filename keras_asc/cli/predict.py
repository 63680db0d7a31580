"""``keras-asc predict`` (``scripts/predict.py``): scene predictions for audio files, as a table
or JSON (windows, resampling and downmix: :mod:`keras_asc.inference.predict`).

A file that cannot be read gets one ``error: ...`` line on stderr naming it and the reason; the
other files are still predicted, and the exit code is 1 when any file failed.
"""

import argparse
import sys

from keras_asc.inference.predict import DEFAULT_BATCH_SIZE
from keras_asc.inference.predict import WINDOW_SECONDS
from keras_asc.inference.predict import Predictor
from keras_asc.inference.predict import format_json
from keras_asc.inference.predict import format_table
from keras_asc.inference.predict import load_scene_model


def build_parser():
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description=(
            "Predict the acoustic scene of audio files (wav/flac, any rate, mono or stereo, any "
            "length): 1-s windows at 32 kHz, window probabilities averaged per file."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="a .keras file or a run directory (RUN_DIR/model.keras)"
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--window-hop",
        type=float,
        default=WINDOW_SECONDS,
        metavar="SECONDS",
        help="hop between the 1-s windows, in (0, 1] (default 1); a tail shorter than a "
        "window is dropped, a clip shorter than 1 s is zero-padded",
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="windows per model call"
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    model = load_scene_model(args.model)
    predictor = Predictor(model, hop_seconds=args.window_hop, batch_size=args.batch_size)
    failures = []

    def on_error(path, message):
        failures.append(path)
        print(f"error: {message}", file=sys.stderr, flush=True)

    results = predictor.predict_files(args.files, on_error=on_error, progress=len(args.files) > 1)
    done = [r for r in results if r is not None]
    for r in done:
        notes = []
        if r["downmixed"]:
            notes.append(f"{r['channels']} channels averaged to mono")
        if r["source_rate"] != predictor.sample_rate:
            notes.append(f"resampled {r['source_rate']} -> {predictor.sample_rate} Hz")
        if r["padded"]:
            notes.append(f"{r['duration_s']:.3f} s zero-padded to {WINDOW_SECONDS:g} s")
        if notes:
            print(f"note: {r['file']}: {'; '.join(notes)}", file=sys.stderr)
    if args.json:
        print(format_json(done, args.model, args.window_hop))
    elif done:
        print(format_table(done, predictor.classes))
    if failures:
        print(f"{len(failures)} of {len(args.files)} files failed", file=sys.stderr, flush=True)
        return 1
    return 0
