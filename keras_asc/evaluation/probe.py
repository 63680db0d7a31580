"""Device probe (paper §5.4, Table 2): how much device information a frozen embedding carries.

The encoder is frozen: we only read its ``embedding`` output. A device classifier with the scene
head's capacity (``LayerNormalization`` + ``Dense``, as ``SceneClassifier``'s head) is trained on
the embeddings of the training devices' validation clips with the default Adam optimizer and a
class-balanced cross-entropy, until the balanced loss on a held-out part stops improving (early
stopping, best weights restored). The reported number is the balanced accuracy (mean per-device
recall) on a third, untouched part, against chance ``1 / num_devices``.

The clips are split into fit / early-stopping / test parts per device. When ``groups`` are given
(the 10-s recording a clip was cut from) whole groups go to one part, so the probe cannot score by
recognising a recording it has seen rather than the device.
"""

import os

import numpy as np

from keras_asc.errors import UserError
from keras_asc.vocab import DEVICES
from keras_asc.vocab import TRAIN_DEVICES

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
    groups_are_clips = groups is None
    if groups_are_clips:
        groups = np.arange(labels.shape[0])
    groups = np.asarray(groups)
    fractions = np.asarray(fractions, dtype=np.float64)
    fractions = fractions / fractions.sum()
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keys = np.unique(groups[members])
        if keys.shape[0] < 3:
            what = "clip(s)" if groups_are_clips else "10-s recording(s)"
            name = class_names[label] if class_names is not None else f"class {label}"
            raise UserError(
                f"device probe: {name} has {keys.shape[0]} {what}; at least 3 are needed to fit, "
                "early-stop and test the probe"
                + ("" if groups_are_clips else " (or split by clip: --split-by clip)")
            )
        keys = keys[rng.permutation(keys.shape[0])]
        # At least one group per part; the rest by the fractions.
        n_stop = max(1, int(round(fractions[1] * keys.shape[0])))
        n_test = max(1, int(round(fractions[2] * keys.shape[0])))
        n_fit = keys.shape[0] - n_stop - n_test
        if n_fit < 1:
            n_fit, n_stop, n_test = 1, 1, keys.shape[0] - 2
        bounds = np.cumsum([n_fit, n_stop])
        for part, chosen in zip(parts, np.split(keys, bounds)):
            part.append(members[np.isin(groups[members], chosen)])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


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

    class_w = balanced_class_weights(labels[fit], num_classes)
    stop_w = balanced_class_weights(labels[stop], num_classes)[labels[stop]]
    rng = np.random.default_rng(seed)
    params = init_probe(embeddings.shape[1], num_classes, seed=seed)
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

    predictions = probe_logits(params, normed[test]).argmax(axis=1)
    truth = labels[test]
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predictions), 1)
    recall = matrix.diagonal() / matrix.sum(axis=1)
    return {
        "balanced_accuracy": float(recall.mean()),
        "accuracy": float((predictions == truth).mean()),
        "chance": 1.0 / num_classes,
        "devices": names,
        "recall": {name: float(r) for name, r in zip(names, recall)},
        "confusion_matrix": matrix.tolist(),
        "counts": {"fit": int(fit.size), "stop": int(stop.size), "test": int(test.size)},
        "epochs": epoch,
        "best_epoch": best_epoch,
        "early_stopped": epoch - best_epoch >= patience,
        "stop_loss": float(stop_loss),
        "seed": seed,
    }


def train_device_mask(device_ids, device_names=DEVICES, devices=TRAIN_DEVICES):
    """``[N]`` bool: clips recorded by one of ``devices`` (the six training devices)."""
    wanted = [device_names.index(d) for d in devices]
    return np.isin(np.asarray(device_ids), wanted)


# === Command line (scripts/probe_devices.py) ===


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
    **probe_kwargs,
):
    """Device probe of one run directory's frozen encoder (paper Table 2).

    Embeds the split's clips of ``devices`` with the run's model, trains the probe (parts split
    by 10-s recording, or by clip with ``split_by="clip"``) and writes
    ``RUN_DIR/eval/<split>/probe.json``.

    Returns:
        The :func:`device_probe` result plus ``run``, ``run_dir``, ``split``, ``data``,
        ``num_clips``.
    """
    from keras_asc.evaluation import runs as run_io

    data_path = run.data_path(data)
    run_io.check_split(data_path, split)
    model = run.load_model()
    predicted = run_io.predict_clips(
        model,
        data_path,
        split,
        batch_size=batch_size,
        max_examples=max_examples,
        embeddings=True,
        progress=progress,
    )
    mask = train_device_mask(predicted["device_id"], devices=devices)
    if not mask.any():
        raise UserError(
            f"{data_path}: split {split!r} has no clip of the devices {', '.join(devices)} "
            "(device labels are needed for the probe)"
        )
    groups = np.asarray(predicted["group"])[mask] if split_by == "recording" else None
    result = device_probe(
        predicted["embedding"][mask],
        predicted["device_id"][mask],
        groups=groups,
        seed=seed,
        **probe_kwargs,
    )
    result.update(
        {
            "run": run.name,
            "run_dir": run.path,
            "split": split,
            "data": data_path,
            "num_clips": int(mask.sum()),
            "split_by": split_by,
            "embedding_dim": int(predicted["embedding"].shape[1]),
        }
    )
    run_io.write_json(os.path.join(run_io.eval_dir(run.path, split), "probe.json"), result)
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
    parser.add_argument("--seed", type=int, default=0, help="split/initialisation seed")
    parser.add_argument(
        "--split-by",
        choices=("recording", "clip"),
        default="recording",
        help="keep each 10-s recording in one part (default) or split clips",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-examples", type=int, help="only the first N clips")
    return parser


def main(argv=None):
    from keras_asc.evaluation import runs as run_io
    from keras_asc.evaluation import tables

    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: expected a non-negative integer")
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
        )
        results.append(result)
        recall = ", ".join(f"{d} {100 * r:.1f}" for d, r in result["recall"].items())
        print(
            f"{run.name}: balanced device accuracy {100 * result['balanced_accuracy']:.2f} % "
            f"(chance {100 * result['chance']:.2f} %; per device: {recall}); "
            f"{result['counts']['test']} test clips; "
            + (
                f"early-stopped after {result['epochs']} epochs"
                if result["early_stopped"]
                else f"still improving at the last of {result['epochs']} epochs"
            )
        )
    text = tables.table2([(name, results)])
    print()
    print(text)
    if args.out:
        run_io.write_json(
            args.out, {"method": name, "split": args.split, "runs": results, "markdown": text}
        )
        print(f"wrote {args.out}")
    return 0
