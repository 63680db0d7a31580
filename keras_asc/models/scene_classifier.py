"""Acoustic scene classifier: waveform → Kaldi log-mel → PaSST → LayerNorm + Dense head."""

import os

import keras
import tensorflow as tf

from asc_core.errors import UserError
from asc_core.vocab import SCENES
from keras_asc.augment.augmenter import Augmenter
from keras_asc.layers._utils import trunc_normal
from keras_asc.layers.fast_layer_normalization import FastLayerNormalization
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.losses.icl_diagnostics import DIAGNOSTICS
from keras_asc.losses.icl_diagnostics import gradient_share
from keras_asc.losses.icl_diagnostics import icl_diagnostics
from keras_asc.models.config_upgrade import CONFIG_VERSION
from keras_asc.models.config_upgrade import V1_KWARGS
from keras_asc.models.config_upgrade import upgrade_config
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_backbone import get_preset
from keras_asc.models.passt_backbone import restore_dtype_policy
from keras_asc.models.passt_presets import passt_presets
from keras_asc.models.task_arguments import TASK_KWARGS
from keras_asc.models.task_arguments import icl_task_kwargs  # noqa: F401  (public here too)
from keras_asc.models.task_arguments import logits_compile_arguments
from keras_asc.models.task_arguments import validate_task_arguments
from keras_asc.models.weights_cache import load_preset_weights
from keras_asc.optimizers.fused_adam import FusedAdam
from keras_asc.serialization import deserialize_entries

NUM_SCENES = len(SCENES)


class _PresetDescriptions:
    """`SceneClassifier.presets`: `{name: description}` of the presets `from_preset` knows."""

    def __get__(self, instance, owner):
        return {name: preset["description"] for name, preset in passt_presets.items()}


@keras.saving.register_keras_serializable(package="keras_asc")
class SceneClassifier(keras.Model):
    """Scene classification task model: waveform in, class logits and embedding out.

    `frontend` (a `KaldiMelSpectrogram`) turns the waveform into a normalised log-mel
    spectrogram, `backbone` (a `PaSSTBackbone`) pools it into the PaSST embedding, and the
    head is PaSST's `head`: `LayerNormalization(epsilon=1e-5)` then `Dense(num_classes)`.
    The `embedding` output is the backbone embedding *before* the head norm (PaSST's
    `features`).

    Training: `compile()` + `fit()` on `(waveform, scene_id)` batches. `compute_loss` and
    `compute_metrics` apply the compiled loss and metrics to `y_pred["logits"]`, so a plain
    `compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"])` works with the dict output, as does Keras' per-output form
    `loss={"logits": ...}`; `compile()` with no arguments gives Adam(1e-5), that loss and
    accuracy.

    Device-invariant training (Schmidt & Peters 2023): with an `auxiliary_loss` (an
    `InverseContrastiveLoss`) and targets `y = {"scene": [B] int, "device": [B] int}`,
    `compute_loss` returns `CE + lambda * ICL(class tokens, device)` (Eq. 2), `lambda` =
    `auxiliary_loss_weight` ramped linearly from 0 over the first
    `auxiliary_loss_rampup_steps` optimizer steps. It tracks `ce_loss`, `icl_loss` and the
    `icl_*` diagnostics (`keras_asc.losses.icl_diagnostics`; `icl_grad_share` is the share of
    `lambda * ICL` in the gradient norm at the backbone output), all `keras.metrics.Mean`
    reset every epoch by Keras. Under `tf.distribute` the ICL term is computed on the
    embeddings and device ids gathered from all replicas (the pairs of the global batch) and
    scaled by `1 / num_replicas` like Keras' CE, so one step updates the weights as on one
    device. The paper's setting: `InverseContrastiveLoss(alpha=0.2, beta=1.0)`, weight 0.5.
    ICL is a training term: `evaluate()` on `(waveform, scene_id)` reports the CE and the
    compiled metrics (with device labels also the ICL terms); `predict()` needs no labels.

    The `augmenter` (`keras_asc.augment.Augmenter`) holds the training augmentations: DIR
    augmentation and mixup run in `train_step` before Keras' own `train_step` (which keeps
    loss scaling for mixed precision and the metric updates); Freq-MixStyle runs on the
    log-mel inside the graph (training only). Mixup mixes the CE of both labels (`lam`,
    `1 - lam`); the ICL keeps the device of the larger share.

    Args:
        backbone: `PaSSTBackbone`.
        num_classes: int. Number of classes. Defaults to 10 (the TAU22 scenes).
        frontend: `KaldiMelSpectrogram` or None. None builds the default one with
            `n_mels=backbone.num_mels`.
        head_norm_epsilon: float. Epsilon of the head LayerNorm (PaSST: plain
            `nn.LayerNorm`, 1e-5).
        dtype: dtype or `keras.DTypePolicy` of the head layers.
        auxiliary_loss: `InverseContrastiveLoss` or None (plain CE). It receives the device
            ids and the class tokens `[B, 2, D]` (cls, dist after the final norm).
        auxiliary_loss_weight: float >= 0. `lambda` (0 computes and logs the ICL and its
            diagnostics without training on it).
        auxiliary_loss_rampup_steps: int >= 0. Linear ramp of `lambda` from 0 over this many
            optimizer steps (0: the full weight from the first step).
        augmenter: `Augmenter` or None (no augmentation).

    Input shape:
        waveform `[B, samples]` at the frontend's sample rate (32 kHz); 1 s = 32000 samples.

    Output:
        dict with `"logits"` `[B, num_classes]` and `"embedding"` `[B, D]`; with an auxiliary
        loss also `"class_tokens"` `[B, 2, D]`.

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
        auxiliary_loss=None,
        auxiliary_loss_weight=1.0,
        auxiliary_loss_rampup_steps=0,
        augmenter=None,
        **kwargs,
    ):
        kwargs.setdefault("name", "scene_classifier")
        validate_task_arguments(
            auxiliary_loss, auxiliary_loss_weight, auxiliary_loss_rampup_steps, augmenter
        )
        if frontend is None:
            frontend = KaldiMelSpectrogram(n_mels=backbone.num_mels, dtype=dtype, name="frontend")
        augmenter = augmenter or Augmenter()

        # === Layers ===
        self.frontend = frontend
        self.backbone = backbone
        self.head_norm = FastLayerNormalization(
            epsilon=head_norm_epsilon, dtype=dtype, name="head_norm"
        )
        self.head_dense = keras.layers.Dense(
            num_classes, kernel_initializer=trunc_normal(), dtype=dtype, name="head_dense"
        )
        # Training-only augmentations; absent (no state, no weights) when switched off, so
        # converted PaSST weight files load into a model with the defaults. The task tracks
        # them itself (see Augmenter), which keeps their weight paths.
        self.augmenter = augmenter
        self.dir_augmentation, self.freq_mix_style, self.mixup = augmenter.build_layers(dtype)

        # === Functional Model ===
        waveform = keras.Input(shape=(None,), name="waveform")
        mel = self.frontend(waveform)
        if self.freq_mix_style is not None:
            mel = self.freq_mix_style(mel)
        features = self.backbone(mel)
        embedding = features["embedding"]
        logits = self.head_dense(self.head_norm(embedding))
        # Under mixed precision the outputs leave in float32, so the losses (softmax CE, ICL's
        # exp(alpha - d)) never see bfloat16 rounding of the logits or distances.
        outputs = {
            "logits": keras.ops.cast(logits, "float32"),
            "embedding": keras.ops.cast(embedding, "float32"),
        }
        if auxiliary_loss is not None:
            outputs["class_tokens"] = keras.ops.cast(features["tokens"][:, :2], "float32")
        super().__init__(inputs=waveform, outputs=outputs, dtype=dtype, **kwargs)
        restore_dtype_policy(self, dtype)

        # === Config ===
        self.num_classes = num_classes
        self.head_norm_epsilon = head_norm_epsilon
        self.auxiliary_loss = auxiliary_loss
        self.auxiliary_loss_weight = auxiliary_loss_weight
        self.auxiliary_loss_rampup_steps = auxiliary_loss_rampup_steps

        # === Loss terms and ICL diagnostics tracked per epoch (Keras resets `metrics`) ===
        self.ce_loss_tracker = None
        self.icl_loss_tracker = None
        self.diagnostic_trackers = {}
        if auxiliary_loss is not None:
            self.ce_loss_tracker = keras.metrics.Mean(name="ce_loss")
            self.icl_loss_tracker = keras.metrics.Mean(name="icl_loss")
            self.diagnostic_trackers = {name: keras.metrics.Mean(name=name) for name in DIAGNOSTICS}

    # === Training ===

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults for this model.

        Args:
            optimizer: optimizer; `"auto"` is Adam(1e-5) (the TAU22 PaSST recipe's rate), as
                `keras_asc.optimizers.FusedAdam` (the same update in one kernel per variable).
            loss: loss on the logits; `"auto"` is sparse categorical cross-entropy. The string
                names of (sparse) categorical cross-entropy are built with `from_logits=True`.
            metrics: metrics on the logits; `"auto"` is `["accuracy"]`.

        `loss` and `metrics` may also be dicts keyed by output name (Keras' multi-output
        form); only `"logits"` takes a loss or metrics.
        """
        if optimizer == "auto":
            optimizer = FusedAdam(learning_rate=1e-5)
        loss, metrics = logits_compile_arguments(loss, metrics)
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

        The augmenter's DIR augmentation (if any) changes the waveform and `y["device"]`; its
        mixup (if any) mixes the waveform and adds `"mixup_lambda"` / `"mixup_permutation"` to
        `y` for `compute_loss`. Loss scaling, gradients and metric updates stay Keras'.
        """
        if not self.augmenter.augments_waveforms:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = self.augmenter.augment_batch(x, y)
        return super().train_step(keras.utils.pack_x_y_sample_weight(x, y, sample_weight))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Compiled loss on `y_pred["logits"]`, plus `lambda * ICL` on the class tokens.

        `y` is `[B]` class ids or a dict with `"scene"` (class ids), optionally `"device"`
        (device ids, for ICL) and, from `train_step`'s mixup, `"mixup_lambda"` and
        `"mixup_permutation"`. `y_pred` is the model's output dict. Keras' own
        `train_step`/`test_step` call this. The returned value is per replica (Keras scales the
        CE by `1 / num_replicas`; the ICL term is scaled the same way).
        """
        logits = _logits_of(y_pred)
        scene = y["scene"] if isinstance(y, dict) else y
        if isinstance(y, dict) and "mixup_lambda" in y:
            ce = self._mixed_compiled_loss(
                x,
                scene,
                logits,
                y["mixup_lambda"],
                y["mixup_permutation"],
                sample_weight,
                training,
            )
        else:
            ce = super().compute_loss(
                x=x, y=scene, y_pred=logits, sample_weight=sample_weight, training=training
            )
        if self.auxiliary_loss is None:
            return ce
        if not (isinstance(y, dict) and "device" in y):
            if not training:
                # ICL is a training term: evaluate() on (waveform, scene) reports the CE.
                return ce
            raise UserError(
                "SceneClassifier: icl_weight > 0 needs device labels: train on "
                '(waveform, {"scene": scene_id, "device": device_id}) batches (data.targets: dict)'
            )
        # The pairs of the global batch: every replica computes the same ICL value, and the
        # all_gather gradient (a sum over replicas, then this replica's slice) gives each
        # replica exactly its share of the single-device gradient.
        tokens = _gather_replicas(y_pred["class_tokens"])
        devices = _gather_replicas(y["device"])
        icl = self.auxiliary_loss(devices, tokens)
        weight = self._current_auxiliary_weight()
        batch = tf.shape(logits)[0]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.ce_loss_tracker.update_state(ce * float(replicas), sample_weight=batch)
        self.icl_loss_tracker.update_state(icl, sample_weight=batch)
        self._update_diagnostics(
            tokens, devices, y_pred["class_tokens"], y["device"], scene, weight
        )
        # Keras' compiled CE is already divided by the replica count (its
        # scale_loss_for_distribution); the ICL term gets the same factor.
        icl = tf.cast(icl, ce.dtype) / float(replicas)
        return ce + tf.cast(weight, ce.dtype) * icl

    def _update_diagnostics(self, tokens, devices, local_tokens, local_devices, scene, weight):
        """The `icl_*` metrics of this (global) batch; no gradient reaches the model from here."""
        tokens = tf.stop_gradient(tf.cast(tokens, tf.float32))
        for name, (value, value_weight) in icl_diagnostics(tokens, devices).items():
            self.diagnostic_trackers[name].update_state(value, sample_weight=value_weight)
        # ICL's share of the gradient at the backbone output (the final-norm class tokens),
        # against the plain CE of the head on this replica's clips: a cheap estimate of who
        # drives the backbone (the head re-runs on [B, D]; mixup is ignored here).
        local = tf.stop_gradient(tf.cast(local_tokens, tf.float32))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(local)
            pooled = tf.cast((local[:, 0] + local[:, 1]) / 2, self.head_norm.compute_dtype)
            head_logits = tf.cast(self.head_dense(self.head_norm(pooled)), tf.float32)
            ce = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(scene, head_logits, from_logits=True)
            )
            icl = self.auxiliary_loss(local_devices, local)
        share = gradient_share(
            tf.cast(weight, tf.float32) * tape.gradient(icl, local), tape.gradient(ce, local)
        )
        del tape
        self.diagnostic_trackers["icl_grad_share"].update_state(share)

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

    def _current_auxiliary_weight(self):
        weight = float(self.auxiliary_loss_weight)
        if not self.auxiliary_loss_rampup_steps or self.optimizer is None:
            return weight
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return weight * tf.minimum(step / float(self.auxiliary_loss_rampup_steps), 1.0)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics of the scene labels against `y_pred["logits"]` (plus loss terms)."""
        scene = y["scene"] if isinstance(y, dict) else y
        logs = super().compute_metrics(x, scene, _logits_of(y_pred), sample_weight=sample_weight)
        if self.auxiliary_loss is not None and not (isinstance(y, dict) and "device" in y):
            # Evaluation without device labels computes no ICL term: report none (a 0 would
            # read as a measured value).
            skipped = {"ce_loss", "icl_loss", *self.diagnostic_trackers}
            logs = {k: v for k, v in logs.items() if k not in skipped}
        return logs

    # === Config ===

    def get_config(self):
        # keras-hub Task style: the sub-models and task objects are nested serialized.
        return {
            "version": CONFIG_VERSION,
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "backbone": keras.layers.serialize(self.backbone),
            "frontend": keras.layers.serialize(self.frontend),
            "num_classes": self.num_classes,
            "head_norm_epsilon": self.head_norm_epsilon,
            # None stays None.
            "auxiliary_loss": keras.saving.serialize_keras_object(self.auxiliary_loss),
            "auxiliary_loss_weight": self.auxiliary_loss_weight,
            "auxiliary_loss_rampup_steps": self.auxiliary_loss_rampup_steps,
            "augmenter": keras.saving.serialize_keras_object(self.augmenter),
        }

    @classmethod
    def from_config(cls, config):
        config = deserialize_entries(
            upgrade_config(dict(config)),
            backbone=keras.layers.deserialize,
            frontend=keras.layers.deserialize,
            auxiliary_loss=keras.saving.deserialize_keras_object,
            augmenter=keras.saving.deserialize_keras_object,
            dtype=keras.dtype_policies.deserialize,
        )
        return cls(**config)

    # === Presets (keras-hub conventions) ===

    presets = _PresetDescriptions()

    @classmethod
    def from_preset(
        cls,
        preset,
        load_weights=True,
        num_classes=None,
        frontend=None,
        dtype=None,
        weights=None,
        **overrides,
    ):
        """The model of preset `preset`: a name of `SceneClassifier.presets`, or a directory.

        Weights follow keras-hub: with `load_weights=True` (default) a preset named after an
        official checkpoint loads its AudioSet weights (downloaded and converted once into a
        verified cache, see `keras_asc.models.weights_cache`), a small size (`passt_tiny`,
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
                task kwargs of this class (`auxiliary_loss`, `auxiliary_loss_weight`,
                `auxiliary_loss_rampup_steps`, `augmenter`).

        Raises:
            UserError: an unknown name (the message lists the presets), bad weights, or a
                failed download.

        Example:

        >>> model = SceneClassifier.from_preset("passt_tiny", load_weights=False, seed=0)
        >>> outputs = model(keras.ops.zeros((2, 32000)))  # 1 s at 32 kHz
        >>> tuple(outputs["logits"].shape), tuple(outputs["embedding"].shape)
        ((2, 10), (2, 64))
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
        old = sorted(k for k in overrides if k in V1_KWARGS)
        if old:
            raise UserError(
                f"SceneClassifier.from_preset: {', '.join(old)} are kwargs of config version 1; "
                "pass auxiliary_loss=InverseContrastiveLoss(...), auxiliary_loss_weight, "
                "auxiliary_loss_rampup_steps (see icl_task_kwargs) and augmenter=Augmenter(...)"
            )
        config = get_preset(preset)
        if weights is None and load_weights and config["checkpoint"] is not None:
            weights = "audioset"
        task_kwargs = {k: overrides.pop(k) for k in list(overrides) if k in TASK_KWARGS}
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


def _gather_replicas(value):
    """``value`` ``[B, ...]`` of every replica concatenated on axis 0 (as is on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_gather(value, axis=0)
