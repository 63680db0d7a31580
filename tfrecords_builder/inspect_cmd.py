"""``inspect``: summarise a finished builder output folder (audio or DIR set).

``python -m tfrecords_builder inspect --out DIR [--json] [--verify]`` prints, from ``info.json``:
the builder, sample rate, and per split × view the number of records, shards, samples and
seconds per record and total duration, then a scene × device count table per split and view
(DIR sets: their count tables). Missing shard files are an error. ``--verify`` also reads every
record (labels and lengths only, not the waveforms) and checks that the counts, lengths and
sample rates match ``info.json``; for DIR sets it adds the shortest/longest IR.
"""

import json
import os
from collections import Counter

from asc_core import vocab
from asc_core import writer as writer_lib
from asc_core.errors import UserError
from asc_core.tfrecord import data_loss_error

UNKNOWN = "unknown"


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="a finished builder output folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--verify", action="store_true", help="read every record and check it against info.json"
    )


def run(args):
    report = inspect(args.out, verify=args.verify)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


# === Collecting ===


def _datasets(info):
    """``[(split, view, entry)]`` of an info.json: audio sets per split × view, DIR sets once."""
    if "splits" in info:
        return [
            (split, view, entry)
            for split, split_info in info["splits"].items()
            for view, entry in split_info.get("views", {}).items()
        ]
    if "shards" in info:
        return [("dirs", "", info)]
    raise UserError("info.json has neither 'splits' nor 'shards'; expected a builder output")


def _scan(out, entry, audio):
    """Reads label/length features of every record of one dataset."""
    import tensorflow as tf

    if audio:
        spec = {
            "num_samples": tf.io.FixedLenFeature([], tf.int64),
            "sample_rate": tf.io.FixedLenFeature([], tf.int64),
            "scene": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "device": tf.io.FixedLenFeature([], tf.string, default_value=""),
        }
    else:
        spec = {
            "num_samples": tf.io.FixedLenFeature([], tf.int64),
            "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        }
    files = [os.path.join(out, name) for name in entry["shards"]]
    dataset = tf.data.TFRecordDataset(files).batch(256).map(lambda s: tf.io.parse_example(s, spec))
    counts, lengths, rates, total = Counter(), Counter(), Counter(), 0
    try:
        for batch in dataset.as_numpy_iterator():
            total += len(batch["num_samples"])
            lengths.update(batch["num_samples"].tolist())
            rates.update(batch["sample_rate"].tolist())
            if audio:
                for device, scene in zip(batch["device"], batch["scene"]):
                    counts[(device.decode() or UNKNOWN, scene.decode() or UNKNOWN)] += 1
    except tf.errors.DataLossError as err:  # a truncated or corrupted shard: name it
        raise data_loss_error(err, files) from None
    except tf.errors.OpError as err:
        raise UserError(
            f"{out}: cannot read the records of {entry['shards'][0]}...: {err.message}"
        ) from None
    return total, counts, lengths, rates


def _count_table(counts):
    table = {}
    scenes = list(vocab.SCENES) + [UNKNOWN]
    for device in list(vocab.DEVICES) + [UNKNOWN]:
        row = {s: counts[(device, s)] for s in scenes if counts[(device, s)]}
        if row:
            table[device] = row
    return table


def inspect(out, verify=False):
    """Summary dict of a finished output folder.

    Args:
        out: the output folder (with ``info.json``).
        verify: read every record and check counts, lengths and rates against info.json.

    Returns:
        dict with ``out``, ``builder``, ``builder_version``, ``sample_rate``, ``datasets`` (one
        entry per split × view: ``num_examples``, ``num_shards``, ``num_samples``, ``seconds``,
        ``hours``, ``counts``), ``aliases``, ``skipped`` and ``verified``.
    """
    out = os.path.abspath(os.fspath(out))
    info = writer_lib.read_info(out)
    rate = int(info.get("sample_rate", vocab.SAMPLE_RATE))
    audio = "splits" in info
    datasets = []
    for split, view, entry in _datasets(info):
        missing = [n for n in entry["shards"] if not os.path.isfile(os.path.join(out, n))]
        if missing:
            raise UserError(
                f"{out}: shard {missing[0]} listed in info.json is missing "
                f"({len(missing)} of {len(entry['shards'])} missing)"
            )
        num = int(entry["num_examples"])
        samples = entry.get("num_samples")
        row = {
            "split": split,
            "view": view,
            "num_examples": num,
            "num_shards": len(entry["shards"]),
            "bytes": sum(os.path.getsize(os.path.join(out, n)) for n in entry["shards"]),
            "num_samples": samples,
            "seconds": samples / rate if samples else None,
            "hours": num * samples / rate / 3600 if samples else None,
            "counts": entry.get("counts", {}),
        }
        if verify:
            total, counts, lengths, rates = _scan(out, entry, audio)
            where = f"{out}: {split}{'-' + view if view else ''}"
            if total != num:
                raise UserError(f"{where} holds {total} records; info.json says {num}")
            if set(rates) - {rate}:
                raise UserError(f"{where} has records at {sorted(rates)} Hz; info.json says {rate}")
            if samples and set(lengths) != {samples}:
                raise UserError(
                    f"{where} has record lengths {sorted(lengths)[:5]}; info.json "
                    f"says {samples} samples"
                )
            if audio and _count_table(counts) != row["counts"]:
                raise UserError(
                    f"{where}: device × scene counts of the records differ from info.json"
                )
            if lengths:
                row["min_samples"] = min(lengths)
                row["max_samples"] = max(lengths)
                row["mean_seconds"] = sum(k * v for k, v in lengths.items()) / total / rate
        datasets.append(row)
    return {
        "out": out,
        "builder": info["builder"],
        "builder_version": info.get("builder_version"),
        "sample_rate": rate,
        "datasets": datasets,
        "aliases": info.get("aliases", {}),
        "skipped": len(info.get("skipped", [])),
        "incomplete_groups": info.get("incomplete_groups", 0),
        "verified": bool(verify),
    }


# === Formatting ===


def _table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = [
        "  ".join(
            str(h).ljust(w) if i == 0 else str(h).rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                str(x).ljust(w) if i == 0 else str(x).rjust(w)
                for i, (x, w) in enumerate(zip(row, widths))
            )
        )
    return "\n".join(lines)


def _scene_device_table(counts):
    """Scenes as rows, devices as columns (narrow enough for a terminal)."""
    devices = [d for d in list(vocab.DEVICES) + [UNKNOWN] if d in counts]
    devices += sorted(d for d in counts if d not in devices)
    scenes = [s for s in list(vocab.SCENES) + [UNKNOWN] if any(s in counts[d] for d in devices)]
    scenes += sorted({s for d in devices for s in counts[d]} - set(scenes))
    rows = []
    for scene in scenes:
        cells = [counts[d].get(scene, 0) for d in devices]
        rows.append([scene] + cells + [sum(cells)])
    totals = [sum(counts[d].values()) for d in devices]
    rows.append(["total"] + totals + [sum(totals)])
    return _table(["scene"] + devices + ["total"], rows)


def _generic_counts(name, value):
    """A count table for DIR sets: flat ``{key: n}`` or nested ``{row: {col: n}}``."""
    if all(isinstance(v, int) for v in value.values()):
        return f"{name}\n" + _table([name, "count"], [[k, v] for k, v in value.items()])
    columns = sorted({c for v in value.values() if isinstance(v, dict) for c in v}, key=str)
    rows = [[k] + [v.get(c, 0) for c in columns] for k, v in value.items() if isinstance(v, dict)]
    return f"{name}\n" + _table([name] + columns, rows)


def format_report(report):
    """Readable text of :func:`inspect`'s summary."""
    lines = [
        f"{report['out']}",
        f"builder {report['builder']} {report['builder_version']}, sample rate "
        f"{report['sample_rate']} Hz",
        "",
    ]
    rows = []
    for d in report["datasets"]:
        seconds = (
            f"{d['seconds']:g}"
            if d["seconds"] is not None
            else (f"{d['mean_seconds']:.3f} (mean)" if "mean_seconds" in d else "varies")
        )
        hours = f"{d['hours']:.3f}" if d["hours"] is not None else "-"
        rows.append(
            [
                d["split"],
                d["view"] or "-",
                d["num_examples"],
                d["num_shards"],
                d["num_samples"] or "-",
                seconds,
                hours,
                f"{d['bytes'] / 2**20:.1f}",
            ]
        )
    lines.append(
        _table(["split", "view", "records", "shards", "samples", "seconds", "hours", "MiB"], rows)
    )
    for alias, target in report["aliases"].items():
        lines.append(f"{alias}: same files as {target} (not written twice)")
    lines.append(
        f"skipped items: {report['skipped']}; incomplete 10s recordings: "
        f"{report['incomplete_groups']}"
    )
    if report["verified"]:
        lines.append("verified: every record was read and matches info.json")
    for d in report["datasets"]:
        counts = d["counts"]
        if not counts:
            continue
        title = f"{d['split']} {d['view']}".strip()
        lines.append("")
        if d["view"]:
            lines.append(f"{title}: records per scene × device")
            lines.append(_scene_device_table(counts))
        else:
            for name, value in counts.items():
                if isinstance(value, dict) and value:
                    lines.append(_generic_counts(name, value))
                    lines.append("")
    return "\n".join(lines).rstrip()
