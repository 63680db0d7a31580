"""PaSST architectures by name: the official PyTorch checkpoints and small CPU sizes.

Each preset holds constructor kwargs, nothing else is derived from the name:

- `backbone`: `PaSSTBackbone` kwargs. `max_frames` is the original `input_tdim`; the time
  embedding covers `max_frames // stride` patch columns (99 for 998 frames at stride 10,
  200 for 2000, 300 for 3000, 320 for 3200), exactly as `PatchEmbed.grid_size`.
- `frontend`: `KaldiMelSpectrogram` kwargs that differ from its defaults (the STFT-hop
  variants were trained on 100- and 160-sample hops).
- `num_classes`: classes of the released checkpoint (AudioSet: 527).
- `checkpoint`: the release file (`CHECKPOINT_URL_PREFIX` + this), `None` for sizes that were
  never released.

Names of released checkpoints follow `default_cfgs` in kkoutini/PaSST `models/passt.py`
(the 20/30-s entries there are spelled with dashes; here they use underscores).
"""

CHECKPOINT_URL_PREFIX = "https://github.com/kkoutini/PaSST/releases/download/"

_PASST_S = {
    "hidden_dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "intermediate_dim": 3072,
    "patch_size": 16,
    "stride": 10,
    "num_mels": 128,
    "max_frames": 998,
}


def _passt_s(description, checkpoint, frontend=None, **backbone):
    return {
        "description": description,
        "checkpoint": checkpoint,
        "num_classes": 527,
        "backbone": {**_PASST_S, **backbone},
        "frontend": dict(frontend or {}),
    }


def _small(description, **backbone):
    return {
        "description": description,
        "checkpoint": None,
        "num_classes": None,
        "backbone": {**_PASST_S, **backbone},
        "frontend": {},
    }


passt_presets = {
    # === Released AudioSet checkpoints, stride 10, 10-s time encoding ===
    "passt_s_swa_p16_128_ap476": _passt_s(
        "PaSST-S, stride 10, SWA, AudioSet mAP .476 (the TAU22 starting point)",
        "v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
    ),
    "passt_s_swa_p16_128_ap4761": _passt_s(
        "PaSST-S, stride 10, SWA, AudioSet mAP .4761",
        "v0.0.2-audioset/passt-s-f128-p16-s10-ap.4761-swa.pt",
    ),
    "passt_s_p16_128_ap472": _passt_s(
        "PaSST-S, stride 10, AudioSet mAP .472",
        "v0.0.2-audioset/passt-s-f128-p16-s10-ap.472.pt",
    ),
    "passt_s_kd_p16_128_ap486": _passt_s(
        "PaSST-S, stride 10, knowledge distillation, AudioSet mAP .486",
        "v.0.0.9/passt-s-kd-ap.486.pt",
    ),
    "passt_l_kd_p16_128_ap47": _passt_s(
        "PaSST-L (depth 7), stride 10, knowledge distillation, AudioSet mAP .47",
        "v.0.0.10/passt-l-kd-ap.47.pt",
        num_layers=7,
    ),
    # === Other strides (less patch overlap) ===
    "passt_s_swa_p16_s12_128_ap473": _passt_s(
        "PaSST-S, stride 12, SWA, AudioSet mAP .473",
        "v0.0.2-audioset/passt-s-f128-p16-s12-ap.473-swa.pt",
        stride=12,
    ),
    "passt_s_p16_s12_128_ap470": _passt_s(
        "PaSST-S, stride 12, AudioSet mAP .470",
        "v0.0.2-audioset/passt-s-f128-p16-s12-ap.470.pt",
        stride=12,
    ),
    "passt_s_swa_p16_s14_128_ap471": _passt_s(
        "PaSST-S, stride 14, SWA, AudioSet mAP .471",
        "v0.0.2-audioset/passt-s-f128-p16-s14-ap.471-swa.pt",
        stride=14,
    ),
    "passt_s_p16_s14_128_ap469": _passt_s(
        "PaSST-S, stride 14, AudioSet mAP .469",
        "v0.0.2-audioset/passt-s-f128-p16-s14-ap.469.pt",
        stride=14,
    ),
    "passt_s_swa_p16_s16_128_ap473": _passt_s(
        "PaSST-S, stride 16 (no overlap), SWA, AudioSet mAP .473",
        "v0.0.2-audioset/passt-s-f128-p16-s16-ap.473-swa.pt",
        stride=16,
    ),
    "passt_s_p16_s16_128_ap468": _passt_s(
        "PaSST-S, stride 16 (no overlap), AudioSet mAP .468",
        "v0.0.2-audioset/passt-s-f128-p16-s16-ap.468.pt",
        stride=16,
    ),
    # === Longer time encodings (trained on 10-s windows of them) ===
    "passt_s_f128_20sec_p16_s10_ap474_swa": _passt_s(
        "PaSST-S, stride 10, SWA, 20-s time encoding (2000 frames), AudioSet mAP .474",
        "v0.0.5/passt-s-f128-20sec-p16-s10-ap.474-swa.pt",
        max_frames=2000,
    ),
    "passt_s_f128_30sec_p16_s10_ap473_swa": _passt_s(
        "PaSST-S, stride 10, SWA, 30-s time encoding (3000 frames), AudioSet mAP .473",
        "v0.0.5/passt-s-f128-30sec-p16-s10-ap.473-swa.pt",
        max_frames=3000,
    ),
    # === Other STFT hops (frontend differs) ===
    "passt_s_swa_f128_stfthop100_p16_s10_ap473": _passt_s(
        "PaSST-S, stride 10, SWA, STFT hop 100 (3200 frames per 10 s), AudioSet mAP .473",
        "v0.0.3-audioset/passt-s-f128-stfthop100-p16-s10-ap.473-swa.pt",
        frontend={"hop_length": 100},
        max_frames=3200,
    ),
    "passt_s_swa_f128_stfthop160_p16_s10_ap473": _passt_s(
        "PaSST-S, stride 10, SWA, STFT hop 160 (2000 frames per 10 s), AudioSet mAP .473",
        "v0.0.3-audioset/passt-s-f128-stfthop160-p16-s10-ap.473-swa.pt",
        frontend={"hop_length": 160},
        max_frames=2000,
    ),
    # === Small sizes for CPU tests and demos (random init, PaSST-S geometry otherwise) ===
    "passt_tiny": _small(
        "2 blocks of width 64 (4 heads): unit tests",
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        intermediate_dim=256,
    ),
    "passt_small": _small(
        "4 blocks of width 192 (3 heads): CPU demos",
        hidden_dim=192,
        num_layers=4,
        num_heads=3,
        intermediate_dim=768,
    ),
}
