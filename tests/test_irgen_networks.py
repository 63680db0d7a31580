"""DirGenerator / DirDiscriminator / DirGAN: shapes, ranges, losses vs NumPy, 1 D : 3 G steps,
saving."""

import keras
import numpy as np
import pytest
from harness import revive
from harness import run_serialization_test

import keras_asc.irgen  # noqa: F401 - registers the classes
from keras_asc.irgen import losses
from keras_asc.irgen import metrics
from keras_asc.irgen.discriminator import DirDiscriminator
from keras_asc.irgen.gan import DirGAN
from keras_asc.irgen.generator import DirGenerator

B, L = 6, 1024


def _tiny_generator(**kwargs):
    args = dict(initial_channels=8, channels=[8, 4], strides=[8, 8], kernel_size=9, seed=1)
    args.update(kwargs)
    return DirGenerator(**args)


def _tiny_discriminator(**kwargs):
    args = dict(filters=[4, 8], strides=[8, 8], kernel_size=9, joint_filters=4, seed=2)
    args.update(kwargs)
    return DirDiscriminator(**args)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    condition = rng.uniform(-1, 1, (B, 12)).astype("float32")
    t = np.arange(L) / 32000.0
    real = np.exp(-t * rng.uniform(200, 800, (B, 1))) * np.sin(
        2 * np.pi * rng.uniform(500, 4000, (B, 1)) * t
    )
    return condition, real.astype("float32")


def _numpy_bce(p, target):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))


def test_generator_shape_and_tanh_bound():
    generator = _tiny_generator()
    condition, _ = _batch()
    out = np.asarray(generator(condition))
    assert out.shape == (B, L) and out.dtype == np.float32
    # Huge inputs saturate the tanh but never leave [-1, 1].
    big = np.asarray(generator(condition * 1e4, training=True))
    assert np.all(np.abs(big) <= 1.0) and np.abs(big).max() > 0.5
    assert generator.compute_output_shape((None, 12)) == (None, L)
    assert [layer.name for layer in generator.layers][:3] == [
        "condition_dense",
        "condition_prelu",
        "fc_dense",
    ]
    with pytest.raises(ValueError, match="gives 512 samples, not output_length 1024"):
        DirGenerator(initial_length=8, channels=[8, 4], strides=[8, 8])


def test_discriminator_probabilities():
    discriminator = _tiny_discriminator()
    condition, real = _batch()
    p = np.asarray(discriminator((real, condition)))
    assert p.shape == (B,) and np.all((p > 0) & (p < 1))
    # The condition enters the decision: changing it changes the output.
    q = np.asarray(discriminator((real, condition[::-1])))
    assert not np.allclose(p, q)
    assert discriminator.feature_length == 16
    with pytest.raises(ValueError, match=r"do not divide input_length 1000"):
        DirDiscriminator(input_length=1000, filters=[4, 8], strides=[8, 8])


def test_loss_terms_match_numpy():
    rng = np.random.default_rng(1)
    real_p, fake_p, wrong_p = (rng.uniform(0.05, 0.95, B).astype("float32") for _ in range(3))
    expected_d = 5.0 * (
        _numpy_bce(real_p, 1) + 0.5 * (_numpy_bce(fake_p, 0) + _numpy_bce(wrong_p, 0))
    )
    got_d = float(losses.discriminator_loss(real_p, fake_p, wrong_p))
    np.testing.assert_allclose(got_d, expected_d, rtol=1e-5)

    _, real = _batch(2)
    fake = (real + rng.normal(0, 0.05, real.shape)).astype("float32")
    mse = np.mean((real.astype(np.float64) - fake) ** 2)
    spectrum = lambda x: np.log(np.abs(np.fft.rfft(x.astype(np.float64)))[:, 2:513] + 1e-5)  # noqa: E731
    spectral = np.mean((spectrum(real) - spectrum(fake)) ** 2)
    np.testing.assert_allclose(float(losses.mse(real, fake)), mse, rtol=1e-5)
    np.testing.assert_allclose(float(losses.log_spectral_loss(real, fake)), spectral, rtol=1e-4)
    total, parts = losses.generator_loss(
        fake_p,
        real,
        fake,
        adversarial_weight=1.0,
        mse_weight=5.0 * L,
        spectral_weight=2.0,
        loss_scale=5.0,
    )
    expected_g = 5.0 * (_numpy_bce(fake_p, 1) + 5.0 * L * mse + 2.0 * spectral)
    np.testing.assert_allclose(float(total), expected_g, rtol=1e-4)
    np.testing.assert_allclose(float(parts["adversarial"]), _numpy_bce(fake_p, 1), rtol=1e-5)
    assert losses.band_bins(L, 32000, 50.0, 16000.0) == (2, 513)


def _gan(**kwargs):
    gan = DirGAN(_tiny_generator(), _tiny_discriminator(), spectral_weight=1.0, **kwargs)
    gan.compile(
        keras.optimizers.RMSprop(1e-3, rho=0.99, epsilon=1e-8),
        keras.optimizers.RMSprop(1e-3, rho=0.99, epsilon=1e-8),
    )
    return gan


def test_train_step_makes_one_discriminator_and_three_generator_steps():
    gan = _gan()
    assert gan.effective_mse_weight == 5.0 * L
    condition, real = _batch()
    g_before = [np.array(v) for v in gan.generator.trainable_variables]
    d_before = [np.array(v) for v in gan.discriminator.trainable_variables]
    logs = gan.train_step((condition, real))  # eager: no tracing
    assert int(gan.discriminator_optimizer.iterations) == 1
    assert int(gan.generator_optimizer.iterations) == 3
    assert set(logs) == {
        "d_loss",
        "g_loss",
        "adversarial",
        "mse",
        "spectral",
        "d_real",
        "d_fake",
        "d_wrong",
    }
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(
        not np.array_equal(a, np.array(b))
        for a, b in zip(g_before, gan.generator.trainable_variables)
    )
    assert any(
        not np.array_equal(a, np.array(b))
        for a, b in zip(d_before, gan.discriminator.trainable_variables)
    )
    # Validation reports the generator's MSE and LSD, as metrics.py computes them.
    gan.trackers["mse"].reset_state()
    result = gan.test_step((condition, real))
    fake = np.asarray(gan.generator(condition, training=False))
    np.testing.assert_allclose(
        float(result["mse"]), metrics.mse_per_ir(real, fake).mean(), rtol=1e-4
    )
    np.testing.assert_allclose(
        float(result["lsd_db"]), metrics.log_spectral_distance(real, fake).mean(), rtol=1e-3
    )


def test_save_and_load_identical(tmp_path):
    condition, real = _batch(3)
    run_serialization_test(_tiny_generator(), condition, tmp_path)
    run_serialization_test(_tiny_discriminator(), [real, condition], tmp_path)
    gan = _gan(generator_steps=2)
    restored = revive(gan)
    assert restored.generator_steps == 2 and restored.spectral_weight == 1.0
    assert restored.generator.get_config() == gan.generator.get_config()
