"""Where the Keras PaSST-S time goes: TensorFlow profiler op time, grouped by layer and pass.

The model, inputs and threads are `bench_model.py`'s (1-s clips, patchout 6, SpecAugment on,
random weights). `--mode train` profiles `train_on_batch` steps, `--mode eval` one-clip
inference calls through a `tf.function`. TensorFlow runs with **one inter-op thread** here, so
no two ops overlap and the op times add up to the wall time (with the default pool, ops that
run side by side slow each other and the sum exceeds the step); the script prints both. The
flip side: with the default pool small ops run beside the matmuls, so removing one saves less
than its time here (measure a change with an interleaved A/B of whole steps).

Every op is put in a group `(layer, pass)`: the layer is the transformer sub-layer (`norm1`,
`attention`, `norm2`, `mlp_fc1`, `mlp_fc2`, summed over the 12 blocks) or the model-level layer
(`frontend`, `patch_embedding`, ...); the pass is `forward`, `backward` (ops under
`gradient_tape/`) or `optimizer`. Ops without a name scope are grouped as `(unscoped)` and
counted as backward: the custom gradients' (the GELU's), the gradient sums (`AddN`) and the
step counters.
Matmuls (`MatMul`, `BatchMatMul`, fused or not, and the patch convolution) are counted apart
from the rest, the memory-bound work that the matmul peak does not bound.

    python benchmarks/profile_model.py [--mode train|eval] [--batch 16] [--steps 3]
                                       [--threads N] [--dtype float32] [--top 25]
"""

import argparse
import collections
import glob
import os
import re
import shutil
import tempfile
import time

import bench_model  # a sibling script (its folder is on the path)

MATMUL_TYPES = ("MatMul", "Conv2D")
BLOCK_LAYER = re.compile(r"transformer_layer_\d+(?:_\d+)?/([a-z0-9_]+?)(?:_\d+)?/")
MODEL_LAYER = re.compile(
    r"^(?:gradient_tape/)?[a-z_]+?(?:_\d+)?/(?:passt_backbone(?:_\d+)?/)?"
    r"([a-z_0-9]+?)(?:_\d+)?/"
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("train", "eval"), default="train")
    parser.add_argument("--batch", type=int, default=16, help="clips per train step")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps or calls")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads")
    parser.add_argument("--dtype", default="float32", help="Keras dtype policy")
    parser.add_argument("--top", type=int, default=25, help="rows of the non-matmul table")
    args = parser.parse_args(argv)
    for key in ("batch", "steps", "threads", "top"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    return args


def classify(name, op_type):
    """`(layer, pass)` of one profiled op, from its node name (see the module docstring)."""
    if "Apply" in op_type or "adam" in name.lower():
        return "optimizer", "optimizer"
    backward = name.startswith("gradient_tape/") or "/" not in name
    block = BLOCK_LAYER.search(name)
    if block:
        layer = block.group(1)
    elif "/" not in name:
        layer = "(unscoped)"
    elif "transformer_layer_" in name:
        layer = "residual adds"
    else:
        model = MODEL_LAYER.search(name)
        layer = model.group(1) if model else name.split("/")[0]
    return layer, "backward" if backward else "forward"


def op_times(logdir):
    """`{(node name, op type): total ms}` of the TensorFlow ops in a profiler trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if len(paths) != 1:
        raise SystemExit(f"expected one profiler trace under {logdir}, found {len(paths)}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads run the ops
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                # Op events are "node:OpType"; the executor's own are "Class::method".
                node, _, op_type = label.rpartition(":")
                if node and op_type and "::" not in label:
                    times[(node, op_type)] += event.duration_ps / 1e9
    return times


def report(times, runs, wall, top):
    """Prints the op time per run by group, then the ``top`` largest non-matmul op types."""
    groups, types = collections.Counter(), collections.Counter()
    matmul = 0.0
    for (node, op_type), ms in times.items():
        ms /= runs
        key = classify(node, op_type)
        if any(kind in op_type for kind in MATMUL_TYPES):
            matmul += ms
            groups[key + ("matmul",)] += ms
        else:
            groups[key + ("other",)] += ms
            types[key + (op_type,)] += ms
    total = sum(groups.values())
    print(
        f"op time {total:.1f} ms per run (wall {wall * 1e3:.1f} ms): matmuls {matmul:.1f} ms "
        f"({100 * matmul / total:.1f} %), other ops {total - matmul:.1f} ms"
    )
    print(f"\n{'layer':22s} {'pass':9s} {'matmul ms':>10s} {'other ms':>10s}")
    layers = sorted(
        {key[:2] for key in groups},
        key=lambda k: -sum(groups[k + (kind,)] for kind in ("matmul", "other")),
    )
    for layer, pass_ in layers:
        mm, other = groups[(layer, pass_, "matmul")], groups[(layer, pass_, "other")]
        if mm + other >= 0.05:
            print(f"{layer:22s} {pass_:9s} {mm:10.1f} {other:10.1f}")
    print("\nlargest non-matmul ops (layer, pass, op type), ms per run:")
    for (layer, pass_, op_type), ms in types.most_common(top):
        print(f"  {ms:8.2f}  {layer:22s} {pass_:9s} {op_type}")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = bench_model.build_keras(keras, args.dtype, seed=0)
    rng = np.random.default_rng(0)
    if args.mode == "train":
        waveform = rng.uniform(-0.5, 0.5, (args.batch, bench_model.SAMPLE_RATE))
        labels = rng.integers(0, bench_model.NUM_CLASSES, args.batch).astype(np.int32)
        waveform = waveform.astype(np.float32)

        def run():
            return float(model.train_on_batch(waveform, labels, return_dict=True)["loss"])
    else:
        clip = rng.uniform(-0.5, 0.5, (1, bench_model.SAMPLE_RATE)).astype(np.float32)
        serve = tf.function(lambda x: model(x, training=False)["logits"])

        def run():
            return float(serve(clip).numpy().sum())

    for _ in range(3):  # trace, compile and warm up
        run()
    logdir = tempfile.mkdtemp(prefix="profile_model_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        values = [run() for _ in range(args.steps)]
        wall = (time.perf_counter() - start) / args.steps
        tf.profiler.experimental.stop()
        if not all(np.isfinite(values)):
            raise SystemExit(f"non-finite outputs {values}: a profile of a NaN run is not a figure")
        times = op_times(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    print(
        f"{args.mode}, {args.dtype}, batch {args.batch if args.mode == 'train' else 1}, "
        f"{args.threads} intra-op threads, 1 inter-op thread; CPU {bench_model.cpu_model()}"
    )
    report(times, args.steps, wall, args.top)


if __name__ == "__main__":
    main()
