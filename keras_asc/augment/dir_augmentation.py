"""Device impulse response (DIR) augmentation with new device labels for the contrastive loss.

Each example recorded by a *source* device is, with probability ``p``, convolved with an impulse
response drawn uniformly from a bank, and its device label becomes a new, augmented device id
(>= ``len(DEVICES)``), so the inverse contrastive loss sees more device classes (paper, Sec. 3:
"augmentation leads to more device classes, which gives the contrastive learning more positive
and negative samples").

Randomness is keyed by ``(seed, global example index)`` only (see ``_random.py``), so the two
placements give identical results for the same seed and example order:

* ``device``: the :class:`DirAugmentation` layer in the model's ``train_step``; it numbers the
  examples itself with a saved counter.
* ``pipeline``: :func:`dir_augment` (or ``layer.pipeline_function()``) mapped over
  ``dataset.enumerate()``; the enumeration index is the example number. Enumerate *after*
  ``repeat()`` (or pass ``epoch * num_examples + position``) so that epochs differ.
"""

import keras
import numpy as np
import tensorflow as tf

from asc_core.errors import UserError
from asc_core.vocab import DEVICES
from keras_asc.augment import _random
from keras_asc.augment.base import AugmentationLayer
from keras_asc.augment.dir_convolution import fft_convolve

DEVICE_LABELS = ("per_ir", "per_microphone", "shared")
# Augmented examples get device ids from here on: 9 + IR index ("per_ir"), 9 + microphone
# index ("per_microphone") or 9 for all ("shared").
FIRST_AUGMENTED_DEVICE = len(DEVICES)
_SALT = 1


def dir_augment(audio, device, index, *, irs, ir_devices, source_devices, probability, seed):
    """Convolves source-device examples with a random impulse response, with probability p.

    Per example ``b``, two 32-bit words keyed by ``(seed, index[b])`` decide whether it is
    augmented (``u < probability``) and which impulse response ``k`` it gets (uniform over the
    bank). An augmented example is ``fft_convolve(audio[b], irs[k])`` (``scipy.signal.convolve``
    ``"full"`` cropped to the input length, no gain change) with device id ``ir_devices[k]``.
    Examples whose device is not in ``source_devices`` (including ``-1``, unknown) are returned
    unchanged; the draws are made for them anyway, so each example's fate depends only on its
    own index.

    Args:
        audio: float ``[B, N]`` or ``[N]`` waveforms.
        device: int ``[B]`` or ``[]`` device ids.
        index: int ``[B]`` or ``[]`` global example indices (unique over the run).
        irs: float ``[K, M]`` impulse-response bank (zero-padded rows are fine).
        ir_devices: int ``[K]``, the device id an example takes when convolved with IR ``k``.
        source_devices: int ``[S]`` device ids that may be augmented.
        probability: float in ``[0, 1]``.
        seed: int.

    Returns:
        ``(audio, device)`` with the input shapes and dtypes.
    """
    audio = tf.convert_to_tensor(audio)
    device = tf.convert_to_tensor(device)
    if audio.shape.rank == 1:
        out_audio, out_device = dir_augment(
            audio[None],
            tf.reshape(device, [1]),
            tf.reshape(index, [1]),
            irs=irs,
            ir_devices=ir_devices,
            source_devices=source_devices,
            probability=probability,
            seed=seed,
        )
        return out_audio[0], tf.reshape(out_device, tf.shape(device))
    irs = tf.convert_to_tensor(irs, tf.float32)
    num_irs = tf.shape(irs)[0]
    words = _random.example_words(index, seed, _SALT)
    gate = _random.bernoulli(words[0], probability)
    chosen = _random.bounded(words[1], num_irs)
    source = tf.cast(tf.reshape(source_devices, [1, -1]), device.dtype)
    is_source = tf.reduce_any(tf.equal(device[:, None], source), axis=1)
    selected = gate & is_source

    convolved = fft_convolve(audio, tf.gather(irs, chosen))
    out_audio = tf.where(selected[:, None], convolved, audio)
    new_device = tf.cast(tf.gather(ir_devices, chosen), device.dtype)
    out_device = tf.where(selected, new_device, device)
    return out_audio, out_device


def _as_bank(irs):
    """List of 1-D arrays or a 2-D array -> zero-padded float32 ``[K, M]``."""
    if isinstance(irs, (list, tuple)):
        rows = [np.asarray(ir, np.float32).reshape(-1) for ir in irs]
        if not rows or min(len(r) for r in rows) == 0:
            raise UserError("DirAugmentation: irs must be a non-empty list of non-empty arrays")
        bank = np.zeros((len(rows), max(len(r) for r in rows)), np.float32)
        for k, row in enumerate(rows):
            bank[k, : len(row)] = row
    else:
        bank = np.asarray(irs, np.float32)
        if bank.ndim != 2 or 0 in bank.shape:
            raise UserError(
                f"DirAugmentation: irs must be a [num_irs, ir_length] array, got shape {bank.shape}"
            )
    if not np.isfinite(bank).all():
        raise UserError("DirAugmentation: irs contain NaN or Inf values")
    return bank


@keras.saving.register_keras_serializable(package="keras_asc")
class DirAugmentation(AugmentationLayer):
    """Device impulse response augmentation of source-device waveforms (training only).

    Holds the impulse-response bank as a non-trainable float32 weight (saved in the ``.keras``
    file; the config keeps only its shape), the per-IR class labels as an int32 weight, and a
    saved int64 counter of the examples seen, which numbers the examples for the random draws
    (see :func:`dir_augment`). Outside training the inputs pass through unchanged.

    Device labels of augmented examples (``device_labels``):
        ``"per_ir"`` (default): ``9 + k`` for IR ``k``, every impulse response is a new device.
            With thousands of IRs almost no two augmented clips of a batch share a device, so
            the ICL's same-device (push) pairs nearly vanish (``docs/design.md``).
        ``"per_microphone"``: ``9 + ir_labels[k]``, one class per physical microphone (e.g.
            the 25 Multi-DIR microphones over all angles and distances): augmented clips of one
            microphone share a class, which gives the ICL the positives and (harder) negatives
            the paper argues for (Sec. 3).
        ``"shared"``: ``9`` for every augmented example.

    The paper does not say which devices are augmented. CPJKU's code (the source of the 66
    vintage DIRs) augments only device ``a`` clips, with ``p = 0.6``; both are the defaults.

    Args:
        irs: float ``[K, M]`` array or list of 1-D arrays (zero-padded to the longest), the
            impulse responses at the model's sample rate. None when rebuilt from a config.
        ir_labels: int ``[K]`` class per IR (required for ``"per_microphone"``; the runner
            passes the microphone ids of ``keras_asc.data.dirs.load_dirs``).
        probability: float in ``[0, 1]``, per-example augmentation probability.
        source_devices: device names (from ``asc_core.vocab.DEVICES``) that are augmented.
        device_labels: ``"per_ir"``, ``"per_microphone"`` or ``"shared"`` (called
            ``label_mode`` before config version 2; old configs are translated).
        seed: int.
        num_irs, ir_length: bank shape; derived from ``irs`` when given, needed without it.

    Call arguments:
        audio: float ``[B, N]``. device: int ``[B]``. training: bool.

    Returns:
        ``(audio [B, N], device [B])``.

    Example:

    >>> import numpy as np
    >>> layer = DirAugmentation(np.array([[1.0, 0.5]]), probability=1.0)
    >>> audio, device = layer(np.ones((2, 3), "float32"), np.array([0, 1]), training=True)
    >>> audio.numpy().tolist(), device.numpy().tolist()
    ([[1.0, 1.5, 1.5], [1.0, 1.0, 1.0]], [9, 1])
    """

    config_keys = ("probability", "source_devices", "device_labels", "seed", "num_irs", "ir_length")

    def __init__(
        self,
        irs=None,
        ir_labels=None,
        probability=0.6,
        source_devices=("a",),
        device_labels="per_ir",
        seed=0,
        num_irs=None,
        ir_length=None,
        **kwargs,
    ):
        # Audio must not be cast to a mixed-precision compute dtype before the convolution.
        kwargs.setdefault("autocast", False)
        super().__init__(seed=seed, create_counter=False, **kwargs)
        if not 0.0 <= float(probability) <= 1.0:
            raise UserError(f"DirAugmentation: probability must be in [0, 1], got {probability!r}")
        if device_labels not in DEVICE_LABELS:
            raise UserError(
                f"DirAugmentation: device_labels must be one of {DEVICE_LABELS}, "
                f"got {device_labels!r}"
            )
        if isinstance(source_devices, str):
            source_devices = (source_devices,)
        unknown = [d for d in source_devices if d not in DEVICES]
        if unknown or not source_devices:
            raise UserError(
                f"DirAugmentation: source_devices must be a non-empty list of device names "
                f"from {DEVICES}, got {list(source_devices)!r}"
            )
        bank = None
        if irs is not None:
            bank = _as_bank(irs)
            if (num_irs, ir_length) not in ((None, None), bank.shape):
                raise UserError(
                    f"DirAugmentation: irs have shape {bank.shape} but num_irs={num_irs}, "
                    f"ir_length={ir_length} were given"
                )
            num_irs, ir_length = bank.shape
        if num_irs is None or ir_length is None:
            raise UserError("DirAugmentation: pass irs (or num_irs and ir_length)")
        labels = None
        if ir_labels is not None:
            labels = np.asarray(ir_labels).reshape(-1)
            if (
                labels.shape != (num_irs,)
                or not np.issubdtype(labels.dtype, np.integer)
                or (labels.min() < 0)
            ):
                raise UserError(
                    f"DirAugmentation: ir_labels must be {num_irs} non-negative ints (one per "
                    f"IR), got {labels.size} values of dtype {labels.dtype}"
                )
        elif device_labels == "per_microphone" and bank is not None:
            raise UserError('DirAugmentation: device_labels="per_microphone" needs ir_labels')

        self.probability = probability
        self.source_devices = tuple(source_devices)
        self.device_labels = device_labels
        self.num_irs = int(num_irs)
        self.ir_length = int(ir_length)

        # === Weights (state that does not depend on the input shape) ===
        self.irs = self.add_weight(
            name="irs",
            shape=(self.num_irs, self.ir_length),
            dtype="float32",
            initializer="zeros",
            trainable=False,
            autocast=False,
        )
        self.ir_labels = self.add_weight(
            name="ir_labels",
            shape=(self.num_irs,),
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.add_counter()
        if bank is not None:
            self.irs.assign(bank)
        if labels is not None:
            self.ir_labels.assign(labels.astype(np.int32))
        # All state exists now (none depends on the input shape), and the task calls this layer
        # only in train_step, after Model.__init__ builds the task: built from the start, or
        # Keras warns that the task "has unbuilt state" on every DIR run.
        self.built = True

    @property
    def num_device_classes(self):
        """Largest device id this layer can produce, plus one (for ICL's ``num_devices``)."""
        if self.device_labels == "shared":
            return FIRST_AUGMENTED_DEVICE + 1
        if self.device_labels == "per_ir":
            return FIRST_AUGMENTED_DEVICE + self.num_irs
        return FIRST_AUGMENTED_DEVICE + int(np.max(keras.ops.convert_to_numpy(self.ir_labels))) + 1

    def _ir_devices(self):
        if self.device_labels == "per_ir":
            return FIRST_AUGMENTED_DEVICE + tf.range(self.num_irs, dtype=tf.int32)
        if self.device_labels == "per_microphone":
            return FIRST_AUGMENTED_DEVICE + tf.convert_to_tensor(self.ir_labels)
        return tf.fill([self.num_irs], FIRST_AUGMENTED_DEVICE)

    def _source_ids(self):
        return tf.constant([DEVICES.index(d) for d in self.source_devices], tf.int32)

    def call(self, audio, device, training=None):
        return self.run(audio, device, training=training)

    def compute_output_shape(self, audio_shape, device_shape):
        return audio_shape, device_shape

    def augment_constants(self):
        # The pipeline's dataset graph holds constant copies of the bank, no variables.
        return (
            tf.constant(keras.ops.convert_to_numpy(self.irs)),
            tf.constant(keras.ops.convert_to_numpy(self._ir_devices())),
        )

    def augment(self, audio, device, index, constants=None):
        irs, ir_devices = (self.irs, self._ir_devices()) if constants is None else constants
        return dir_augment(
            audio,
            device,
            index,
            irs=irs,
            ir_devices=ir_devices,
            source_devices=self._source_ids(),
            probability=self.probability,
            seed=self.seed,
        )

    def compute_output_spec(self, audio, device, training=None):
        return (
            keras.KerasTensor(audio.shape, dtype=audio.dtype),
            keras.KerasTensor(device.shape, dtype=device.dtype),
        )

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "label_mode" in config:  # the name before SceneClassifier config version 2
            config["device_labels"] = config.pop("label_mode")
        return super().from_config(config)

    def get_config(self):
        return {**super().get_config(), "source_devices": list(self.source_devices)}
