"""The task's training augmentations behind one object: DIR, mixup and Freq-MixStyle."""

import math
import numbers

import keras

from asc_core.errors import UserError
from keras_asc.augment.dir_augmentation import DirAugmentation
from keras_asc.augment.freq_mix_style import FreqMixStyle
from keras_asc.augment.mixup import Mixup
from keras_asc.serialization import deserialize_entries


def _number(owner, key, value, lo, lo_open=False, hi=None):
    bad = not isinstance(value, numbers.Real) or isinstance(value, bool)
    bad = bad or not math.isfinite(value) or (value <= lo if lo_open else value < lo)
    bad = bad or (hi is not None and value > hi)
    if bad:
        bounds = f"{'>' if lo_open else '>='} {lo:g}" + ("" if hi is None else f" and <= {hi:g}")
        raise UserError(f"{owner}: {key} must be a number {bounds}, got {value!r}")


@keras.saving.register_keras_serializable(package="keras_asc")
class Augmenter:
    """Training-only augmentations of a ``SceneClassifier``, each off unless configured.

    * DIR augmentation (a ``DirAugmentation`` layer): convolves source-device waveforms and
      gives them new device ids, in the task's ``train_step``;
    * mixup (``mixup_alpha > 0``): mixes waveforms in ``train_step``; the task's CE mixes both
      labels;
    * Freq-MixStyle (``mixstyle_p > 0``): mixes frequency statistics of the log-mel inside the
      model graph (between frontend and backbone), training only.

    A plain serializable object, not a layer: the task tracks the layers it builds
    (:meth:`build_layers`) as its own attributes ``dir_augmentation``, ``mixup`` and
    ``freq_mix_style``, so their saved state (IR bank, counters) keeps the weight paths of the
    layout before the augmenter existed and older ``.keras`` files load into it.

    Args:
        dir_augmentation: ``DirAugmentation`` or None.
        mixstyle_p: float in [0, 1]. Freq-MixStyle probability per batch; 0 turns it off (the
            paper does not use it; cpjku_dcase23 PaSST: 0.4).
        mixstyle_alpha: float > 0. Freq-MixStyle Beta parameter.
        mixup_alpha: float >= 0. Mixup Beta parameter; 0 turns mixup off.
        seed: int. Seed of Freq-MixStyle and mixup (the DIR layer has its own).

    Raises:
        UserError: naming the first bad argument.
    """

    def __init__(
        self, dir_augmentation=None, mixstyle_p=0.0, mixstyle_alpha=0.4, mixup_alpha=0.0, seed=0
    ):
        # In argument order, so the error names the first bad one.
        if dir_augmentation is not None and not isinstance(dir_augmentation, DirAugmentation):
            raise UserError(
                "Augmenter: dir_augmentation must be a keras_asc.augment.DirAugmentation "
                f"layer or None, got {type(dir_augmentation).__name__}"
            )
        _number("Augmenter", "mixstyle_p", mixstyle_p, 0.0, hi=1.0)
        _number("Augmenter", "mixstyle_alpha", mixstyle_alpha, 0.0, lo_open=True)
        _number("Augmenter", "mixup_alpha", mixup_alpha, 0.0)
        self.dir_augmentation = dir_augmentation
        self.mixstyle_p = mixstyle_p
        self.mixstyle_alpha = mixstyle_alpha
        self.mixup_alpha = mixup_alpha
        self.seed = seed
        self.freq_mix_style = None
        self.mixup = None

    def build_layers(self, dtype=None):
        """Creates the Freq-MixStyle and mixup layers (once) in the task's dtype policy.

        Returns:
            ``(dir_augmentation, freq_mix_style, mixup)``, each a layer or None.
        """
        if self.freq_mix_style is None and self.mixstyle_p > 0:
            self.freq_mix_style = FreqMixStyle(
                probability=self.mixstyle_p,
                alpha=self.mixstyle_alpha,
                seed=self.seed,
                dtype=dtype,
                name="freq_mix_style",
            )
        if self.mixup is None and self.mixup_alpha > 0:
            self.mixup = Mixup(alpha=self.mixup_alpha, seed=self.seed, name="mixup")
        return self.dir_augmentation, self.freq_mix_style, self.mixup

    @property
    def augments_waveforms(self):
        """Whether :meth:`augment_batch` changes anything (DIR or mixup on)."""
        return self.dir_augmentation is not None or self.mixup_alpha > 0

    def augment_batch(self, x, y):
        """DIR then mixup on a training batch (call :meth:`build_layers` first).

        Args:
            x: float ``[B, N]`` waveforms.
            y: ``[B]`` scene ids or a dict with ``"scene"`` and (needed by DIR) ``"device"``.

        Returns:
            ``(x, y)``: DIR changes ``y["device"]``; mixup adds ``"mixup_lambda"`` ``[B]`` and
            ``"mixup_permutation"`` ``[B]`` (``y`` becomes a dict).
        """
        if self.dir_augmentation is not None:
            if not (isinstance(y, dict) and "device" in y):
                raise UserError(
                    "SceneClassifier.dir_augmentation needs device labels: train on "
                    '(waveform, {"scene": scene_id, "device": device_id}) batches '
                    "(data.targets: dict)"
                )
            x, device = self.dir_augmentation(x, y["device"], training=True)
            y = {**y, "device": device}
        if self.mixup is not None:
            x, lam, perm = self.mixup(x, training=True)
            y = dict(y) if isinstance(y, dict) else {"scene": y}
            y.update({"mixup_lambda": lam, "mixup_permutation": perm})
        return x, y

    def get_config(self):
        return {
            # None stays None.
            "dir_augmentation": keras.saving.serialize_keras_object(self.dir_augmentation),
            "mixstyle_p": self.mixstyle_p,
            "mixstyle_alpha": self.mixstyle_alpha,
            "mixup_alpha": self.mixup_alpha,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_entries(config, dir_augmentation=keras.layers.deserialize))
