"""Adam update time of PaSST-S's weights: Keras' Adam against keras_asc's FusedAdam.

One invocation builds the PaSST-S backbone and head (86 M float32 weights, random init) and times
``optimizer.apply(gradients, weights)`` inside one ``tf.function`` per optimizer, with fixed
gradients. The two optimizers alternate (``--rounds`` rounds of ``--steps`` updates each), so
both see the same load; medians are reported with their ratio, the CPU model and the thread
count. The weights and slots of both are checked to agree after the timed updates (see
``tests/test_fused_adam.py`` for the bound).

    python benchmarks/bench_optimizer.py [--steps 5] [--rounds 3] [--threads N] [--json FILE]
"""

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

PRESET = "passt_s_swa_p16_128_ap476"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    for key in ("steps", "rounds", "threads"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf
    from bench_model import cpu_model

    from keras_asc.models.scene_classifier import SceneClassifier
    from keras_asc.optimizers import FusedAdam

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    model = SceneClassifier.from_preset(PRESET, load_weights=False, num_classes=10, seed=0)
    model(np.zeros((1, 32000), "float32"))
    weights = model.trainable_variables
    rng = np.random.default_rng(0)
    gradients = [
        tf.constant(1e-3 * rng.standard_normal(w.shape).astype("float32")) for w in weights
    ]
    count = sum(int(np.prod(w.shape)) for w in weights)
    print(f"{len(weights)} variables, {count / 1e6:.1f} M weights; threads={args.threads}")

    def compiled_update(optimizer, variables):
        return tf.function(lambda: optimizer.apply(gradients, variables))

    updates, copies = {}, {}
    for name, cls in (("keras Adam", keras.optimizers.Adam), ("FusedAdam", FusedAdam)):
        copies[name] = [keras.Variable(w.numpy()) for w in weights]
        optimizer = cls(learning_rate=1e-5)
        optimizer.build(copies[name])
        updates[name] = compiled_update(optimizer, copies[name])
        updates[name]()  # tracing, not timed

    times = {name: [] for name in updates}
    for _ in range(args.rounds):
        for name, update in updates.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                update()
                copies[name][0].numpy()  # the update has finished
                times[name].append(time.perf_counter() - start)
    largest = max(
        float(np.abs(a.numpy() - b.numpy()).max() / max(np.abs(b.numpy()).max(), 1e-30))
        for a, b in zip(copies["FusedAdam"], copies["keras Adam"])
    )
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["keras Adam"] / medians["FusedAdam"]
    for name, value in medians.items():
        print(f"{name:12s} {value * 1e3:8.1f} ms per update (median of {len(times[name])})")
    print(f"FusedAdam is {ratio:.2f}x faster; weights agree to {largest:.1e} (relative)")
    print(f"CPU: {cpu_model()}; load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "cpu_model": cpu_model(),
                    "threads": args.threads,
                    "weights": count,
                    "update_s_median": medians,
                    "update_s_all": times,
                    "speedup": ratio,
                    "largest_relative_weight_difference": largest,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
