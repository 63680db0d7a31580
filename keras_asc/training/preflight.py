"""Checks every input of a training config before a run writes anything.

A config names up to three kinds of inputs: the ``tau22`` TFRecords (``data.path``), the DIR
sets (``dirs.sets``) and a weights file (``model.weights``). :func:`check_inputs` looks at all of
them and raises one ``UserError`` that lists every missing one with its absolute path and the
commands that make it, so a new user fixes them in one go (the full path with sizes and times:
``docs/real_data.md``).
"""

import glob
import os

from asc_core.errors import UserError

REAL_DATA_DOC = "docs/real_data.md"
TAU22_FOLDER = "TAU-urban-acoustic-scenes-2022-mobile-development"

# DIR sets the builders make, by the folder name the shipped configs use:
# (download name, folder the download extracts under data/raw, builder command).
_DIR_SOURCES = {
    "micirp": ("micirp", "micirp", "micirp"),
    "multi_dirs": ("multi-dirs", "Microphone_Impulse_Responses", "multi-dirs"),
}


def check_inputs(config, raw_root="data/raw"):
    """Raises one ``UserError`` naming every missing input of ``config`` (else returns None).

    Args:
        config: dict, a resolved config.
        raw_root: str, where the suggested download commands put the raw sets (made absolute).

    Raises:
        UserError: a multi-line message: per missing input the config key, the absolute path,
            what is wrong and the commands that make it; then a pointer to docs/real_data.md.
    """
    raw = os.path.abspath(raw_root)
    problems = []
    data = config["data"]
    problem = _tau22_problem(data)
    if problem is not None:
        path = os.path.abspath(data["path"])
        problems.append(
            (
                f"data.path {path}: {problem}",
                [
                    f"python -m tfrecords_builder download tau22 --to {raw}",
                    f"python -m tfrecords_builder tau22 --source {os.path.join(raw, TAU22_FOLDER)} "
                    f"--out {path}",
                ],
            )
        )
    for path in (config.get("dirs") or {}).get("sets") or []:
        problem = _dir_problem(path)
        if problem is not None:
            path = os.path.abspath(path)
            problems.append((f"dirs.sets {path}: {problem}", _dir_commands(path, raw)))
    weights = (config.get("model") or {}).get("weights")
    preset = (config.get("model") or {}).get("preset")
    if weights == "audioset" and not _has_checkpoint(preset):
        problems.append(
            (
                f"model.weights audioset: preset {preset!r} has no released weights",
                [
                    "set model.weights: null (random start) or model.preset to an official "
                    "checkpoint"
                ],
            )
        )
    if isinstance(weights, str) and weights != "audioset" and not os.path.isfile(weights):
        path = os.path.abspath(weights)
        problems.append(
            (
                f"model.weights {path}: no such file",
                [
                    "python scripts/convert_passt_checkpoint.py --checkpoint "
                    f"passt-s-f128-p16-s10-ap.476-swa.pt --out {path} --num-classes 10",
                    "(or set model.weights: audioset to download and convert the official "
                    "checkpoint once into the weights cache)",
                ],
            )
        )
    if not problems:
        return
    lines = [
        f"cannot start training: {len(problems)} missing input"
        f"{'s' if len(problems) > 1 else ''} (nothing was written)"
    ]
    for number, (what, commands) in enumerate(problems, 1):
        lines.append(f"  {number}. {what}")
        lines.append("     make it with:")
        lines += [f"       {command}" for command in commands]
    note = _weights_note(config)
    if note:
        lines.append(f"  note: {note}")
    lines.append(
        f"  The whole path from download to training, with sizes and times: {REAL_DATA_DOC}"
    )
    raise UserError("\n".join(lines))


def _tau22_problem(data):
    """What is missing in the ``tau22`` folder of the ``data`` section, or None."""
    path = data["path"]
    if not os.path.isdir(path):
        return "TFRecord folder not found"
    wanted = [
        (data.get("train_split", "train"), data.get("train_view", "10s")),
        (data.get("eval_split", "evaluate"), "1s"),
    ]
    missing = [
        f"{split}-{view}.tfrecord-*"
        for split, view in wanted
        if not glob.glob(os.path.join(glob.escape(path), f"{split}-{view}.tfrecord-*"))
    ]
    if missing:
        return f"no shards {', '.join(missing)} (an unfinished or other build?)"
    return None


def _dir_problem(path):
    if not os.path.isdir(path):
        return "DIR folder not found"
    if not glob.glob(os.path.join(glob.escape(path), "dirs.tfrecord-*")):
        return "no dirs.tfrecord-* shards (an unfinished or other build?)"
    return None


def _dir_commands(path, raw):
    source = _DIR_SOURCES.get(os.path.basename(os.path.normpath(path)))
    if source is None:
        return [
            f"python -m tfrecords_builder download micirp --to {raw}  (or multi-dirs)",
            f"python -m tfrecords_builder micirp --source {os.path.join(raw, 'micirp')} "
            f"--out {path}  (or multi-dirs --source "
            f"{os.path.join(raw, 'Microphone_Impulse_Responses')})",
        ]
    download, folder, builder = source
    return [
        f"python -m tfrecords_builder download {download} --to {raw}",
        f"python -m tfrecords_builder {builder} --source {os.path.join(raw, folder)} --out {path}",
    ]


def _has_checkpoint(preset):
    from keras_asc.models.passt_presets import passt_presets

    return preset not in passt_presets or passt_presets[preset].get("checkpoint") is not None


def _weights_note(config):
    """Says that ``model.weights: audioset`` is not cached yet (the start downloads it)."""
    model = config.get("model") or {}
    if model.get("weights") != "audioset" or not _has_checkpoint(model.get("preset")):
        return None
    from keras_asc.models.weights_cache import cache_root
    from keras_asc.models.weights_cache import checkpoint_bytes

    try:
        size = checkpoint_bytes(model["preset"])
    except (KeyError, UserError):
        return None
    converted = cache_root() / "converted"
    if glob.glob(os.path.join(glob.escape(str(converted)), f"{model['preset']}-*.weights.h5")):
        return None
    return (
        f"model.weights: audioset is not in the weights cache {cache_root().resolve()} yet; the "
        f"first start downloads about {size / 2**20:,.0f} MiB (internet needed) and converts it "
        "once"
    )
