"""Stratified splits of the device probe's clips, by 10-s recording when groups are given.

:func:`split_indices` (fit / early-stop / test, the ``evaluate`` protocol) and
:func:`holdout_split` (fit / early-stop, the paper protocol) share one per-class group shuffle.
"""

import numpy as np

from asc_core.errors import UserError


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
