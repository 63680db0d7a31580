"""Same-device pair fraction of a training batch for each DIR device labelling (docs/design.md).

    python benchmarks/icl_pair_fractions.py [--simulate 2000]

Device a at 70 % of the clips, b, c, s1-s3 at 6 % each, DIR probability 0.6 on device-a clips.
Prints the expected fraction (independent of the batch size) and, with ``--simulate N``, the
mean and spread over N random batches of 32 and of 64.
"""

import argparse
import collections

import numpy as np

from asc_core.microphones import load_microphones
from keras_asc.losses.icl_diagnostics import expected_same_device_fraction
from tfrecords_builder.synthetic import SIZES
from tfrecords_builder.synthetic_dirs import MICIRP_FILES

SHARES = {"a": 0.70, "b": 0.06, "c": 0.06, "s1": 0.06, "s2": 0.06, "s3": 0.06}


def synthetic_multi_sizes(size="small"):
    """IRs per microphone of the synthetic Surrey-like set (patterns x distances x angles)."""
    counts = collections.Counter()
    for mic, _, tokens, _, distances, _, _ in SIZES[size]["surrey"]:
        counts[mic] += len(tokens) * len(distances) * len(SIZES[size]["angles"])
    return list(counts.values())


def real_multi_sizes(num_irs=8138):
    """IRs per microphone of the real set, assuming the same IR count per configuration."""
    rows = list(load_microphones().values())
    configs = collections.Counter(row.microphone for row in rows)
    per_config = num_irs / len(rows)
    return [n * per_config for n in configs.values()]


def labellings(mic_sizes):
    """device_labels -> augmented class sizes."""
    total = int(round(sum(mic_sizes)))
    return {"per_ir": [1] * total, "per_microphone": mic_sizes, "shared": [total]}


def simulate(class_sizes, batch, trials, rng):
    devices = list(SHARES)
    p = np.array([SHARES[d] for d in devices])
    weights = np.asarray(class_sizes, float) / float(sum(class_sizes))
    fractions = []
    for _ in range(trials):
        ids = rng.choice(len(devices), size=batch, p=p)
        augment = (ids == 0) & (rng.random(batch) < 0.6)
        ids = np.where(augment, 100 + rng.choice(len(weights), size=batch, p=weights), ids)
        same = (ids[:, None] == ids[None, :]).sum() - batch
        fractions.append(same / (batch * (batch - 1)))
    return float(np.mean(fractions)), float(np.std(fractions))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", type=int, default=0, help="random batches per cell")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    sets = {
        "synthetic MicIRP (small)": [1] * len(MICIRP_FILES),
        "synthetic Multi (small)": synthetic_multi_sizes(),
        "real MicIRP (66)": [1] * 66,
        "real Multi (8138, 25 mics)": real_multi_sizes(),
    }
    print(f"no DIR: {expected_same_device_fraction(SHARES):.3f}")
    for name, mic_sizes in sets.items():
        for labels, sizes in labellings(mic_sizes).items():
            line = f"{name:28s} {labels:15s} {len(sizes):5d} classes  expected " + (
                f"{expected_same_device_fraction(SHARES, 0.6, ('a',), sizes):.3f}"
            )
            for batch in (32, 64) if args.simulate else ():
                mean, std = simulate(sizes, batch, args.simulate, rng)
                line += f"  B={batch}: {mean:.3f} ± {std:.3f}"
            print(line)


if __name__ == "__main__":
    main()
