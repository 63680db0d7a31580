"""KaldiMelSpectrogram against the official PaSST frontend (hear21passt ``AugmentMelSTFT``).

Parity notes. The reference runs in float32, and on loud tonal clips its own rounding (FFT
round-off leaking into quiet bands near the ``1e-5`` log floor) moves the output by up to
~1.6e-4 from exact arithmetic (and by other amounts on another CPU's FFT). The layer computes
the STFT in float64, so it is compared twice: with the real ``AugmentMelSTFT`` run in float64
(tight, 2e-5, every signal) and with the real float32 ``AugmentMelSTFT`` (within the reference's
own float32 error, measured in the same test, + 2e-5: the policy of ``tests/numerics.py``).
"""

import keras
import numerics
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import torch
import torch_oracle
from harness import assert_tf_data_parity
from harness import revive
from harness import run_serialization_test

import keras_asc
from asc_core.errors import UserError
from keras_asc.layers.kaldi_mel_banks import kaldi_mel_banks
from keras_asc.layers.kaldi_mel_banks import kaldi_mel_banks_tf
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.layers.kaldi_mel_spectrogram import mask_along_axis

SR = 32000
MASK_VALUE = (0.0 + 4.5) / 5.0  # a masked log-mel value (0) after normalisation
FLOOR_VALUE = (np.log(np.float32(1e-5)) + 4.5) / 5.0  # silence after normalisation


# === Oracles ===


@pytest.fixture(scope="module")
def augment_mel_stft():
    return torch_oracle.load_augment_mel_stft()


@pytest.fixture(scope="module")
def kaldi():
    return torch_oracle.load_kaldi()


def torch_mel(module_cls, waveform, float64=False, **kwargs):
    """Real AugmentMelSTFT in eval mode, in float32 (as used) or float64 (its exact result)."""
    module = module_cls(**kwargs).eval()
    if not float64:
        with torch.no_grad():
            return module(torch.from_numpy(waveform)).numpy()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # get_mel_banks builds its bank in the default dtype
    try:
        with torch.no_grad():
            return module.double()(torch.from_numpy(waveform.astype(np.float64))).numpy()
    finally:
        torch.set_default_dtype(previous)


def torch_bank(kaldi, n_mels, n_fft, sr, fmin, fmax, dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        bank, _ = kaldi.get_mel_banks(
            n_mels, n_fft, float(sr), float(fmin), float(fmax), 100.0, -500.0, 1.0
        )
        return torch.nn.functional.pad(bank, (0, 1)).numpy()
    finally:
        torch.set_default_dtype(previous)


# === Signals ===


def noise(batch, samples, scale, seed):
    rng = np.random.default_rng(seed)
    return np.clip(scale * rng.standard_normal((batch, samples)), -1, 1).astype(np.float32)


def sines(batch, samples, amplitude, noise_level, seed):
    """Four tones (440 Hz .. 13 kHz, random phases) plus white noise, peak about ``amplitude``."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    out = []
    for _ in range(batch):
        phases = rng.uniform(0, 2 * np.pi, 4)
        tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip([440, 1234, 5000, 13000], phases))
        out.append(amplitude * (tones / 4 + noise_level * rng.standard_normal(samples)))
    return np.stack(out).astype(np.float32)


def chirp(samples, amplitude):
    t = np.arange(samples) / SR
    return (amplitude * np.sin(2 * np.pi * (100 * t + 7000 * t**2)))[None].astype(np.float32)


SIGNALS = {
    "noise_1s": lambda: noise(3, SR, 0.3, 0),
    "noise_10s": lambda: noise(1, 10 * SR, 0.3, 1),
    "noise_loud_1s": lambda: noise(2, SR, 1.0, 2),
    "sines_quiet_1s": lambda: sines(2, SR, 1e-3, 0.01, 3),
    "sines_moderate_10s": lambda: sines(1, 10 * SR, 0.5, 0.01, 4),
    "sines_loud_1s": lambda: sines(2, SR, 1.0, 0.01, 5),
    "sines_loud_clean_1s": lambda: sines(1, SR, 1.0, 1e-4, 6),
    "chirp_loud_1s": lambda: chirp(SR, 0.8),
    "odd_length": lambda: noise(2, 12345, 0.3, 7),
    "length_hop_multiple_plus_one": lambda: noise(1, 50 * 320 + 1, 0.3, 18),
}

# Our own bound against the exact (float64) reference: the layer's STFT is float64 and only the
# mel product and log run in float32, so this does not depend on the CPU's FFT.
EXACT_BOUND = 2e-5


# === Eval-mode parity ===


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_eval_matches_augment_mel_stft(augment_mel_stft, name):
    waveform = SIGNALS[name]()
    ours = np.asarray(KaldiMelSpectrogram()(waveform))
    ref32 = torch_mel(augment_mel_stft, waveform, freqm=48, timem=20)
    ref64 = torch_mel(augment_mel_stft, waveform, float64=True, freqm=48, timem=20)
    assert ours.shape == ref32.shape == (waveform.shape[0], 128, 1 + (waveform.shape[1] - 1) // 320)
    assert numerics.absolute_error(ours, ref64) <= EXACT_BOUND
    # Against the float32 reference as used: within its own float32 error (measured here, on
    # this CPU's FFT: 1e-5 to 1.6e-4 depending on the signal and the CPU) plus our bound
    # (tests/numerics.py, docs/design.md "Numeric test policy").
    reference_own_error = numerics.absolute_error(ref32, ref64)
    assert numerics.absolute_error(ours, ref32) <= reference_own_error + EXACT_BOUND


@pytest.mark.oracle
def test_eval_matches_other_configurations(augment_mel_stft):
    kwargs = dict(n_mels=64, sr=16000, win_length=400, hopsize=160, n_fft=512, fmin=50.0)
    waveform = noise(2, 16000, 0.3, 8)
    ours = KaldiMelSpectrogram(
        n_mels=64, sample_rate=16000, win_length=400, hop_length=160, n_fft=512, fmin=50.0
    )(waveform)
    ref = torch_mel(augment_mel_stft, waveform, float64=True, **kwargs)
    assert ours.shape == (2, 64, 100)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-5, rtol=0)


def test_silence_is_the_log_floor():
    out = np.asarray(KaldiMelSpectrogram()(np.zeros((1, SR), np.float32)))
    np.testing.assert_allclose(out, FLOOR_VALUE, atol=1e-6)


@pytest.mark.parametrize("samples", [SR, 16001])
def test_eval_log_mel_is_the_inference_call(samples):
    """The public eval graph (what inference.export builds on) is the layer's inference call:
    bit-identical in float64, and its float32 builtin-op form close (its FFT rounding reaches
    ~1e-4 in the quiet bands of loud tones)."""
    layer = KaldiMelSpectrogram()
    waveform = tf.constant(sines(2, samples, 0.8, 1e-3, seed=3))
    call = np.asarray(layer(waveform, training=False))
    graph = np.asarray(layer.eval_log_mel(waveform))
    assert graph.shape == (2, 128, layer.num_frames(samples))
    np.testing.assert_array_equal(graph, call)
    fixed = np.asarray(layer.eval_log_mel(waveform, fixed_length=samples))
    assert fixed.dtype == np.float32 and fixed.shape == call.shape
    difference = np.abs(fixed - call).max()
    assert 0 < difference < 3e-4  # close, and not the same graph


# === Filterbanks ===


BANK_CASES = [
    (128, 1024, 32000, 0.0, 15500.0),
    (128, 1024, 32000, 0.0, 15001.0),
    (128, 1024, 32000, 0.0, 16000.0),
    (128, 1024, 32000, 9.0, 15000.0),
    (64, 512, 22050, 50.0, 8000.0),
    (40, 400, 16000, 20.0, 7600.0),
]


@pytest.mark.oracle
@pytest.mark.parametrize("n_mels,n_fft,sr,fmin,fmax", BANK_CASES)
def test_numpy_bank_matches_torchaudio(kaldi, n_mels, n_fft, sr, fmin, fmax):
    ours = kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)
    assert ours.shape == (n_mels, n_fft // 2 + 1) and ours.dtype == np.float32
    assert not ours[:, -1].any()  # PaSST's zero Nyquist column
    assert ours.min() == 0.0 and ours.max() <= 1.0  # triangles peak at most 1, no area norm
    exact = torch_bank(kaldi, n_mels, n_fft, sr, fmin, fmax, torch.float64)
    np.testing.assert_allclose(ours, exact, atol=1e-6, rtol=0)
    # torchaudio's float32 bank carries float32 rounding of mel values (~1e-5, see module doc):
    # within that own error (measured here) of ours, plus our 1e-6 (tests/numerics.py).
    as_used = torch_bank(kaldi, n_mels, n_fft, sr, fmin, fmax, torch.float32)
    own = numerics.absolute_error(as_used, exact)
    assert numerics.absolute_error(ours, as_used) <= own + 1e-6


@tf.function(input_signature=[tf.TensorSpec([], tf.int32)] * 2)
def _graph_bank(fmin, fmax):
    return kaldi_mel_banks_tf(128, 1024, SR, fmin, fmax)


@pytest.mark.parametrize("fmin,fmax", [(0, 15001), (0, 15500), (0, 15733), (0, 16000), (7, 15010)])
def test_in_graph_bank_equals_numpy(fmin, fmax):
    ours = _graph_bank(tf.constant(fmin, tf.int32), tf.constant(fmax, tf.int32)).numpy()
    np.testing.assert_allclose(ours, kaldi_mel_banks(128, 1024, SR, fmin, fmax), atol=1e-7, rtol=0)


@pytest.mark.parametrize(
    "args,message",
    [
        ((3, 1024, SR, 0, 15500), "n_mels=3: expected an integer > 3"),
        ((128, 1023, SR, 0, 15500), "n_fft=1023: expected a positive even integer"),
        ((128, 1024, SR, 16000, 16000), "fmin=16000: expected 0 <= fmin < sample_rate / 2"),
        ((128, 1024, SR, 0, 16001), "fmax=16001: expected fmin=0 < fmax <= sample_rate / 2"),
        ((128, 1024, SR, 500, 400), "fmax=400: expected fmin=500 < fmax"),
    ],
)
def test_bank_rejects_bad_arguments(args, message):
    with pytest.raises(UserError, match=message):
        kaldi_mel_banks(*args)


# === Training semantics ===


def test_training_band_edges_are_drawn_in_range():
    # Small jitter ranges (fmin 0-2 Hz, fmax 15997-16000 Hz): each training output is the eval
    # output of exactly one of the 12 (fmin, fmax) pairs, and every pair is drawn.
    layer = KaldiMelSpectrogram(freqm=0, timem=0, fmin_aug_range=3, fmax_aug_range=4, seed=0)
    waveform = noise(1, 3200, 0.3, 21)
    pairs = [(fmin, fmax) for fmin in (0, 1, 2) for fmax in (15997, 15998, 15999, 16000)]
    references = np.stack(
        [
            np.asarray(KaldiMelSpectrogram(fmin=fmin, fmax=fmax, fmax_aug_range=1)(waveform))
            for fmin, fmax in pairs
        ]
    )
    drawn = []
    for _ in range(120):
        out = np.asarray(layer(waveform, training=True))
        distance = np.abs(references - out).reshape(len(pairs), -1).max(axis=1)
        nearest, second = np.sort(distance)[:2]
        assert nearest < 1e-4 < second  # one pair fits, no other does
        drawn.append(pairs[int(np.argmin(distance))])
    counts = np.array([drawn.count(pair) for pair in pairs])
    assert counts.min() >= 3  # every pair, roughly uniformly (10 expected each)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.oracle
def test_training_bank_is_the_reference_bank_at_the_drawn_fmax(augment_mel_stft):
    waveform = noise(2, SR, 0.3, 9)
    layer = KaldiMelSpectrogram(freqm=0, timem=0, seed=11)
    twin = KaldiMelSpectrogram(freqm=0, timem=0, seed=11)  # same seed: same first draw
    fmin, fmax = (float(v) for v in twin._draw_band_edges())
    out = np.asarray(layer(waveform, training=True))
    assert fmax != 15500.0
    ref = torch_mel(augment_mel_stft, waveform, float64=True, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)
    assert np.abs(out - np.asarray(layer(waveform))).max() > 1e-3  # eval uses 15500 Hz


def _mask_runs(masked):
    """``masked`` [B, size] bool → per example (start, width) of its single run, (0, 0) if none."""
    runs = []
    for row in masked:
        idx = np.flatnonzero(row)
        if idx.size == 0:
            runs.append((0, 0))
            continue
        assert (np.diff(idx) == 1).all(), "a mask must be one contiguous band"
        runs.append((idx[0], idx.size))
    return np.array(runs)


def test_training_masks_are_per_example_and_zero_before_normalisation():
    waveform = noise(8, SR, 0.3, 10)
    layer = KaldiMelSpectrogram(freqm=48, timem=20, fmax_aug_range=1, seed=3)
    clean = np.asarray(layer(waveform))
    out = np.asarray(layer(waveform, training=True))
    masked = out == MASK_VALUE
    assert not (clean == MASK_VALUE).any()
    freq_runs = _mask_runs(masked.all(axis=2))  # whole mel rows masked
    time_runs = _mask_runs(masked.all(axis=1))  # whole frames masked
    # Everything masked lies in those rows/frames; everything else is the clean output.
    expected = clean.copy()
    for b, ((f0, fw), (t0, tw)) in enumerate(zip(freq_runs, time_runs)):
        expected[b, f0 : f0 + fw, :] = MASK_VALUE
        expected[b, :, t0 : t0 + tw] = MASK_VALUE
    np.testing.assert_array_equal(out, expected)
    assert (freq_runs[:, 1] < 48).all() and (time_runs[:, 1] < 20).all()
    assert len({tuple(r) for r in freq_runs}) > 4  # iid across the batch
    assert len({tuple(r) for r in time_runs}) > 4


def test_mask_width_and_start_distribution():
    # Silence: every unmasked value is the log floor, so masks are easy to read off.
    out = KaldiMelSpectrogram(freqm=48, timem=8, fmax_aug_range=1, seed=5)(
        np.zeros((512, 3200), np.float32), training=True
    )
    masked = np.asarray(out) == MASK_VALUE
    assert (np.isclose(out, FLOOR_VALUE, rtol=0, atol=1e-6) | masked).all()
    freq_runs = _mask_runs(masked.all(axis=2))
    time_runs = _mask_runs(masked.all(axis=1))
    for runs, param, size in [(freq_runs, 48, 128), (time_runs, 8, 10)]:
        widths = runs[:, 1]
        assert widths.max() == param - 1 and widths.min() == 0  # floor(U[0, param))
        assert abs(widths.mean() - (param - 1) / 2) < 0.12 * param
        assert (runs[:, 0] + widths <= size).all()
    assert (freq_runs[:, 0] + freq_runs[:, 1]).max() > 110  # masks reach the top bands
    assert time_runs[:, 0].max() >= 5


@pytest.mark.oracle
@pytest.mark.parametrize(
    "param,axis,shape", [(48, 1, (32, 128, 100)), (20, 2, (32, 128, 100)), (192, 2, (32, 16, 10))]
)
def test_mask_formula_equals_torchaudio_mask_along_axis_iid(param, axis, shape):
    functional = torch_oracle.load_torchaudio_functional()
    spec = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(param)
    width_uniform, start_uniform = torch.rand(shape[0]), torch.rand(shape[0])
    torch.manual_seed(param)  # the same two draws, inside torchaudio
    expected = functional.mask_along_axis_iid(spec, param, 0.0, axis).numpy()
    ours = mask_along_axis(
        tf.constant(spec.numpy()), width_uniform.numpy(), start_uniform.numpy(), param, axis
    ).numpy()
    np.testing.assert_array_equal(ours, expected)
    assert (ours == 0).any() and (ours != 0).any()


def test_training_is_seeded():
    waveform = noise(4, SR, 0.3, 12)
    first = KaldiMelSpectrogram(seed=42)
    second = KaldiMelSpectrogram(seed=42)
    a, b = first(waveform, training=True), second(waveform, training=True)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.abs(np.asarray(first(waveform, training=True)) - np.asarray(a)).max() > 0.1
    other = np.asarray(KaldiMelSpectrogram(seed=43)(waveform, training=True))
    assert np.abs(other - np.asarray(a)).max() > 0.1


# === Shapes and errors ===


@pytest.mark.parametrize("samples", [514, 800, 32000, 32001, 32321, 48000])
def test_frames_for_any_length(samples):
    layer = KaldiMelSpectrogram()
    out = layer(np.zeros((2, samples), np.float32))
    expected = (2, 128, 1 + (samples - 1) // 320)
    assert tuple(out.shape) == expected == layer.compute_output_shape((2, samples))
    assert layer.num_frames(32000) == 100


def test_symbolic_shapes():
    fixed = KaldiMelSpectrogram()(keras.Input((32000,)))
    assert tuple(fixed.shape) == (None, 128, 100)
    free = KaldiMelSpectrogram(n_mels=64)(keras.Input((None,)))
    assert tuple(free.shape) == (None, 64, None)


def test_unbatched_input_gives_unbatched_output():
    waveform = noise(1, SR, 0.3, 13)
    layer = KaldiMelSpectrogram()
    single = np.asarray(layer(waveform[0]))
    assert single.shape == (128, 100)
    np.testing.assert_array_equal(single, np.asarray(layer(waveform))[0])


def test_too_short_input_is_an_error():
    layer = KaldiMelSpectrogram()
    message = (
        r"KaldiMelSpectrogram: input has 513 samples; expected \[batch, samples\] or "
        r"\[samples\] with samples >= 514 \(n_fft // 2 \+ 2\)"
    )
    with pytest.raises(UserError, match=message):
        layer(np.zeros((2, 513), np.float32))
    with pytest.raises(UserError, match=r"input has shape \(2, 1, 32000\); expected"):
        layer(np.zeros((2, 1, 32000), np.float32))
    run = tf.function(layer, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="input has too few samples"):
        run(tf.zeros((1, 300)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"freqm": -1}, "freqm=-1, expected an integer >= 0"),
        ({"hop_length": 0}, "hop_length=0, expected an integer >= 1"),
        ({"fmax_aug_range": 0}, "fmax_aug_range=0, expected an integer >= 1"),
        ({"n_mels": 128.0}, "n_mels=128.0, expected an integer >= 4"),
        ({"win_length": 2048}, "win_length=2048 must be <= n_fft=1024"),
        ({"fmax": "16k"}, "fmax='16k', expected a number in Hz"),
        ({"fmax": 16000}, r"fmax in \[15501, 16500\]; expected fmin < fmax <= sample_rate / 2"),
        ({"fmax": 17000, "fmax_aug_range": 1}, "fmax=17000: expected fmin=0.0 < fmax <="),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        KaldiMelSpectrogram(**kwargs)


# === Serialization, tf.data, precision policies, XLA ===


def test_config_round_trip():
    kwargs = dict(n_mels=64, fmin=20.0, fmax=15000.0, freqm=10, timem=24, seed=7)
    layer = KaldiMelSpectrogram(name="frontend", **kwargs)
    config = revive(layer).get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    assert KaldiMelSpectrogram().get_config()["fmax"] is None  # eval fmax is derived, not stored
    assert keras.saving.get_registered_name(KaldiMelSpectrogram) == "keras_asc>KaldiMelSpectrogram"
    assert keras_asc.KaldiMelSpectrogram is KaldiMelSpectrogram


def test_keras_file_round_trip(tmp_path):
    layer = KaldiMelSpectrogram(n_mels=64, seed=3, name="mel")
    # training_too: the seed state advanced before saving must be in the file.
    run_serialization_test(layer, noise(2, SR, 0.3, 14), tmp_path, training_too=True)


def test_dataset_map_batched_and_unbatched():
    waveform = noise(4, 8000, 0.3, 15)
    assert_tf_data_parity(KaldiMelSpectrogram(), waveform, atol=1e-6)
    training = tf.data.Dataset.from_tensor_slices(waveform).batch(4)
    augment = KaldiMelSpectrogram(seed=1)

    def train_map(x):
        return augment(x, training=True)

    training = training.map(train_map)
    augmented = next(training.as_numpy_iterator())
    assert augmented.shape == (4, 128, 25) and (augmented == MASK_VALUE).any()


def test_mixed_bfloat16_computes_in_float32_and_returns_compute_dtype():
    waveform = noise(2, SR, 0.3, 16)
    reference = KaldiMelSpectrogram()(waveform)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = KaldiMelSpectrogram()
        out = layer(waveform)
        trained = layer(waveform, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert layer.compute_dtype == "bfloat16"
    assert out.dtype == tf.bfloat16 and trained.dtype == tf.bfloat16
    # Same float32 computation, only the output is rounded.
    np.testing.assert_array_equal(
        tf.cast(out, tf.float32).numpy(), tf.cast(tf.cast(reference, tf.bfloat16), tf.float32)
    )


@pytest.mark.slow
def test_xla_compiles_to_the_same_result():
    waveform = noise(2, SR, 0.3, 17)
    layer = KaldiMelSpectrogram(seed=2)

    @tf.function(jit_compile=True)
    def compiled(x, training):
        return layer(x, training=training)

    np.testing.assert_allclose(
        compiled(waveform, False).numpy(), np.asarray(layer(waveform)), atol=1e-5
    )
    # XLA may turn (x + 4.5) / 5 into a multiply: masked values are 0.9 up to rounding.
    assert np.isclose(compiled(waveform, True).numpy(), MASK_VALUE, rtol=0, atol=1e-6).any()
