"""Exporting the eval-mode scene classifier as a TF SavedModel or TFLite flatbuffer, verified.

The exported function takes ``waveform`` ``[B, clip_samples]`` float32 at the model's rate
(32 kHz; 1 s = 32000 samples) and returns ``logits`` ``[B, C]``, ``probabilities`` ``[B, C]``
(softmax of the logits) and ``embedding`` ``[B, D]`` (signature ``serving_default``; the input
and output names are these keys).

- ``savedmodel``: ``keras.export.ExportArchive`` of the model's own eval graph (the frontend's
  float64 STFT included); loads with ``tf.saved_model.load(path).signatures["serving_default"]``.
- ``tflite``: TFLite has no float64 kernels, and the Flex delegate (``SELECT_TF_OPS``) is not
  linked into the pip interpreter, so a model using them could not be run or verified here.
  The TFLite graph therefore computes the same eval log-mel in float32 with builtin ops only
  (``MIRROR_PAD``, ``GATHER`` framing, ``RFFT2D``, ``REAL``/``IMAG``, ``BATCH_MATMUL``,
  ``LOG``); that frontend differs from the float64 one by ~3e-5 in the normalised log-mel.
  Conversion goes through a SavedModel (``TFLiteConverter.from_concrete_functions`` leaves
  Keras 3 variables as uninitialised resource variables; the SavedModel route freezes them).
  ``--quantize dynamic`` is dynamic-range quantisation (``tf.lite.Optimize.DEFAULT``: int8
  weights, float activations).

Every export is verified before it is moved into place: the exported artifact is loaded back
and run on ``VERIFY_CLIPS`` deterministic 1-s clips (noise at several levels, tones, a chirp,
silence), and compared with the Keras model (``training=False``):

- float32 (SavedModel, TFLite): max |Δ probability| <= ``FP32_ATOL`` (1e-4);
- a mixed-precision model (``mixed_bfloat16``/``mixed_float16``): max |Δ probability| <=
  ``LOW_PRECISION_ULPS`` (4) machine epsilons of the compute dtype (0.031 in bfloat16, 0.0039 in
  float16), and the top-1 check below. Its ops round to that dtype, and the traced graph fuses
  some of them (oneDNN's fused kernels, e.g. matmul + bias, round once where eager Keras rounds
  after each op), so eager Keras and the exported graph differ by a few such roundings;
- dynamic quantisation: max |Δ probability| <= ``DYNAMIC_ATOL`` (0.05), and the same top-1
  class on every clip whose Keras top-1 leads its runner-up by more than ``2 * DYNAMIC_ATOL``
  (closer calls may flip within the probability tolerance).

The differences are printed; a failed check raises ``UserError`` and leaves ``--out``
untouched. Output is atomic: written under a temporary name next to ``--out``, verified,
then renamed.
"""

import os
import shutil
import tempfile

import numpy as np

from asc_core.errors import UserError

FORMATS = ("savedmodel", "tflite")
QUANTIZATIONS = ("dynamic",)
FP32_ATOL = 1e-4
LOW_PRECISION_ULPS = 4
MACHINE_EPSILON = {"bfloat16": 2.0**-7, "float16": 2.0**-10}
DYNAMIC_ATOL = 0.05
VERIFY_CLIPS = 8
SIGNATURE = "serving_default"
OUTPUT_KEYS = ("logits", "probabilities", "embedding")


# === Graphs ===


def serving_function(model, num_samples, float32_frontend=False):
    """``waveform [B, num_samples] -> {"logits", "probabilities", "embedding"}`` (eval mode).

    Args:
        model: a ``SceneClassifier``.
        num_samples: int. Clip length the export accepts.
        float32_frontend: bool. Run the frontend's float32 builtin-op eval graph
            (``KaldiMelSpectrogram.eval_log_mel`` with ``fixed_length``; for TFLite).
    """
    import tensorflow as tf

    def serve(waveform):
        if float32_frontend:
            mel = model.frontend.eval_log_mel(waveform, fixed_length=num_samples)
            embedding = model.backbone(mel, training=False)["embedding"]
            logits = model.head_dense(model.head_norm(embedding, training=False))
        else:
            outputs = model(waveform, training=False)
            logits, embedding = outputs["logits"], outputs["embedding"]
        logits = tf.cast(logits, tf.float32)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "embedding": tf.cast(embedding, tf.float32),
        }

    return serve


def write_savedmodel(model, path, num_samples, float32_frontend=False):
    """Writes the serving function as a SavedModel at ``path`` (a new folder)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    # No archive.track(model): add_endpoint tracks the variables the function uses, and
    # track() would store every weight a second time (as Keras variables besides tf.Variables).
    archive.add_endpoint(
        SIGNATURE,
        serving_function(model, num_samples, float32_frontend),
        input_signature=[tf.TensorSpec([None, num_samples], tf.float32, name="waveform")],
    )
    archive.write_out(path, verbose=False)


def convert_tflite(savedmodel_path, quantize=None):
    """TFLite flatbuffer (bytes) of a SavedModel, builtin ops only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel_path, [SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        return converter.convert()
    except Exception as err:  # the converter raises ConverterError and friends
        raise UserError(
            f"TFLite conversion failed with builtin ops only ({str(err).splitlines()[0]}); "
            "expected a SceneClassifier whose layers use TFLite builtin ops"
        ) from None


# === Running exported artifacts ===


def run_savedmodel(path, waveform):
    """Runs the ``serving_default`` signature of the SavedModel at ``path``; dict of arrays."""
    import tensorflow as tf

    function = tf.saved_model.load(path).signatures[SIGNATURE]
    outputs = function(waveform=tf.constant(waveform, tf.float32))
    return {key: outputs[key].numpy() for key in OUTPUT_KEYS}


def tflite_interpreter(path=None, content=None):
    """A ``tf.lite.Interpreter`` of a file or flatbuffer, without its deprecation warning."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=path, model_content=content)


def run_tflite(path, waveform):
    """Runs the TFLite model at ``path`` on ``waveform`` ``[B, samples]``; dict of arrays."""
    runner = tflite_interpreter(path=path).get_signature_runner(SIGNATURE)
    outputs = runner(waveform=np.asarray(waveform, np.float32))
    return {key: np.asarray(outputs[key]) for key in OUTPUT_KEYS}


# === Verification ===


def verification_clips(num_samples, sample_rate, count=VERIFY_CLIPS, seed=0):
    """``[count, num_samples]`` float32 clips: noise at several levels, tones, chirp, silence.

    Deterministic for a given ``seed``; the levels span quiet to loud so that both the
    frontend's log floor and its loud bins are exercised.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    clips = [
        0.3 * rng.standard_normal(num_samples),
        0.01 * rng.standard_normal(num_samples),
        1e-4 * rng.standard_normal(num_samples),
        0.5 * np.sin(2 * np.pi * 440.0 * t),
        0.8 * np.sin(2 * np.pi * 3000.0 * t) + 0.01 * rng.standard_normal(num_samples),
        0.5 * np.sin(2 * np.pi * (100.0 + 4000.0 * t) * t),
        np.clip(0.2 * np.cumsum(rng.standard_normal(num_samples)) / 30.0, -1.0, 1.0),
        np.zeros(num_samples),
    ]
    while len(clips) < count:
        clips.append(rng.uniform(-0.5, 0.5, num_samples))
    return np.stack(clips[:count]).astype(np.float32)


def probability_tolerance(quantize=None, compute_dtype="float32"):
    """The largest |Δ probability| an export may have (see the module docstring)."""
    tolerance = FP32_ATOL
    if compute_dtype in MACHINE_EPSILON:
        tolerance = max(tolerance, LOW_PRECISION_ULPS * MACHINE_EPSILON[compute_dtype])
    if quantize is not None:
        tolerance = max(tolerance, DYNAMIC_ATOL)
    return tolerance


def compare_outputs(reference, exported, quantize=None, compute_dtype="float32"):
    """Differences between Keras and exported outputs, and whether they pass the tolerance.

    Args:
        reference: dict of arrays from the Keras model (``OUTPUT_KEYS``).
        exported: dict of arrays from the exported artifact.
        quantize: None (no quantisation) or ``"dynamic"``.
        compute_dtype: the model's compute dtype (``"float32"``, ``"bfloat16"``, ``"float16"``).

    Returns:
        dict with ``max_abs`` (per output key), ``tolerance`` (on probabilities),
        ``top1_agree``/``clips``, ``decisive`` (clips whose top-1 must agree),
        ``top1_disagree_decisive`` and ``ok``.
    """
    max_abs = {key: float(np.max(np.abs(reference[key] - exported[key]))) for key in OUTPUT_KEYS}
    probs = reference["probabilities"]
    top1_ref = probs.argmax(axis=1)
    top1_exp = exported["probabilities"].argmax(axis=1)
    ordered = np.sort(probs, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    tolerance = probability_tolerance(quantize, compute_dtype)
    decisive = margin > 2 * tolerance
    disagree = int(np.sum(decisive & (top1_ref != top1_exp)))
    ok = max_abs["probabilities"] <= tolerance and disagree == 0
    return {
        "max_abs": max_abs,
        "tolerance": tolerance,
        "top1_agree": int(np.sum(top1_ref == top1_exp)),
        "clips": int(len(top1_ref)),
        "decisive": int(np.sum(decisive)),
        "top1_disagree_decisive": disagree,
        "ok": bool(ok),
    }


def format_verification(report):
    """Human-readable lines of a ``compare_outputs`` report."""
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in report["max_abs"].items())
    verdict = "OK" if report["ok"] else "FAILED"
    return (
        f"verification on {report['clips']} clips: max |diff| {diffs}; top-1 agreement "
        f"{report['top1_agree']}/{report['clips']} ({report['top1_disagree_decisive']} "
        f"disagreements among {report['decisive']} decisive clips); tolerance |diff "
        f"probabilities| <= {report['tolerance']:g}: {verdict}"
    )


# === Export ===


def _keras_outputs(model, waveform):
    import tensorflow as tf

    outputs = model(tf.constant(waveform), training=False)
    logits = np.asarray(outputs["logits"], np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return {
        "logits": logits,
        "probabilities": shifted / shifted.sum(axis=1, keepdims=True),
        "embedding": np.asarray(outputs["embedding"], np.float32),
    }


def _check_model(model):
    for part in ("frontend", "backbone", "head_norm", "head_dense"):
        if not hasattr(model, part):
            raise UserError(
                f"model {model.name!r} has no {part}; expected a keras_asc SceneClassifier"
            )


def _place(tmp, out, overwrite):
    """Moves the verified ``tmp`` to ``out``; an existing ``out`` is replaced only at the end."""
    if os.path.lexists(out):
        if not overwrite:
            raise UserError(f"--out {out} already exists; pass --overwrite to replace it")
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(out)))
        aside = os.path.join(old, "previous")
        os.replace(out, aside)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def export_model(model, out, fmt, quantize=None, overwrite=False, seed=0, num_samples=None):
    """Exports ``model`` (eval mode) to ``out``, verifies it and moves it into place.

    Args:
        model: a ``SceneClassifier``.
        out: output path: a folder for ``savedmodel``, a file for ``tflite``.
        fmt: ``"savedmodel"`` or ``"tflite"``.
        quantize: None or ``"dynamic"`` (TFLite only).
        overwrite: replace an existing ``out`` (after the new export has been verified).
        seed: seed of the verification clips.
        num_samples: clip length of the export; None means 1 s at the frontend's rate.

    Returns:
        dict: ``path``, ``format``, ``quantize``, ``bytes`` (size on disk), ``verification``
        (``compare_outputs``).

    Raises:
        UserError: bad arguments, ``out`` exists without ``overwrite``, conversion failure,
            or a verification outside the tolerance (``out`` then stays untouched).
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize!r}; expected one of: {', '.join(QUANTIZATIONS)}")
    if quantize is not None and fmt != "tflite":
        raise UserError(f"--quantize {quantize} applies to --format tflite, not {fmt}")
    _check_model(model)
    out = os.fspath(out)
    if os.path.lexists(out) and not overwrite:
        raise UserError(f"--out {out} already exists; pass --overwrite to replace it")
    sample_rate = int(model.frontend.sample_rate)
    if num_samples is None:
        num_samples = sample_rate
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    except OSError as err:
        raise UserError(
            f"--out {out}: cannot write in {parent} ({err.strerror}); expected a writable folder"
        ) from None

    try:
        clips = verification_clips(num_samples, sample_rate, seed=seed)
        reference = _keras_outputs(model, clips)
        savedmodel = os.path.join(work, "savedmodel")
        write_savedmodel(model, savedmodel, num_samples, float32_frontend=fmt == "tflite")
        if fmt == "savedmodel":
            artifact = savedmodel
            exported = run_savedmodel(artifact, clips)
            size = sum(
                os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(artifact)
                for name in names
            )
        else:
            artifact = os.path.join(work, "model.tflite")
            with open(artifact, "wb") as f:
                f.write(convert_tflite(savedmodel, quantize))
            exported = run_tflite(artifact, clips)
            size = os.path.getsize(artifact)
        verification = compare_outputs(reference, exported, quantize, model.compute_dtype)
        if not verification["ok"]:
            raise UserError(
                f"export to {out} not written: the exported model differs from the Keras "
                f"model beyond the tolerance ({format_verification(verification)})"
            )
        _place(artifact, out, overwrite)
    except OSError as err:  # a full disk while writing; the earlier --out is untouched
        raise UserError(
            f"--out {out}: cannot write {err.filename or out} ({err.strerror}); "
            "expected a writable folder with free space"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "path": out,
        "format": fmt,
        "quantize": quantize,
        "bytes": int(size),
        "verification": verification,
    }
