"""The HEAR 2021 API (Turian et al., 2022) for keras-asc scene classifiers.

``load_model``, ``get_scene_embeddings`` and ``get_timestamp_embeddings`` follow the HEAR
common API and the conventions of ``hear21passt`` (``hear21passt/base.py`` and
``wrapper.py``), so a Keras PaSST drops into the HEAR evaluation kit:

- the model runs at ``sample_rate = 32000``; audio is ``[n_sounds, n_samples]`` mono in
  [-1, 1] at that rate, as a NumPy array or a TensorFlow tensor; outputs are float32
  ``tf.Tensor``;
- **embedding** of a piece of audio: with ``mode="all"`` (default, as hear21passt) the
  concatenation ``[logits, embedding]`` (``num_classes + D``: 527 + 768 = 1295 for an
  AudioSet PaSST-S, 10 + 768 for a TAU22 model); ``"embed_only"`` gives the ``D``-dim
  embedding (PaSST's ``features``), ``"logits"`` the logits;
- **timestamp embeddings**: windows of ``timestamp_window_ms = 160`` ms (5120 samples, 16
  frames, exactly one patch column) every ``timestamp_hop_ms = 50`` ms, centred on the
  timestamps ``0, 50, 100, ...`` ms: the audio is padded by half a window on both sides by
  reflection (as hear21passt; with zeros instead when a clip is too short to reflect), giving
  ``1 + n_samples // hop`` timestamps;
- **scene embedding**: one forward pass over the whole clip when it is at most
  ``max_window_seconds`` long (10 s: the time-position table of PaSST covers 10 s), else the
  mean of the embeddings of 10-s windows every 2.5 s (centred as the timestamps). Clips
  shorter than one timestamp window (160 ms, the smallest input giving one patch column) are
  zero-padded to it first.

Example:
```python
from keras_asc import hear
model = hear.load_model("runs/icl/model.keras")        # or a preset name, e.g. "" = PaSST-S
scene = hear.get_scene_embeddings(audio, model)          # [n_sounds, model.scene_embedding_size]
frames, ms = hear.get_timestamp_embeddings(audio, model)  # [n, T, E], [n, T]
```
"""

import os

import numpy as np
import tensorflow as tf

from asc_core.errors import UserError

DEFAULT_PRESET = "passt_s_swa_p16_128_ap476"
EMBEDDING_MODES = ("all", "embed_only", "logits")
TIMESTAMP_WINDOW_MS = 160
TIMESTAMP_HOP_MS = 50
SCENE_HOP_FRACTION = 4  # scene windows hop by a quarter window (10 s -> 2.5 s), as hear21passt


class HearModel(tf.Module):
    """A scene classifier with the attributes and methods the HEAR API needs.

    A ``tf.Module`` (the HEAR validator tells TensorFlow from PyTorch submissions by that).

    Args:
        model: a ``SceneClassifier``.
        mode: ``"all"``, ``"embed_only"`` or ``"logits"`` (see the module docstring).
        timestamp_window_ms: float. Length of a timestamp window.
        timestamp_hop_ms: float. Hop between timestamps.
        batch_size: int. Windows per model call.

    Attributes:
        sample_rate: 32000 (the model's frontend rate).
        scene_embedding_size, timestamp_embedding_size: int, the embedding width.
        max_window: int. Longest clip (samples) embedded in one pass.
    """

    def __init__(
        self,
        model,
        mode="all",
        timestamp_window_ms=TIMESTAMP_WINDOW_MS,
        timestamp_hop_ms=TIMESTAMP_HOP_MS,
        batch_size=64,
    ):
        from keras_asc.layers._utils import as_pair

        super().__init__(name="hear_model")

        if mode not in EMBEDDING_MODES:
            raise UserError(f"mode={mode!r}; expected one of: {', '.join(EMBEDDING_MODES)}")
        self.model = model
        self.mode = mode
        self.batch_size = int(batch_size)
        frontend, backbone = model.frontend, model.backbone
        self.sample_rate = int(frontend.sample_rate)
        self.timestamp_window = int(round(timestamp_window_ms * self.sample_rate / 1000))
        self.timestamp_hop = int(round(timestamp_hop_ms * self.sample_rate / 1000))
        # The shortest input giving one patch column: frames >= patch time size.
        kernel, stride = (
            as_pair(backbone.patch_size, "patch_size"),
            as_pair(backbone.stride, "stride"),
        )
        self.min_samples = (kernel[1] - 1) * frontend.hop_length + 1
        if self.timestamp_window < self.min_samples:
            raise UserError(
                f"timestamp_window_ms={timestamp_window_ms}: {self.timestamp_window} samples "
                f"are fewer than one patch needs ({self.min_samples})"
            )
        # The longest input the time-position table covers, in whole seconds (10 s for PaSST).
        columns = backbone.max_frames // stride[1]
        frames = (columns - 1) * stride[1] + kernel[1] + stride[1] - 1
        seconds = max(1, frames * frontend.hop_length // self.sample_rate)
        self.max_window = seconds * self.sample_rate
        self.scene_hop = self.max_window // SCENE_HOP_FRACTION

        dim = int(model.output["embedding"].shape[-1])
        classes = int(model.output["logits"].shape[-1])
        size = {"all": classes + dim, "embed_only": dim, "logits": classes}[mode]
        self.scene_embedding_size = size
        self.timestamp_embedding_size = size

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def embed(waveform):
            outputs = model(waveform, training=False)
            logits = tf.cast(outputs["logits"], tf.float32)
            embedding = tf.cast(outputs["embedding"], tf.float32)
            if mode == "all":
                return tf.concat([logits, embedding], axis=-1)
            return embedding if mode == "embed_only" else logits

        self._embed = embed

    def embed(self, waveforms):
        """``[N, samples]`` float32 → ``[N, embedding size]`` NumPy, ``batch_size`` at a time."""
        waveforms = np.asarray(waveforms, dtype=np.float32)
        return self.embed_windows(waveforms[:, None, :])[:, 0]

    def embed_windows(self, windows):
        """``[n_sounds, n_windows, samples]`` (a strided view is fine) → ``[n_sounds,
        n_windows, embedding size]``; only one batch of windows is copied at a time."""
        n_sounds, count = windows.shape[:2]
        total = n_sounds * count
        out = np.zeros((total, self.scene_embedding_size), np.float32)
        for start in range(0, total, self.batch_size):
            flat = np.arange(start, min(start + self.batch_size, total))
            batch = np.ascontiguousarray(windows[flat // count, flat % count], np.float32)
            out[start : start + len(flat)] = self._embed(batch).numpy()
        return out.reshape(n_sounds, count, -1)

    def centred_windows(self, audio, window, hop):
        """``[n_sounds, n_windows, window]`` windows centred on ``0, hop, 2 hop, ...`` samples.

        The audio is padded by ``window // 2`` on both sides, by reflection when it is longer
        than that padding, with zeros otherwise. ``n_windows = 1 + n_samples // hop`` (for an
        even ``window``).
        """
        pad = window // 2
        mode = "reflect" if audio.shape[1] > pad else "constant"
        padded = np.pad(audio, ((0, 0), (pad, pad)), mode=mode)
        count = 1 + (padded.shape[1] - window) // hop
        views = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)
        return views[:, : count * hop : hop]

    def timestamp_embeddings(self, audio):
        """See ``get_timestamp_embeddings``; NumPy in, NumPy out."""
        windows = self.centred_windows(audio, self.timestamp_window, self.timestamp_hop)
        n_sounds, count = windows.shape[:2]
        embeddings = self.embed_windows(windows)
        timestamps = np.arange(count, dtype=np.float64) * self.timestamp_hop * 1000.0
        timestamps = np.broadcast_to(timestamps / self.sample_rate, (n_sounds, count))
        return embeddings, timestamps.astype(np.float32)

    def scene_embeddings(self, audio):
        """See ``get_scene_embeddings``; NumPy in, NumPy out."""
        if audio.shape[1] < self.timestamp_window:
            audio = np.pad(audio, ((0, 0), (0, self.timestamp_window - audio.shape[1])))
        if audio.shape[1] <= self.max_window:
            return self.embed(audio)
        windows = self.centred_windows(audio, self.max_window, self.scene_hop)
        return self.embed_windows(windows).mean(axis=1)


def _as_audio(audio):
    """``[n_sounds, n_samples]`` float32 NumPy from a NumPy array or TF tensor."""
    if hasattr(audio, "numpy"):
        audio = audio.numpy()
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise UserError(
            f"audio has shape {audio.shape}; expected [n_sounds, n_samples] mono audio at 32000 Hz"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise UserError(f"audio has dtype {audio.dtype}; expected floats in [-1, 1]")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _check_model(model):
    if not isinstance(model, HearModel):
        raise UserError(
            f"model is a {type(model).__name__}; expected the object keras_asc.hear.load_model "
            "returns"
        )


def load_model(
    model_file_path="", mode="all", weights="audioset", num_classes=None, cache_dir=None, **kwargs
):
    """Loads a scene classifier for the HEAR API.

    Args:
        model_file_path: a ``.keras`` file, a run directory (``RUN_DIR/model.keras``), a
            preset directory (``SceneClassifier.save_to_preset``, with its own weights), or a
            PaSST preset name (``SceneClassifier.presets``); ``""`` is
            ``passt_s_swa_p16_128_ap476`` (the hear21passt default).
        mode: ``"all"`` (logits and embedding, as hear21passt), ``"embed_only"`` or
            ``"logits"``.
        weights: for a preset name: ``"audioset"`` (the official checkpoint, downloaded and
            converted once by ``keras_asc.models.weights_cache``), a converted ``.weights.h5``
            file, or None (random weights, for tests).
        num_classes: for a preset name: classes of the head; None means the checkpoint's
            (527 for AudioSet presets, as hear21passt).
        cache_dir: weights cache folder (default ``$KERAS_ASC_CACHE`` or
            ``~/.cache/keras_asc``).
        **kwargs: ``HearModel`` options (``timestamp_window_ms``, ``timestamp_hop_ms``,
            ``batch_size``).

    Returns:
        a ``HearModel`` with ``sample_rate``, ``scene_embedding_size`` and
        ``timestamp_embedding_size``.
    """
    from keras_asc.models.preset_dir import is_preset_dir

    path = os.fspath(model_file_path) or DEFAULT_PRESET
    if is_preset_dir(path):
        from keras_asc.models.scene_classifier import SceneClassifier

        model = SceneClassifier.from_preset(path)
    elif os.path.exists(path) or path.endswith(".keras"):
        from keras_asc.inference.predict import load_scene_model

        model = load_scene_model(path, label="model_file_path")
    else:
        from keras_asc.models.scene_classifier import SceneClassifier
        from keras_asc.models.weights_cache import load_preset_weights

        model = SceneClassifier.from_preset(path, load_weights=False, num_classes=num_classes)
        load_preset_weights(model, path, weights, cache_dir=cache_dir)
    return HearModel(model, mode=mode, **kwargs)


def get_scene_embeddings(audio, model):
    """Scene embeddings ``[n_sounds, model.scene_embedding_size]`` (float32 ``tf.Tensor``).

    Args:
        audio: ``[n_sounds, n_samples]`` mono audio in [-1, 1] at ``model.sample_rate``
            (NumPy or TensorFlow).
        model: what ``load_model`` returns.
    """
    _check_model(model)
    return tf.constant(model.scene_embeddings(_as_audio(audio)))


def get_timestamp_embeddings(audio, model):
    """Timestamp embeddings and their centres in milliseconds.

    Args:
        audio: ``[n_sounds, n_samples]`` mono audio in [-1, 1] at ``model.sample_rate``.
        model: what ``load_model`` returns.

    Returns:
        ``(embeddings, timestamps)``: float32 ``tf.Tensor`` ``[n_sounds, n_timestamps,
        model.timestamp_embedding_size]`` and ``[n_sounds, n_timestamps]``, with
        ``n_timestamps = 1 + n_samples // 1600`` and timestamps ``0, 50, 100, ...`` ms.
    """
    _check_model(model)
    embeddings, timestamps = model.timestamp_embeddings(_as_audio(audio))
    return tf.constant(embeddings), tf.constant(timestamps)
