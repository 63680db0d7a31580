"""Acoustic scene classifier: waveform → Kaldi log-mel → PaSST → LayerNorm + Dense head."""

import os

import keras
import tensorflow as tf

from keras_asc.augment.freq_mix_style import FreqMixStyle
from keras_asc.augment.mixup import Mixup
from keras_asc.errors import UserError
from keras_asc.layers._utils import trunc_normal
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.losses.inverse_contrastive_loss import inverse_contrastive_loss
from keras_asc.losses.inverse_contrastive_loss import validate_icl_arguments
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.passt_presets import passt_presets
from keras_asc.utils.weights_cache import load_preset_weights
from keras_asc.vocab import SCENES

NUM_SCENES = len(SCENES)


class _PresetDescriptions:
    """`SceneClassifier.presets`: `{name: description}` of the presets `from_preset` knows."""

    def __get__(self, instance, owner):
        return {name: preset["description"] for name, preset in passt_presets.items()}


# The head emits logits, so cross-entropy losses named by string must read them as logits
# (Keras' string losses default to from_logits=False, which would silently train on garbage).
_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
}


@keras.saving.register_keras_serializable(package="keras_asc")
class SceneClassifier(keras.Model):
    """Scene classification task model: waveform in, class logits and embedding out.

    `frontend` (a `KaldiMelSpectrogram`) turns the waveform into a normalised log-mel
    spectrogram, `backbone` (a `PaSSTBackbone`) pools it into the PaSST embedding, and the
    head is PaSST's `head`: `LayerNormalization(epsilon=1e-5)` then `Dense(num_classes)`.
    The `embedding` output is the backbone embedding *before* the head norm (PaSST's
    `features`), the natural input of an auxiliary loss.

    Training: `compile()` + `fit()` on `(waveform, scene_id)` batches. `compute_loss` and
    `compute_metrics` apply the compiled loss and metrics to `y_pred["logits"]`, so a plain
    `compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"])` works with the dict output; `compile()` with no arguments gives
    Adam(1e-5), that loss and accuracy.

    Device-invariant training (Schmidt & Peters 2023): with targets
    `y = {"scene": [B] int, "device": [B] int}` and `icl_weight > 0`, `compute_loss` returns
    `CE + lambda * ICL(embedding, device)` (Eq. 2), `lambda` ramped linearly from 0 over the
    first `icl_rampup_steps` optimizer steps, and tracks `ce_loss` and `icl_loss` metrics
    (`keras.metrics.Mean`, reset every epoch by Keras). `icl_weight` defaults to 0 (plain CE);
    the paper's setting when ICL is on is `icl_weight=0.5, icl_alpha=0.2, icl_beta=1.0`.
    A `dir_augmentation` layer (`keras_asc.augment.DirAugmentation`, "device" placement) runs
    in `train_step` before Keras' own `train_step` (which keeps loss scaling for mixed
    precision and the metric updates): it may convolve the waveform and change the device
    label. Freq-MixStyle runs on the log-mel inside the graph (training only); mixup mixes
    waveforms in `train_step` and the CE of both labels (`lam`, `1 - lam`), the ICL keeping the
    device of the larger share.

    Args:
        backbone: `PaSSTBackbone`.
        num_classes: int. Number of classes. Defaults to 10 (the TAU22 scenes).
        frontend: `KaldiMelSpectrogram` or None. None builds the default one with
            `n_mels=backbone.num_mels`.
        head_norm_epsilon: float. Epsilon of the head LayerNorm (PaSST: plain
            `nn.LayerNorm`, 1e-5).
        dtype: dtype or `keras.DTypePolicy` of the head layers.
        icl_weight: float >= 0. `lambda` of the inverse contrastive loss; 0 turns it off.
        icl_alpha: float. ICL same-device threshold `alpha` (paper: 0.2).
        icl_beta: float > 0. ICL barrier strength `beta` (paper: 1.0).
        icl_normalization: `"pairs"` (paper Eq. 1) or `"blocks"` (Akash et al.'s code).
        icl_num_devices: int or None. `C` of the `"blocks"` normalisation (None: the devices
            present in the batch).
        icl_rampup_steps: int >= 0. Linear ramp of `lambda` from 0 over this many optimizer
            steps (0: the full weight from the first step).
        dir_augmentation: `DirAugmentation` or None. Device-placed DIR augmentation.
        mixstyle_p: float in [0, 1]. Freq-MixStyle probability per batch; 0 turns it off
            (the paper does not use it; cpjku_dcase23 PaSST: 0.4).
        mixstyle_alpha: float > 0. Freq-MixStyle Beta parameter.
        mixup_alpha: float >= 0. Mixup Beta parameter; 0 turns mixup off.
        augment_seed: int. Seed of Freq-MixStyle and mixup.

    Input shape:
        waveform `[B, samples]` at the frontend's sample rate (32 kHz); 1 s = 32000 samples.

    Output:
        dict with `"logits"` `[B, num_classes]` and `"embedding"` `[B, D]`.

    Example:
    ```python
    # AudioSet weights by default (downloaded and converted once); load_weights=False: random.
    model = SceneClassifier.from_preset("passt_s_swa_p16_128_ap476", num_classes=10,
                                        frequency_patchout=6)
    model.compile()
    model.fit(dataset_of_waveform_and_scene_id, epochs=1)
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes=NUM_SCENES,
        frontend=None,
        head_norm_epsilon=1e-5,
        dtype=None,
        icl_weight=0.0,
        icl_alpha=0.2,
        icl_beta=1.0,
        icl_normalization="pairs",
        icl_num_devices=None,
        icl_rampup_steps=0,
        dir_augmentation=None,
        mixstyle_p=0.0,
        mixstyle_alpha=0.4,
        mixup_alpha=0.0,
        augment_seed=0,
        **kwargs,
    ):
        kwargs.setdefault("name", "scene_classifier")
        _validate_training_arguments(
            icl_weight, icl_alpha, icl_beta, icl_normalization, icl_num_devices,
            icl_rampup_steps, dir_augmentation, mixup_alpha,
        )
        if frontend is None:
            frontend = KaldiMelSpectrogram(n_mels=backbone.num_mels, dtype=dtype, name="frontend")

        # === Layers ===
        self.frontend = frontend
        self.backbone = backbone
        self.head_norm = keras.layers.LayerNormalization(
            epsilon=head_norm_epsilon, dtype=dtype, name="head_norm"
        )
        self.head_dense = keras.layers.Dense(
            num_classes, kernel_initializer=trunc_normal(), dtype=dtype, name="head_dense"
        )

        # Training-only augmentations; absent (no state, no weights) when switched off, so
        # converted PaSST weight files load into a model with the defaults.
        self.freq_mix_style = None
        if mixstyle_p > 0:
            self.freq_mix_style = FreqMixStyle(
                probability=mixstyle_p, alpha=mixstyle_alpha, seed=augment_seed,
                dtype=dtype, name="freq_mix_style",
            )
        self.mixup = None
        if mixup_alpha > 0:
            self.mixup = Mixup(alpha=mixup_alpha, seed=augment_seed, name="mixup")
        self.dir_augmentation = dir_augmentation

        # === Functional Model ===
        waveform = keras.Input(shape=(None,), name="waveform")
        mel = self.frontend(waveform)
        if self.freq_mix_style is not None:
            mel = self.freq_mix_style(mel)
        embedding = self.backbone(mel)["embedding"]
        logits = self.head_dense(self.head_norm(embedding))
        # Under mixed precision the outputs leave in float32, so the losses (softmax CE, ICL's
        # exp(alpha - d)) never see bfloat16 rounding of the logits or distances.
        super().__init__(
            inputs=waveform,
            outputs={
                "logits": keras.ops.cast(logits, "float32"),
                "embedding": keras.ops.cast(embedding, "float32"),
            },
            dtype=dtype,
            **kwargs,
        )
        # A functional Model drops `dtype`; keep the policy so get_config (and with it
        # from_config, .keras files and clone_model) rebuilds the model as trained.
        if dtype is not None:
            self.dtype_policy = dtype

        # === Config ===
        self.num_classes = num_classes
        self.head_norm_epsilon = head_norm_epsilon
        self.icl_weight = icl_weight
        self.icl_alpha = icl_alpha
        self.icl_beta = icl_beta
        self.icl_normalization = icl_normalization
        self.icl_num_devices = icl_num_devices
        self.icl_rampup_steps = icl_rampup_steps
        self.mixstyle_p = mixstyle_p
        self.mixstyle_alpha = mixstyle_alpha
        self.mixup_alpha = mixup_alpha
        self.augment_seed = augment_seed

        # === Loss terms tracked per epoch (Keras resets every metric in `metrics`) ===
        self.ce_loss_tracker = None
        self.icl_loss_tracker = None
        if icl_weight > 0:
            self.ce_loss_tracker = keras.metrics.Mean(name="ce_loss")
            self.icl_loss_tracker = keras.metrics.Mean(name="icl_loss")

    # === Training ===

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults for this model.

        Args:
            optimizer: optimizer; `"auto"` is Adam(1e-5) (the TAU22 PaSST recipe's rate).
            loss: loss on the logits; `"auto"` is sparse categorical cross-entropy. The string
                names of (sparse) categorical cross-entropy are built with `from_logits=True`.
            metrics: metrics on the logits; `"auto"` is `["accuracy"]`.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(learning_rate=1e-5)
        if loss == "auto":
            loss = "sparse_categorical_crossentropy"
        if isinstance(loss, str) and loss in _LOGIT_LOSSES:
            loss = _LOGIT_LOSSES[loss](from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips restoring the compile state of models that override `compile`; this one
        # only fills defaults, so the saved (already resolved) arguments can be replayed.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        """Device-placed augmentations, then Keras' own `train_step`.

        DIR augmentation (if any) changes the waveform and `y["device"]`; mixup (if any) mixes
        the waveform and adds `"mixup_lambda"` / `"mixup_permutation"` to `y` for
        `compute_loss`. Loss scaling, gradients and metric updates stay Keras'.
        """
        if self.dir_augmentation is None and self.mixup is None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
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
        return super().train_step(keras.utils.pack_x_y_sample_weight(x, y, sample_weight))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Compiled loss on `y_pred["logits"]`, plus `lambda * ICL` on the embedding.

        `y` is `[B]` class ids or a dict with `"scene"` (class ids), optionally `"device"`
        (device ids, for ICL) and, from `train_step`'s mixup, `"mixup_lambda"` and
        `"mixup_permutation"`. `y_pred` is the model's output dict. Keras' own
        `train_step`/`test_step` call this.
        """
        logits = _logits_of(y_pred)
        scene = y["scene"] if isinstance(y, dict) else y
        if isinstance(y, dict) and "mixup_lambda" in y:
            ce = self._mixed_compiled_loss(
                x, scene, logits, y["mixup_lambda"], y["mixup_permutation"], sample_weight,
                training,
            )
        else:
            ce = super().compute_loss(
                x=x, y=scene, y_pred=logits, sample_weight=sample_weight, training=training
            )
        if self.icl_loss_tracker is None:
            return ce
        if not (isinstance(y, dict) and "device" in y):
            raise UserError(
                "SceneClassifier: icl_weight > 0 needs device labels: train on "
                '(waveform, {"scene": scene_id, "device": device_id}) batches (data.targets: dict)'
            )
        icl = inverse_contrastive_loss(
            y_pred["embedding"],
            y["device"],
            alpha=self.icl_alpha,
            beta=self.icl_beta,
            normalization=self.icl_normalization,
            num_devices=self.icl_num_devices,
        )
        batch = tf.shape(logits)[0]
        self.ce_loss_tracker.update_state(ce, sample_weight=batch)
        self.icl_loss_tracker.update_state(icl, sample_weight=batch)
        return ce + tf.cast(self._current_icl_weight(), ce.dtype) * tf.cast(icl, ce.dtype)

    def _mixed_compiled_loss(self, x, scene, logits, lam, perm, sample_weight, training):
        """`mean(lam * L(y) + (1 - lam) * L(y[perm]))` in one compiled-loss call.

        Both label sets are stacked into a batch of 2B with weights `2 lam`, `2 (1 - lam)`, so
        a "sum over batch size" reduction gives exactly the mixed mean (and `model.losses`, if
        any, are added once).
        """
        weights = tf.concat([lam, 1.0 - lam], axis=0) * 2.0
        if sample_weight is not None:
            sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), weights.dtype)
            weights *= tf.concat([sample_weight, sample_weight], axis=0)
        return super().compute_loss(
            x=x,
            y=tf.concat([scene, tf.gather(scene, perm)], axis=0),
            y_pred=tf.concat([logits, logits], axis=0),
            sample_weight=weights,
            training=training,
        )

    def _current_icl_weight(self):
        if not self.icl_rampup_steps or self.optimizer is None:
            return float(self.icl_weight)
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return float(self.icl_weight) * tf.minimum(step / float(self.icl_rampup_steps), 1.0)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics of the scene labels against `y_pred["logits"]` (plus loss terms)."""
        scene = y["scene"] if isinstance(y, dict) else y
        return super().compute_metrics(x, scene, _logits_of(y_pred), sample_weight=sample_weight)

    # === Config ===

    def get_config(self):
        # keras-hub Task style: the sub-models are nested as serialized layers.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "backbone": keras.layers.serialize(self.backbone),
            "frontend": keras.layers.serialize(self.frontend),
            "num_classes": self.num_classes,
            "head_norm_epsilon": self.head_norm_epsilon,
            "icl_weight": self.icl_weight,
            "icl_alpha": self.icl_alpha,
            "icl_beta": self.icl_beta,
            "icl_normalization": self.icl_normalization,
            "icl_num_devices": self.icl_num_devices,
            "icl_rampup_steps": self.icl_rampup_steps,
            "dir_augmentation": (
                None
                if self.dir_augmentation is None
                else keras.layers.serialize(self.dir_augmentation)
            ),
            "mixstyle_p": self.mixstyle_p,
            "mixstyle_alpha": self.mixstyle_alpha,
            "mixup_alpha": self.mixup_alpha,
            "augment_seed": self.augment_seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "frontend", "dir_augmentation"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    # === Presets (keras-hub conventions) ===

    presets = _PresetDescriptions()

    @classmethod
    def from_preset(
        cls, preset, load_weights=True, num_classes=None, frontend=None, dtype=None,
        weights=None, **overrides,
    ):
        """The model of preset `preset`: a name of `SceneClassifier.presets`, or a directory.

        Weights follow keras-hub: with `load_weights=True` (default) a preset named after an
        official checkpoint loads its AudioSet weights (downloaded and converted once into a
        verified cache, see `keras_asc.utils.weights_cache`), a small size (`passt_tiny`,
        `passt_small`) has none, and a directory loads its `model.weights.h5`;
        `load_weights=False` gives random weights. `weights` picks others: `"audioset"` or the
        path of a `.weights.h5` file (e.g. from `scripts/convert_passt_checkpoint.py`).

        Args:
            preset: str. A key of `SceneClassifier.presets`, or a folder written by
                `save_to_preset` (which fixes the architecture: no other arguments then).
            load_weights: bool. False: random weights.
            num_classes: int or None. None means the checkpoint's (527 for AudioSet), or 10
                for the small sizes. Another count keeps the AudioSet head LayerNorm and
                starts a new classifier.
            frontend: None, a dict of `KaldiMelSpectrogram` kwargs (over the preset's), or a
                layer.
            dtype: dtype policy for every part (e.g. `"mixed_bfloat16"`).
            weights: None (the preset's own, see above), `"audioset"` or a path.
            **overrides: `PaSSTBackbone` kwargs, e.g. `frequency_patchout=6, seed=0`, and the
                training kwargs of this class (`icl_*`, `mixstyle_*`, `mixup_alpha`,
                `augment_seed`, `dir_augmentation`).

        Raises:
            UserError: an unknown name (the message lists the presets), bad weights, or a
                failed download.
        """
        from keras_asc.models import preset_dir

        if weights is not None and not load_weights:
            raise UserError(f"load_weights=False contradicts weights={weights!r}; give one")
        if preset not in passt_presets and os.path.isdir(preset):  # names win over folders
            given = {"num_classes": num_classes, "frontend": frontend, "dtype": dtype}
            given = {k: v for k, v in {**given, **overrides}.items() if v is not None}
            if given or weights == "audioset":
                raise UserError(
                    f"preset directory {preset}: a saved preset fixes its architecture and "
                    f"weights; got {given or {'weights': weights}}"
                )
            model, own_weights = preset_dir.load_preset_config(preset, cls)
            weights = weights or (own_weights if load_weights else None)
            load_preset_weights(model, preset, weights)
            return model
        if preset not in passt_presets:
            raise UserError(
                f"unknown PaSST preset {preset!r}; expected one of: "
                f"{', '.join(sorted(passt_presets))}, or a directory written by "
                "SceneClassifier.save_to_preset"
            )
        config = get_preset(preset)
        if weights is None and load_weights and config["checkpoint"] is not None:
            weights = "audioset"
        task_kwargs = {k: overrides.pop(k) for k in list(overrides) if k in _TRAINING_KWARGS}
        if num_classes is None:
            num_classes = config["num_classes"] or NUM_SCENES
        backbone = PaSSTBackbone(**{**config["backbone"], "dtype": dtype, **overrides})
        if frontend is None or isinstance(frontend, dict):
            frontend = KaldiMelSpectrogram(
                **{"n_mels": backbone.num_mels, **config["frontend"], **(frontend or {})},
                dtype=dtype,
                name="frontend",
            )
        model = cls(
            backbone, num_classes=num_classes, frontend=frontend, dtype=dtype, **task_kwargs
        )
        load_preset_weights(model, preset, weights)
        return model

    def save_to_preset(self, preset_dir):
        """Saves `config.json`, `metadata.json` and `model.weights.h5` into `preset_dir`
        (atomically; an existing preset there is replaced), for `from_preset(preset_dir)`."""
        from keras_asc.models.preset_dir import save_preset

        return save_preset(self, preset_dir)


def _logits_of(y_pred):
    return y_pred["logits"] if isinstance(y_pred, dict) else y_pred


_TRAINING_KWARGS = (
    "icl_weight",
    "icl_alpha",
    "icl_beta",
    "icl_normalization",
    "icl_num_devices",
    "icl_rampup_steps",
    "dir_augmentation",
    "mixstyle_p",
    "mixstyle_alpha",
    "mixup_alpha",
    "augment_seed",
)


def _validate_training_arguments(
    icl_weight, icl_alpha, icl_beta, icl_normalization, icl_num_devices, icl_rampup_steps,
    dir_augmentation, mixup_alpha,
):
    if not float(icl_weight) >= 0.0:
        raise UserError(f"SceneClassifier: icl_weight must be >= 0, got {icl_weight!r}")
    validate_icl_arguments(icl_alpha, icl_beta, icl_normalization, icl_num_devices)
    if isinstance(icl_rampup_steps, bool) or not isinstance(icl_rampup_steps, int) or (
        icl_rampup_steps < 0
    ):
        raise UserError(
            f"SceneClassifier: icl_rampup_steps must be an int >= 0, got {icl_rampup_steps!r}"
        )
    if not float(mixup_alpha) >= 0.0:
        raise UserError(f"SceneClassifier: mixup_alpha must be >= 0, got {mixup_alpha!r}")
    if dir_augmentation is not None and not hasattr(dir_augmentation, "pipeline_function"):
        raise UserError(
            "SceneClassifier: dir_augmentation must be a keras_asc.augment.DirAugmentation "
            f"layer or None, got {type(dir_augmentation).__name__}"
        )
