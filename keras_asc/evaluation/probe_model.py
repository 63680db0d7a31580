"""The device probe itself: a LayerNorm + Dense classifier on frozen embeddings, fit in NumPy.

With the encoder frozen the probe is a LayerNorm + Dense on fixed inputs, so it is trained in
NumPy (mini-batch Adam with Keras' defaults, a class-balanced cross-entropy, early stopping on a
held-out part); Keras' per-epoch overhead would dominate a few hundred tiny epochs.
:func:`build_probe` is the same model in Keras. The protocols that use it:
:mod:`keras_asc.evaluation.probe`.
"""

import numpy as np

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
