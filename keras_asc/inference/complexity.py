"""Parameters and multiply-accumulates (MACs) of the scene classifier, counted from its geometry.

The count follows the eval graph of ``SceneClassifier`` (waveform → ``KaldiMelSpectrogram`` →
``PaSSTBackbone`` → head) for one clip of ``num_samples`` samples:

- **frontend**: pre-emphasis (``N - 1``), window (``frames * win_length``), real FFT, power
  (``2`` per bin) and the mel matmul (``frames * (n_fft / 2 + 1) * n_mels``, dense as computed).
  A real FFT of ``n`` points is counted as a complex radix-2 FFT of ``n / 2`` points
  (``(n / 4) log2(n / 2)`` butterflies of one complex multiply = 4 real MACs) plus ``n / 2``
  complex post-processing twiddles: ``n log2(n / 2) + 2 n`` MACs per frame;
- **patch embedding**: a ``k_f × k_t`` convolution with one input channel,
  ``F' T' D k_f k_t`` with ``F' = (n_mels - k_f) // s_f + 1`` and
  ``T' = (frames - k_t) // s_t + 1``;
- **attention** per block on ``L = F' T' + 2`` tokens (at eval nothing is dropped): the fused qkv
  projection ``3 L D^2``, scores ``L^2 D``, weighted values ``L^2 D``, output projection ``L D^2``;
- **MLP** per block: ``2 L D I``;
- **head**: ``D C`` (the dense layer after the head LayerNorm).

Element-wise work (LayerNorm, softmax, GELU, residual and position-embedding adds, log) is not
counted: it is a fraction of a percent of the total and has no agreed MAC convention. TF's own
profiler counts FLOPs of the matmuls and convolutions (2 per MAC, see ``profiler_macs``), which
cross-checks the patch-embedding, attention, MLP and head terms.

PaSST-S on a 1-s clip at 32 kHz (``passt_s_swa_p16_128_ap476``, 10 classes): 110 tokens, about
9.6 GMACs (the estimate of the reference notes, anchors_mission.md section 8.2).
"""

import math

from keras_asc.models.passt_backbone import get_preset


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def rfft_macs(n_fft):
    """Real MACs of one real FFT of ``n_fft`` points (see the module docstring)."""
    return int(n_fft * math.log2(n_fft / 2) + 2 * n_fft)


def complexity(frontend, backbone, num_classes, num_samples=32000, training=False):
    """Parameters and MACs of a scene classifier with the given geometry.

    Args:
        frontend: dict of ``KaldiMelSpectrogram`` geometry: ``n_fft``, ``win_length``,
            ``hop_length``, ``n_mels``.
        backbone: dict of ``PaSSTBackbone`` kwargs (``hidden_dim``, ``num_layers``,
            ``intermediate_dim``, ``patch_size``, ``stride``, ``num_mels``, ``max_frames``,
            ``use_qkv_bias``; with ``training=True`` also the patchout counts).
        num_classes: int. Classes of the head.
        num_samples: int. Clip length in samples (32000 = 1 s at 32 kHz).
        training: bool. Count the token sequence left after training patchout
            (``frequency_patchout``, ``time_patchout``, ``unstructured_patchout``) instead of the
            full eval sequence.

    Returns:
        dict with ``params`` (int), ``macs`` (int, the total), ``macs_by_part`` (dict of
        ``frontend``, ``patch_embedding``, ``attention``, ``mlp``, ``head``), and the geometry
        used: ``frames``, ``patch_grid`` ``(F', T')``, ``tokens``.
    """
    n_fft = int(frontend.get("n_fft", 1024))
    win_length = int(frontend.get("win_length", 800))
    hop = int(frontend.get("hop_length", 320))
    n_mels = int(frontend.get("n_mels", backbone.get("num_mels", 128)))
    dim = int(backbone.get("hidden_dim", 768))
    layers = int(backbone.get("num_layers", 12))
    inter = int(backbone.get("intermediate_dim", 3072))
    kernel = _pair(backbone.get("patch_size", 16))
    stride = _pair(backbone.get("stride", 10))
    max_frames = int(backbone.get("max_frames", 998))
    qkv_bias = bool(backbone.get("use_qkv_bias", True))

    frames = 1 + (num_samples - 1) // hop
    bins = n_fft // 2 + 1
    grid = ((n_mels - kernel[0]) // stride[0] + 1, (frames - kernel[1]) // stride[1] + 1)
    # Inputs longer than the time embedding are cropped to its columns (PatchPositionEmbedding).
    grid = (grid[0], min(grid[1], max_frames // stride[1]))
    rows, cols = grid
    if training:
        rows -= int(backbone.get("frequency_patchout", 0))
        cols -= int(backbone.get("time_patchout", 0))
    patches = rows * cols
    if training:
        patches -= int(backbone.get("unstructured_patchout", 0))
    tokens = patches + 2  # cls and dist

    macs = {
        "frontend": (num_samples - 1)
        + frames * (win_length + rfft_macs(n_fft) + 2 * bins)
        + frames * bins * n_mels,
        # The convolution runs on the whole grid; patchout drops patches after it.
        "patch_embedding": grid[0] * grid[1] * dim * kernel[0] * kernel[1],
        "attention": layers * (4 * tokens * dim * dim + 2 * tokens * tokens * dim),
        "mlp": layers * 2 * tokens * dim * inter,
        "head": dim * num_classes,
    }

    params = (
        kernel[0] * kernel[1] * dim
        + dim  # patch convolution
        + (n_mels // stride[0] + max_frames // stride[1]) * dim  # frequency and time embeddings
        + 2 * dim  # position embedding of the cls and dist tokens
        + 2 * dim  # the cls and dist tokens
        + layers
        * (
            2 * dim  # norm1
            + dim * 3 * dim
            + (3 * dim if qkv_bias else 0)  # qkv
            + dim * dim
            + dim  # attention output projection
            + 2 * dim  # norm2
            + dim * inter
            + inter
            + inter * dim
            + dim  # MLP
        )
        + 2 * dim  # final norm
        + 2 * dim
        + dim * num_classes
        + num_classes  # head LayerNorm and dense
    )
    return {
        "params": int(params),
        "macs": int(sum(macs.values())),
        "macs_by_part": {k: int(v) for k, v in macs.items()},
        "frames": int(frames),
        "patch_grid": (int(grid[0]), int(grid[1])),
        "tokens": int(tokens),
    }


def preset_complexity(name, num_classes=10, num_samples=32000, training=False, **overrides):
    """``complexity`` of preset ``name`` (no model is built): e.g. PaSST-S for 1 s, 10 classes.

    ``overrides`` replace backbone kwargs of the preset (e.g. ``frequency_patchout=6``).
    """
    preset = get_preset(name)
    backbone = {**preset["backbone"], **overrides}
    frontend = {"n_mels": backbone["num_mels"], **preset["frontend"]}
    return complexity(frontend, backbone, num_classes, num_samples=num_samples, training=training)


def model_complexity(model, num_samples=None, training=False):
    """``complexity`` of a built ``SceneClassifier`` (geometry read from its parts).

    Args:
        model: a ``SceneClassifier``.
        num_samples: clip length in samples; None means 1 s at the frontend's rate.
        training: see ``complexity``.
    """
    frontend = model.frontend
    if num_samples is None:
        num_samples = int(frontend.sample_rate)
    geometry = {
        key: getattr(frontend, key) for key in ("n_fft", "win_length", "hop_length", "n_mels")
    }
    backbone = model.backbone.get_config()
    return complexity(geometry, backbone, model.num_classes, num_samples, training=training)


def profiler_macs(model, num_samples=None):
    """MACs of the matmuls and convolutions that TF's graph profiler counts for one clip (eval).

    The profiler counts 2 FLOPs per MAC of ``MatMul``/``BatchMatMul``/``Conv2D`` (it has no
    count for the FFT), so the result must equal the ``patch_embedding``, ``attention``, ``mlp``
    and ``head`` terms of ``complexity`` plus the frontend's mel matmul
    (``frames * (n_fft / 2 + 1) * n_mels``): an independent check of the transformer arithmetic.
    Traces one concrete function with batch 1.

    Returns:
        int, half the profiler's float operations of those op types.
    """
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler import option_builder

    if num_samples is None:
        num_samples = int(model.frontend.sample_rate)

    @tf.function(input_signature=[tf.TensorSpec([1, num_samples], tf.float32)])
    def forward(waveform):
        return model(waveform, training=False)["logits"]

    graph = forward.get_concrete_function().graph
    options = (
        option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    options["account_type_regexes"] = ["MatMul", "BatchMatMul.*", "Conv2D"]
    return int(model_analyzer.profile(graph, cmd="op", options=options).total_float_ops) // 2


def mel_matmul_macs(report, n_fft, n_mels):
    """The frontend's mel matmul MACs of a ``complexity`` report (part of ``profiler_macs``)."""
    return report["frames"] * (n_fft // 2 + 1) * n_mels


def format_complexity(report, num_samples=32000, sample_rate=32000):
    """One line: parameters and MACs per clip with the per-part split (for CLI output)."""
    parts = ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in report["macs_by_part"].items())
    return (
        f"parameters: {report['params']:,}; MACs per {num_samples / sample_rate:g}-s clip: "
        f"{report['macs'] / 1e9:.3f} G ({parts}; {report['tokens']} tokens)"
    )
