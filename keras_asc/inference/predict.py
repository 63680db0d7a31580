"""Scene prediction for audio files of any rate, channel count and length.

Each file is read with ``asc_core.audio.read_audio`` (soundfile), resampled to the model's rate
(32 kHz, soxr HQ) and, when it has several channels, downmixed to mono by averaging them (noted
on stderr and in the JSON). The model was trained on 1-s clips, so the waveform is cut into
1-s windows starting every ``hop`` seconds (default 1 s):

- windows start at ``0, hop, 2 hop, ...`` while a full second fits; a trailing part shorter
  than a window is **dropped** (at most ``hop`` seconds). A zero-padded tail would be mostly
  silence, which the model never saw in training, yet would weigh as much as a full window;
- a clip shorter than one window is zero-padded at the end to one window (its only window).

The window probabilities (softmax of the logits) are averaged per file. Windows of all files
are batched together (``batch_size`` windows per model call).

Output: a table (file, scene, top probability, the probability of every class) or JSON. A file
that cannot be read gets one ``error: ...`` line on stderr naming it and the reason; the other
files are still predicted, and the exit code is 1 when any file failed.
"""

import json
import os

import numpy as np

from asc_core.audio import read_audio
from asc_core.audio import resample
from asc_core.errors import UserError
from asc_core.vocab import SAMPLE_RATE
from asc_core.vocab import SCENES

MODEL_FILE = "model.keras"
WINDOW_SECONDS = 1.0
DEFAULT_BATCH_SIZE = 32


# === Model ===


def load_scene_model(path, label="--model"):
    """A ``.keras`` scene classifier, from the file or a run directory (``RUN_DIR/model.keras``).

    ``label`` names the argument in error messages (``--model`` for the scripts).

    Raises:
        UserError: the path does not exist, the folder has no ``model.keras``, the file does
            not load, or the model has no ``"logits"`` output.
    """
    import keras

    import keras_asc.models  # noqa: F401 - registers SceneClassifier and what it is built of

    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(candidate):
            raise UserError(
                f"{label} {path}: folder has no {MODEL_FILE}; expected a .keras file or a run "
                "directory written by scripts/train.py"
            )
        path = candidate
    elif not os.path.isfile(path):
        raise UserError(f"{label} {path}: not found; expected a .keras file or a run directory")
    try:
        model = keras.saving.load_model(path)
    except (ValueError, TypeError, OSError, KeyError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{label} {path}: cannot load the model ({detail})") from None
    outputs = getattr(model, "output", None)
    if not (isinstance(outputs, dict) and "logits" in outputs):
        raise UserError(
            f"{label} {path}: model {model.name!r} has no 'logits' output; expected a "
            "keras_asc SceneClassifier"
        )
    return model


def class_names(num_classes):
    """The TAU22 scene names for 10 classes, ``class_0 ...`` otherwise."""
    if num_classes == len(SCENES):
        return list(SCENES)
    return [f"class_{i}" for i in range(num_classes)]


def model_sample_rate(model):
    """The model's input rate: its frontend's ``sample_rate`` (32 kHz for PaSST)."""
    frontend = getattr(model, "frontend", None)
    return int(getattr(frontend, "sample_rate", SAMPLE_RATE))


# === Audio and windows ===


def load_clip(path, sample_rate):
    """Reads ``path`` as mono float32 at ``sample_rate``.

    Returns:
        ``(audio [samples], info)`` with ``info`` = dict of ``source_rate``, ``channels``,
        ``downmixed`` (bool), ``duration_s`` (of the file).

    Raises:
        UserError: the file is missing or unreadable (message names it, from ``read_audio``).
    """
    audio, rate = read_audio(path, mono="keep")
    channels = int(audio.shape[1])
    duration = audio.shape[0] / rate
    audio = audio.mean(axis=1) if channels > 1 else audio[:, 0]
    audio = resample(audio, rate, sample_rate)
    info = {
        "source_rate": int(rate),
        "channels": channels,
        "downmixed": channels > 1,
        "duration_s": float(duration),
    }
    return np.ascontiguousarray(audio, dtype=np.float32), info


def window_starts(num_samples, window, hop):
    """Start samples of the windows of a clip (see the module docstring: the tail is dropped).

    ``[0]`` when the clip is shorter than one window (it is zero-padded).
    """
    if num_samples <= window:
        return np.zeros(1, dtype=np.int64)
    return np.arange(0, num_samples - window + 1, hop, dtype=np.int64)


def clip_windows(audio, window, hop):
    """``[num_windows, window]`` float32 windows of a mono clip (a strided view when possible).

    A clip shorter than ``window`` is zero-padded at the end to one window.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[0] < window:
        return np.pad(audio, (0, window - audio.shape[0]))[None, :]
    views = np.lib.stride_tricks.sliding_window_view(audio, window)
    return views[window_starts(audio.shape[0], window, hop)]


# === Prediction ===


class Predictor:
    """Batched window predictions of a scene classifier.

    Args:
        model: a ``SceneClassifier`` (or any model with a ``"logits"`` output on waveforms).
        hop_seconds: float in (0, 1]. Hop between the 1-s windows.
        batch_size: int >= 1. Windows per model call.
    """

    def __init__(self, model, hop_seconds=WINDOW_SECONDS, batch_size=DEFAULT_BATCH_SIZE):
        import tensorflow as tf

        self.model = model
        self.sample_rate = model_sample_rate(model)
        self.window = int(round(WINDOW_SECONDS * self.sample_rate))
        if not (isinstance(hop_seconds, int | float) and 0 < hop_seconds <= WINDOW_SECONDS):
            raise UserError(
                f"--window-hop {hop_seconds!r}: expected seconds in (0, {WINDOW_SECONDS:g}]"
            )
        self.hop = max(1, int(round(hop_seconds * self.sample_rate)))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"--batch-size {batch_size!r}: expected an integer >= 1")
        self.batch_size = batch_size
        self.num_classes = int(model.output["logits"].shape[-1])
        self.classes = class_names(self.num_classes)

        # One trace for every batch size (the last batch is usually smaller).
        @tf.function(input_signature=[tf.TensorSpec([None, self.window], tf.float32)])
        def probabilities(waveform):
            logits = model(waveform, training=False)["logits"]
            return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

        self._probabilities = probabilities

    def window_probabilities(self, windows):
        """``[W, window]`` waveforms → ``[W, C]`` probabilities, ``batch_size`` at a time."""
        windows = np.asarray(windows, dtype=np.float32)
        parts = [
            self._probabilities(np.ascontiguousarray(windows[i : i + self.batch_size])).numpy()
            for i in range(0, windows.shape[0], self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def predict_clip(self, audio):
        """Mean window probabilities ``[C]`` and the window count of a mono clip."""
        windows = clip_windows(audio, self.window, self.hop)
        return self.window_probabilities(windows).mean(axis=0), windows.shape[0]

    def predict_files(self, paths, on_error=None, progress=False):
        """Predictions for ``paths``, windows of consecutive files batched together.

        Args:
            paths: audio files.
            on_error: called as ``on_error(path, message)`` for a file that cannot be read.
            progress: show progress over the files (a bar on a terminal, lines otherwise).

        Returns:
            list, one entry per path in order: a result dict (``file``, ``scene``,
            ``probability``, ``probabilities`` {class: p}, ``windows``, ``source_rate``,
            ``channels``, ``downmixed``, ``duration_s``, ``padded``) or None for a failed file.
        """
        from asc_core.progress import progress as progress_display

        results = [None] * len(paths)
        sums = {}
        pending = []  # (file index, windows view) not yet run
        pending_count = 0

        def flush(force):
            nonlocal pending, pending_count
            while pending_count >= self.batch_size or (force and pending_count):
                take = min(self.batch_size, pending_count)
                batch, owners, rest, left = [], [], [], take
                for index, windows in pending:
                    n = min(left, windows.shape[0]) if left else 0
                    if n:
                        batch.append(windows[:n])
                        owners.append((index, n))
                        left -= n
                    if n < windows.shape[0]:
                        rest.append((index, windows[n:]))
                probs = self._probabilities(np.concatenate(batch, axis=0)).numpy()
                offset = 0
                for index, n in owners:
                    sums[index] = sums.get(index, 0.0) + probs[offset : offset + n].sum(axis=0)
                    offset += n
                pending, pending_count = rest, pending_count - take

        bar = progress_display(paths, desc="predict", unit="file", enabled=bool(progress))
        for index, path in enumerate(bar):
            try:
                audio, info = load_clip(path, self.sample_rate)
            except UserError as err:
                if on_error is not None:
                    on_error(path, str(err))
                continue
            windows = clip_windows(audio, self.window, self.hop)
            results[index] = {
                "file": os.fspath(path),
                **info,
                "windows": int(windows.shape[0]),
                "padded": bool(audio.shape[0] < self.window),
            }
            pending.append((index, windows))
            pending_count += windows.shape[0]
            flush(force=False)
        flush(force=True)

        for index, result in enumerate(results):
            if result is None:
                continue
            mean = sums[index] / result["windows"]
            top = int(np.argmax(mean))
            result["scene"] = self.classes[top]
            result["probability"] = float(mean[top])
            result["probabilities"] = {
                name: float(p) for name, p in zip(self.classes, mean, strict=True)
            }
        return results


# === Output ===


def format_table(results, classes):
    """A fixed-width table: file, scene, top probability, then one column per class."""
    files = [r["file"] for r in results]
    file_width = max([4] + [len(f) for f in files])
    scene_width = max([5] + [len(c) for c in classes])
    widths = [max(6, len(c)) for c in classes]
    header = f"{'file':<{file_width}}  {'scene':<{scene_width}}  {'prob':>6}  " + "  ".join(
        f"{c:>{w}}" for c, w in zip(classes, widths, strict=True)
    )
    lines = [header]
    for r in results:
        cells = "  ".join(
            f"{r['probabilities'][c]:>{w}.4f}" for c, w in zip(classes, widths, strict=True)
        )
        lines.append(
            f"{r['file']:<{file_width}}  {r['scene']:<{scene_width}}  {r['probability']:>6.4f}  "
            + cells
        )
    return "\n".join(lines)


def format_json(results, model_path, hop_seconds):
    """JSON text: the model, the windowing and one record per predicted file."""
    return json.dumps(
        {
            "model": os.fspath(model_path),
            "window_seconds": WINDOW_SECONDS,
            "hop_seconds": hop_seconds,
            "predictions": results,
        },
        indent=2,
    )
