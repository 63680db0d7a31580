"""Input-pipeline throughput: tf.data windows, TF vs CPJKU-style NumPy DIR + mel, train step.

One invocation measures, in examples (1-s clips) per second on this machine:

(a) ``read+window``: TFRecord read + parse of 10-s recordings + random 1-s window + shuffle +
    batch (``keras_asc.data.pipeline``), iterated without a model;
(b) ``tf dir+mel``: batched FFT DIR convolution (``DirAugmentation``, p = 1) + Kaldi log-mel
    frontend with fmax jitter and frequency/time masks (``KaldiMelSpectrogram``, training
    mode), one compiled function per batch;
(c) ``numpy dir+mel``: the CPJKU data-loader style, per example: ``scipy.signal.convolve(x, ir,
    "full")[:N]``, then a NumPy loop of pre-emphasis, framed rFFT, power, Kaldi mel matrix,
    log and masks;
(d) ``train step``: ``SceneClassifier.fit`` steps of a small preset on random batches (the
    cost the pipeline must keep up with).

    python benchmarks/bench_pipeline.py [--data demo/tfrecords/tau22]
        [--dirs demo/tfrecords/multi_dirs] [--batch 32] [--preset passt_tiny] [--json out.json]

Without ``--data``/``--dirs`` a temporary corpus of random 10-s recordings and random
1024-sample IRs is written first (not timed). Numbers depend on the machine and its load; run
it on an idle machine and report the CPU.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_corpus(directory, recordings=48, eval_clips=64, irs=32, ir_length=1024, seed=0):
    """Random-noise ``train-10s``/``evaluate-1s`` shards and a DIR set (for the benchmark only)."""
    import tensorflow as tf

    from asc_core import vocab
    from asc_core.example import encode_audio_example
    from asc_core.example import encode_dir_example

    rng = np.random.default_rng(seed)
    audio_dir = os.path.join(directory, "tau22")
    dirs_dir = os.path.join(directory, "dirs")
    os.makedirs(audio_dir)
    os.makedirs(dirs_dir)
    with tf.io.TFRecordWriter(os.path.join(audio_dir, "train-10s.tfrecord-00000-of-00001")) as w:
        for i in range(recordings):
            audio = (0.1 * rng.standard_normal(320000)).astype(np.float32)
            device = vocab.TRAIN_DEVICES[i % len(vocab.TRAIN_DEVICES)]
            scene = vocab.SCENES[i % len(vocab.SCENES)]
            w.write(encode_audio_example(audio, filename=f"r{i}", scene=scene, device=device))
    with tf.io.TFRecordWriter(os.path.join(audio_dir, "evaluate-1s.tfrecord-00000-of-00001")) as w:
        for i in range(eval_clips):
            audio = (0.1 * rng.standard_normal(32000)).astype(np.float32)
            w.write(encode_audio_example(audio, filename=f"e{i}", scene="park", device="a"))
    with tf.io.TFRecordWriter(os.path.join(dirs_dir, "dirs.tfrecord-00000-of-00001")) as w:
        for i in range(irs):
            ir = rng.standard_normal(ir_length) * np.exp(-np.arange(ir_length) / 64.0)
            ir[0] = 1.0
            w.write(
                encode_dir_example(
                    ir.astype(np.float32), name=f"m{i}.wav", set="multi", source_sample_rate=48000
                )
            )
    return audio_dir, dirs_dir


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


def bench_read_window(data_path, batch, seconds):
    from keras_asc.data.pipeline import make_datasets

    data = make_datasets(data_path, batch_size=batch, windows_per_recording=4, shuffle_buffer=512)
    stream = data.train_epochs(0, 10_000)
    iterator = iter(stream)
    next(iterator)  # warm-up: tracing, first shuffle block
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        waveform, _ = next(iterator)
        count += int(waveform.shape[0])
    return rate(count, time.perf_counter() - start)


def bench_tf_dir_mel(irs, batch, seconds):
    import tensorflow as tf

    from keras_asc.augment.dir_augmentation import DirAugmentation
    from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram

    dir_layer = DirAugmentation(irs=irs, probability=1.0, source_devices=["a"], seed=0)
    mel = KaldiMelSpectrogram(freqm=48, timem=24, fmax_aug_range=1000, seed=0)

    @tf.function
    def step(x, device):
        x, device = dir_layer(x, device, training=True)
        return mel(x, training=True)

    x = tf.random.normal([batch, 32000]) * 0.1
    device = tf.zeros([batch], tf.int32)
    step(x, device).numpy()  # warm-up: tracing
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(x, device).numpy()
        count += batch
    return rate(count, time.perf_counter() - start)


def numpy_mel(x, mel_matrix, window, rng, freqm=48, timem=24, n_fft=1024, hop=320):
    """PaSST's AugmentMelSTFT in NumPy for one clip ``[N]`` → ``[128, frames]``."""
    x = x[1:] - 0.97 * x[:-1]
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spectrum = np.fft.rfft(padded[index] * window, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = np.log(mel_matrix @ power.T + 1e-5)
    width = rng.integers(0, freqm)
    start = rng.integers(0, mel.shape[0] - width + 1)
    mel[start : start + width] = 0.0
    width = rng.integers(0, timem)
    start = rng.integers(0, mel.shape[1] - width + 1)
    mel[:, start : start + width] = 0.0
    return (mel + 4.5) / 5.0


def bench_numpy_dir_mel(irs, seconds):
    from scipy.signal import convolve

    from keras_asc.layers.kaldi_mel_banks import kaldi_mel_banks

    rng = np.random.default_rng(0)
    mel_matrix = kaldi_mel_banks(128, 1024, 32000, 0.0, 15500.0)
    hann = np.hanning(800)  # symmetric, zero-padded to n_fft as torch.stft does
    window = np.pad(hann, (112, 112))
    x = (0.1 * rng.standard_normal(32000)).astype(np.float32)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ir = irs[rng.integers(len(irs))]
        y = convolve(x, ir, "full")[: len(x)]
        numpy_mel(y, mel_matrix, window, rng)
        count += 1
    return rate(count, time.perf_counter() - start)


def bench_train_step(preset, batch, seconds):
    import keras
    import tensorflow as tf

    from keras_asc.models.scene_classifier import SceneClassifier

    # Speed only: random weights (an official preset would otherwise load AudioSet weights).
    model = SceneClassifier.from_preset(
        preset, load_weights=False, num_classes=10, frequency_patchout=6
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    x = tf.random.normal([batch, 32000]) * 0.1
    y = tf.random.uniform([batch], 0, 10, tf.int32)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)
        steps += 5
    return rate(steps * batch, time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="tau22 TFRecord folder (default: a temporary corpus)")
    parser.add_argument("--dirs", help="DIR TFRecord folder (default: temporary random IRs)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--preset", default="passt_tiny")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per item")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_asc.data.dirs import load_dirs

    with tempfile.TemporaryDirectory() as tmp:
        data_path, dirs_path = args.data, args.dirs
        if data_path is None or dirs_path is None:
            generated = write_corpus(tmp)
            data_path = data_path or generated[0]
            dirs_path = dirs_path or generated[1]
        bank = load_dirs(dirs_path)
        irs = [bank.irs[i, : bank.lengths[i]] for i in range(len(bank))]
        results = {
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "batch": args.batch,
            "preset": args.preset,
            "num_irs": len(bank),
            "max_ir_samples": int(bank.lengths.max()),
            "read_window": bench_read_window(data_path, args.batch, args.seconds),
            "tf_dir_mel": bench_tf_dir_mel(bank.irs, args.batch, args.seconds),
            "numpy_dir_mel": bench_numpy_dir_mel(irs, args.seconds),
            "train_step": bench_train_step(args.preset, args.batch, args.seconds),
        }
    print(f"{'item':<16} examples/s   ({os.cpu_count()} CPUs, batch {args.batch})")
    for key in ("read_window", "tf_dir_mel", "numpy_dir_mel", "train_step"):
        print(f"{key:<16} {results[key]:10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
