"""The training model of the DIR generator: FAST-RIR's GAN schedule in one ``train_step``."""

import keras
import tensorflow as tf

from keras_asc.irgen import losses
from keras_asc.serialization import deserialize_entries


@keras.saving.register_keras_serializable(package="keras_asc")
class DirGAN(keras.Model):
    """A :class:`DirGenerator` and a :class:`DirDiscriminator` trained together with ``fit``.

    ``fit(x=conditions [N, 12], y=irs [N, L])``. Each batch makes one discriminator step, then
    ``generator_steps`` generator steps (FAST-RIR: 1 D : 3 G): the first generator step uses the
    fake batch the discriminator step saw (scored by the updated discriminator), the others
    generate again. The losses are those of :mod:`keras_asc.irgen.losses`. Calling the model
    runs the generator in inference mode; ``evaluate`` / validation reports the generator's
    ``mse`` and log-spectral distance ``lsd_db`` (50 Hz-16 kHz) on measured IRs.

    Args:
        generator: :class:`~keras_asc.irgen.generator.DirGenerator`.
        discriminator: :class:`~keras_asc.irgen.discriminator.DirDiscriminator`.
        adversarial_weight: float, ``a`` (1).
        mse_weight: float or None, ``m``; None is FAST-RIR's ``5 · L``.
        spectral_weight: float, ``k``, weight of the log-spectral loss (0: off, as FAST-RIR).
        wrong_pair_weight: float, ``w`` (0.5).
        loss_scale: float, ``s`` (5).
        generator_steps: int, generator steps per discriminator step (3).
        sample_rate: int, Hz, for the spectral terms.
        spectral_fmin, spectral_fmax: float, Hz, the band of the spectral loss and of ``lsd_db``.

    Input shape:
        ``[B, condition_dim]``.

    Output shape:
        ``[B, L]`` generated IRs.
    """

    def __init__(
        self,
        generator,
        discriminator,
        adversarial_weight=1.0,
        mse_weight=None,
        spectral_weight=0.0,
        wrong_pair_weight=0.5,
        loss_scale=5.0,
        generator_steps=3,
        sample_rate=32000,
        spectral_fmin=50.0,
        spectral_fmax=16000.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if generator.output_length != discriminator.input_length:
            raise ValueError(
                f"the generator makes {generator.output_length} samples but the discriminator "
                f"reads {discriminator.input_length}"
            )
        if generator.condition_dim != discriminator.condition_dim:
            raise ValueError(
                f"condition sizes differ: generator {generator.condition_dim}, discriminator "
                f"{discriminator.condition_dim}"
            )
        if generator_steps < 1:
            raise ValueError(f"generator_steps must be >= 1, got {generator_steps}")
        self.generator = generator
        self.discriminator = discriminator
        self.adversarial_weight = adversarial_weight
        self.mse_weight = mse_weight
        self.spectral_weight = spectral_weight
        self.wrong_pair_weight = wrong_pair_weight
        self.loss_scale = loss_scale
        self.generator_steps = generator_steps
        self.sample_rate = sample_rate
        self.spectral_fmin = spectral_fmin
        self.spectral_fmax = spectral_fmax
        names = (
            "d_loss",
            "g_loss",
            "adversarial",
            "mse",
            "spectral",
            "d_real",
            "d_fake",
            "d_wrong",
            "lsd_db",
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def effective_mse_weight(self):
        """``mse_weight``, or ``5 · L`` when it is None."""
        if self.mse_weight is None:
            return 5.0 * self.generator.output_length
        return self.mse_weight

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, discriminator_optimizer, generator_optimizer, **kwargs):
        """Args: two optimizers (FAST-RIR: RMSprop 8e-5, rho 0.99, epsilon 1e-8 each)."""
        super().compile(**kwargs)
        self.discriminator_optimizer = discriminator_optimizer
        self.generator_optimizer = generator_optimizer
        if self.built:
            self._build_optimizers()
        else:  # every shape is known from the networks' configs
            self.build((None, self.generator.condition_dim))

    def _build_optimizers(self):
        # Optimizer variables created inside the first traced train_step would make
        # tf.function trace it twice (once to create them, once to lift them): create them now.
        for optimizer, network in (
            (getattr(self, "discriminator_optimizer", None), self.discriminator),
            (getattr(self, "generator_optimizer", None), self.generator),
        ):
            if optimizer is not None and not optimizer.built:
                optimizer.build(network.trainable_variables)

    def build(self, input_shape):
        batch = input_shape[0]
        self.generator.build((batch, self.generator.condition_dim))
        self.discriminator.build(
            ((batch, self.discriminator.input_length), (batch, self.discriminator.condition_dim))
        )
        self.built = True
        self._build_optimizers()

    def call(self, inputs, training=None):
        return self.generator(inputs, training=training)

    # === Training ===

    def _discriminator_step(self, condition, real, fake):
        with tf.GradientTape() as tape:
            d_real = self.discriminator((real, condition), training=True)
            d_fake = self.discriminator((fake, condition), training=True)
            d_wrong = self.discriminator((real[:-1], condition[1:]), training=True)
            loss = losses.discriminator_loss(
                d_real, d_fake, d_wrong, self.wrong_pair_weight, self.loss_scale
            )
        variables = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, d_real, d_fake, d_wrong

    def _generator_loss(self, condition, real, fake):
        d_fake = self.discriminator((fake, condition), training=True)
        return losses.generator_loss(
            d_fake,
            real,
            fake,
            adversarial_weight=self.adversarial_weight,
            mse_weight=self.effective_mse_weight,
            spectral_weight=self.spectral_weight,
            loss_scale=self.loss_scale,
            sample_rate=self.sample_rate,
            fmin=self.spectral_fmin,
            fmax=self.spectral_fmax,
        )

    def _apply_generator(self, tape, loss):
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    def train_step(self, data):
        condition, real = data[0], data[1]
        real = tf.cast(real, self.compute_dtype)
        with tf.GradientTape() as tape:
            fake = self.generator(condition, training=True)
            with tape.stop_recording():
                d_loss, d_real, d_fake, d_wrong = self._discriminator_step(
                    condition, real, tf.stop_gradient(fake)
                )
            g_loss, parts = self._generator_loss(condition, real, fake)
        self._apply_generator(tape, g_loss)
        for _ in range(self.generator_steps - 1):
            with tf.GradientTape() as tape:
                fake = self.generator(condition, training=True)
                g_loss, parts = self._generator_loss(condition, real, fake)
            self._apply_generator(tape, g_loss)
        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "adversarial": parts["adversarial"],
            "mse": parts["mse"],
            "spectral": parts["spectral"],
            "d_real": tf.reduce_mean(d_real),
            "d_fake": tf.reduce_mean(d_fake),
            "d_wrong": tf.reduce_mean(d_wrong),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    def test_step(self, data):
        condition, real = data[0], data[1]
        real = tf.cast(real, self.compute_dtype)
        fake = self.generator(condition, training=False)
        self.trackers["mse"].update_state(losses.mse(real, fake))
        lo, hi = losses.band_bins(
            real.shape[-1], self.sample_rate, self.spectral_fmin, self.spectral_fmax
        )
        to_db = 20.0 / tf.math.log(10.0)
        diff = to_db * (
            losses.log_magnitude(real, lo, hi, 1e-7) - losses.log_magnitude(fake, lo, hi, 1e-7)
        )
        per_ir = tf.sqrt(tf.reduce_mean(tf.square(diff), axis=-1))
        self.trackers["lsd_db"].update_state(per_ir)
        return {name: self.trackers[name].result() for name in ("mse", "lsd_db")}

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "adversarial_weight": self.adversarial_weight,
                "mse_weight": self.mse_weight,
                "spectral_weight": self.spectral_weight,
                "wrong_pair_weight": self.wrong_pair_weight,
                "loss_scale": self.loss_scale,
                "generator_steps": self.generator_steps,
                "sample_rate": self.sample_rate,
                "spectral_fmin": self.spectral_fmin,
                "spectral_fmax": self.spectral_fmax,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = deserialize_entries(
            config,
            generator=keras.saving.deserialize_keras_object,
            discriminator=keras.saving.deserialize_keras_object,
        )
        return cls(**config)
