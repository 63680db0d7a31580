"""Augmentations: FFT convolution vs scipy, DIR augmentation, Freq-MixStyle, mixup and roll.

Every op is checked eagerly and inside ``Dataset.map`` (batched, and unbatched where the op is
per example), and each layer against its pure function for the same seed and order.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.signal
import scipy.stats
import tensorflow as tf
from harness import assert_tf_data_parity
from harness import revive
from harness import run_serialization_test

from asc_core.errors import UserError
from keras_asc.augment import DirAugmentation
from keras_asc.augment import FreqMixStyle
from keras_asc.augment import Mixup
from keras_asc.augment import Roll
from keras_asc.augment import _random
from keras_asc.augment import dir_augment
from keras_asc.augment import fft_convolve
from keras_asc.augment import freq_mix_style
from keras_asc.augment import freq_mix_style_params
from keras_asc.augment import mixup
from keras_asc.augment import mixup_cross_entropy
from keras_asc.augment import roll_audio

RNG = np.random.default_rng(1234)


def decaying_irs(count, length, rng=RNG):
    """Impulse-response-like rows: noise under an exponential decay, unit peak."""
    h = rng.normal(size=(count, length)) * np.exp(-np.arange(length) / (length / 8 + 1))
    return (h / np.abs(h).max(axis=1, keepdims=True)).astype("float32")


# === FFT convolution ===


@pytest.mark.parametrize(
    "n, m", [(32000, 16450), (32000, 22050), (1000, 3000), (7, 7), (1, 5), (5, 1), (800, 1024)]
)
def test_fft_convolve_matches_scipy(n, m):
    x = (RNG.uniform(-1, 1, size=(3, n)) * 0.5).astype("float32")
    h = decaying_irs(3, m)
    got = fft_convolve(x, h).numpy()
    want = np.stack([scipy.signal.convolve(x[i], h[i].astype(np.float64))[:n] for i in range(3)])
    assert got.shape == (3, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # Unbatched rows give the same result.
    np.testing.assert_allclose(fft_convolve(x[1], h[1]).numpy(), got[1], atol=1e-6, rtol=0)


def test_fft_convolve_dynamic_shapes_and_dtype():
    x = RNG.normal(size=(2, 300)).astype("float32")
    h = decaying_irs(2, 50)
    spec = tf.TensorSpec([None, None], tf.float32)
    fn = tf.function(fft_convolve, input_signature=[spec, spec])
    np.testing.assert_allclose(fn(x, h).numpy(), fft_convolve(x, h).numpy(), atol=1e-6)
    assert fft_convolve(tf.constant(x, tf.bfloat16), h).dtype == tf.bfloat16
    with pytest.raises(UserError, match=r"x and irs must both be \[B, N\] and \[B, M\]"):
        fft_convolve(x, h[0])


# === DIR augmentation ===


def test_dir_probability_ir_choice_and_sources():
    irs = np.eye(5, 6, dtype="float32")  # IR k = delay by k samples: identifiable
    n = 3000
    audio = RNG.normal(size=(n, 16)).astype("float32")
    device = RNG.integers(-1, 9, size=n)
    out, new_device = dir_augment(
        audio,
        device,
        np.arange(n),
        irs=irs,
        ir_devices=np.arange(9, 14),
        source_devices=[0, 2],
        probability=0.6,
        seed=5,
    )
    out, new_device = out.numpy(), new_device.numpy()
    source = np.isin(device, [0, 2])
    changed = new_device != device
    # Non-source devices (and -1) are never touched, audio included.
    assert not changed[~source].any()
    np.testing.assert_array_equal(out[~source], audio[~source])
    # Empirical rate within 4 sigma of p = 0.6.
    rate = changed[source].mean()
    assert abs(rate - 0.6) < 4 * np.sqrt(0.24 / source.sum())
    # The label names the IR that was applied (a delay by label - 9 samples), uniformly.
    ks = new_device[changed] - 9
    for k in range(5):
        rows = np.flatnonzero(changed)[ks == k]
        shifted = np.pad(audio[rows], ((0, 0), (k, 0)))[:, :16]
        np.testing.assert_allclose(out[rows], shifted, atol=1e-5)
    counts = np.bincount(ks, minlength=5)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    # Unchanged source examples keep their audio exactly.
    keep = source & ~changed
    np.testing.assert_array_equal(out[keep], audio[keep])


@pytest.mark.parametrize(
    "mode, labels, expected",
    [
        ("per_ir", None, lambda k: 9 + k),
        ("per_microphone", np.array([3, 3, 0, 1]), lambda k: 9 + np.array([3, 3, 0, 1])[k]),
        ("shared", None, lambda k: np.full_like(k, 9)),
    ],
)
def test_dir_layer_label_modes(mode, labels, expected):
    irs = np.eye(4, 5, dtype="float32")
    layer = DirAugmentation(irs, ir_labels=labels, probability=1.0, device_labels=mode, seed=1)
    audio = RNG.normal(size=(40, 12)).astype("float32")
    out, device = layer(audio, np.zeros(40, "int64"), training=True)
    # Recover the applied IR from the delay of the output.
    k = np.array(
        [
            next(s for s in range(4) if np.allclose(out[i, s:], audio[i, : 12 - s], atol=1e-5))
            for i in range(40)
        ]
    )
    np.testing.assert_array_equal(device.numpy(), expected(k))
    assert device.dtype == tf.int64
    assert layer.num_device_classes == {"per_ir": 13, "per_microphone": 13, "shared": 10}[mode]


def test_dir_placements_give_identical_results():
    irs = [decaying_irs(1, m)[0] for m in (40, 25, 64)]
    layer = DirAugmentation(irs, probability=0.5, source_devices=("a", "b"), seed=11)
    n, batch = 24, 6
    audio = RNG.normal(size=(n, 100)).astype("float32")
    device = np.tile([0, 1, 2, 0, 3, -1], n // 6).astype("int32")
    # In the pipeline: eager, and in Dataset.map unbatched and batched, the same draws ...
    pipe_audio, pipe_device = assert_tf_data_parity(
        layer.pipeline_function(), (audio, device), index="example", batch_size=batch
    )
    # ... as on the accelerator (the layer, batch after batch).
    on_device = [
        layer(audio[i : i + batch], device[i : i + batch], training=True)
        for i in range(0, n, batch)
    ]
    assert int(layer.examples_seen.numpy()) == n
    np.testing.assert_array_equal(np.concatenate([a for a, _ in on_device]), pipe_audio)
    np.testing.assert_array_equal(np.concatenate([d for _, d in on_device]), pipe_device)
    changed = int((pipe_device >= 9).sum())
    assert 0 < changed < 16  # 16 source examples, p = 0.5
    # Not training: unchanged, counter untouched.
    out, dev = layer(audio[:6], device[:6], training=False)
    np.testing.assert_array_equal(out, audio[:6])
    assert int(layer.examples_seen.numpy()) == n


def test_dir_jit_compile_matches_eager():
    irs = decaying_irs(3, 30)
    kwargs = dict(irs=irs, ir_devices=np.arange(9, 12), source_devices=[0], probability=0.7, seed=2)
    audio = RNG.normal(size=(8, 64)).astype("float32")
    device = np.zeros(8, "int32")
    index = np.arange(100, 108)
    eager = dir_augment(audio, device, index, **kwargs)
    jit = tf.function(lambda a, d, i: dir_augment(a, d, i, **kwargs), jit_compile=True)(
        audio, device, index
    )
    np.testing.assert_array_equal(eager[1].numpy(), jit[1].numpy())
    np.testing.assert_allclose(eager[0].numpy(), jit[0].numpy(), atol=1e-5)


def test_dir_bank_saved_in_keras_file(tmp_path):
    irs = [decaying_irs(1, m)[0] for m in (7, 13)]
    layer = DirAugmentation(
        irs, ir_labels=[4, 2], probability=0.8, device_labels="per_microphone", seed=3, name="dir"
    )
    assert (layer.num_irs, layer.ir_length) == (2, 13)
    config = layer.get_config()
    assert "irs" not in config and config["num_irs"] == 2 and config["ir_length"] == 13
    empty = revive(layer)
    assert not empty.irs.numpy().any()  # values live in the weights, not the config

    audio = RNG.normal(size=(10, 50)).astype("float32")
    device = np.array([0, 1] * 5, "int32")
    # Weights, counter and training-mode outputs survive the .keras file.
    loaded = run_serialization_test(layer, [audio, device], tmp_path, training_too=True)
    revived = loaded.get_layer("dir")
    np.testing.assert_array_equal(revived.ir_labels.numpy(), [4, 2])
    np.testing.assert_array_equal(revived.irs.numpy()[0, 7:], 0.0)  # zero padded


def test_dir_mixed_precision_keeps_float32_audio():
    layer = DirAugmentation(np.array([[1.0, 0.25]]), probability=1.0, dtype="mixed_bfloat16")
    audio = np.array([[0.1234567, 0.7654321, 0.0]], "float32")
    out, _ = layer(audio, np.array([0]), training=True)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(
        out.numpy(), [[0.1234567, 0.7654321 + 0.25 * 0.1234567, 0.25 * 0.7654321]], rtol=1e-6
    )


def test_dir_bad_arguments():
    irs = np.ones((2, 3), "float32")
    cases = [
        (dict(probability=1.5), r"probability must be in \[0, 1\], got 1.5"),
        (dict(device_labels="per_device"), r"device_labels must be one of .* got 'per_device'"),
        (dict(source_devices=["a", "z"]), r"source_devices must be .* got \['a', 'z'\]"),
        (dict(device_labels="per_microphone"), r'device_labels="per_microphone" needs ir_labels'),
        (dict(ir_labels=[0, 1, 2]), r"ir_labels must be 2 non-negative ints .* got 3 values"),
        (dict(num_irs=3, ir_length=3), r"irs have shape \(2, 3\) but num_irs=3"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            DirAugmentation(irs, **kwargs)
    with pytest.raises(UserError, match="irs contain NaN or Inf"):
        DirAugmentation(np.array([[np.nan, 1.0]]))
    with pytest.raises(UserError, match=r"pass irs \(or num_irs and ir_length\)"):
        DirAugmentation()


# === Roll ===


def test_roll_matches_numpy_roll_and_covers_the_range():
    n = 400
    audio = np.tile(np.arange(9, dtype="float32"), (n, 1))
    out = roll_audio(audio, np.arange(n), max_shift=2, seed=0).numpy()
    # Recover each shift from where sample 0 went; torch/np roll convention y[t] = x[t - s].
    shifts = np.array([int(np.flatnonzero(row == 0)[0]) for row in out])
    shifts = np.where(shifts > 4, shifts - 9, shifts)
    for row, s in zip(out, shifts):
        np.testing.assert_array_equal(row, np.roll(np.arange(9), s))
    counts = np.bincount(shifts + 2, minlength=5)
    assert counts.min() > 40  # all of -2..2 (inclusive) appear, roughly uniformly
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_roll_layer_function_and_dataset_map_agree():
    audio = RNG.normal(size=(8, 50)).astype("float32")
    layer = revive(Roll(max_shift=20, seed=4))
    on_device = np.concatenate([layer(audio[:4], training=True), layer(audio[4:], training=True)])
    pipeline = assert_tf_data_parity(
        lambda x, i: roll_audio(x, i, max_shift=20, seed=4), audio, index="example", batch_size=3
    )
    np.testing.assert_array_equal(on_device, pipeline)
    assert not np.array_equal(pipeline, audio)
    np.testing.assert_array_equal(layer(audio, training=False), audio)
    with pytest.raises(UserError, match=r"max_shift must be an int >= 0 \(samples\), got -1"):
        Roll(max_shift=-1)


# === Freq-MixStyle ===


def numpy_freq_mix_style(x, lmda, perm, eps=1e-6):
    """CPJKU's formula in NumPy (float64): stats over time, unbiased variance."""
    x = x.astype(np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    sig = np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps)
    lm = lmda.reshape(-1, 1, 1)
    return (x - mu) / sig * (lm * sig + (1 - lm) * sig[perm]) + lm * mu + (1 - lm) * mu[perm]


def test_freq_mix_style_matches_reference_formula():
    x = (RNG.normal(size=(6, 8, 20)) * 2 + RNG.normal(size=(6, 8, 1)) * 3).astype("float32")
    apply, lmda, perm = freq_mix_style_params(6, 3, probability=1.0, alpha=0.4, seed=9)
    assert bool(apply) and sorted(perm.numpy()) == list(range(6))
    got = freq_mix_style(x, 3, probability=1.0, alpha=0.4, seed=9).numpy()
    want = numpy_freq_mix_style(x, lmda.numpy(), perm.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # The mixed statistics are what the formula promises: mean lmda mu + (1 - lmda) mu[perm].
    mu = x.mean(-1)
    lm = lmda.numpy()[:, None]
    np.testing.assert_allclose(got.mean(-1), lm * mu + (1 - lm) * mu[perm.numpy()], atol=1e-4)
    # p = 0 is the identity.
    np.testing.assert_array_equal(
        freq_mix_style(x, 3, probability=0.0, alpha=0.4, seed=9).numpy(), x
    )


def test_freq_mix_style_gate_rate_and_beta_draws():
    gate = tf.function(lambda i: freq_mix_style_params(4, i, probability=0.4, alpha=0.4, seed=0)[0])
    applied = [bool(gate(tf.constant(i, tf.int64))) for i in range(300)]
    assert abs(np.mean(applied) - 0.4) < 4 * np.sqrt(0.24 / 300)
    _, lmda, _ = freq_mix_style_params(4000, 0, probability=1.0, alpha=0.4, seed=0)
    assert scipy.stats.kstest(lmda.numpy(), scipy.stats.beta(0.4, 0.4).cdf).pvalue > 1e-3


def test_freq_mix_style_statistics_carry_no_gradient():
    x = tf.constant(RNG.normal(size=(4, 3, 10)).astype("float32"))
    _, lmda, perm = freq_mix_style_params(4, 0, probability=1.0, alpha=0.4, seed=1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(freq_mix_style(x, 0, probability=1.0, alpha=0.4, seed=1))
    grad = tape.gradient(total, x).numpy()
    xs = x.numpy().astype(np.float64)
    sig = np.sqrt(xs.var(-1, ddof=1, keepdims=True) + 1e-6)
    lm = lmda.numpy().reshape(-1, 1, 1)
    ratio = (lm * sig + (1 - lm) * sig[perm.numpy()]) / sig
    np.testing.assert_allclose(grad, np.broadcast_to(ratio, grad.shape), rtol=1e-4)


def test_freq_mix_style_layer_dataset_map_and_jit_agree():
    x = RNG.normal(size=(12, 6, 15)).astype("float32")
    layer = revive(FreqMixStyle(probability=0.7, alpha=0.3, seed=5))
    on_device = [layer(x[i : i + 4], training=True).numpy() for i in range(0, 12, 4)]
    assert int(layer.batches_seen.numpy()) == 3
    # Same draws; eager and graph float kernels may differ in the last bit.
    pipeline = assert_tf_data_parity(
        lambda xb, b: freq_mix_style(xb, b, probability=0.7, alpha=0.3, seed=5),
        x,
        index="batch",
        batch_size=4,
        atol=1e-6,
        rtol=1e-5,
    )
    np.testing.assert_allclose(np.concatenate(on_device), pipeline, rtol=1e-5, atol=1e-6)
    jit = tf.function(
        lambda xb, b: freq_mix_style(xb, b, probability=0.7, alpha=0.3, seed=5), jit_compile=True
    )
    for b, dev in enumerate(on_device):
        np.testing.assert_allclose(jit(x[4 * b : 4 * b + 4], b).numpy(), dev, atol=1e-4)
    np.testing.assert_array_equal(layer(x, training=False), x)
    with pytest.raises(UserError, match=r"expected a batch of spectrograms \[B, F, T\]"):
        freq_mix_style(x[0], 0, probability=1.0, alpha=0.4, seed=0)
    with pytest.raises(UserError, match=r"alpha must be > 0, got 0"):
        FreqMixStyle(alpha=0)


# === Mixup ===


def test_mixup_mixes_inputs_and_losses():
    x = RNG.normal(size=(16, 5)).astype("float32")
    mixed, lam, perm = mixup(x, 2, alpha=0.3, seed=1)
    lam, perm = lam.numpy(), perm.numpy()
    assert sorted(perm) == list(range(16)) and (lam >= 0.5).all() and (lam <= 1).all()
    np.testing.assert_allclose(mixed, lam[:, None] * x + (1 - lam[:, None]) * x[perm], atol=1e-6)
    y = RNG.integers(0, 3, size=16)
    logits = RNG.normal(size=(16, 3)).astype("float32")
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want = -(lam * logp[np.arange(16), y] + (1 - lam) * logp[np.arange(16), y[perm]])
    np.testing.assert_allclose(mixup_cross_entropy(y, logits, lam, perm), want, rtol=1e-5)
    # max(lam, 1 - lam) of Beta(a, a) is the Beta law folded onto [0.5, 1].
    _, lam, _ = mixup(np.zeros((3000, 1), "float32"), 0, alpha=0.3, seed=2)
    folded = scipy.stats.beta(0.3, 0.3)
    pvalue = scipy.stats.kstest(lam.numpy(), lambda v: 2 * folded.cdf(v) - 1).pvalue
    assert pvalue > 1e-3


def test_mixup_layer_and_dataset_map_agree():
    x = RNG.normal(size=(9, 4)).astype("float32")
    layer = revive(Mixup(alpha=0.4, seed=3))
    on_device = [layer(x[i : i + 3], training=True) for i in range(0, 9, 3)]
    x_pipe, lam_pipe, perm_pipe = assert_tf_data_parity(
        lambda xb, b: mixup(xb, b, alpha=0.4, seed=3),
        x,
        index="batch",
        batch_size=3,
        atol=1e-6,
        rtol=1e-5,
    )
    np.testing.assert_array_equal(np.concatenate([p for _, _, p in on_device]), perm_pipe)
    np.testing.assert_allclose(np.concatenate([m for _, m, _ in on_device]), lam_pipe, rtol=1e-6)
    np.testing.assert_allclose(
        np.concatenate([m for m, _, _ in on_device]), x_pipe, rtol=1e-5, atol=1e-6
    )
    out, lam, perm = layer(x, training=False)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(lam, np.ones(9))
    np.testing.assert_array_equal(perm, np.arange(9))


# === Inside a model's train step ===


class TinyAugmentedModel(keras.Model):
    """Waveform -> roll -> frames -> Freq-MixStyle -> dense, all augmentations in training."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.roll = Roll(max_shift=3, seed=0, name="roll")
        self.fms = FreqMixStyle(probability=1.0, alpha=0.4, seed=0, name="fms")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x, training=False):
        x = self.roll(x, training=training)
        frames = tf.reshape(x, [-1, 4, 8])
        frames = self.fms(frames, training=training)
        return self.head(tf.reshape(frames, [-1, 32]))


def test_layers_run_inside_jit_compiled_fit():
    # XLA is Keras' default for fit on a GPU; on this CPU it must be asked for.
    model = TinyAugmentedModel()
    model.compile(
        optimizer="sgd",
        jit_compile=True,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = RNG.normal(size=(24, 32)).astype("float32")
    y = RNG.integers(0, 3, size=24)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.roll.examples_seen.numpy()) == 24
    assert int(model.fms.batches_seen.numpy()) == 3


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # Random123 known-answer vectors for philox4x32_10.
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    words = _random.philox4x32(
        [tf.constant(c, tf.uint64) for c in counter], [tf.constant(k, tf.uint64) for k in key]
    )
    assert [int(w) for w in words] == list(expected)
    jit = tf.function(
        lambda: _random.philox4x32(
            [tf.constant(c, tf.uint64) for c in counter], [tf.constant(k, tf.uint64) for k in key]
        ),
        jit_compile=True,
    )()
    assert [int(w) for w in jit] == list(expected)


def test_example_words_are_salted_and_depend_only_on_the_index():
    a = np.stack(_random.example_words(np.array([3, 1 << 40, 7]), 5, 1))
    b = np.stack(_random.example_words(np.array([7, 3]), 5, 1))
    np.testing.assert_array_equal(a[:, [2, 0]], b)
    assert not np.array_equal(a, np.stack(_random.example_words(np.array([3, 1 << 40, 7]), 5, 2)))
    assert not np.array_equal(a, np.stack(_random.example_words(np.array([3, 1 << 40, 7]), 6, 1)))
    assert a.max() < (1 << 32)


# === Saving, and several replicas ===


def test_layers_save_and_load_with_their_counters(tmp_path):
    inputs = keras.Input((24,), name="audio")
    rolled = Roll(max_shift=4, seed=1, name="roll")(inputs, training=True)
    frames = keras.layers.Reshape((4, 6))(rolled)
    styled = FreqMixStyle(probability=1.0, alpha=0.5, seed=2, name="fms")(frames, training=True)
    mixed, lam, perm = Mixup(alpha=0.3, seed=3, name="mixup")(styled, training=True)
    model = keras.Model(inputs, [mixed, lam, perm])
    x = RNG.normal(size=(5, 24)).astype("float32")
    model(x)  # advance every counter once
    path = os.path.join(tmp_path, "augment.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for name, counter, value in [
        ("roll", "examples_seen", 5),
        ("fms", "batches_seen", 1),
        ("mixup", "batches_seen", 1),
    ]:
        assert int(getattr(loaded.get_layer(name), counter).numpy()) == value
        assert loaded.get_layer(name).get_config() == model.get_layer(name).get_config()
    # Same counters, same seeds: the next (training) outputs are identical.
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# The file format of the layout before the base class: config keys and variable order (a weights
# file stores a layer's variables by position), so older .keras files load.
_SAVED_LAYOUT = [
    (lambda: Roll(max_shift=4), ["max_shift", "seed"], ["examples_seen"]),
    (lambda: FreqMixStyle(), ["probability", "alpha", "eps", "seed"], ["batches_seen"]),
    (lambda: Mixup(), ["alpha", "seed"], ["batches_seen"]),
    (
        lambda: DirAugmentation(decaying_irs(3, 8)),
        ["probability", "source_devices", "device_labels", "seed", "num_irs", "ir_length"],
        ["irs", "ir_labels", "examples_seen"],
    ),
]


@pytest.mark.parametrize("make,keys,variables", _SAVED_LAYOUT)
def test_augmentation_layers_keep_their_saved_layout(make, keys, variables):
    layer = make()
    own = set(layer.get_config()) - set(keras.layers.Layer(name="x").get_config())
    assert own == set(keys)
    assert [v.name for v in layer.variables] == variables


@pytest.mark.parametrize(
    "make,inputs",
    [
        (lambda: Roll(max_shift=9, seed=5), (RNG.normal(size=(3, 20)).astype("float32"),)),
        (lambda: Mixup(alpha=0.4, seed=6), (RNG.normal(size=(4, 6)).astype("float32"),)),
        (
            lambda: FreqMixStyle(probability=1.0, alpha=0.5, seed=7),
            (RNG.normal(size=(4, 5, 6)).astype("float32"),),
        ),
        (
            lambda: DirAugmentation(decaying_irs(2, 5), probability=1.0, source_devices=("a", "b")),
            (RNG.normal(size=(4, 12)).astype("float32"), np.array([0, 1, 2, 0])),
        ),
    ],
    ids=["roll", "mixup", "freq_mix_style", "dir"],
)
def test_pipeline_function_of_every_layer_is_its_first_training_call(make, inputs):
    """The base class's tf.data function, indexed as the layer's counter numbers the first
    batch (examples 0..B-1, or batch 0), gives the layer's first training output."""
    layer = make()
    batch = inputs[0].shape[0]
    index = tf.constant(0, tf.int64)
    if layer.counter_name == "examples_seen":
        index = tf.range(batch, dtype=tf.int64)
    piped = tf.nest.flatten(layer.pipeline_function()(*inputs, index))
    called = tf.nest.flatten(layer(*inputs, training=True))
    assert len(piped) == len(called) >= 1
    for a, b in zip(piped, called):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(called[0]), inputs[0])


_MIRRORED_SCRIPT = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_asc.augment import DirAugmentation, Roll, roll_audio
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
irs = np.eye(3, 4, dtype="float32")
with strategy.scope():
    roll = Roll(max_shift=5, seed=3)
    dir_layer = DirAugmentation(irs, probability=0.5, seed=4)
audio = np.tile(np.arange(16, dtype="float32"), (16, 1))
device = np.zeros(16, "int64")
data = tf.data.Dataset.from_tensor_slices((audio, device)).batch(8)
@tf.function
def step(x, d):
    return strategy.run(lambda a, b: (roll(a, training=True),) + dir_layer(a, b, training=True),
                        args=(x, d))
outs = [[], [], []]
for x, d in strategy.experimental_distribute_dataset(data):
    for k, part in enumerate(step(x, d)):
        outs[k].extend(t.numpy() for t in strategy.experimental_local_results(part))
rolled, dir_audio, dir_device = (np.concatenate(o) for o in outs)
fn = dir_layer.pipeline_function()
want_audio, want_device = fn(audio, device, np.arange(16))
ok = (np.array_equal(rolled, roll_audio(audio, np.arange(16), max_shift=5, seed=3).numpy())
      and np.array_equal(dir_audio, want_audio.numpy())
      and np.array_equal(dir_device, want_device.numpy())
      and int(roll.examples_seen.numpy()) == 16 and int(dir_layer.examples_seen.numpy()) == 16)
print("MATCH" if ok else "DIFF")
"""


@pytest.mark.slow
def test_two_replicas_number_examples_like_the_pipeline():
    # Logical devices must be configured before TensorFlow starts: run in a fresh process.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root)
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "MATCH"
