"""Synthetic stand-ins for TAU22, MicIRP and the Surrey microphone-IR set, in their real layouts.

``python -m tfrecords_builder synthetic --out DIR [--size tiny|small] [--seed N]`` writes::

    DIR/manifest.json                                    what was written (exact counts)
    DIR/TAU-urban-acoustic-scenes-2022-mobile-development/
        meta.csv, README.md
        audio/<scene>-<city>-<loc>-<seg>-<k>-<device>.wav   1 s, 44.1 kHz, 24 bit, mono
        evaluation_setup/fold1_train.csv, fold1_evaluate.csv, fold1_test.csv
    DIR/TAU-urban-acoustic-scenes-2023-mobile-evaluation/
        README.md, audio/<int>.wav, evaluation_setup/fold1_test.csv   (unlabelled)
    DIR/micirp/<name>.wav                                MicIRP-like vintage-microphone IRs
    DIR/Microphone_Impulse_Responses/...                 Surrey-like multi-angle/distance IRs

Why the corpus shows a seen/unseen-device gap that DIR augmentation can narrow
-----------------------------------------------------------------------------
Scenes (``synthetic_scenes``) differ in spectral colour and in temporal texture. Devices
(``synthetic_devices``) recolour the spectrum. A model trained mostly on device ``a`` (about 70 % of
train) learns colour cues that devices break. The training devices ``b``, ``c``, ``s1``-``s3`` cut
the bass and band-limit the treble. The unseen devices ``s4``-``s6`` (evaluate only, as in TAU22)
are microphones of the same parametric family (``synthetic_mics``) as both synthetic DIR sets:

- a close-up figure-8 ribbon, whose proximity effect boosts the bass;
- a cardioid heard from 150 degrees off axis;
- a vintage dynamic with a sharp resonance.

Training audio never shows these colorations, so accuracy drops on ``s4``-``s6``. Convolving
training audio with the synthetic MicIRP/Surrey IRs shows the model the family's variations
(proximity boosts, off-axis notches, resonances), so invariance learned there can carry over to
the unseen devices. A quick proxy check is a softmax regression on log band statistics of 1-s
clips: 8 training locations per scene, 5-s segments, device ``a`` plus about 10 % of each other
training device. It got macro accuracy real / simulated / unseen = 0.60 / 0.58 / 0.52
without augmentation. With every training segment also convolved with random synthetic DIRs it
got 0.63-0.67 / 0.58-0.61 / 0.53-0.57; in this proxy the vintage set helped most. Whether a
PaSST model shows the paper's ordering of the two DIR sets is for the experiments to tell.

Parallel recordings: as in TAU22, every ``b``/``c``/``s*`` recording is a parallel copy of a
segment (same scene signal, location and segment id), through another device. In ``train``
each segment also has an ``a`` recording. ``meta.csv`` holds a few extra "unused" rows that
neither fold lists.

Everything is deterministic: every recording, location and IR draws from its own
``numpy.random.default_rng([seed, stream, index])``, so the same seed gives byte-identical files.
"""

import json
import os
import shutil
import time

import numpy as np
import scipy.fft

from asc_core.errors import UserError
from asc_core.progress import progress as progress_display
from asc_core.vocab import DEVICES
from asc_core.vocab import SCENES
from asc_core.vocab import TRAIN_DEVICES
from tfrecords_builder.synthetic_devices import DEVICE_MODELS
from tfrecords_builder.synthetic_devices import apply_device
from tfrecords_builder.synthetic_dirs import MICIRP_FILES
from tfrecords_builder.synthetic_dirs import MICIRP_TINY
from tfrecords_builder.synthetic_dirs import SURREY_SMALL
from tfrecords_builder.synthetic_dirs import SURREY_TINY
from tfrecords_builder.synthetic_dirs import write_micirp
from tfrecords_builder.synthetic_dirs import write_surrey
from tfrecords_builder.synthetic_scenes import location_params
from tfrecords_builder.synthetic_scenes import render_scene
from tfrecords_builder.synthetic_wav import write_wav

GENERATOR = "tfrecords_builder.synthetic"
GENERATOR_VERSION = 1
TAU_ROOT = "TAU-urban-acoustic-scenes-2022-mobile-development"
EVAL23_ROOT = "TAU-urban-acoustic-scenes-2023-mobile-evaluation"
MICIRP_ROOT = "micirp"
SURREY_ROOT = "Microphone_Impulse_Responses"
TOP_LEVEL = ("manifest.json", TAU_ROOT, EVAL23_ROOT, MICIRP_ROOT, SURREY_ROOT)

TAU_RATE = 44100
CITIES = (
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)
EVAL23_CITIES = ("amsterdam", "madrid", "lisbon", "paris", "vienna")
OTHER_TRAIN_DEVICES = tuple(d for d in TRAIN_DEVICES if d != "a")


SIZES = {
    "tiny": {
        "train_segments": 12,
        "train_per_other_device": 1,
        "segments_per_location": 2,
        "eval_segments": 10,
        "eval_per_device": 2,
        "unused_segments": 2,
        "eval23_clips": 20,
        "micirp": MICIRP_TINY,
        "surrey": SURREY_TINY,
        "angles": (0, 90, 180),
    },
    "small": {
        "train_segments": 210,
        "train_per_other_device": 18,
        "segments_per_location": 3,
        "eval_segments": 60,
        "eval_per_device": 20,
        "unused_segments": 6,
        "eval23_clips": 120,
        "micirp": MICIRP_FILES,
        "surrey": SURREY_SMALL,
        "angles": tuple(range(0, 360, 45)),
    },
}

# Streams of numpy.random.default_rng([seed, stream, index]).
_PLAN, _LOCATION, _SEGMENT, _DEVICE, _MIC, _MICIRP, _SURREY, _EVAL23 = range(8)


# === Planning ===


def _assign_locations(rng, scenes, per_location, next_location, cities):
    """Groups segments of each scene into locations; returns (location id per segment, cities)."""
    location_of = [None] * len(scenes)
    city_of = {}
    city_cycle = list(rng.permutation(len(cities)))
    for scene in SCENES:
        members = [i for i, s in enumerate(scenes) if s == scene]
        for start in range(0, len(members), per_location):
            loc = next_location()
            city_of[loc] = cities[city_cycle[len(city_of) % len(cities)]]
            for i in members[start : start + per_location]:
                location_of[i] = loc
    return location_of, city_of


def _plan(seed, cfg):
    """Lists the 10-s segments per split with scene, city, location, segment id and devices."""
    rng = np.random.default_rng([seed, _PLAN, 0])
    counter = {"location": int(rng.integers(0, 50)), "segment": int(rng.integers(0, 1000))}

    def next_location():
        counter["location"] += int(rng.integers(1, 40))
        return counter["location"]

    def next_segment():
        counter["segment"] += int(rng.integers(1, 400))
        return counter["segment"]

    segments = []
    for split, count in (
        ("train", cfg["train_segments"]),
        ("evaluate", cfg["eval_segments"]),
        ("unused", cfg["unused_segments"]),
    ):
        scenes = [SCENES[i % len(SCENES)] for i in range(count)]
        rng.shuffle(scenes)
        location_of, city_of = _assign_locations(
            rng, scenes, cfg["segments_per_location"], next_location, CITIES
        )
        devices = [[] for _ in range(count)]
        if split == "train":
            for i in range(count):
                devices[i].append("a")
            for device in OTHER_TRAIN_DEVICES:
                for i in rng.choice(count, cfg["train_per_other_device"], replace=False):
                    devices[i].append(device)
        elif split == "evaluate":
            for device in DEVICES:
                for i in _balanced_choice(rng, scenes, cfg["eval_per_device"]):
                    devices[i].append(device)
        else:  # unused: an `a` recording and one parallel `b` copy, as in meta.csv's spare rows
            for i in range(count):
                devices[i].append("a")
            devices[0].append("b")
        for i in range(count):
            if devices[i]:
                segments.append(
                    {
                        "split": split,
                        "scene": scenes[i],
                        "city": city_of[location_of[i]],
                        "location": location_of[i],
                        "segment": next_segment(),
                        "devices": sorted(devices[i], key=DEVICES.index),
                    }
                )
    return segments


def _balanced_choice(rng, scenes, count):
    """Indices of `count` segments spread evenly over the scenes."""
    by_scene = {s: [i for i, x in enumerate(scenes) if x == s] for s in SCENES}
    chosen = []
    for scene in SCENES:
        pool = by_scene[scene]
        take = min(len(pool), count // len(SCENES))
        chosen.extend(int(i) for i in rng.choice(pool, take, replace=False))
    rest = [i for i in range(len(scenes)) if i not in chosen]
    chosen.extend(int(i) for i in rng.choice(rest, count - len(chosen), replace=False))
    return chosen


# === TAU22 development set ===


def _tau_name(seg, k, device):
    return f"audio/{seg['scene']}-{seg['city']}-{seg['location']}-{seg['segment']}-{k}-{device}.wav"


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def _empty_counts():
    return {d: {s: 0 for s in SCENES} for d in DEVICES}


def _write_tau(root, seed, plan, progress):
    """Renders and writes the development set; returns its manifest section."""
    os.makedirs(os.path.join(root, "audio"))
    os.makedirs(os.path.join(root, "evaluation_setup"))
    locations = {}
    rows = {"train": [], "evaluate": [], "unused": []}
    splits = {
        split: {"clips": _empty_counts(), "recordings": _empty_counts(), "recording_keys": []}
        for split in rows
    }
    for index, seg in enumerate(
        progress_display(plan, desc="TAU22 segments", unit="segment", enabled=progress)
    ):
        loc_key = (seg["scene"], seg["location"])
        if loc_key not in locations:
            loc_rng = np.random.default_rng([seed, _LOCATION, seg["location"]])
            locations[loc_key] = location_params(loc_rng, seg["scene"])
        source = render_scene(
            np.random.default_rng([seed, _SEGMENT, index]),
            locations[loc_key],
            10 * TAU_RATE,
            TAU_RATE,
        )
        spectrum = scipy.fft.rfft(source)
        for device in seg["devices"]:
            dev_rng = np.random.default_rng([seed, _DEVICE, index, DEVICES.index(device)])
            audio = apply_device(source, TAU_RATE, device, dev_rng, spectrum=spectrum)
            for k, part in enumerate(audio.reshape(10, TAU_RATE)):
                name = _tau_name(seg, k, device)
                write_wav(os.path.join(root, name), part, TAU_RATE)
                identifier = f"{seg['city']}-{seg['location']}"
                rows[seg["split"]].append((name, seg["scene"], identifier, device))
            counts = splits[seg["split"]]
            counts["clips"][device][seg["scene"]] += 10
            counts["recordings"][device][seg["scene"]] += 1
            counts["recording_keys"].append(
                f"{seg['scene']}-{seg['city']}-{seg['location']}-{seg['segment']}-{device}"
            )
    for split in rows:
        rows[split].sort()
    header = ("filename", "scene_label", "identifier", "source_label")
    _write_tsv(os.path.join(root, "meta.csv"), header, sorted(sum(rows.values(), [])))
    setup = os.path.join(root, "evaluation_setup")
    _write_tsv(os.path.join(setup, "fold1_train.csv"), header[:2], [r[:2] for r in rows["train"]])
    _write_tsv(
        os.path.join(setup, "fold1_evaluate.csv"), header[:2], [r[:2] for r in rows["evaluate"]]
    )
    _write_tsv(os.path.join(setup, "fold1_test.csv"), header[:1], [r[:1] for r in rows["evaluate"]])
    with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
        f.write(_TAU_README)
    for split, section in splits.items():
        section["recording_keys"].sort()
        section["num_clips"] = len(rows[split])
        section["num_recordings"] = len(section["recording_keys"])
        section["cities"] = sorted({r[2].split("-")[0] for r in rows[split]})
        section["locations"] = sorted({r[2] for r in rows[split]})
        section["devices"] = [d for d in DEVICES if sum(section["clips"][d].values())]
    return {
        "root": TAU_ROOT,
        "sample_rate": TAU_RATE,
        "clip_samples": TAU_RATE,
        "num_meta_rows": sum(len(r) for r in rows.values()),
        "scenes": list(SCENES),
        "devices": list(DEVICES),
        "cities": sorted({city for section in splits.values() for city in section["cities"]}),
        "device_models": json.loads(json.dumps(DEVICE_MODELS)),
        "splits": splits,
    }


_TAU_README = """# Synthetic TAU Urban Acoustic Scenes 2022 Mobile (development) stand-in

Written by `python -m tfrecords_builder synthetic` (keras-asc). Same layout, CSV formats and
file-name pattern as the real set; the audio is synthetic (see tfrecords_builder/synthetic.py).
"""


def _write_eval23(root, seed, count, progress):
    """Anonymised, unlabelled 1-s clips (`audio/<int>.wav`); true labels go to the manifest only."""
    os.makedirs(os.path.join(root, "audio"))
    os.makedirs(os.path.join(root, "evaluation_setup"))
    rng = np.random.default_rng([seed, _EVAL23, 0])
    order = rng.permutation(count)  # anonymised names do not follow the scene order
    truth = {}
    for i in progress_display(range(count), desc="2023 evaluation clips", enabled=progress):
        scene = SCENES[i % len(SCENES)]
        device = DEVICES[int(rng.integers(len(DEVICES)))]
        city = EVAL23_CITIES[int(rng.integers(len(EVAL23_CITIES)))]
        clip_rng = np.random.default_rng([seed, _EVAL23, i + 1])
        source = render_scene(clip_rng, location_params(clip_rng, scene), TAU_RATE, TAU_RATE)
        audio = apply_device(source, TAU_RATE, device, clip_rng)
        name = f"audio/{int(order[i])}.wav"
        write_wav(os.path.join(root, name), audio, TAU_RATE)
        truth[name] = {"scene_label": scene, "source_label": device, "city": city}
    truth = {n: truth[n] for n in sorted(truth, key=lambda n: int(n[6:-4]))}
    names = [f"audio/{i}.wav" for i in range(count)]
    _write_tsv(
        os.path.join(root, "evaluation_setup", "fold1_test.csv"),
        ("filename",),
        [(n,) for n in names],
    )
    with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
        f.write(
            "# Synthetic TAU Urban Acoustic Scenes 2023 Mobile evaluation stand-in\n\n"
            "Unlabelled, anonymised 1-s clips; written by keras-asc's synthetic generator.\n"
        )
    return {"root": EVAL23_ROOT, "num_files": count, "files": names, "truth": truth}


# === Output folder handling ===


def _check_out_dir(out_dir):
    """Refuses to touch a non-empty folder that this generator did not write."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise UserError(
            f"--out {out_dir}: exists and is not a folder; expected a new or empty folder"
        )
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return
    manifest = os.path.join(out_dir, "manifest.json")
    made_by_us = False
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                made_by_us = json.load(f).get("generator") == GENERATOR
        except (OSError, ValueError, AttributeError):
            made_by_us = False
    foreign = [e for e in entries if e not in TOP_LEVEL]
    if not made_by_us or foreign:
        what = f"holds {foreign[0]!r}" if foreign else "has no synthetic manifest.json"
        raise UserError(
            f"--out {out_dir}: folder is not empty and was not written by the synthetic "
            f"generator ({what}); expected a new, empty or previously generated folder"
        )


# === Public API ===


def generate_corpus(out_dir, size="tiny", seed=0, progress=False):
    """Writes the synthetic corpus to `out_dir` and returns its manifest.

    The folder is built under a temporary sibling name and renamed into place at the end, so an
    interrupted run never leaves a half-written corpus at `out_dir`. A folder that a previous
    run of this generator wrote is replaced; any other non-empty folder is refused.

    Args:
        out_dir: output folder (created).
        size: `"tiny"` (a few seconds, for tests) or `"small"` (thousands of clips, for demos).
        seed: integer seed; the same seed gives byte-identical files.
        progress: show progress (a bar on a terminal, plain lines otherwise).

    Returns:
        dict, the content of `out_dir/manifest.json`.

    Raises:
        UserError: unknown size, negative seed, or a foreign non-empty `out_dir`.
    """
    if size not in SIZES:
        raise UserError(f"--size {size!r}: unknown corpus size; expected one of {sorted(SIZES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"--seed {seed!r}: expected a non-negative integer")
    seed = int(seed)
    out_dir = os.path.abspath(out_dir)
    _check_out_dir(out_dir)
    cfg = SIZES[size]
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.partial-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        started = time.perf_counter()
        plan = _plan(seed, cfg)
        manifest = {
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "size": size,
            "seed": seed,
            "tau22": _write_tau(os.path.join(tmp, TAU_ROOT), seed, plan, progress),
            "eval23": _write_eval23(
                os.path.join(tmp, EVAL23_ROOT), seed, cfg["eval23_clips"], progress
            ),
            "micirp": write_micirp(os.path.join(tmp, MICIRP_ROOT), [seed, _MICIRP], cfg["micirp"]),
            "surrey": write_surrey(
                os.path.join(tmp, SURREY_ROOT),
                [seed, _MIC],
                [seed, _SURREY],
                cfg["surrey"],
                cfg["angles"],
            ),
        }
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        if progress:
            print(f"synthetic corpus written in {time.perf_counter() - started:.1f} s")
        if os.path.exists(out_dir):
            old = tmp + ".old"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return manifest


def add_arguments(parser):
    """Adds the `synthetic` sub-command's options to an `argparse` parser."""
    parser.add_argument("--out", required=True, help="output folder (new, empty or generated)")
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES), help="corpus size")
    parser.add_argument("--seed", type=int, default=0, help="random seed (non-negative)")


def run(args):
    """Runs the sub-command for parsed `args` (from `add_arguments`); returns the exit code."""
    manifest = generate_corpus(args.out, size=args.size, seed=args.seed, progress=True)
    splits = manifest["tau22"]["splits"]
    print(
        f"{args.out}: TAU22 train {splits['train']['num_clips']} / evaluate "
        f"{splits['evaluate']['num_clips']} clips, 2023 evaluation "
        f"{manifest['eval23']['num_files']}, MicIRP {manifest['micirp']['num_files']}, "
        f"Surrey {manifest['surrey']['num_files']} files"
    )
    return 0
