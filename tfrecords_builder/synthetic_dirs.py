"""The synthetic DIR sets: MicIRP-like vintage-microphone IRs and Surrey-like multi-angle,
multi-distance IRs, in the real sets' layouts (see :mod:`tfrecords_builder.synthetic`)."""

import os

import numpy as np

from tfrecords_builder.synthetic_mics import response_ir
from tfrecords_builder.synthetic_mics import sample_response
from tfrecords_builder.synthetic_wav import list_info_chunk
from tfrecords_builder.synthetic_wav import write_wav

SURREY_RATE = 48000

# MicIRP-like files: (stem, sample rate, peak value). `IR_*` stems are the 0.5-s batch with
# JUNK/LIST chunks and an early peak; the others the ~0.37-s batch with FLLR and a later peak.
# The tiny corpus has the first 8 (MICIRP_TINY), the small one all of them.
MICIRP_FILES = (
    ("IR_AKGD12", 44100, 1.0),
    ("IR_Meazzi", 44100, 1.0),
    ("IR_STC4033_Ribbon", 44100, 1.0),
    ("B&O_BM2", 44100, 1.0),
    ("Doremi_", 44100, 1.0),
    ("Altec_670A", 44100, 0.128),
    ("EV_RE20_Flat", 48000, 1.0),
    ("Reslo_RV", 48000, 1.0),
    ("IR_Astatic77", 44100, 1.0),
    ("IR_OktavaMD57", 44100, 1.0),
    ("IR_RCAKU3a", 44100, 1.0),
    ("IR_ResloCR600", 44100, 1.0),
    ("IR_Shure510C", 44100, 1.0),
    ("Altec_670B", 44100, 0.169),
    ("B&O_BM6", 44100, 1.0),
    ("BBCmarconi_B", 48000, 1.0),
    ("Beyer_M260", 44100, 1.0),
    ("Coles_4038", 44100, 1.0),
    ("EV_RE20_HPF", 48000, 1.0),
    ("RCA_44BX_1", 44100, 1.0),
    ("RCA_77DX_1", 44100, 1.0),
    ("Reslo_VMC2", 48000, 1.0),
    ("Shure315_flat", 44100, 1.0),
    ("Sony_C37Fet", 44100, 1.0),
    ("Telefunken_M201", 44100, 1.0),
    ("Toshiba_BK5", 44100, 0.287),
)
MICIRP_TINY = MICIRP_FILES[:8]
RIBBON_STEMS = ("IR_STC4033_Ribbon", "Beyer_M260", "Coles_4038", "RCA_44BX_1", "RCA_77DX_1")

# Surrey-like microphones: (microphone token, transducer kind for `sample_response`, pattern
# tokens, pattern when the token is "", distances, layout, file-name suffix). Multi-pattern mics
# put the pattern in the config token (`RodeK2Omni`); the "new" layout is
# `Normalised_IRs/<Config>_<d>/24bit/<Config>_<d>_<a>Deg<suffix>.wav`, the "old" one
# `<Mic>_<d>_Normalised_IRs/IRs/<Mic>_<d>_<a>Deg.wav`. Missing distances mirror the real set.
PATTERN_TOKENS = {
    "Omni": "omni",
    "Cardioid": "cardioid",
    "Hyper": "hypercardioid",
    "Bidirect": "bidirectional",
}
SURREY_TINY = (
    ("RodeK2", "condenser", ("Omni", "Cardioid"), None, ("50cm", "125cm", "5m"), "new", ""),
    ("SchoepsCMC6_MK2H", "condenser", ("",), "omni", ("50cm", "125cm"), "new", "_1"),
    ("ShureSM58", "dynamic", ("",), "cardioid", ("125cm",), "old", ""),
)
SURREY_SMALL = (
    (
        "RodeK2",
        "condenser",
        ("Omni", "Cardioid", "Bidirect"),
        None,
        ("50cm", "125cm", "5m"),
        "new",
        "",
    ),
    ("ShureSM57", "dynamic", ("",), "cardioid", ("50cm", "125cm", "5m"), "new", ""),
    ("RoyerR121", "ribbon", ("",), "bidirectional", ("50cm", "125cm", "5m"), "new", ""),
    ("SchoepsCMC6_MK2H", "condenser", ("",), "omni", ("50cm", "125cm", "5m"), "new", "_1"),
    ("RodeNTG8", "condenser", ("",), "shotgun", ("125cm", "5m"), "new", ""),
    ("SennheiserMD441", "dynamic", ("",), "supercardioid", ("50cm", "125cm", "5m"), "new", ""),
    ("ShureSM58", "dynamic", ("",), "cardioid", ("50cm", "125cm"), "old", ""),
)
# One config also has a 32-bit float copy, as some real folders hold two bit depths.
SURREY_32BIT = "RodeK2Omni_50cm"
DISTANCE_CM = {"50cm": 50, "125cm": 125, "5m": 500}


def _micirp_ir(rng, stem, rate, peak):
    """A vintage-microphone IR recorded in a small booth: family response + a few reflections."""
    kind = "ribbon" if stem in RIBBON_STEMS else "vintage"
    params = sample_response(rng, kind)
    if stem.startswith("IR_"):
        length, delay = rate // 2, int(rng.integers(2, 8))
    else:
        lo, hi = (16446, 16500) if rate == 44100 else (16457, 18144)
        length, delay = int(rng.integers(lo, hi + 1)), int(rng.integers(62, 117))
    core = response_ir(rate, 1024, params)
    ir = np.zeros(length)
    ir[delay : delay + len(core)] += core
    # Booth reflections 1-8 ms later and a faint diffuse tail: the IRs are not free-field.
    for _ in range(int(rng.integers(2, 5))):
        start = delay + int(rng.uniform(0.001, 0.008) * rate)
        gain = rng.uniform(0.05, 0.25) * rng.choice((-1.0, 1.0))
        stop = min(length, start + len(core))
        ir[start:stop] += gain * core[: stop - start]
    t = np.arange(length - delay) / rate
    ir[delay:] += rng.standard_normal(length - delay) * np.exp(-t / 0.03) * 10 ** (-45 / 20)
    polarity = rng.choice((-1.0, 1.0))
    return polarity * ir * (peak / np.max(np.abs(ir)))


def write_micirp(root, key, entries):
    """Writes MicIRP-like files ``entries`` (``(stem, rate, peak)``) into the new folder ``root``.

    File ``i`` draws from ``numpy.random.default_rng([*key, i])``. Returns its manifest entry.
    """
    os.makedirs(root)
    files = []
    for index, (stem, rate, peak) in enumerate(entries):
        rng = np.random.default_rng([*key, index])
        ir = _micirp_ir(rng, stem, rate, peak)
        path = os.path.join(root, stem + ".wav")
        if stem.startswith("IR_"):
            chunks = {
                "before_fmt": [(b"JUNK", bytes(28))],
                "after_fmt": [
                    (b"LIST", list_info_chunk("keras-asc synthetic")),
                    (b"LGWV", bytes(12)),
                ],
            }
        else:
            # Pro Tools pads with FLLR so that the samples start at a 4096-byte boundary.
            fllr = 4096 - (12 + 24 + 8 + 8 + 8)
            chunks = {"before_data": [(b"FLLR", bytes(fllr))]}
        write_wav(path, ir, rate, **chunks)
        files.append(
            {
                "name": stem + ".wav",
                "sample_rate": rate,
                "num_samples": len(ir),
                "peak": round(float(np.max(np.abs(ir))), 6),
                "peak_index": int(np.argmax(np.abs(ir))),
                "polarity": 1 if ir[np.argmax(np.abs(ir))] > 0 else -1,
                "extra_chunks": [c[0].decode() for v in chunks.values() for c in v],
            }
        )
    return {"root": os.path.basename(root), "num_files": len(files), "files": files}


def _surrey_ir(base, pattern, angle, distance_m, onset, rng):
    """10-s Surrey-like file: noise floor, then the family IR at `onset` plus a floor reflection."""
    core = response_ir(SURREY_RATE, 1024, base, pattern, angle, distance_m)
    x = rng.standard_normal(10 * SURREY_RATE, dtype=np.float32) * np.float32(10 ** (-100 / 20))
    x[onset : onset + len(core)] += core
    # A floor bounce (source and mic at 1.5 m): later and relatively stronger at larger distances.
    reflected = np.hypot(distance_m, 3.0)
    lag = int(round((reflected - distance_m) / 343.0 * SURREY_RATE))
    gain = 0.3 * distance_m / reflected
    x[onset + lag : onset + lag + len(core)] += gain * core
    return x


def write_surrey(root, mic_key, ir_key, mics, angles):
    """Writes Surrey-like files of ``mics`` (see ``SURREY_TINY``) at ``angles`` under ``root``.

    Microphone ``m`` draws its response from ``default_rng([*mic_key, m])``; each file draws its
    noise from ``default_rng([*ir_key, m, token, distance_cm, angle])``. Returns its manifest
    entry.
    """
    files = []
    for mic_index, (mic, kind, tokens, fixed_pattern, distances, layout, suffix) in enumerate(mics):
        base = sample_response(np.random.default_rng([*mic_key, mic_index]), kind)
        for token_index, token in enumerate(tokens):
            pattern = PATTERN_TOKENS[token] if token else fixed_pattern
            config = mic + token
            for dist in distances:
                distance_m = DISTANCE_CM[dist] / 100.0
                # Fixed 50-ms system latency plus time of flight: the onset depends on distance.
                onset = SURREY_RATE // 20 + int(round(distance_m / 343.0 * SURREY_RATE))
                signals = {}
                for angle in angles:
                    rng = np.random.default_rng(
                        [*ir_key, mic_index, token_index, DISTANCE_CM[dist], angle]
                    )
                    signals[angle] = _surrey_ir(base, pattern, angle, distance_m, onset, rng)
                # "Normalised": one gain per folder, so level still varies with angle.
                scale = 0.9 / max(np.max(np.abs(s)) for s in signals.values())
                folder = f"{config}_{dist}"
                if layout == "old":
                    targets = [(f"{folder}_Normalised_IRs/IRs", "PCM_24", 24)]
                else:
                    targets = [(f"Normalised_IRs/{folder}/24bit", "PCM_24", 24)]
                    if folder == SURREY_32BIT:
                        targets.append((f"Normalised_IRs/{folder}/32bit", "FLOAT", 32))
                for sub, subtype, bits in targets:
                    for angle in angles:
                        name = f"{sub}/{folder}_{angle}Deg{'' if layout == 'old' else suffix}.wav"
                        write_wav(
                            os.path.join(root, name),
                            signals[angle] * scale,
                            SURREY_RATE,
                            subtype=subtype,
                        )
                        files.append(
                            {
                                "name": name,
                                "microphone": mic,
                                "config": config,
                                "pattern": pattern,
                                "transducer": kind,
                                "distance_cm": DISTANCE_CM[dist],
                                "angle_deg": angle,
                                "bit_depth": bits,
                                "layout": layout,
                                "onset_sample": onset,
                                "sample_rate": SURREY_RATE,
                                "num_samples": 10 * SURREY_RATE,
                            }
                        )
    files.sort(key=lambda f: f["name"])
    unique = {(f["config"], f["distance_cm"], f["angle_deg"]) for f in files}
    return {
        "root": os.path.basename(root),
        "num_files": len(files),
        "num_measurements": len(unique),
        "microphones": sorted({f["microphone"] for f in files}),
        "configs": sorted({f["config"] for f in files}),
        "files": files,
    }
