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

HEAD_EPSILON = 1e-5  # PaSST's head LayerNorm (torch default eps), like the scene head.


def balanced_class_weights(labels, num_classes):
    """Per-class weights ``N / (K * n_k)`` over the ``K`` classes present; 0 for absent ones.

    With these weights every present class contributes the same total weight to the loss.

    Args:
        labels: ``[N]`` int class ids in ``[0, num_classes)``.
        num_classes: number of classes.

    Returns:
        ``[num_classes]`` float64 weights.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def split_indices(labels, groups=None, fractions=(0.6, 0.2, 0.2), seed=0, class_names=None):
    """Stratified fit / early-stopping / test split, by group when ``groups`` are given.

    Args:
        labels: ``[N]`` int class ids.
        groups: optional ``[N]`` group keys (strings or ints); a group never spans two parts.
        fractions: the three parts' shares of each class's groups (normalised).
        seed: shuffling seed.
        class_names: names of the label ids, for error messages.

    Returns:
        Three sorted int arrays of indices (fit, stop, test).

    Raises:
        UserError: a class has fewer than three groups (or clips), so some part would lack it.
    """
    labels = np.asarray(labels)
    fractions = np.asarray(fractions, dtype=np.float64)
    fractions = fractions / fractions.sum()
    parts = ([], [], [])
    classes = _shuffled_groups_per_class(
        labels, groups, seed, class_names, 3, "", "fit, early-stop and test the probe"
    )
    for members, member_groups, keys in classes:
        # At least one group per part; the rest by the fractions.
        n_stop = max(1, int(round(fractions[1] * keys.shape[0])))
        n_test = max(1, int(round(fractions[2] * keys.shape[0])))
        n_fit = keys.shape[0] - n_stop - n_test
        if n_fit < 1:
            n_fit, n_stop, n_test = 1, 1, keys.shape[0] - 2
        bounds = np.cumsum([n_fit, n_stop])
        for part, chosen in zip(parts, np.split(keys, bounds)):
            part.append(members[np.isin(member_groups, chosen)])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def _shuffled_groups_per_class(labels, groups, seed, class_names, minimum, what, purpose):
    """Per class: its indices, their groups and the class's distinct groups, shuffled.

    Yields ``(members, member_groups, keys)``; ``groups`` None makes every clip its own group.

    Raises:
        UserError: a class has fewer than ``minimum`` groups (the message says ``purpose``).
    """
    groups_are_clips = groups is None
    groups = np.arange(labels.shape[0]) if groups_are_clips else np.asarray(groups)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keys = np.unique(groups[members])
        if keys.shape[0] < minimum:
            unit = "clip(s)" if groups_are_clips else "10-s recording(s)"
            name = class_names[label] if class_names is not None else f"class {label}"
            raise UserError(
                f"device probe: {name} has {keys.shape[0]} {what}{unit}; at least {minimum} are "
                f"needed to {purpose}"
                + ("" if groups_are_clips else " (or split by clip: --split-by clip)")
            )
        yield members, groups[members], keys[rng.permutation(keys.shape[0])]


def layer_norm(x, epsilon=HEAD_EPSILON):
    """Per-row standardisation ``(x - mean) / sqrt(var + eps)`` (LayerNorm without its affine)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


def init_probe(embedding_dim, num_classes, seed=0):
    """Initial probe parameters: LayerNorm ``gamma=1, beta=0``; Glorot-uniform kernel, zero bias.

    Returns:
        dict ``gamma [D]``, ``beta [D]``, ``kernel [D, K]``, ``bias [K]`` (float64), the same
        parameters and initialisation as ``keras.layers.LayerNormalization`` + ``Dense``.
    """
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6.0 / (embedding_dim + num_classes))
    return {
        "gamma": np.ones(embedding_dim),
        "beta": np.zeros(embedding_dim),
        "kernel": rng.uniform(-limit, limit, size=(embedding_dim, num_classes)),
        "bias": np.zeros(num_classes),
    }


def probe_logits(params, normed):
    """Logits ``[N, K]`` of the probe on LayerNorm-standardised embeddings ``normed [N, D]``."""
    return (normed * params["gamma"] + params["beta"]) @ params["kernel"] + params["bias"]


def weighted_loss_and_grads(params, normed, labels, sample_weights):
    """Weighted softmax cross-entropy ``sum(w_i * ce_i) / N`` and its parameter gradients.

    The LayerNorm input is the frozen embedding, so its standardisation is computed once
    (``normed``) and only the affine parameters, kernel and bias get gradients.
    """
    hidden = normed * params["gamma"] + params["beta"]
    logits = hidden @ params["kernel"] + params["bias"]
    logits = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits).sum(axis=1))
    rows = np.arange(labels.shape[0])
    losses = log_z - logits[rows, labels]
    n = labels.shape[0]
    loss = float((sample_weights * losses).sum() / n)
    d_logits = np.exp(logits - log_z[:, None])
    d_logits[rows, labels] -= 1.0
    d_logits *= (sample_weights / n)[:, None]
    d_hidden = d_logits @ params["kernel"].T
    grads = {
        "kernel": hidden.T @ d_logits,
        "bias": d_logits.sum(axis=0),
        "gamma": (d_hidden * normed).sum(axis=0),
        "beta": d_hidden.sum(axis=0),
    }
    return loss, grads


class _Adam:
    """Adam with Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7)."""

    def __init__(self, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.step = 0
        self.m, self.v = {}, {}

    def apply(self, params, grads):
        self.step += 1
        b1, b2 = self.beta_1, self.beta_2
        # Keras folds the bias corrections into the learning rate.
        lr = self.learning_rate * np.sqrt(1 - b2**self.step) / (1 - b1**self.step)
        for key, grad in grads.items():
            m = self.m.get(key, 0.0) * b1 + (1 - b1) * grad
            v = self.v.get(key, 0.0) * b2 + (1 - b2) * grad**2
            self.m[key], self.v[key] = m, v
            params[key] = params[key] - lr * m / (np.sqrt(v) + self.epsilon)


def build_probe(embedding_dim, num_classes, epsilon=HEAD_EPSILON):
    """The probe as a Keras model (``LayerNormalization`` + ``Dense``), e.g. to deploy it.

    ``[B, embedding_dim]`` → ``[B, num_classes]`` logits; load trained NumPy parameters with
    ``model.set_weights([gamma, beta, kernel, bias])``.
    """
    import keras

    return keras.Sequential(
        [
            keras.Input((embedding_dim,)),
            keras.layers.LayerNormalization(epsilon=epsilon, name="probe_norm"),
            keras.layers.Dense(num_classes, name="probe_logits"),
        ],
        name="device_probe",
    )


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
    embeddings = np.asarray(embeddings, dtype=np.float64)
    device_ids = np.asarray(device_ids, dtype=np.int64)
    if embeddings.ndim != 2 or device_ids.shape != (embeddings.shape[0],):
        raise ValueError(
            f"embeddings must be [N, D] and device_ids [N]; got {embeddings.shape} and "
            f"{device_ids.shape}"
        )
    present = np.unique(device_ids)
    if present.shape[0] < 2:
        raise UserError(
            f"device probe: needs clips of at least 2 devices, got "
            f"{[device_names[i] for i in present]}"
        )
    labels = np.searchsorted(present, device_ids)
    num_classes = present.shape[0]
    names = [device_names[i] for i in present]
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


def train_probe(
    normed, labels, fit, stop, num_classes, seed=0, learning_rate=1e-3, batch_size=256,
    max_epochs=1000, patience=20,
):  # fmt: skip
    """Mini-batch Adam on the balanced CE of ``fit``, early-stopped on the balanced CE of ``stop``.

    Args:
        normed: ``[N, D]`` LayerNorm-standardised embeddings (:func:`layer_norm`).
        labels: ``[N]`` class ids in ``[0, num_classes)``.
        fit, stop: index arrays into ``normed`` (disjoint).
        num_classes: number of probe classes.
        seed: initialisation and batch-order seed.
        learning_rate, batch_size, max_epochs, patience: see :func:`device_probe`.

    Returns:
        dict ``params`` (the best epoch's), ``epochs`` (trained), ``best_epoch``,
        ``early_stopped`` (False: ``max_epochs`` ended it), ``stop_loss``.
    """
    class_w = balanced_class_weights(labels[fit], num_classes)
    stop_w = balanced_class_weights(labels[stop], num_classes)[labels[stop]]
    rng = np.random.default_rng(seed)
    params = init_probe(normed.shape[1], num_classes, seed=seed)
    optimizer = _Adam(learning_rate)
    best = (np.inf, 0, {k: v.copy() for k, v in params.items()})
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        order = fit[rng.permutation(fit.size)]
        weights = class_w[labels[order]]
        for start in range(0, order.size, batch_size):
            batch = slice(start, start + batch_size)
            _, grads = weighted_loss_and_grads(
                params, normed[order[batch]], labels[order[batch]], weights[batch]
            )
            optimizer.apply(params, grads)
        stop_loss, _ = weighted_loss_and_grads(params, normed[stop], labels[stop], stop_w)
        if stop_loss < best[0]:
            best = (stop_loss, epoch, {k: v.copy() for k, v in params.items()})
        elif epoch - best[1] >= patience:
            break
    stop_loss, best_epoch, params = best
    return {
        "params": params,
        "epochs": epoch,
        "best_epoch": best_epoch,
        "early_stopped": epoch - best_epoch >= patience,
        "stop_loss": float(stop_loss),
    }


def score_probe(params, normed, labels, names):
    """Balanced accuracy, accuracy, per-class recall and confusion matrix (rows true).

    Classes without a test clip get recall None and are left out of the balanced accuracy.
    """
    num_classes = len(names)
    predictions = probe_logits(params, normed).argmax(axis=1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    totals = matrix.sum(axis=1)
    recall = [float(matrix[k, k] / totals[k]) if totals[k] else None for k in range(num_classes)]
    present = [r for r in recall if r is not None]
    return {
        "balanced_accuracy": float(np.mean(present)),
        "accuracy": float((predictions == labels).mean()),
        "recall": dict(zip(names, recall)),
        "confusion_matrix": matrix.tolist(),
    }


def holdout_split(labels, groups=None, stop_fraction=0.2, seed=0, class_names=None):
    """Fit / early-stopping split of the training clips, stratified, by group when given.

    Per class, ``round(stop_fraction * groups)`` groups (at least one) go to the early-stopping
    part and the rest (at least one) to the fit part; a group (10-s recording) never spans both.

    Args:
        labels: ``[N]`` int class ids.
        groups: optional ``[N]`` group keys; None: every clip is its own group.
        stop_fraction: share of each class's groups held out for early stopping.
        seed: shuffling seed.
        class_names: names of the label ids, for error messages.

    Returns:
        Two sorted int arrays of indices (fit, stop).

    Raises:
        UserError: a class has fewer than two groups.
    """
    labels = np.asarray(labels)
    if not 0 < stop_fraction < 1:
        raise ValueError(f"stop_fraction must be in (0, 1), got {stop_fraction}")
    fit, stop = [], []
    classes = _shuffled_groups_per_class(
        labels, groups, seed, class_names, 2, "training ", "fit and early-stop the probe"
    )
    for members, member_groups, keys in classes:
        n_stop = min(keys.shape[0] - 1, max(1, int(round(stop_fraction * keys.shape[0]))))
        held = np.isin(member_groups, keys[:n_stop])
        stop.append(members[held])
        fit.append(members[~held])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(stop))


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

    train_embeddings = np.asarray(train_embeddings, dtype=np.float64)
    test_embeddings = np.asarray(test_embeddings, dtype=np.float64)
    train_device_ids = np.asarray(train_device_ids, dtype=np.int64)
    test_device_ids = np.asarray(test_device_ids, dtype=np.int64)
    for what, emb, ids in (("train", train_embeddings, train_device_ids),
                           ("test", test_embeddings, test_device_ids)):  # fmt: skip
        if emb.ndim != 2 or ids.shape != (emb.shape[0],):
            raise ValueError(
                f"{what} embeddings must be [N, D] and device ids [N]; got {emb.shape} and "
                f"{ids.shape}"
            )
    if train_embeddings.shape[1] != test_embeddings.shape[1]:
        raise ValueError(
            f"train and test embeddings differ in width: {train_embeddings.shape[1]} vs "
            f"{test_embeddings.shape[1]}"
        )
    present = np.unique(train_device_ids)
    if present.shape[0] < 2:
        raise UserError(
            f"device probe: needs training clips of at least 2 devices, got "
            f"{[device_names[i] for i in present]}"
        )
    unseen = sorted(set(np.unique(test_device_ids).tolist()) - set(present.tolist()))
    if unseen:
        raise UserError(
            f"device probe: test clips of devices {[device_names[i] for i in unseen]} that have "
            f"no training clip (probe classes: {[device_names[i] for i in present]})"
        )
    names = [device_names[i] for i in present]
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


# === Command line (scripts/probe_devices.py) ===


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


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="probe_devices.py",
        description="Device probe (paper Table 2): how well a LayerNorm+Dense classifier "
        "recognises the six training devices from the frozen embedding.",
    )
    parser.add_argument(
        "--run",
        nargs="+",
        required=True,
        metavar="RUN_DIR",
        help="run directories (several = seeds of one method)",
    )
    parser.add_argument("--split", default="evaluate", help="TFRecord split (default: evaluate)")
    parser.add_argument("--data", help="TFRecord folder (default: data.path of config.yaml)")
    parser.add_argument("--out", help="combined JSON")
    parser.add_argument("--name", help="method name in the table (default: the run's name)")
    parser.add_argument("--seed", type=int, default=0, help="first split/initialisation seed")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="paper",
        help="paper (default): fit on the training split, test on every --split clip; "
        "evaluate: the earlier 60/20/20 split of the --split clips",
    )
    parser.add_argument("--train-split", default="train", help="the paper protocol's fit split")
    parser.add_argument(
        "--probe-seeds", type=int, default=5, help="probe seeds of the paper protocol (default 5)"
    )
    parser.add_argument(
        "--split-by",
        choices=("recording", "clip"),
        default="recording",
        help="keep each 10-s recording in one part (default) or split clips",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-examples", type=int, help="only the first N clips")
    return parser


def describe(name, result):
    """One line about a probe result (either protocol)."""
    recall = ", ".join(f"{d} {100 * r:.1f}" for d, r in result["recall"].items() if r is not None)
    text = (
        f"{name}: balanced device accuracy {100 * result['balanced_accuracy']:.2f} % "
        f"(chance {100 * result['chance']:.2f} %; per device: {recall}); "
        f"{result['counts']['test']} test clips; "
    )
    if result.get("protocol") == "paper":
        ci = result["balanced_accuracy_ci"]
        spread = (
            f"s.d. {100 * result['balanced_accuracy_sd']:.2f} pp, {100 * result['level']:.0f} % "
            f"CI [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
            if ci is not None
            else "one probe seed"
        )
        stopped = sum(r["early_stopped"] for r in result["per_seed"])
        return text + (
            f"{len(result['per_seed'])} probe seeds ({spread}); early stopping ended "
            f"{stopped} of them"
        )
    return text + (
        f"early-stopped after {result['epochs']} epochs"
        if result["early_stopped"]
        else f"still improving at the last of {result['epochs']} epochs"
    )


def main(argv=None):
    from keras_asc.evaluation import runs as run_io
    from keras_asc.evaluation import tables

    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: expected a non-negative integer")
    if args.probe_seeds < 1:
        raise UserError(f"--probe-seeds {args.probe_seeds}: expected at least 1")
    opened = run_io.expand_runs(args.run)
    name = run_io.method_name(opened, args.name)
    results = []
    for run in opened:
        result = probe_run(
            run,
            args.split,
            args.data,
            args.batch_size,
            args.max_examples,
            seed=args.seed,
            split_by=args.split_by,
            protocol=args.protocol,
            train_split=args.train_split,
            probe_seeds=args.probe_seeds,
        )
        results.append(result)
        print(describe(run.name, result))
    text = tables.table2([(name, results)])
    print()
    print(text)
    if args.out:
        write_json(
            args.out, {"method": name, "split": args.split, "runs": results, "markdown": text}
        )
        print(f"wrote {args.out}")
    return 0
