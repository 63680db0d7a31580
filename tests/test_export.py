"""scripts/export.py: SavedModel/TFLite parity, quantisation, atomic output, parameters and MACs."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from _fs import read_only

from asc_core.errors import UserError
from asc_core.errors import run_cli
from keras_asc.cli import export as export_cli
from keras_asc.inference import complexity
from keras_asc.inference import export

RATE = 32000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier with confident outputs (scaled head), saved as a .keras file."""
    import keras

    from keras_asc.models.scene_classifier import SceneClassifier

    keras.utils.set_random_seed(0)  # the same weights on every run (and CPU)
    model = SceneClassifier.from_preset("passt_tiny", num_classes=10)
    kernel = model.head_dense.kernel
    kernel.assign(kernel.numpy() * 40.0)
    path = tmp_path_factory.mktemp("export") / "tiny.keras"
    model.save(str(path))
    return model, str(path)


def fresh_clips(count=5, seed=123):
    """Clips the export's own verification never saw."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    levels = np.logspace(-3, -0.5, count)[:, None]
    tones = np.sin(2 * np.pi * rng.uniform(100, 8000, (count, 1)) * t)
    return (levels * (rng.standard_normal((count, RATE)) + tones)).astype(np.float32)


def keras_reference(model, clips):
    outputs = model(clips, training=False)
    logits = outputs["logits"].numpy()
    return {
        "logits": logits,
        "probabilities": tf.nn.softmax(logits).numpy(),
        "embedding": outputs["embedding"].numpy(),
    }


def test_savedmodel_parity_atomic_overwrite(tiny, tmp_path, monkeypatch):
    model, _ = tiny
    out = tmp_path / "saved"
    out.mkdir()
    (out / "keep.txt").write_text("previous export")
    with pytest.raises(UserError, match=f"--out {out} already exists; pass --overwrite"):
        export.export_model(model, str(out), "savedmodel")

    # A failed verification leaves the previous export and no temporary files. (The export is
    # faked here, to save a second real one: a folder, and outputs off by 0.01.)
    def fake_write(model, path, num_samples, float32_frontend=False):
        os.makedirs(os.path.join(path, "variables"))

    def fake_run(path, waveform):
        outputs = keras_reference(model, waveform)
        return {**outputs, "probabilities": outputs["probabilities"] + 0.01}

    with monkeypatch.context() as patch:
        patch.setattr(export, "write_savedmodel", fake_write)
        patch.setattr(export, "run_savedmodel", fake_run)
        with pytest.raises(UserError, match=rf"export to {out} not written: .*: FAILED"):
            export.export_model(model, str(out), "savedmodel", overwrite=True)
    assert os.listdir(out) == ["keep.txt"]
    assert os.listdir(tmp_path) == ["saved"]

    report = export.export_model(model, str(out), "savedmodel", overwrite=True)
    assert report["verification"]["ok"]
    assert report["verification"]["max_abs"]["probabilities"] <= export.FP32_ATOL
    assert os.listdir(tmp_path) == ["saved"]
    assert "keep.txt" not in os.listdir(out)

    signature = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["waveform"]
    assert signature.structured_input_signature[1]["waveform"].shape.as_list() == [None, RATE]
    clips = fresh_clips()
    outputs = signature(waveform=tf.constant(clips))
    reference = keras_reference(model, clips)
    assert sorted(outputs) == ["embedding", "logits", "probabilities"]
    for key in reference:
        np.testing.assert_allclose(outputs[key].numpy(), reference[key], atol=1e-4, err_msg=key)


def test_tflite_fp32_cli_parity_and_complexity(tiny, tmp_path, capsys):
    model, path = tiny
    out = tmp_path / "tiny.tflite"
    code = run_cli(export_cli.main, ["--model", path, "--format", "tflite", "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert printed[0].startswith(f"exported tflite to {out} (")
    assert printed[1].startswith("verification on 8 clips: max |diff| logits ")
    assert printed[1].endswith("tolerance |diff probabilities| <= 0.0001: OK")
    assert printed[2].startswith(f"parameters: {model.count_params():,}; MACs per 1-s clip: ")
    assert "agrees with the count" in printed[3]

    # Builtin ops only: the pip interpreter (no Flex delegate) runs it, on any batch size.
    clips = fresh_clips()
    outputs = export.run_tflite(str(out), clips)
    reference = keras_reference(model, clips)
    np.testing.assert_allclose(outputs["probabilities"], reference["probabilities"], atol=1e-4)
    np.testing.assert_allclose(outputs["logits"], reference["logits"], atol=1e-3)
    np.testing.assert_allclose(outputs["embedding"], reference["embedding"], atol=1e-3)
    one = export.run_tflite(str(out), clips[:1])
    np.testing.assert_allclose(one["logits"], outputs["logits"][:1], atol=1e-5)


def test_tflite_dynamic_quantisation(tiny, tmp_path):
    model, _ = tiny
    out = tmp_path / "tiny-int8.tflite"
    report = export.export_model(model, str(out), "tflite", quantize="dynamic")
    verification = report["verification"]
    assert verification["ok"] and verification["tolerance"] == export.DYNAMIC_ATOL
    # What matters: no clip whose float32 margin exceeds the quantisation tolerance changes
    # its top-1, and the check was not vacuous (which clips are decisive depends on the CPU's
    # float32 kernels; the scaled head makes most of them so).
    assert verification["top1_disagree_decisive"] == 0 and verification["decisive"] >= 1

    # Every kernel of >= 1024 weights is stored as int8: the patch convolution (16 * 16 * 64)
    # and per block qkv, proj, fc1, fc2; not the 64 x 10 head, and not the mel bank (float32 on
    # purpose, see KaldiMelSpectrogram._float32_mel).
    interpreter = export.tflite_interpreter(path=str(out))
    int8 = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    per_block = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64
    assert sum(int(np.prod(d["shape"])) for d in int8) == 16 * 16 * 64 + 2 * per_block
    assert report["bytes"] == os.path.getsize(out)

    clips = fresh_clips()
    outputs = export.run_tflite(str(out), clips)
    reference = keras_reference(model, clips)
    assert np.abs(outputs["probabilities"] - reference["probabilities"]).max() <= 0.05
    ordered = np.sort(reference["probabilities"], axis=1)
    decisive = ordered[:, -1] - ordered[:, -2] > 2 * export.DYNAMIC_ATOL
    assert decisive.any()
    top1 = outputs["probabilities"].argmax(1) == reference["probabilities"].argmax(1)
    assert top1[decisive].all()


@pytest.mark.parametrize(
    "fmt, quantize, message",
    [
        ("onnx", None, "--format 'onnx'; expected one of: savedmodel, tflite"),
        ("savedmodel", "dynamic", "--quantize dynamic applies to --format tflite, not savedmodel"),
        ("tflite", "int4", "--quantize 'int4'; expected one of: dynamic"),
    ],
)
def test_bad_arguments(tiny, tmp_path, fmt, quantize, message):
    with pytest.raises(UserError) as info:
        export.export_model(tiny[0], str(tmp_path / "x"), fmt, quantize=quantize)
    assert str(info.value) == message


def test_compare_outputs_tolerances():
    reference = {
        "logits": np.zeros((2, 3)),
        "probabilities": np.array([[0.8, 0.1, 0.1], [0.36, 0.34, 0.30]]),
        "embedding": np.zeros((2, 4)),
    }
    # Second clip: its top-1 flips, but its margin (0.02) is within 2 * 0.05, so not decisive.
    flipped = dict(reference, probabilities=np.array([[0.78, 0.12, 0.1], [0.33, 0.37, 0.30]]))
    report = export.compare_outputs(reference, flipped, "dynamic")
    assert report["ok"] and report["decisive"] == 1 and report["top1_agree"] == 1
    assert report["max_abs"]["probabilities"] == pytest.approx(0.03)
    assert not export.compare_outputs(reference, flipped)["ok"]  # fp32: 0.03 > 1e-4
    wrong = dict(reference, probabilities=np.array([[0.46, 0.5, 0.04], [0.36, 0.34, 0.30]]))
    report = export.compare_outputs(reference, wrong, "dynamic")
    assert not report["ok"] and report["top1_disagree_decisive"] == 1


def test_compare_outputs_tolerance_follows_the_compute_dtype():
    """A mixed-precision model may differ by a few roundings of its compute dtype, no more."""
    reference = {
        "logits": np.zeros((2, 3)),
        "probabilities": np.array([[0.8, 0.1, 0.1], [0.36, 0.34, 0.30]]),
        "embedding": np.zeros((2, 4)),
    }
    near = dict(reference, probabilities=reference["probabilities"] + [[-0.01, 0.01, 0.0]] * 2)
    verdicts = {
        dtype: export.compare_outputs(reference, near, compute_dtype=dtype)["ok"]
        for dtype in ("float32", "float16", "bfloat16")
    }
    assert verdicts == {"float32": False, "float16": False, "bfloat16": True}
    assert export.probability_tolerance(compute_dtype="bfloat16") == 4 * 2.0**-7
    assert export.probability_tolerance("dynamic", "bfloat16") == export.DYNAMIC_ATOL
    flipped = dict(reference, probabilities=np.array([[0.45, 0.46, 0.09], [0.36, 0.34, 0.30]]))
    report = export.compare_outputs(reference, flipped, compute_dtype="bfloat16")
    assert not report["ok"] and report["top1_disagree_decisive"] == 1


def test_complexity_tiny_by_hand(tiny):
    model, _ = tiny
    counts = complexity.model_complexity(model)
    d, layers, inter, tokens, grid = 64, 2, 256, 12 * 9 + 2, 12 * 9
    frames, bins, mels = 100, 513, 128
    fft = 1024 * 9 + 2 * 1024  # n log2(n / 2) + 2 n
    by_hand = {
        "frontend": 31999 + frames * (800 + fft + 2 * bins) + frames * bins * mels,
        "patch_embedding": grid * d * 16 * 16,
        "attention": layers * (tokens * d * 3 * d + 2 * tokens * tokens * d + tokens * d * d),
        "mlp": layers * 2 * tokens * d * inter,
        "head": d * 10,
    }
    assert counts["macs_by_part"] == by_hand
    assert counts["macs"] == sum(by_hand.values()) == 23_588_551
    assert counts["tokens"] == tokens and counts["patch_grid"] == (12, 9)
    assert counts["params"] == model.count_params() == 124_682
    # TF's profiler counts the matmuls and convolutions independently.
    matmuls = sum(by_hand[k] for k in ("patch_embedding", "attention", "mlp", "head"))
    assert complexity.profiler_macs(model) == matmuls + frames * bins * mels


def test_complexity_passt_s():
    counts = complexity.preset_complexity("passt_s_swa_p16_128_ap476", num_classes=10)
    d, inter, tokens = 768, 3072, 110
    blocks = 12 * (4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * inter)
    assert counts["macs_by_part"]["attention"] + counts["macs_by_part"]["mlp"] == blocks
    # anchors_mission.md 8.2: ~9.6 GMACs per 1-s clip at eval, ~127 for 10 s, ~4.8 training
    # with s_patchout_f=6 (56 tokens).
    assert 9.5e9 < counts["macs"] < 9.7e9
    assert counts["macs"] == 9_594_988_103
    ten = complexity.preset_complexity("passt_s_swa_p16_128_ap476", 10, num_samples=320000)
    assert ten["tokens"] == 12 * 99 + 2 and 126e9 < ten["macs"] < 129e9
    train = complexity.preset_complexity(
        "passt_s_swa_p16_128_ap476", 10, training=True, frequency_patchout=6
    )
    assert train["tokens"] == 56 and 4.7e9 < train["macs"] < 4.9e9
    # Parameters: the reference's 85,358,612 (10 classes) includes the unused head_dist
    # (768 * 10 + 10), which the Keras model does not have; with 527 classes 86,153,758
    # minus head_dist (768 * 527 + 527).
    assert counts["params"] == 85_358_612 - 7_690
    assert complexity.preset_complexity("passt_s_swa_p16_128_ap476", 527)["params"] == (
        86_153_758 - 405_263
    )


def _under_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "model.tflite"


def _in_read_only_folder(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    return tmp_path / "ro" / "model.tflite"


OUT_BAD_INPUTS = {
    "--out in a read-only folder": (
        _in_read_only_folder,
        r"--out .*ro/model\.tflite: cannot write in .*ro "
        r"\(Permission denied\); expected a writable folder",
    ),
    "--out under a file": (
        _under_a_file,
        r"--out .*file/model\.tflite: cannot write in .*file \(.*\); "
        r"expected a writable folder",
    ),
}


@pytest.mark.parametrize("case", sorted(OUT_BAD_INPUTS))
def test_unwritable_out_one_clear_error(case, tiny, tmp_path, monkeypatch, capsys):
    make_out, message = OUT_BAD_INPUTS[case]
    out = make_out(tmp_path, monkeypatch)
    before = sorted(os.listdir(tmp_path))
    argv = ["--model", tiny[1], "--format", "tflite", "--out", str(out)]
    assert run_cli(export_cli.main, argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"error: {message}\n", err), err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temp folder
