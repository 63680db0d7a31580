"""Hold-out protocols of the DIR generator: which measured IRs it never sees in training.

Three named protocols (research notes, ``irgen_and_surrey.md`` Sec. 4):

* ``angles``: every ``every``-th angle of each configuration and distance is held out (the
  angles at sorted positions ``offset, offset + every, ...``; ``offset`` is drawn from the seed).
  Tests interpolation between measured angles: the paper reports "good generalization for
  varying incident angles".
* ``distance``: every IR measured at ``distance_cm`` (default 125 cm) is held out; the generator
  learns 50 cm and 5 m only. The paper reports no generalization over distance.
* ``microphones``: a ``microphone_fraction`` of the microphones (drawn from the seed), with all
  their patterns, variants, distances and angles, is held out: new microphones described only by
  their metadata ("new synthetic device classes" in the paper).

``none`` holds nothing out (the generator for a final generated set). In every protocol a
``validation_fraction`` of the training IRs (drawn from the seed) is set aside for checkpoint
selection. Splits depend only on the records' names and metadata and the seed: the same set and
seed give the same lists. :func:`write_holdout_lists` saves them beside a run as TSV files.
"""

import csv
import os

import numpy as np

from asc_core.errors import UserError
from asc_core.files import replacing
from asc_core.files import write_json

PROTOCOLS = ("angles", "distance", "microphones")
ALL_PROTOCOLS = PROTOCOLS + ("none",)
SPLITS = ("train", "validation", "test")
TSV_COLUMNS = ("name", "split", "microphone", "pattern", "variant", "distance_cm", "angle_deg")
# Stream ids of numpy.random.default_rng([seed, stream]).
_ANGLE_OFFSET, _MICROPHONES, _VALIDATION = range(3)


def held_out_mask(records, protocol, seed=0, every=4, distance_cm=125, microphone_fraction=0.2):
    """Boolean ``[N]``: which records a protocol holds out.

    Args:
        records: list of record dicts (``name``, ``microphone``, ``pattern``, ``variant``,
            ``distance_cm``, ``angle_deg``).
        protocol: one of :data:`ALL_PROTOCOLS`.
        seed: int.
        every: ``angles``: hold out one angle in ``every`` (>= 2).
        distance_cm: ``distance``: the held-out distance.
        microphone_fraction: ``microphones``: fraction in (0, 1) of the microphones held out
            (at least one, at most all but one).

    Returns:
        bool array ``[N]``.

    Raises:
        UserError: unknown protocol or parameters that hold out nothing or everything.
    """
    n = len(records)
    if protocol == "none":
        return np.zeros(n, bool)
    if protocol == "angles":
        if not (isinstance(every, int) and every >= 2):
            raise UserError(f"holdout.every: got {every!r}; expected an integer >= 2")
        offset = int(np.random.default_rng([seed, _ANGLE_OFFSET]).integers(every))
        groups = {}
        for r in records:
            key = (r["microphone"], r["pattern"], r["variant"], r["distance_cm"])
            groups.setdefault(key, set()).add(r["angle_deg"])
        held = {key: set(sorted(angles)[offset::every]) for key, angles in groups.items()}
        mask = np.array(
            [
                r["angle_deg"]
                in held[(r["microphone"], r["pattern"], r["variant"], r["distance_cm"])]
                for r in records
            ],
            bool,
        )
    elif protocol == "distance":
        distances = sorted({r["distance_cm"] for r in records})
        if distance_cm not in distances:
            raise UserError(
                f"holdout.distance_cm: {distance_cm!r} is not a measured distance; the set has "
                f"{', '.join(f'{d}' for d in distances)} cm"
            )
        mask = np.array([r["distance_cm"] == distance_cm for r in records], bool)
    elif protocol == "microphones":
        if not (isinstance(microphone_fraction, float | int) and 0 < microphone_fraction < 1):
            raise UserError(
                f"holdout.microphone_fraction: got {microphone_fraction!r}; expected a number in "
                "(0, 1)"
            )
        microphones = sorted({r["microphone"] for r in records})
        if len(microphones) < 2:
            raise UserError(
                f"holdout protocol 'microphones' needs at least two microphones; the set has "
                f"{', '.join(microphones)}"
            )
        count = min(
            max(1, int(round(microphone_fraction * len(microphones)))), len(microphones) - 1
        )
        order = np.random.default_rng([seed, _MICROPHONES]).permutation(len(microphones))
        chosen = {microphones[i] for i in order[:count]}
        mask = np.array([r["microphone"] in chosen for r in records], bool)
    else:
        raise UserError(
            f"holdout.protocol: got {protocol!r}; expected one of {', '.join(ALL_PROTOCOLS)}"
        )
    if mask.all():
        raise UserError(f"holdout protocol {protocol!r} holds out every IR; nothing to train on")
    if not mask.any():
        raise UserError(f"holdout protocol {protocol!r} holds out no IR of this set")
    return mask


def split_records(records, protocol, seed=0, validation_fraction=0.1, **params):
    """Indices of the train, validation and test records of a protocol.

    Args:
        records: list of record dicts.
        protocol: one of :data:`ALL_PROTOCOLS`.
        seed: int.
        validation_fraction: fraction in [0, 1) of the non-held-out IRs used for validation (at
            least one IR when > 0).
        **params: the protocol parameters of :func:`held_out_mask`.

    Returns:
        dict split -> sorted int64 index array; the three are disjoint and cover every record.
    """
    if not (isinstance(validation_fraction, float | int) and 0 <= validation_fraction < 1):
        raise UserError(
            f"holdout.validation_fraction: got {validation_fraction!r}; expected a number in [0, 1)"
        )
    test = held_out_mask(records, protocol, seed=seed, **params)
    rest = np.flatnonzero(~test)
    num_val = 0 if validation_fraction == 0 else max(1, int(round(validation_fraction * rest.size)))
    if num_val >= rest.size:
        raise UserError(
            f"holdout.validation_fraction {validation_fraction} leaves no training IR "
            f"({rest.size} IRs outside the test split)"
        )
    # Order the candidates by name first, so the draw does not depend on the record order.
    by_name = rest[np.argsort([records[i]["name"] for i in rest], kind="stable")]
    chosen = np.random.default_rng([seed, _VALIDATION]).permutation(by_name.size)[:num_val]
    validation = np.zeros(len(records), bool)
    validation[by_name[chosen]] = True
    return {
        "train": np.flatnonzero(~test & ~validation),
        "validation": np.flatnonzero(validation),
        "test": np.flatnonzero(test),
    }


def split_labels(records, splits):
    """``[N]`` list of split names from :func:`split_records` output."""
    labels = [""] * len(records)
    for split, indices in splits.items():
        for i in indices:
            labels[i] = split
    return labels


def write_holdout_lists(records, folder, seed=0, validation_fraction=0.1, **params):
    """Writes ``{protocol}.tsv`` for every protocol and ``holdout.json`` into ``folder``.

    Protocols that do not apply to the set (e.g. ``distance`` when the held-out distance was not
    measured) are recorded in ``holdout.json`` with the reason instead of a list.

    Returns:
        dict protocol -> dict split -> list of record names (applicable protocols only).
    """
    os.makedirs(folder, exist_ok=True)
    summary = {
        "seed": seed,
        "validation_fraction": validation_fraction,
        "parameters": params,
        "protocols": {},
    }
    lists = {}
    for protocol in ALL_PROTOCOLS:
        try:
            splits = split_records(
                records, protocol, seed=seed, validation_fraction=validation_fraction, **params
            )
        except UserError as err:
            summary["protocols"][protocol] = {"applicable": False, "reason": str(err)}
            continue
        labels = split_labels(records, splits)
        path = os.path.join(folder, f"{protocol}.tsv")
        with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(TSV_COLUMNS)
            for record, label in zip(records, labels):
                writer.writerow([record["name"], label] + [record[c] for c in TSV_COLUMNS[2:]])
        test = [records[i] for i in splits["test"]]
        summary["protocols"][protocol] = {
            "applicable": True,
            "file": f"{protocol}.tsv",
            "counts": {s: int(splits[s].size) for s in SPLITS},
            "held_out_microphones": sorted({r["microphone"] for r in test}),
            "held_out_distances_cm": sorted({r["distance_cm"] for r in test}),
            "held_out_angles_deg": sorted({r["angle_deg"] for r in test}),
        }
        lists[protocol] = {s: [records[i]["name"] for i in splits[s]] for s in SPLITS}
    write_json(os.path.join(folder, "holdout.json"), summary)
    return lists


def read_holdout_list(folder, protocol):
    """dict split -> list of names from a saved ``{protocol}.tsv``."""
    path = os.path.join(folder, f"{protocol}.tsv")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no hold-out list for protocol {protocol!r}")
    out = {s: [] for s in SPLITS}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out[row["split"]].append(row["name"])
    return out
