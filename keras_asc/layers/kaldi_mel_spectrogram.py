"""PaSST's log-mel frontend (``AugmentMelSTFT``) as a Keras 3 layer."""

import keras
import numpy as np
import tensorflow as tf

from asc_core.errors import UserError
from keras_asc.layers.kaldi_mel_banks import check_mel_bank_args
from keras_asc.layers.kaldi_mel_banks import kaldi_mel_banks
from keras_asc.layers.kaldi_mel_banks import kaldi_mel_banks_tf

# The reference's coefficient is a float32 tensor: use that value (see _symmetric_hann).
PREEMPHASIS = float(np.float32(0.97))
LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
SEED_STATE_KEY = "seed_generator_state"


@keras.saving.register_keras_serializable(package="keras_asc")
class KaldiMelSpectrogram(keras.layers.Layer):
    """Normalised Kaldi log-mel spectrogram, equal to PaSST's ``AugmentMelSTFT``.

    The steps, in the reference order (kkoutini/PaSST ``models/preprocess.py``):

    1. pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]`` (one sample shorter);
    2. centred STFT: reflect-pad ``n_fft // 2`` on both sides, frames of ``n_fft`` every
       ``hop_length`` samples, a *symmetric* Hann window of ``win_length`` zero-padded centrally to
       ``n_fft`` (as ``torch.stft(center=True)``; ``tf.signal.stft`` would differ);
    3. power ``re^2 + im^2``;
    4. Kaldi mel filterbank (``kaldi_mel_banks``: ``1127 ln(1 + f/700)``, unit-peak triangles, a
       zero Nyquist column), not the HTK/Slaney bank of ``keras.layers.MelSpectrogram``;
    5. ``ln(mel + 1e-5)``;
    6. training only: SpecAugment, a frequency mask then a time mask, drawn independently for
       every example, value 0 on the log scale (torchaudio ``mask_along_axis_iid``: width
       ``floor(U[0, param))``, start ``floor(U[0, size - width))``);
    7. ``(x + 4.5) / 5``.

    At eval the bank spans ``[fmin, fmax]`` with ``fmax = sample_rate // 2 - fmax_aug_range // 2``
    when ``fmax`` is None (15500 Hz by default). In training one draw per call (per batch) gives
    ``fmin + randint(fmin_aug_range)`` and ``fmax + fmax_aug_range // 2 - randint(fmax_aug_range)``
    (fmax in [15001, 16000] by default); the bank for the draw is built in the graph.

    The STFT runs in float64 (see ``_power_spectrogram``), the mel and log in float32, whatever
    the dtype policy: a bfloat16 power
    spectrum spans too many decades for an 8-bit mantissa, ``log(x + 1e-5)`` of it would be
    meaningless, and TF has no bfloat16 FFT. Only the output is cast to the compute dtype (its
    values lie in about [-1.4, 2], where bfloat16 keeps ~3 significant digits). For the same reason
    inputs are never auto-cast to the compute dtype.

    Safe inside ``tf.data`` (TensorFlow ops only; randomness from a ``keras.random.SeedGenerator``).

    Args:
        n_mels: int. Number of mel bands. Default 128.
        sample_rate: int. Sampling rate of the input in Hz. Default 32000.
        n_fft: int. FFT size (even). Default 1024.
        win_length: int. Length of the symmetric Hann window, ``<= n_fft``. Default 800.
        hop_length: int. Hop between frames in samples. Default 320.
        fmin: float. Lowest filterbank edge in Hz at eval. Default 0.
        fmax: float or None. Highest filterbank edge in Hz at eval; None means
            ``sample_rate // 2 - fmax_aug_range // 2``. Default None.
        fmin_aug_range: int >= 1. Training draws ``fmin + randint(fmin_aug_range)``; 1 = no jitter.
        fmax_aug_range: int >= 1. Training draws ``fmax + fmax_aug_range // 2 -
            randint(fmax_aug_range)``; 1 = no jitter. Default 1000.
        freqm: int >= 0. Frequency-mask parameter: widths are ``< freqm`` bands. 0 disables.
            Default 48.
        timem: int >= 0. Time-mask parameter: widths are ``< timem`` frames. 0 disables.
            Default 20 (the TAU22 recipes; the PaSST class default is 192).
        seed: int or None. Seed of the training randomness.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``[batch, samples]`` or ``[samples]`` waveform at ``sample_rate``, with
        ``samples >= n_fft // 2 + 2`` (514 by default).

    Output shape:
        ``[batch, n_mels, frames]`` or ``[n_mels, frames]``, ``frames = 1 + (samples - 1) //
        hop_length``: 32000 samples (1 s) give ``[batch, 128, 100]``.

    Example:

    >>> layer = KaldiMelSpectrogram()
    >>> tuple(layer(np.zeros((2, 32000), "float32")).shape)
    (2, 128, 100)
    """

    def __init__(
        self,
        n_mels=128,
        sample_rate=32000,
        n_fft=1024,
        win_length=800,
        hop_length=320,
        fmin=0.0,
        fmax=None,
        fmin_aug_range=1,
        fmax_aug_range=1000,
        freqm=48,
        timem=20,
        seed=None,
        **kwargs,
    ):
        # Inputs stay float32 under mixed precision (see the class docstring).
        super().__init__(autocast=False, **kwargs)
        for key, value, low in [
            ("n_mels", n_mels, 4),
            ("sample_rate", sample_rate, 1),
            ("n_fft", n_fft, 2),
            ("win_length", win_length, 1),
            ("hop_length", hop_length, 1),
            ("fmin_aug_range", fmin_aug_range, 1),
            ("fmax_aug_range", fmax_aug_range, 1),
            ("freqm", freqm, 0),
            ("timem", timem, 0),
        ]:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise UserError(
                    f"KaldiMelSpectrogram: {key}={value!r}, expected an integer >= {low}"
                )
        for key, value, optional in [("fmin", fmin, False), ("fmax", fmax, True)]:
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise UserError(f"KaldiMelSpectrogram: {key}={value!r}, expected a number in Hz")
        if win_length > n_fft:
            raise UserError(
                f"KaldiMelSpectrogram: win_length={win_length} must be <= n_fft={n_fft}"
            )
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.fmin = fmin
        self.fmax = fmax
        self.fmin_aug_range = fmin_aug_range
        self.fmax_aug_range = fmax_aug_range
        self.freqm = freqm
        self.timem = timem
        self.seed = seed

        self._eval_fmax = sample_rate // 2 - fmax_aug_range // 2 if fmax is None else fmax
        # Every training draw must give a valid bank (torchaudio asserts the same per call).
        check_mel_bank_args(n_mels, n_fft, sample_rate, fmin, self._eval_fmax)
        highest_fmin = fmin + fmin_aug_range - 1
        highest_fmax = self._eval_fmax + fmax_aug_range // 2
        lowest_fmax = highest_fmax - (fmax_aug_range - 1)
        if highest_fmax > sample_rate / 2 or highest_fmin >= lowest_fmax:
            raise UserError(
                f"KaldiMelSpectrogram: training draws fmin in [{fmin}, {highest_fmin}] and fmax in "
                f"[{lowest_fmax}, {highest_fmax}]; expected fmin < fmax <= sample_rate / 2 = "
                f"{sample_rate / 2} (fmin={fmin}, fmax={fmax}, fmin_aug_range={fmin_aug_range}, "
                f"fmax_aug_range={fmax_aug_range})"
            )
        # Fixed eval bank [n_fft // 2 + 1, n_mels] and window [win_length], built once in NumPy.
        self._eval_bank = kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, self._eval_fmax).T
        self._window = _symmetric_hann(win_length)
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    @property
    def min_samples(self):
        """Shortest accepted input (reflect padding needs more than ``n_fft // 2`` samples)."""
        return self.n_fft // 2 + 2

    def num_frames(self, num_samples):
        """Frames produced for ``num_samples`` input samples (``1 + (num_samples - 1) // hop``)."""
        return 1 + (num_samples - 1) // self.hop_length

    def _check_input(self, shape):
        if shape.rank is not None and shape.rank not in (1, 2):
            raise UserError(
                f"KaldiMelSpectrogram: input has shape {shape}; expected [batch, samples] or "
                f"[samples] (a mono waveform at {self.sample_rate} Hz)"
            )
        samples = shape[-1] if shape.rank is not None else None
        if samples is not None and samples < self.min_samples:
            raise UserError(self._too_short_message(samples))

    def _too_short_message(self, samples):
        return (
            f"KaldiMelSpectrogram: input has {samples} samples; expected [batch, samples] or "
            f"[samples] with samples >= {self.min_samples} (n_fft // 2 + 2)"
        )

    def call(self, inputs, training=None):
        waveform = tf.convert_to_tensor(inputs)
        self._check_input(waveform.shape)
        waveform = tf.cast(waveform, tf.float32)
        unbatched = waveform.shape.rank == 1
        if unbatched:
            waveform = waveform[None, :]
        if waveform.shape[-1] is None:  # length known only at run time
            check = tf.debugging.assert_greater_equal(
                tf.shape(waveform)[-1],
                self.min_samples,
                message=self._too_short_message("too few"),
            )
            # The frontend must wait for the check: a graph runs independent ops in any order,
            # and the reflect padding would otherwise fail first with TensorFlow's own message.
            with tf.control_dependencies([check]):
                waveform = tf.identity(waveform)

        if training:
            mel = self._training_log_mel(waveform)
        else:
            mel = self.eval_log_mel(waveform)
        if unbatched:
            mel = mel[0]
        return tf.cast(mel, self.compute_dtype)

    def eval_log_mel(self, waveform, fixed_length=None):
        """The inference-mode log-mel: the graph ``call(training=False)`` runs (no draws).

        Pre-emphasis, reflect padding, centred frames of the symmetric Hann window, power,
        the fixed Kaldi mel bank, ``(log(mel + 1e-5) + 4.5) / 5``.

        Args:
            waveform: float32 ``[B, N]``.
            fixed_length: None, or an int ``N``: the same steps for clips of exactly ``N``
                samples in float32 with TFLite builtin ops only (framing a constant gather;
                ``inference.export`` uses it, TFLite has no float64 kernels). Differs from the
                float64 graph by ~3e-5 in the normalised log-mel (~1e-4 in the quiet bands of
                loud tones).

        Returns:
            float32 ``[B, n_mels, frames]`` (``call`` then casts to the compute dtype).
        """
        if fixed_length is None:
            power = self._power_spectrogram(waveform)  # [B, frames, n_fft // 2 + 1]
            mel = self._mel(power, tf.constant(self._eval_bank))
        else:
            mel = self._float32_mel(waveform, fixed_length)
        return (tf.math.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE

    def _training_log_mel(self, waveform):
        power = self._power_spectrogram(waveform)
        if self.fmin_aug_range > 1 or self.fmax_aug_range > 1:
            bank = tf.transpose(self._random_bank())
        else:
            bank = tf.constant(self._eval_bank)
        mel = tf.math.log(self._mel(power, bank) + LOG_OFFSET)
        # SpecAugment acts on the log scale, before normalisation, as in the reference.
        mel = self._mask_along_axis(mel, self.freqm, axis=1)
        mel = self._mask_along_axis(mel, self.timem, axis=2)
        return (mel + NORM_SHIFT) / NORM_SCALE

    @staticmethod
    def _mel(power, bank):
        """``[B, frames, bins]`` power and ``[bins, n_mels]`` bank → ``[B, n_mels, frames]``."""
        return tf.transpose(tf.matmul(power, bank), [0, 2, 1])

    def _float32_mel(self, waveform, num_samples):
        """The mel power of :meth:`eval_log_mel` for a fixed length, in float32 builtin ops."""
        emphasised = waveform[:, 1:] - PREEMPHASIS * waveform[:, :-1]
        pad = self.n_fft // 2
        padded = tf.pad(emphasised, [[0, 0], [pad, pad]], mode="REFLECT")
        offset = (self.n_fft - self.win_length) // 2
        starts = np.arange(self.num_frames(num_samples)) * self.hop_length + offset
        index = (starts[:, None] + np.arange(self.win_length)[None, :]).astype(np.int32)
        window = np.asarray(self._window, np.float32)
        framed = tf.gather(padded, index, axis=1) * window  # [B, frames, win_length]
        spectrum = tf.signal.rfft(framed, fft_length=[self.n_fft])
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        # The constant bank is the left operand: dynamic-range quantisation only quantises the
        # right-hand (weight) operand of a matmul, and an int8 bank would distort quiet bands.
        bank = np.asarray(self._eval_bank, np.float32).T  # [n_mels, n_fft // 2 + 1]
        return tf.matmul(tf.constant(bank)[None], power, transpose_b=True)

    def _power_spectrogram(self, waveform):
        """``[B, N]`` float32 → ``[B, 1 + (N - 1) // hop, n_fft // 2 + 1]`` float32 power.

        Pre-emphasis, framing and FFT run in float64: in float32 the FFT's rounding, spread
        from the loud bins, is ~1e-4 of the normalised log-mel in quiet bands of loud tonal
        clips (the float32 reference itself is that far from exact arithmetic). The extra cost
        is negligible next to the model.
        """
        waveform = tf.cast(waveform, tf.float64)
        emphasised = waveform[:, 1:] - PREEMPHASIS * waveform[:, :-1]
        pad = self.n_fft // 2
        padded = tf.pad(emphasised, [[0, 0], [pad, pad]], mode="REFLECT")
        # torch centres the window in the n_fft frame; only its win_length nonzero samples are
        # framed, and the FFT zero-pads them at the end: a circular shift of torch's frame, so
        # the power is the same, with less framing and multiplying.
        num_frames = 1 + tf.shape(emphasised)[1] // self.hop_length  # torch.stft(center=True)
        offset = (self.n_fft - self.win_length) // 2
        span = self.hop_length * (num_frames - 1) + self.win_length
        frames = tf.signal.frame(
            padded[:, offset : offset + span], self.win_length, self.hop_length, axis=-1
        )
        spectrum = tf.signal.rfft(frames * self._window, fft_length=[self.n_fft])
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        return tf.cast(power, tf.float32)

    def _draw_band_edges(self):
        """One training draw of ``(fmin, fmax)`` in Hz (float64 scalars), as AugmentMelSTFT."""
        fmin_offset = keras.random.randint((), 0, self.fmin_aug_range, seed=self.seed_generator)
        fmax_offset = keras.random.randint((), 0, self.fmax_aug_range, seed=self.seed_generator)
        fmin = self.fmin + tf.cast(fmin_offset, tf.float64)
        fmax = self._eval_fmax + self.fmax_aug_range // 2 - tf.cast(fmax_offset, tf.float64)
        return fmin, fmax

    def _random_bank(self):
        """Bank ``[n_mels, n_fft // 2 + 1]`` for one training draw of the band edges."""
        fmin, fmax = self._draw_band_edges()
        return kaldi_mel_banks_tf(self.n_mels, self.n_fft, self.sample_rate, fmin, fmax)

    def _mask_along_axis(self, mel, param, axis):
        """SpecAugment mask along ``axis`` (1: mel bands, 2: frames), drawn per example."""
        if param == 0:
            return mel
        batch = tf.shape(mel)[0]
        width_uniform = keras.random.uniform((batch,), seed=self.seed_generator)
        start_uniform = keras.random.uniform((batch,), seed=self.seed_generator)
        return mask_along_axis(mel, width_uniform, start_uniform, param, axis)

    def save_own_variables(self, store):
        # Keras does not save SeedGenerator states; saving it lets a reloaded (or resumed) layer
        # continue the same random stream instead of restarting it.
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = keras.ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        keys = [key for key in store.keys() if key != SEED_STATE_KEY]
        super().load_own_variables({key: store[key] for key in keys})
        if SEED_STATE_KEY in store.keys():
            self.seed_generator.state.assign(np.asarray(store[SEED_STATE_KEY]))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return input_shape[:-1] + (self.n_mels, frames)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_mels": self.n_mels,
                "sample_rate": self.sample_rate,
                "n_fft": self.n_fft,
                "win_length": self.win_length,
                "hop_length": self.hop_length,
                "fmin": self.fmin,
                "fmax": self.fmax,
                "fmin_aug_range": self.fmin_aug_range,
                "fmax_aug_range": self.fmax_aug_range,
                "freqm": self.freqm,
                "timem": self.timem,
                "seed": self.seed,
            }
        )
        return config


def mask_along_axis(mel, width_uniform, start_uniform, param, axis):
    """torchaudio ``mask_along_axis_iid`` on ``[B, n_mels, frames]``, given its uniform draws.

    Example ``b`` gets the value 0 on ``[start, start + width)`` along ``axis`` (1 or 2), with
    ``width = floor(width_uniform[b] * param)`` and
    ``start = trunc(start_uniform[b] * (size - width_uniform[b] * param))``; when ``param`` exceeds
    the axis size the start can be negative, as in torchaudio.

    Args:
        mel: float tensor ``[B, n_mels, frames]``.
        width_uniform, start_uniform: float32 ``[B]`` draws from U[0, 1).
        param: int. Mask parameter (``freqm`` or ``timem``).
        axis: 1 (mel bands) or 2 (frames).

    Returns:
        ``mel`` with the masked entries set to 0.
    """
    size = tf.shape(mel)[axis]
    width = width_uniform * float(param)
    start = start_uniform * (tf.cast(size, tf.float32) - width)
    start = tf.cast(start, tf.int32)  # truncation toward zero, as torch's .long()
    end = start + tf.cast(width, tf.int32)
    positions = tf.range(size)[None, :]
    masked = (positions >= start[:, None]) & (positions < end[:, None])  # [B, size]
    masked = masked[:, :, None] if axis == 1 else masked[:, None, :]
    return tf.where(masked, tf.zeros_like(mel), mel)


def _symmetric_hann(win_length):
    """Symmetric Hann window ``[win_length]`` (float64 holding torch's float32 values).

    The values are those of ``torch.hann_window(win_length, periodic=False)``: torch evaluates
    ``0.5 - 0.5 cos(2 pi n / (win_length - 1))`` in float32 steps (float32 phase, float32 cosine),
    and in loud tonal clips even 1e-7 changes of the window move the leakage floor of quiet
    bands by ~1e-4 of the output. The cosine here is the correctly rounded one, so a few samples
    may still differ from torch's by one float32 step.
    """
    if win_length == 1:
        return np.ones(1)
    phase = np.arange(win_length, dtype=np.float32) * np.float32(2.0 * np.pi / (win_length - 1))
    cosine = np.cos(phase.astype(np.float64)).astype(np.float32)
    return (cosine * np.float32(-0.5) + np.float32(0.5)).astype(np.float64)
