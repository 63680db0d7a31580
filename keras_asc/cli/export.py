"""``keras-asc export`` (``scripts/export.py``): a verified SavedModel / TFLite export of a scene
classifier, with its parameters and MACs per clip (:mod:`keras_asc.inference.export`).
"""

import argparse

from keras_asc.inference import complexity
from keras_asc.inference.export import FORMATS
from keras_asc.inference.export import QUANTIZATIONS
from keras_asc.inference.export import export_model
from keras_asc.inference.export import format_verification
from keras_asc.inference.predict import load_scene_model


def build_parser():
    parser = argparse.ArgumentParser(
        prog="export.py",
        description=(
            "Export a scene classifier (eval mode: waveform [B, 32000] -> logits, probabilities, "
            "embedding) as a TF SavedModel or TFLite model, verify it against the Keras model "
            "and print its parameters and MACs per 1-s clip."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="a .keras file or a run directory (RUN_DIR/model.keras)"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help="dynamic: dynamic-range quantisation (int8 weights), TFLite only",
    )
    parser.add_argument("--out", required=True, help="output folder (savedmodel) or file (tflite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the verification clips")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    model = load_scene_model(args.model)
    report = export_model(
        model,
        args.out,
        args.fmt,
        quantize=args.quantize,
        overwrite=args.overwrite,
        seed=args.seed,
    )
    kind = args.fmt if args.quantize is None else f"{args.fmt} ({args.quantize} quantisation)"
    print(f"exported {kind} to {report['path']} ({report['bytes'] / 1e6:.2f} MB)")
    print(format_verification(report["verification"]))
    sample_rate = int(model.frontend.sample_rate)
    counts = complexity.model_complexity(model)
    print(complexity.format_complexity(counts, sample_rate, sample_rate))
    profiled = complexity.profiler_macs(model)
    expected = sum(
        counts["macs_by_part"][k] for k in ("patch_embedding", "attention", "mlp", "head")
    )
    expected += complexity.mel_matmul_macs(counts, model.frontend.n_fft, model.frontend.n_mels)
    verdict = "agrees" if profiled == expected else "DIFFERS"
    print(
        f"TF profiler: {profiled / 1e6:,.1f} M matmul/conv MACs, {verdict} with the count "
        f"({expected / 1e6:,.1f} M: patch embedding + attention + MLP + head + mel matmul)"
    )
    return 0
