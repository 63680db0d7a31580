"""What a fused LayerNorm kernel would buy PaSST-S on CPU: an A/B against `FastLayerNormalization`.

An experiment, not part of the library: builds `fused_layer_norm.cc` (next to this file) with
`g++` against the installed TensorFlow, checks it against `FastLayerNormalization` (outputs and
gradients), then, in one process, with `bench_model.py`'s model and threads:

* **train step**: two identical models (same weights, same batch), one whose 26 LayerNorms
  call the fused op, ``--steps`` train steps each, interleaved (ABBA); medians;
* **eval latency** of one 1-s clip: both models and hear21passt, ``--latency-runs`` calls each,
  interleaved; medians and the ratios to PyTorch's.

    python benchmarks/prototypes/fused_layer_norm_ab.py [--steps 12] [--latency-runs 80]

Needs `g++` and `make install-oracle` (PyTorch and hear21passt, for the latency). Results of
2026-12-03 are in docs/benchmarks.md.
"""

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench_model
import bench_model  # noqa: E402


def build_op(tf, folder):
    """Compiles the op library into ``folder`` and loads it."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise SystemExit("g++ not found: it builds the fused LayerNorm op")
    library = os.path.join(folder, "fused_layer_norm.so")
    command = [
        compiler, "-shared", "-fPIC", "-O3", "-march=native", "-ffast-math", "-w",
        # Eigen's AVX512-FP16 packets do not compile with g++ 12.
        "-mno-avx512fp16",
        os.path.join(HERE, "fused_layer_norm.cc"), "-o", library,
        *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the op failed:\n{result.stderr[-2000:]}")
    return tf.load_op_library(library)


def fused_call(tf, ops):
    """A `FastLayerNormalization.call` (float32 models) that runs the fused op."""

    def call(self, inputs):
        @tf.custom_gradient
        def layer_norm(x, gamma, beta):
            y, mean, rstd = ops.fused_layer_norm(x, gamma, beta, epsilon=self.epsilon)

            def grad(dy):
                return ops.fused_layer_norm_grad(dy, x, mean, rstd, gamma)

            return y, grad

        gamma, beta = (tf.convert_to_tensor(w) for w in (self.gamma, self.beta))
        return layer_norm(tf.cast(inputs, tf.float32), gamma, beta)

    return call


def use_fused(model, call):
    from keras_asc.layers import FastLayerNormalization

    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, FastLayerNormalization):
            layer.call = types.MethodType(call, layer)
            count += 1
    return count


def medians(times):
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="train steps per model")
    parser.add_argument("--latency-runs", type=int, default=80, help="eval calls per model")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        call = fused_call(tf, build_op(tf, folder))
    rng = np.random.default_rng(0)

    # Parity: one LayerNorm, outputs and gradients.
    from keras_asc.layers import FastLayerNormalization

    layer = FastLayerNormalization(epsilon=1e-6)
    x = tf.constant(rng.normal(1.0, 3.0, (4, 56, 768)).astype(np.float32))
    layer.build(x.shape)
    layer.gamma.assign(rng.normal(1.0, 0.1, 768).astype(np.float32))
    layer.beta.assign(rng.normal(0.0, 0.1, 768).astype(np.float32))
    results = []
    for fn in (layer.call, types.MethodType(call, layer)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta])])
    for name, a, b in zip(("y", "dx", "dgamma", "dbeta"), *results):
        error = float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
        print(f"parity {name}: largest difference {error:.1e} of the largest value")

    stock = bench_model.build_keras(keras, "float32", 0)
    fused = bench_model.build_keras(keras, "float32", 0)
    fused.set_weights(stock.get_weights())
    print(f"fused LayerNorms: {use_fused(fused, call)}; CPU {bench_model.cpu_model()}")

    waveform = rng.uniform(-0.5, 0.5, (16, bench_model.SAMPLE_RATE)).astype(np.float32)
    labels = rng.integers(0, bench_model.NUM_CLASSES, 16).astype(np.int32)
    losses = {"stock": [], "fused": []}
    calls = {
        name: bench_model.keras_step(model, waveform, labels, losses[name])
        for name, model in (("stock", stock), ("fused", fused))
    }
    for run in calls.values():
        run()
    times = bench_model.interleaved(calls, args.steps)
    step = medians(times)
    faster = sum(f < s for f, s in zip(times["fused"], times["stock"]))
    print(
        f"train step, batch 16: stock {step['stock']:.3f} s, fused {step['fused']:.3f} s "
        f"({step['fused'] / step['stock']:.3f}x; faster in {faster} of {args.steps}); "
        f"losses differ by at most "
        f"{max(abs(a - b) / abs(a) for a, b in zip(losses['stock'], losses['fused'])):.1e}"
    )

    clip = rng.uniform(-0.5, 0.5, (1, bench_model.SAMPLE_RATE)).astype(np.float32)
    serve = {
        name: tf.function(lambda x, model=model: model(x, training=False)["logits"])
        for name, model in (("stock", stock), ("fused", fused))
    }
    mel, net, _ = bench_model.build_torch(torch, 0)
    mel.eval()
    net.eval()
    clip_torch = torch.from_numpy(clip)
    with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()):
        calls = {name: (lambda f=f: f(clip).numpy()) for name, f in serve.items()}
        calls["hear21passt"] = lambda: net(mel(clip_torch)[:, None])
        for run in calls.values():
            run()
            run()
        latency = medians(bench_model.interleaved(calls, args.latency_runs))
    reference = latency["hear21passt"]
    print(
        "eval latency, one 1-s clip: "
        + ", ".join(f"{n} {m * 1e3:.1f} ms ({m / reference:.3f}x)" for n, m in latency.items())
    )


if __name__ == "__main__":
    main()
