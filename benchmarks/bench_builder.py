"""Throughput and memory of ``tfrecords_builder tau22`` on the synthetic ``small`` corpus.

Measures, with the same worker count (default: all cores):

* **bound**: decoding + resampling exactly the files the build handles (each 1-s file on its
  own, plus each recording's ten parts joined and resampled once for the 10s view), in the same
  process pool, without encoding or writing anything;
* **build**: ``tau22.build`` (plan, decode, resample, encode, write both views) into a fresh
  folder, in a process that has not imported TensorFlow, like the command line (the build
  needs none; TF's millions of objects would also slow Python's garbage collector while the
  CSVs are planned);
* **interleaved** (``--interleaved PASSES``): the bound's and the build worker's work for the
  same units, unit by unit and back to back in this process; robust to a loaded machine, but
  without the build's main-process work, which is added from the pairs' median;
* **peak RSS** of a complete ``tau22`` build in a fresh process on the corpus (1×) and on a 4×
  corpus (every recording 4 times: the same audio hard-linked under new segment ids, all CSVs
  4 times as long): the main process (no TensorFlow: ~42 MiB), the largest worker and the sum
  over all processes. The main process streams the CSVs and keeps a columnar plan (the file
  name's bytes and a few integers per clip), so it grows by ~0.2 MiB per 1000 clips.

Wall-clock rates depend on what else runs on the machine; the CPU seconds (this process plus
its workers) much less, so both are reported: on an idle machine with as many cores as workers
the wall-clock ratio approaches the CPU-time ratio. Bound and build runs alternate, each after
a ``sync`` (see ``_quiet_disk``); reported are the fastest run of each and the median ratio of
the alternating pairs. On a shared machine single pairs still scatter by ±10 %.

Both sides share the process pool of :mod:`tfrecords_builder.parallel`, including its malloc
setting (freed memory is reused instead of page-faulted in again, which made every task ~15 %
cheaper on both sides). What the build adds per 10-s recording: the record headers, the
CRC-32C of 2.5 MB and writing them into the page cache (~0.9 ms of kernel time alone), plus the
planning of the CSVs in the main process (which the workers' start-up overlaps).

Goals: build ≥ 90 % of the bound's clips/s; RSS growth from 1× to 4× < 10 %.

    python benchmarks/bench_builder.py [--corpus DIR] [--workers N] [--scale 4] [--repeat 5]
        [--interleaved 2] [--work-dir DIR] [--json FILE]

``--corpus`` reuses a corpus written by ``python -m tfrecords_builder synthetic --size small``
(otherwise one is generated into the work folder, which takes a few minutes).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from tfrecords_builder import parallel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAU_ROOT = "TAU-urban-acoustic-scenes-2022-mobile-development"


def decode_only(task):
    """The bound's work for one unit: decode + resample, nothing encoded or returned."""
    from asc_core import audio as audio_lib
    from tfrecords_builder import tau22

    _, key, clips = task[:3]
    raws = []
    for clip in clips:
        raw, _ = audio_lib.read_audio(
            clip.path, expected_rate=tau22.SOURCE_RATE, expected_frames=tau22.SOURCE_RATE
        )
        audio_lib.resample(raw, tau22.SOURCE_RATE, 32000)
        raws.append(raw)
    if key is not None:
        audio_lib.resample(np.concatenate(raws), tau22.SOURCE_RATE, 32000)
    return len(clips)


def plan_tasks(root):
    """The build's work units, planned exactly as ``tau22.build`` plans them."""
    from asc_core import writer as writer_lib
    from tfrecords_builder.tau22 import plan as tau22_plan
    from tfrecords_builder.tau22 import source as tau22_source

    policy = writer_lib.ErrorPolicy("raise")
    meta, _ = tau22_source.read_meta(root, policy)
    tasks = []
    for split, path, display in tau22_source.split_sources(root, []):
        from tfrecords_builder import csvutil

        if split == "test":
            continue  # an alias of evaluate in the development set
        rows = csvutil.iter_tsv(path, ["filename"], display=display)
        clips = tau22_plan.plan_split(split, rows, display, root, meta, policy)
        groups, _ = tau22_plan.group_recordings(split, clips, display)
        for key, unit in tau22_plan.work_units(clips, groups, 0):
            tasks.append((split, key, unit, display))
    return tasks


def interleaved_units(tasks, scratch, passes):
    """CPU seconds of the bound's and the build's work for the same units, in this process.

    Unit by unit, ``decode_only`` and the build's worker function (decode, resample, encode,
    write at planned places into fresh files) run back to back, in alternating order, so a
    loaded machine slows both alike: this ratio scatters far less than that of whole runs.
    It leaves out what only the main process of a build does (planning, placing, booking).

    Returns:
        ``(bound CPU s, build CPU s)`` summed over ``passes`` passes over ``tasks``.
    """
    from asc_core import tfrecord_io
    from asc_core import writer as writer_lib
    from tfrecords_builder.tau22.plan import record_size
    from tfrecords_builder.tau22.worker import process_unit

    parallel._keep_freed_memory()  # as in the pool's workers
    bound = build = 0.0
    for _ in range(passes):
        shutil.rmtree(scratch, ignore_errors=True)  # fresh pages, as in a real build
        os.makedirs(scratch)
        _quiet_disk()
        views = {}
        placed = []
        for split, key, clips, display in tasks:
            for view in ("1s", "10s"):
                if (split, view) not in views:
                    views[(split, view)] = writer_lib.PlacedShards(scratch, f"{split}-{view}", 1)
            places = [views[(split, "1s")].place(record_size(c)) for c in clips]
            if key is not None:
                places.append(views[(split, "10s")].place(record_size(clips[0], key)))
            placed.append((split, key, clips, display, places))
        for i, (task, full) in enumerate(zip(tasks, placed)):
            steps = [(decode_only, task, True), (process_unit, full, False)]
            for fn, arg, is_bound in steps if i % 2 == 0 else steps[::-1]:
                start = time.process_time()
                fn(arg)
                spent = time.process_time() - start
                if is_bound:
                    bound += spent
                else:
                    build += spent
        tfrecord_io.close_files()
    shutil.rmtree(scratch, ignore_errors=True)
    return bound, build


def scale_corpus(root, out_root, factor):
    """A TAU22 layout with every recording ``factor`` times (hard links, new segment ids)."""
    from tfrecords_builder import csvutil
    from tfrecords_builder import tau22

    os.makedirs(os.path.join(out_root, "audio"))
    os.makedirs(os.path.join(out_root, "evaluation_setup"))

    def renamed(name, k):
        parsed = tau22.parse_name(name)
        stem = os.path.basename(name)
        fields = stem[: -len(".wav")].split("-")
        fields[-3] = str(parsed["segment_id"] + 10_000_000 * k)
        return "audio/" + "-".join(fields) + ".wav"

    for rel in (
        "meta.csv",
        "evaluation_setup/fold1_train.csv",
        "evaluation_setup/fold1_evaluate.csv",
        "evaluation_setup/fold1_test.csv",
    ):
        columns, rows = csvutil.read_tsv(os.path.join(root, rel), ["filename"])
        with open(os.path.join(out_root, rel), "w", encoding="utf-8") as f:
            f.write("\t".join(columns) + "\n")
            for k in range(factor):
                for row in rows:
                    values = dict(row, filename=renamed(row["filename"], k))
                    f.write("\t".join(values[c] for c in columns) + "\n")
                    if rel == "meta.csv":
                        os.link(
                            os.path.join(root, row["filename"]),
                            os.path.join(out_root, values["filename"]),
                        )


RSS_SCRIPT = """
import sys
from tfrecords_builder import tau22
tau22.build(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]), progress=False)
"""


def _group_hwm(pgid):
    """``{pid: VmHWM in KiB}`` of the processes in process group ``pgid``."""
    peaks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of /proc/PID/stat: process group
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peaks[int(entry)] = int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return peaks


def peak_rss(root, out, workers):
    """Peak RSS (VmHWM, MiB) of one build: ``(main process, largest worker, sum of all)``.

    VmHWM is sampled every 50 ms from /proc (``ru_maxrss`` of a spawned child would start at
    the parent's size, since it survives the fork before exec).
    """
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, "-c", RSS_SCRIPT, root, out, str(workers)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peaks = {}
    while proc.poll() is None:
        for pid, kib in _group_hwm(proc.pid).items():
            peaks[pid] = max(peaks.get(pid, 0), kib)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"the build failed: {proc.stderr.read()[-2000:]}")
    writer = peaks.pop(proc.pid, 0)
    total = writer + sum(peaks.values())
    return writer / 1024, max(peaks.values(), default=0) / 1024, total / 1024


def _quiet_disk():
    """Writes back the dirty pages of earlier runs before a timed one (``sync``; not timed).

    Otherwise the kernel writes the previous build's 1.2 GB back (its flusher threads take
    a core, writers get throttled) during whatever runs next, which penalises a run for its
    predecessor: the build's side mostly, since only it writes.
    """
    os.sync()


def _cpu():
    """(this process, its finished children) CPU seconds."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _cpu_since(before):
    """``(this process, its finished children)`` CPU seconds since ``before = _cpu()``."""
    now = _cpu()
    return now[0] - before[0], now[1] - before[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="existing synthetic corpus folder (size small)")
    parser.add_argument("--workers", type=int, default=parallel.default_workers())
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs of bound and build, interleaved"
    )
    parser.add_argument(
        "--interleaved",
        type=int,
        default=2,
        metavar="PASSES",
        help="passes of the per-unit interleaved measurement (0: none)",
    )
    parser.add_argument("--work-dir", help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    work = args.work_dir or tempfile.mkdtemp(prefix="bench_builder_")
    os.makedirs(work, exist_ok=True)
    if args.corpus:
        corpus = args.corpus
    else:
        from tfrecords_builder.synthetic import generate_corpus

        corpus = os.path.join(work, "raw")
        if not os.path.isfile(os.path.join(corpus, "manifest.json")):
            print("generating the small synthetic corpus ...", flush=True)
            generate_corpus(corpus, size="small", seed=0, progress=True)
    root = os.path.join(corpus, TAU_ROOT)

    from tfrecords_builder import tau22

    tasks = plan_tasks(root)
    clips = sum(len(t[2]) for t in tasks)
    results = {"workers": args.workers, "clips": clips, "units": len(tasks)}

    # Warm the page cache and the worker start-up path once, then time (interleaved, so a
    # busy machine slows both alike). Reported: the fastest run of each, and the median of the
    # CPU-time ratios of adjacent bound/build pairs (less sensitive to a lucky run).
    list(parallel.ordered_map(decode_only, tasks[: 2 * args.workers], args.workers))
    out = os.path.join(work, "out")
    runs = []
    for _ in range(max(1, args.repeat)):
        _quiet_disk()
        cpu0, start = _cpu(), time.perf_counter()
        if sum(parallel.ordered_map(decode_only, tasks, args.workers)) != clips:
            raise RuntimeError("the bound decoded a different number of clips")
        bound = (time.perf_counter() - start, _cpu_since(cpu0))
        shutil.rmtree(out, ignore_errors=True)  # deleting the previous output is not timed
        _quiet_disk()
        cpu0, start = _cpu(), time.perf_counter()
        tau22.build(root, out, workers=args.workers, progress=False)
        build = (time.perf_counter() - start, _cpu_since(cpu0))
        runs.append((bound, build))
        print(
            f"  run {len(runs)}: bound {bound[0]:6.2f} s wall {sum(bound[1]):6.2f} CPU s "
            f"(main {bound[1][0]:.2f}); build {build[0]:6.2f} s wall {sum(build[1]):6.2f} "
            f"CPU s (main {build[1][0]:.2f}); CPU ratio {sum(bound[1]) / sum(build[1]):.3f}",
            flush=True,
        )
    bound_s = min(b[0] for b, _ in runs)
    build_s = min(b[0] for _, b in runs)
    bound_cpu = min(sum(b[1]) for b, _ in runs)
    build_cpu = min(sum(b[1]) for _, b in runs)
    paired = float(np.median([sum(b[1]) / sum(d[1]) for b, d in runs]))
    results.update(
        repeat=args.repeat,
        bound_s=bound_s,
        bound_clips_per_s=clips / bound_s,
        bound_cpu_s=bound_cpu,
        build_s=build_s,
        build_clips_per_s=clips / build_s,
        build_cpu_s=build_cpu,
        build_vs_bound=bound_s / build_s,
        build_vs_bound_cpu=bound_cpu / build_cpu,
        build_vs_bound_cpu_paired_median=paired,
        runs=[
            {
                "bound_s": b[0],
                "bound_cpu_main_s": b[1][0],
                "bound_cpu_workers_s": b[1][1],
                "build_s": d[0],
                "build_cpu_main_s": d[1][0],
                "build_cpu_workers_s": d[1][1],
            }
            for b, d in runs
        ],
    )
    print(f"{clips} clips ({len(tasks)} units), {args.workers} workers, fastest of {len(runs)}")
    print(
        f"bound (decode + resample only): {bound_s:7.2f} s wall {clips / bound_s:8.1f} clips/s"
        f"  {bound_cpu:7.2f} CPU s"
    )
    print(
        f"tau22 build (both views):       {build_s:7.2f} s wall {clips / build_s:8.1f} clips/s"
        f"  {build_cpu:7.2f} CPU s"
    )
    print(
        f"build / bound: {100 * bound_s / build_s:.1f} % (wall), "
        f"{100 * bound_cpu / build_cpu:.1f} % (CPU time: the wall ratio on an idle machine), "
        f"{100 * paired:.1f} % (median CPU-time ratio of the {len(runs)} pairs)"
    )

    if args.interleaved:
        # The last build's output would stay in the page cache and on disk meanwhile, which
        # made the writes of the interleaved passes ~4 % dearer than in a fresh process.
        shutil.rmtree(out, ignore_errors=True)
        bound_units, build_units = interleaved_units(
            tasks, os.path.join(work, "units"), args.interleaved
        )
        main_extra = float(np.median([d[1][0] - b[1][0] for b, d in runs]))
        results.update(
            interleaved_passes=args.interleaved,
            interleaved_bound_cpu_s=bound_units,
            interleaved_build_cpu_s=build_units,
            build_vs_bound_interleaved=bound_units / build_units,
            build_main_extra_cpu_s=main_extra,
            build_vs_bound_interleaved_with_main=bound_units
            / (build_units + args.interleaved * main_extra),
        )
        print(
            f"interleaved per unit, {args.interleaved} pass(es) in one process: bound "
            f"{bound_units:.2f} CPU s, build's worker work {build_units:.2f} CPU s: "
            f"{100 * bound_units / build_units:.1f} %; with the build's extra main-process CPU "
            f"({main_extra:.2f} s a build, median of the pairs): "
            f"{100 * results['build_vs_bound_interleaved_with_main']:.1f} %"
        )

    if args.scale > 1:
        shutil.rmtree(out, ignore_errors=True)
        big = os.path.join(work, f"x{args.scale}")
        if not os.path.isdir(big):
            scale_corpus(root, big, args.scale)
        rss_1 = peak_rss(root, os.path.join(work, "rss1"), args.workers)
        rss_n = peak_rss(big, os.path.join(work, f"rss{args.scale}"), args.workers)
        growth = rss_n[0] / rss_1[0] - 1
        growth_total = rss_n[2] / rss_1[2] - 1
        per_1000 = (rss_n[0] - rss_1[0]) / ((args.scale - 1) * clips / 1000)
        results.update(
            rss_1x_mib=rss_1,
            rss_scaled_mib=rss_n,
            scale=args.scale,
            rss_growth=growth,
            rss_growth_all_processes=growth_total,
            rss_main_mib_per_1000_clips=per_1000,
        )
        for label, rss in (("1x", rss_1), (f"{args.scale}x", rss_n)):
            print(
                f"peak RSS {label}: main {rss[0]:.1f} MiB, largest worker {rss[1]:.1f} MiB, "
                f"all processes {rss[2]:.1f} MiB"
            )
        print(
            f"growth 1x -> {args.scale}x: main {100 * growth:+.1f} % ({per_1000:.2f} MiB per "
            f"1000 clips: the plan), all processes {100 * growth_total:+.1f} %"
        )
        for name in ("rss1", f"rss{args.scale}"):
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
