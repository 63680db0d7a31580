"""Acoustic scene classifier: waveform → Kaldi log-mel → PaSST → LayerNorm + Dense head."""

import keras

from keras_asc.layers._utils import trunc_normal
from keras_asc.layers.kaldi_mel_spectrogram import KaldiMelSpectrogram
from keras_asc.models.passt_backbone import PaSSTBackbone
from keras_asc.models.passt_backbone import get_preset
from keras_asc.vocab import SCENES

NUM_SCENES = len(SCENES)

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

    Args:
        backbone: `PaSSTBackbone`.
        num_classes: int. Number of classes. Defaults to 10 (the TAU22 scenes).
        frontend: `KaldiMelSpectrogram` or None. None builds the default one with
            `n_mels=backbone.num_mels`.
        head_norm_epsilon: float. Epsilon of the head LayerNorm (PaSST: plain
            `nn.LayerNorm`, 1e-5).
        dtype: dtype or `keras.DTypePolicy` of the head layers.

    Input shape:
        waveform `[B, samples]` at the frontend's sample rate (32 kHz); 1 s = 32000 samples.

    Output:
        dict with `"logits"` `[B, num_classes]` and `"embedding"` `[B, D]`.

    Example:
    ```python
    model = SceneClassifier.from_preset("passt_s_swa_p16_128_ap476", num_classes=10,
                                        frequency_patchout=6)
    model.load_weights("passt_s_swa_p16_128_ap476.weights.h5")  # converted checkpoint
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
        **kwargs,
    ):
        kwargs.setdefault("name", "scene_classifier")
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

        # === Functional Model ===
        waveform = keras.Input(shape=(None,), name="waveform")
        mel = self.frontend(waveform)
        embedding = self.backbone(mel)["embedding"]
        logits = self.head_dense(self.head_norm(embedding))
        super().__init__(
            inputs=waveform,
            outputs={"logits": logits, "embedding": embedding},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.num_classes = num_classes
        self.head_norm_epsilon = head_norm_epsilon

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

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of `y` (class ids `[B]`) against `y_pred["logits"]`.

        `y_pred` is the model's output dict. Keras' own `train_step`/`test_step` call this;
        extensions (e.g. an extra term on `y_pred["embedding"]`) add to the returned scalar.
        """
        return super().compute_loss(
            x=x,
            y=y,
            y_pred=_logits_of(y_pred),
            sample_weight=sample_weight,
            training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics of `y` against `y_pred["logits"]` (plus the loss tracker)."""
        return super().compute_metrics(x, y, _logits_of(y_pred), sample_weight=sample_weight)

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
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "frontend"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classmethod
    def from_preset(cls, name, num_classes=None, frontend=None, dtype=None, **overrides):
        """The architecture of preset `name` (an official checkpoint name or a small size).

        Weights are random; `load_weights` then takes a file written by
        `scripts/convert_passt_checkpoint.py` for the same name and `num_classes`.

        Args:
            name: str. A key of `keras_asc.models.passt_presets.passt_presets`.
            num_classes: int or None. None means the checkpoint's (527 for AudioSet), or 10
                for the small sizes.
            frontend: None, a dict of `KaldiMelSpectrogram` kwargs (over the preset's), or a
                layer.
            dtype: dtype policy for every part (e.g. `"mixed_bfloat16"`).
            **overrides: `PaSSTBackbone` kwargs, e.g. `frequency_patchout=6, seed=0`.
        """
        preset = get_preset(name)
        if num_classes is None:
            num_classes = preset["num_classes"] or NUM_SCENES
        backbone = PaSSTBackbone(**{**preset["backbone"], "dtype": dtype, **overrides})
        if frontend is None or isinstance(frontend, dict):
            frontend = KaldiMelSpectrogram(
                **{"n_mels": backbone.num_mels, **preset["frontend"], **(frontend or {})},
                dtype=dtype,
                name="frontend",
            )
        return cls(backbone, num_classes=num_classes, frontend=frontend, dtype=dtype)


def _logits_of(y_pred):
    return y_pred["logits"] if isinstance(y_pred, dict) else y_pred
