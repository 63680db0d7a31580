"""TAU22 build: plans every split, checks the free space, places the records in their shards,
hands the work units to the worker pool and writes ``info.json`` (see the package docstring)."""

import collections
import contextlib
import os
from collections import Counter

import numpy as np

from asc_core import tfrecord_io
from asc_core import vocab
from asc_core import writer as writer_lib
from asc_core.errors import UserError
from tfrecords_builder import parallel
from tfrecords_builder.tau22.plan import group_recordings
from tfrecords_builder.tau22.plan import plan_split
from tfrecords_builder.tau22.plan import work_units
from tfrecords_builder.tau22.source import CLIP_SAMPLES
from tfrecords_builder.tau22.source import CLIP_SECONDS
from tfrecords_builder.tau22.source import PARTS
from tfrecords_builder.tau22.source import SOURCE_RATE
from tfrecords_builder.tau22.source import Table
from tfrecords_builder.tau22.source import csv_values
from tfrecords_builder.tau22.source import find_root
from tfrecords_builder.tau22.source import name_set_digest
from tfrecords_builder.tau22.source import read_meta
from tfrecords_builder.tau22.source import split_sources
from tfrecords_builder.tau22.worker import WORKER_MODULES
from tfrecords_builder.tau22.worker import process_unit

TARGET_SHARD_BYTES = 256 << 20
HELD_OUT = ("evaluate", "test")
UNKNOWN = "unknown"


def _placed_tasks(tasks, views, issued):
    """Adds to each task the places of its records, in task order (lazily: memory stays flat).

    Args:
        tasks: ``(split, key, clips, display, sizes)`` in build order (``sizes`` from
            :meth:`Units.sized`).
        views: ``{(split, view): PlacedShards}``.
        issued: a deque that receives each placed task as it is yielded.

    Yields:
        ``(split, key, clips, display, places)``, see :func:`process_unit`.
    """
    for split, key, clips, display, sizes in tasks:
        one_second = views[(split, "1s")]
        places = [one_second.place(size) for size in sizes[: len(clips)]]
        if key is not None:
            places.append(views[(split, "10s")].place(sizes[-1]))
        task = (split, key, clips, display, places)
        issued.append(task)
        yield task


def _auto_shards(num_records, samples):
    record_bytes = samples * 4 + 400
    return max(1, min(num_records, -(-num_records * record_bytes // TARGET_SHARD_BYTES)))


def _count_table(counter):
    """``{device: {scene: n}}`` in vocabulary order, ``unknown`` last, zero cells left out."""
    devices = list(vocab.DEVICES) + [UNKNOWN]
    scenes = list(vocab.SCENES) + [UNKNOWN]
    table = {}
    for device in devices:
        row = {scene: counter[(device, scene)] for scene in scenes if counter[(device, scene)]}
        if row:
            table[device] = row
    return table


def build(
    source,
    out,
    *,
    split_files=(),
    on_error="raise",
    shards=None,
    workers=None,
    seed=0,
    progress=None,
):
    """Builds the TAU22 TFRecords; see the module docstring.

    Args:
        source: extracted dataset folder (or its parent).
        out: output folder; replaced only when the new build is complete.
        split_files: extra split CSVs (split name = file stem).
        on_error: ``"raise"`` or ``"skip"`` (skip bad rows/files/recordings and report them).
        shards: shards per split and view (None: about 256 MB each).
        workers: decoding processes (None: all cores; 0: in this process).
        seed: seed of the stored record order.
        progress: show progress (None or True: a bar on a terminal, a plain line every 10 % or
            30 s otherwise; False: none).

    Returns:
        the info dict written to ``OUT/info.json``.
    """
    policy = writer_lib.ErrorPolicy(on_error)
    if shards is not None and shards < 1:
        raise UserError(f"--shards must be at least 1, got {shards}")
    workers = parallel.default_workers() if workers is None else max(0, int(workers))
    root = find_root(source)
    sources = split_sources(root, split_files)
    # The workers start now and import their modules on the other cores while this process
    # reads and plans the CSVs (about half a second of CPU each; see parallel.WorkerPool).
    with parallel.WorkerPool(workers, warm=WORKER_MODULES) as pool:
        return _plan_and_write(
            pool, root, sources, out, policy, shards=shards, seed=seed, progress=progress
        )


def _plan_and_write(pool, root, sources, out, policy, *, shards, seed, progress):
    """The body of :func:`build` once its worker pool is starting."""
    from asc_core.progress import progress as progress_display

    on_error = policy.mode
    meta, meta_rows = read_meta(root, policy)

    checksums = {}
    if meta is not None:
        checksums["meta.csv"] = {
            "md5": writer_lib.md5_file(os.path.join(root, "meta.csv")),
            "rows": meta_rows,
        }
    # Each CSV is planned as soon as it is read, into compact columns: the plan of a whole
    # corpus stays in memory during the build, the CSV rows never are all at once.
    plans, aliases, evaluate_names = {}, {}, None
    for split, path, display in sources:
        table = Table(csv_values(path, display, ["scene_label"]), ["scene_label"])
        checksums[display] = {"md5": writer_lib.md5_file(path), "rows": len(table)}
        if split == "test" and evaluate_names is not None:
            if name_set_digest(table.names) == evaluate_names:
                aliases["test"] = "evaluate"
                continue
        if split == "evaluate":
            evaluate_names = name_set_digest(table.names)
        plans[split] = (display, plan_split(split, table, display, root, meta, policy))
    del table, evaluate_names, meta
    _check_disjoint(plans)
    if "train" in plans and not plans["train"][1].labelled:
        display = plans["train"][0]
        raise UserError(
            f"{display}: no row has a scene label (no 'scene_label' column, and no "
            "meta.csv row gives one); expected a labelled training split"
        )

    # Everything that can be checked without decoding audio is checked before any output exists.
    work, splits_info, view_sizes = [], {}, {}
    hint = " (--on-error skip leaves it out of the 10s view and reports it)"
    for split, (display, plan) in plans.items():
        groups, problems = group_recordings(split, plan, display)
        incomplete = []
        for key, reason in problems.items():
            policy.fail(split, key, reason + (hint if on_error == "raise" else ""))
            incomplete.append({"key": key, "reason": reason})
        splits_info[split] = {
            "csv": display,
            "labelled": plan.labelled,
            "rows": len(plan),
            "views": {},
            "incomplete_groups": incomplete,
        }
        view_sizes[(split, "1s")] = len(plan)
        if plan.has_recordings:
            view_sizes[(split, "10s")] = len(groups)
        work.append((split, display, work_units(plan, groups, seed)))
    del plans, groups
    total_clips = sum(len(units.plan) for _, _, units in work)
    writer_lib.check_free_space(out, sum(units.framed_bytes() for _, _, units in work), "tau22")
    tasks = (
        (split, key, unit_clips, display, sizes)
        for split, display, units in work
        for key, unit_clips, sizes in units.sized()
    )

    with writer_lib.OutputDir(out, builder="tau22", policy=policy) as output:
        views, counters = {}, {}
        for (split, view), count in view_sizes.items():
            if count == 0:
                continue
            samples = CLIP_SAMPLES * (PARTS if view == "10s" else 1)
            num = min(shards, count) if shards else _auto_shards(count, samples)
            views[(split, view)] = output.placed_shards(f"{split}-{view}", num)
            counters[(split, view)] = Counter()
        bar = progress_display(
            total=total_clips, unit="clip", desc="tau22", enabled=progress is not False
        )
        issued = collections.deque()
        results = pool.ordered_map(process_unit, _placed_tasks(tasks, views, issued))
        try:
            with contextlib.closing(results), bar:
                for result in results:
                    task = issued.popleft()
                    _account_unit(task, result, policy, views, counters, splits_info)
                    bar.update(len(task[2]))
        finally:
            tfrecord_io.close_files()  # those of an in-process build (workers=0)

        for (split, view), view_shards in views.items():
            seconds = CLIP_SECONDS * (PARTS if view == "10s" else 1)
            splits_info[split]["views"][view] = {
                "num_examples": view_shards.num_examples,
                "num_samples": vocab.SAMPLE_RATE * seconds,
                "seconds": seconds,
                "shards": view_shards.finish(),
                "counts": _count_table(counters[(split, view)]),
            }
        for split, split_info in splits_info.items():
            if not any(v["num_examples"] for v in split_info["views"].values()):
                raise UserError(
                    f"split {split!r} ({split_info['csv']}) has no usable files "
                    "after skipping; see the skipped items"
                )
        info = {
            "dataset": "TAU Urban Acoustic Scenes 2022 Mobile",
            "kind": "audio",
            "sample_rate": vocab.SAMPLE_RATE,
            "source_sample_rate": SOURCE_RATE,
            "resampler": "soxr HQ (librosa's default soxr_hq); 10s = parts joined at 44.1 kHz, "
            "then resampled",
            "vocabularies": {"scene": list(vocab.SCENES), "device": list(vocab.DEVICES)},
            "source": {"root": root, "files": checksums},
            "seed": seed,
            "splits": splits_info,
            "aliases": aliases,
            "incomplete_groups": sum(len(s["incomplete_groups"]) for s in splits_info.values()),
        }
        output.finish(info)
    info = writer_lib.read_info(out)
    return info


def _account_unit(task, result, policy, views, counters, splits_info):
    """Books one processed unit (in the main process): policy, counts, gaps of skipped records."""
    split, key, unit_clips, _, places = task
    written, written_10s, errors = result
    for filename, message in errors:
        policy.fail(split, filename, message)
    for clip, done, place in zip(unit_clips, written, places):
        if done:
            counters[(split, "1s")][(clip.device or UNKNOWN, clip.scene or UNKNOWN)] += 1
        else:
            views[(split, "1s")].skip(place)
    if key is None:
        return
    if not written_10s:
        views[(split, "10s")].skip(places[len(unit_clips)])
        reason = (
            f"recording {key!r} of split {split!r} left out of the 10s view: one of its "
            "parts was skipped"
        )
        splits_info[split]["incomplete_groups"].append({"key": key, "reason": reason})
        policy.skipped.append({"split": split, "item": key, "reason": reason})
        return
    first = unit_clips[0]
    counters[(split, "10s")][(first.device or UNKNOWN, first.scene or UNKNOWN)] += 1


def _check_disjoint(plans):
    """Training splits must share no file with held-out splits (no test leakage)."""
    held = {s: np.sort(plans[s][1].names) for s in HELD_OUT if s in plans}
    for split, (display, plan) in plans.items():
        if split in HELD_OUT:
            continue
        for other, names in held.items():
            # searchsorted, not np.isin: no temporary copies of both name arrays
            at = np.minimum(np.searchsorted(names, plan.names), max(len(names) - 1, 0))
            shared = np.flatnonzero(names[at] == plan.names) if len(names) else at[:0]
            if shared.size:
                at = shared[0]
                raise UserError(
                    f"{display} line {plan.lines[at]}: {plan.names[at].decode('utf-8')} is also "
                    f"in split {other!r} ({plans[other][0]}); training and held-out files must "
                    "not overlap"
                )


def summary(info, out):
    """A few lines saying what was written."""
    lines = [f"wrote {os.path.abspath(out)}"]
    for split, split_info in info["splits"].items():
        views = ", ".join(
            f"{view}: {v['num_examples']} records in {len(v['shards'])} shard(s)"
            for view, v in split_info["views"].items()
        )
        lines.append(f"  {split:<10} {views}")
    for alias, target in info.get("aliases", {}).items():
        lines.append(f"  {alias:<10} same files as {target!r} (not written twice)")
    if info["skipped"]:
        lines.append(
            f"  skipped {len(info['skipped'])} item(s); reasons in "
            f"{os.path.join(os.path.abspath(out), writer_lib.SKIPPED_NAME)}"
        )
    return "\n".join(lines)
