"""Device probe (paper §5.4, Table 2): how much device information a frozen embedding carries.

The encoder is frozen: we only read its ``embedding`` output. A device classifier with the scene
head's capacity (``LayerNormalization`` + ``Dense``, as ``SceneClassifier``'s head) is trained
with the default Adam optimizer and a class-balanced cross-entropy until the balanced loss on
held-out clips stops improving (early stopping, best weights restored). The reported number is
the balanced accuracy (mean per-device recall) against chance ``1 / num_devices``.

Two protocols:

- ``paper`` (:func:`paper_probe`, the default): as in the paper, the probe is fit on the
  TRAINING split's embeddings of the six training devices (device-imbalanced, device ``a``
  ≈ 70 %, hence the balanced loss), early-stopped on held-out training recordings (whole 10-s
  recordings, so early stopping never sees a recording the fit set has seen), and tested on EVERY
  ``evaluate`` clip of those devices. One fit is noisy, so it is repeated for several probe seeds
  (split, initialisation, batch order) and reported as mean, s.d. and a t-based 95 % interval.
  The interval is over probe seeds for one frozen encoder; it says how precisely that encoder
  was measured, not how much encoders of other training seeds differ.
- ``evaluate`` (:func:`device_probe`, secondary): the earlier protocol, fit / early-stop / test
  on a 60/20/20 split of the ``evaluate`` clips (by 10-s recording when ``groups`` are given).
  The evaluate split is already device balanced and its test part has few recordings per
  device, so it is much noisier; kept for comparison with earlier results.
"""

import os

import numpy as np

from asc_core.errors import UserError
from asc_core.files import write_json
from asc_core.vocab import DEVICES
from asc_core.vocab import TRAIN_DEVICES
from keras_asc.evaluation.probe_model import layer_norm
from keras_asc.evaluation.probe_model import score_probe
from keras_asc.evaluation.probe_model import train_probe
from keras_asc.evaluation.probe_splits import holdout_split
from keras_asc.evaluation.probe_splits import split_indices


def _checked(embeddings, device_ids, embeddings_name, ids_name):
    """``embeddings`` as ``[N, D]`` float64 and ``device_ids`` as ``[N]`` int64, or ValueError."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    device_ids = np.asarray(device_ids, dtype=np.int64)
    if embeddings.ndim != 2 or device_ids.shape != (embeddings.shape[0],):
        raise ValueError(
            f"{embeddings_name} must be [N, D] and {ids_name} [N]; got {embeddings.shape} and "
            f"{device_ids.shape}"
        )
    return embeddings, device_ids


def _probe_classes(device_ids, device_names, what):
    """The sorted device ids present (the probe's classes) and their names; two are needed."""
    present = np.unique(device_ids)
    names = [device_names[i] for i in present]
    if present.shape[0] < 2:
        raise UserError(f"device probe: needs {what} of at least 2 devices, got {names}")
    return present, names


def device_probe(
    embeddings,
    device_ids,
    groups=None,
    device_names=DEVICES,
    seed=0,
    fractions=(0.6, 0.2, 0.2),
    learning_rate=1e-3,
    batch_size=256,
    max_epochs=1000,
    patience=20,
):
    """Trains the device probe on frozen embeddings and measures it on held-out clips.

    The probe is trained in NumPy (mini-batch Adam with Keras' defaults): with the encoder
    frozen it is a LayerNorm + Dense on fixed inputs, and Keras' per-epoch overhead would dominate
    the run time of a few hundred tiny epochs.

    Args:
        embeddings: ``[N, D]`` float embeddings.
        device_ids: ``[N]`` int ids indexing ``device_names`` (only the devices present are
            classes; chance is ``1 / number present``).
        groups: optional ``[N]`` recording keys for a grouped split (see :func:`split_indices`).
        device_names: names of the device ids.
        seed: split, initialisation and batching seed.
        fractions: fit / early-stopping / test shares.
        learning_rate: Adam learning rate (Keras' default 1e-3).
        batch_size: mini-batch size.
        max_epochs: upper bound on epochs; training normally ends by early stopping.
        patience: epochs without improvement of the held-out balanced loss before stopping.

    Returns:
        A JSON-ready dict: ``balanced_accuracy`` (test part), ``accuracy`` (test, pooled),
        ``chance``, ``devices`` (probe classes, in order), ``recall`` (per device),
        ``confusion_matrix`` (rows true), ``counts`` (fit/stop/test clips), ``epochs``
        (trained), ``best_epoch``, ``early_stopped`` (False: ``max_epochs`` ended it),
        ``stop_loss`` (best held-out balanced loss), ``seed``.
    """
    embeddings, device_ids = _checked(embeddings, device_ids, "embeddings", "device_ids")
    present, names = _probe_classes(device_ids, device_names, "clips")
    labels = np.searchsorted(present, device_ids)
    num_classes = present.shape[0]
    fit, stop, test = split_indices(labels, groups, fractions, seed, class_names=names)
    normed = layer_norm(embeddings)
    trained = train_probe(
        normed, labels, fit, stop, num_classes, seed, learning_rate, batch_size, max_epochs,
        patience,
    )  # fmt: skip
    return {
        **score_probe(trained["params"], normed[test], labels[test], names),
        "chance": 1.0 / num_classes,
        "devices": names,
        "counts": {"fit": int(fit.size), "stop": int(stop.size), "test": int(test.size)},
        **{k: v for k, v in trained.items() if k != "params"},
        "seed": seed,
    }


def paper_probe(
    train_embeddings,
    train_device_ids,
    test_embeddings,
    test_device_ids,
    train_groups=None,
    seeds=5,
    device_names=DEVICES,
    stop_fraction=0.2,
    level=0.95,
    learning_rate=1e-3,
    batch_size=256,
    max_epochs=1000,
    patience=20,
):
    """The paper's protocol: fit on training embeddings, test on every validation clip.

    For each probe seed: a fresh fit / early-stopping split of the training clips
    (:func:`holdout_split`, by ``train_groups`` when given), a fresh initialisation and batch
    order, class-balanced training (:func:`train_probe`) and a score on all test clips.

    Args:
        train_embeddings: ``[N, D]`` embeddings of training-split clips.
        train_device_ids: ``[N]`` ids indexing ``device_names``; the devices present are the
            probe's classes (chance ``1 / number present``).
        test_embeddings: ``[M, D]`` embeddings of the validation clips (every one is scored).
        test_device_ids: ``[M]`` ids; each must be one of the training devices.
        train_groups: optional ``[N]`` 10-s recording keys of the training clips.
        seeds: number of probe seeds (0 .. seeds-1) or a list of seeds.
        device_names: names of the device ids.
        stop_fraction: share of each device's training recordings held out for early stopping.
        level: coverage of the t interval over seeds.
        learning_rate, batch_size, max_epochs, patience: see :func:`device_probe`.

    Returns:
        A JSON-ready dict: ``protocol`` ("paper"), ``balanced_accuracy`` (mean over seeds, the
        Table 2 number), ``balanced_accuracy_sd``, ``balanced_accuracy_ci`` (``[low, high]`` or
        None with one seed), ``level``, ``accuracy`` (mean pooled accuracy), ``chance``,
        ``devices``, ``recall`` (mean per device), ``counts`` (``train``, ``test`` clips),
        ``per_seed`` (per seed: ``seed``, ``balanced_accuracy``, ``accuracy``, ``recall``,
        ``confusion_matrix``, ``counts`` fit/stop, ``epochs``, ``best_epoch``,
        ``early_stopped``, ``stop_loss``).
    """
    from keras_asc.evaluation.stats import t_interval

    train_embeddings, train_device_ids = _checked(
        train_embeddings, train_device_ids, "train embeddings", "device ids"
    )
    test_embeddings, test_device_ids = _checked(
        test_embeddings, test_device_ids, "test embeddings", "device ids"
    )
    if train_embeddings.shape[1] != test_embeddings.shape[1]:
        raise ValueError(
            f"train and test embeddings differ in width: {train_embeddings.shape[1]} vs "
            f"{test_embeddings.shape[1]}"
        )
    present, names = _probe_classes(train_device_ids, device_names, "training clips")
    unseen = sorted(set(np.unique(test_device_ids).tolist()) - set(present.tolist()))
    if unseen:
        raise UserError(
            f"device probe: test clips of devices {[device_names[i] for i in unseen]} that have "
            f"no training clip (probe classes: {[device_names[i] for i in present]})"
        )
    num_classes = len(names)
    train_labels = np.searchsorted(present, train_device_ids)
    test_labels = np.searchsorted(present, test_device_ids)
    train_normed = layer_norm(train_embeddings)
    test_normed = layer_norm(test_embeddings)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("paper_probe needs at least one seed")
    per_seed = []
    for seed in seed_list:
        fit, stop = holdout_split(train_labels, train_groups, stop_fraction, seed, names)
        trained = train_probe(
            train_normed, train_labels, fit, stop, num_classes, seed, learning_rate, batch_size,
            max_epochs, patience,
        )  # fmt: skip
        per_seed.append({
            "seed": seed,
            **score_probe(trained["params"], test_normed, test_labels, names),
            "counts": {"fit": int(fit.size), "stop": int(stop.size)},
            **{k: v for k, v in trained.items() if k != "params"},
        })  # fmt: skip
    balanced = t_interval([r["balanced_accuracy"] for r in per_seed], level)
    recall = {}
    for name in names:
        values = [r["recall"][name] for r in per_seed if r["recall"][name] is not None]
        recall[name] = float(np.mean(values)) if values else None
    return {
        "protocol": "paper",
        "balanced_accuracy": balanced["mean"],
        "balanced_accuracy_sd": balanced["sd"],
        "balanced_accuracy_ci": None
        if balanced["low"] is None
        else [balanced["low"], balanced["high"]],
        "level": level,
        "accuracy": float(np.mean([r["accuracy"] for r in per_seed])),
        "chance": 1.0 / num_classes,
        "devices": names,
        "recall": recall,
        "counts": {"train": int(train_labels.size), "test": int(test_labels.size)},
        "seeds": seed_list,
        "per_seed": per_seed,
    }


def train_device_mask(device_ids, device_names=DEVICES, devices=TRAIN_DEVICES):
    """``[N]`` bool: clips recorded by one of ``devices`` (the six training devices)."""
    wanted = [device_names.index(d) for d in devices]
    return np.isin(np.asarray(device_ids), wanted)


# === Run directories ===


PROTOCOLS = ("paper", "evaluate")
# Where each protocol's result goes, in RUN_DIR/eval/<split>/.
PROBE_FILES = {"paper": "probe.json", "evaluate": "probe_evaluate.json"}


def _embed(run_io, model, data_path, split, batch_size, max_examples, devices, progress):
    predicted = run_io.predict_clips(
        model, data_path, split, batch_size=batch_size, max_examples=max_examples,
        embeddings=True, progress=progress,
    )  # fmt: skip
    mask = train_device_mask(predicted["device_id"], devices=devices)
    if not mask.any():
        raise UserError(
            f"{data_path}: split {split!r} has no clip of the devices {', '.join(devices)} "
            "(device labels are needed for the probe)"
        )
    return {
        "embedding": predicted["embedding"][mask],
        "device_id": predicted["device_id"][mask],
        "group": np.asarray(predicted["group"])[mask],
    }


def probe_run(
    run,
    split="evaluate",
    data=None,
    batch_size=64,
    max_examples=None,
    seed=0,
    devices=TRAIN_DEVICES,
    split_by="recording",
    progress=True,
    protocol="paper",
    train_split="train",
    probe_seeds=5,
    **probe_kwargs,
):
    """Device probe of one run directory's frozen encoder (paper Table 2).

    ``protocol="paper"``: embeds the ``train_split`` and ``split`` clips of ``devices``, fits the
    probe on the former (early stopping on held-out 10-s recordings, or clips with
    ``split_by="clip"``) for ``probe_seeds`` seeds ``seed, seed + 1, ...`` and tests each on all
    of the latter (:func:`paper_probe`); writes ``RUN_DIR/eval/<split>/probe.json``.
    ``protocol="evaluate"``: the earlier 60/20/20 split of the ``split`` clips alone
    (:func:`device_probe`, one seed); writes ``probe_evaluate.json``.

    Returns:
        The :func:`paper_probe` or :func:`device_probe` result plus ``protocol``, ``run``,
        ``run_dir``, ``split``, ``data``, ``num_clips``, ``split_by``, ``embedding_dim``
        (and ``train_split`` for the paper protocol).
    """
    from keras_asc.evaluation import runs as run_io

    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    data_path = run.data_path(data)
    run_io.check_split(data_path, split)
    if protocol == "paper":
        run_io.check_split(data_path, train_split)
    model = run.load_model()
    test = _embed(run_io, model, data_path, split, batch_size, max_examples, devices, progress)
    by_group = split_by == "recording"
    if protocol == "paper":
        train = _embed(
            run_io, model, data_path, train_split, batch_size, max_examples, devices, progress
        )
        result = paper_probe(
            train["embedding"], train["device_id"], test["embedding"], test["device_id"],
            train_groups=train["group"] if by_group else None,
            seeds=list(range(seed, seed + probe_seeds)), **probe_kwargs,
        )  # fmt: skip
        result["train_split"] = train_split
    else:
        result = device_probe(
            test["embedding"], test["device_id"], groups=test["group"] if by_group else None,
            seed=seed, **probe_kwargs,
        )  # fmt: skip
        result["protocol"] = "evaluate"
    result.update(
        {
            "run": run.name,
            "run_dir": run.path,
            "split": split,
            "data": data_path,
            "num_clips": int(test["device_id"].shape[0]),
            "split_by": split_by,
            "embedding_dim": int(test["embedding"].shape[1]),
        }
    )
    path = os.path.join(run_io.eval_dir(run.path, split), PROBE_FILES[protocol])
    write_json(path, result)
    return result
