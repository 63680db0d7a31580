"""Tiny TFRecord corpora for the pipeline and training tests (written with the schema encoders).

Two kinds:

* :func:`write_ramp_set` - recordings whose samples encode their own position (sample ``j`` is
  ``j / 2**19``, exact in float32), so a test can tell exactly where a window was cut; each
  recording has its own scene, so the labels identify it.
* :func:`write_learnable_set` - a scene is a tone at a scene-specific frequency plus noise, a device
  a gain and a one-pole filter: a tiny model learns it in an epoch.
"""

import json
import os

import numpy as np
from scipy.signal import lfilter

from asc_core import vocab
from asc_core.example import encode_audio_example
from asc_core.example import encode_dir_example

SR = vocab.SAMPLE_RATE


def write_shards(directory, prefix, records, num_shards=2):
    """Writes serialized records round-robin into ``{prefix}.tfrecord-XXXXX-of-YYYYY`` files."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    names = [
        os.path.join(directory, f"{prefix}.tfrecord-{i:05d}-of-{num_shards:05d}")
        for i in range(num_shards)
    ]
    writers = [tf.io.TFRecordWriter(n) for n in names]
    for i, record in enumerate(records):
        writers[i % num_shards].write(record)
    for w in writers:
        w.close()
    return names


RAMP_STEP = 2.0**-19


def ramp(num_samples):
    """``sample[j] = j * 2**-19`` (exact in float32 up to 2**24 samples)."""
    return (np.arange(num_samples, dtype=np.float64) * RAMP_STEP).astype(np.float32)


def write_ramp_set(directory, num_recordings=10, seconds=10, devices=None):
    """A ``tau22``-like folder of ramp recordings: ``train-10s`` and 10×``evaluate-1s`` each.

    Recording ``r`` has scene ``r`` (so at most 10 recordings) and device ``devices[r]`` (default
    cycling over ``vocab.TRAIN_DEVICES``). Returns the list of (scene_id, device_id) per recording.
    """
    labels = []
    train, evaluate = [], []
    for r in range(num_recordings):
        scene = vocab.SCENES[r]
        device = devices[r] if devices else vocab.TRAIN_DEVICES[r % len(vocab.TRAIN_DEVICES)]
        labels.append((vocab.SCENES.index(scene), vocab.DEVICES.index(device)))
        audio = ramp(seconds * SR)
        key = f"{scene}-city-{r}-{r}-{device}"
        train.append(encode_audio_example(audio, filename=key, scene=scene, device=device))
        for k in range(seconds):
            evaluate.append(
                encode_audio_example(
                    audio[k * SR : (k + 1) * SR],
                    filename=f"audio/{scene}-city-{r}-{r}-{k}-{device}.wav",
                    scene=scene,
                    device=device,
                    index=k,
                )
            )
    write_shards(directory, "train-10s", train, num_shards=3)
    write_shards(directory, "evaluate-1s", evaluate, num_shards=2)
    return labels


def scene_signal(rng, scene, device, num_samples):
    """A learnable clip: the scene's tone + noise, coloured by the device."""
    t = np.arange(num_samples) / SR
    freq = 300.0 * (scene + 1)
    x = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    x += 0.05 * rng.standard_normal(num_samples)
    gain = 1.0 - 0.08 * device
    pole = 0.1 * device  # a one-pole low-pass per device
    return (gain * lfilter([1.0 - pole], [1.0, -pole], x)).astype(np.float32)


def write_learnable_set(directory, recordings_per_scene=4, eval_per_scene=3, seconds=2, seed=0):
    """A small learnable ``tau22``-like folder: ``train-10s`` and ``evaluate-1s`` shards.

    Devices cycle over ``vocab.TRAIN_DEVICES`` for training and over all devices for evaluation.
    """
    rng = np.random.default_rng(seed)
    train, evaluate = [], []
    i = 0
    for scene_id, scene in enumerate(vocab.SCENES):
        for _ in range(recordings_per_scene):
            device = vocab.TRAIN_DEVICES[i % len(vocab.TRAIN_DEVICES)]
            i += 1
            audio = scene_signal(rng, scene_id, vocab.DEVICES.index(device), seconds * SR)
            train.append(
                encode_audio_example(
                    audio, filename=f"{scene}-x-{i}-{i}-{device}", scene=scene, device=device
                )
            )
        for k in range(eval_per_scene):
            device = vocab.DEVICES[(scene_id + k) % len(vocab.DEVICES)]
            audio = scene_signal(rng, scene_id, vocab.DEVICES.index(device), SR)
            evaluate.append(
                encode_audio_example(
                    audio,
                    filename=f"audio/{scene}-x-{k}-{k}-0-{device}.wav",
                    scene=scene,
                    device=device,
                    index=0,
                )
            )
    order = rng.permutation(len(train))
    write_shards(directory, "train-10s", [train[j] for j in order], num_shards=2)
    write_shards(directory, "evaluate-1s", evaluate, num_shards=1)
    return len(train), len(evaluate)


def write_dir_set(
    directory, num_irs=4, length=64, sample_rate=SR, set_name="multi", microphones=None
):
    """A DIR folder: ``dirs.tfrecord-*`` with decaying random IRs of varying length."""
    rng = np.random.default_rng(1)
    records = []
    for i in range(num_irs):
        n = length - 8 * (i % 3)
        ir = np.zeros(n, np.float32)
        ir[0] = 1.0
        ir[1:] = 0.3 * rng.standard_normal(n - 1) * np.exp(-np.arange(1, n) / 8.0)
        mic = microphones[i] if microphones else f"mic{i // 2}"
        folder = mic or f"mic{i}"
        records.append(
            encode_dir_example(
                ir,
                name=f"{folder}/{i}.wav",
                set=set_name,
                source_sample_rate=48000,
                sample_rate=sample_rate,
                microphone=mic,
            )
        )
    write_shards(directory, "dirs", records, num_shards=1)
    with open(os.path.join(directory, "info.json"), "w") as f:
        json.dump({"builder": "test", "sample_rate": sample_rate}, f)
    return records


def train_until_killed(config_path, run_dir, epoch, batch=None):
    """Trains like ``scripts/train.py`` but SIGKILLs the process at a given point.

    ``batch=None``: at the start of ``epoch`` (0-based), i.e. right after the previous epoch was
    committed; otherwise after batch ``batch`` of ``epoch`` (mid-epoch). Run it in a subprocess.
    """
    import signal

    import keras

    from keras_asc.config import load_config
    from keras_asc.training.runner import train

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, current, logs=None):
            self.current = current
            if current == epoch and batch is None:
                os.kill(os.getpid(), signal.SIGKILL)

        def on_train_batch_end(self, current_batch, logs=None):
            if self.current == epoch and current_batch == batch:
                os.kill(os.getpid(), signal.SIGKILL)

    train(load_config(config_path), run_dir, extra_callbacks=[Kill()])


def mirrored_parity(data_path, icl_weight=0.0, optimizer="adam"):
    """One training step on one device and under MirroredStrategy over two logical CPUs.

    Must run in a fresh process (the logical devices are configured before TensorFlow starts).
    Prints a JSON line: both losses (and the logged loss terms), the largest difference of the
    weight *updates* (after - before), the largest update, and the replica count.

    Args:
        icl_weight: float, ``loss.icl_weight`` (0: plain CE).
        optimizer: ``"adam"`` (lr 1e-3) or ``"sgd"`` (lr 0.5: the update is the gradient
            itself, so a mis-scaled loss term shows in it directly).
    """
    import json as _json

    import keras

    from keras_asc.config import resolve_config
    from keras_asc.training.distribute import make_strategy
    from keras_asc.training.distribute import split_logical_cpus
    from keras_asc.training.runner import build_model
    from keras_asc.training.runner import build_optimizer

    devices = split_logical_cpus(2)
    from keras_asc.data.pipeline import make_datasets

    # Random layers off (patchout, masks, fmax jitter, time offset): per-replica draws would
    # differ from one draw over the whole batch.
    config = resolve_config(
        {
            "data": {"path": data_path, "batch_size": 8},
            "model": {
                "preset": "passt_tiny",
                "random_time_offset": False,
                "frontend": {"freqm": 0, "timem": 0, "fmax_aug_range": 1},
            },
            "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
            "loss": {"icl_weight": icl_weight},
        }
    )
    data = make_datasets(**{**config["data"], "targets": "dict"}, seed=0)
    batch = data.train_epoch(0).take(1).cache()
    results = {}
    for name, strategy in [
        ("single", make_strategy("none")),
        ("mirrored", make_strategy("mirrored", devices=devices)),
    ]:
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build_model(config)
            if optimizer == "sgd":
                model.compile(optimizer=keras.optimizers.SGD(0.5))
            else:
                model.compile(optimizer=build_optimizer(config["optimizer"]))
        initial = [w.numpy() for w in model.trainable_weights]
        history = model.fit(batch.repeat(), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        results[name] = {
            "loss": float(history.history["loss"][0]),
            "logs": {k: float(v[0]) for k, v in history.history.items()},
            "initial": initial,
            "weights": [w.numpy() for w in model.trainable_weights],
            "replicas": strategy.num_replicas_in_sync,
        }
    single, mirrored = results["single"], results["mirrored"]
    diff = max(
        float(np.max(np.abs((a - a0) - (b - b0))))
        for a, a0, b, b0 in zip(
            single["weights"], single["initial"], mirrored["weights"], mirrored["initial"]
        )
    )
    same_init = max(
        float(np.max(np.abs(a - b))) for a, b in zip(single["initial"], mirrored["initial"])
    )
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single["weights"], single["initial"]))
    print(
        _json.dumps(
            {
                "single_loss": results["single"]["loss"],
                "mirrored_loss": results["mirrored"]["loss"],
                "single_logs": single["logs"],
                "mirrored_logs": mirrored["logs"],
                "max_update_difference": diff,
                "max_weight_change": moved,
                "max_initial_difference": same_init,
                "replicas": results["mirrored"]["replicas"],
            }
        )
    )
