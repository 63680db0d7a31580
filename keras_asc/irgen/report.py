"""IR-level metrics of trained DIR generators, per hold-out protocol.

From the command line (:mod:`keras_asc.cli`)::

    python scripts/irgen_report.py --run runs/irgen/angles --run runs/irgen/distance \
        --run runs/irgen/microphones [--out runs/irgen/report] [--config RodeK2/cardioid]
        [--distance 50]

For each run the generator synthesises every IR of its DIR set (the measured conditions) and
:mod:`keras_asc.irgen.metrics` compares it with the measurement, per split of the run's saved
hold-out list (``train``, ``validation``, ``test`` = held out), and for the held-out IRs per
distance and per microphone. Writes into ``--out`` (default ``RUN_DIR/report`` of the first
run):

* ``irgen_metrics.json``: every number, plus the "silence" baseline (the MSE of an all-zero IR,
  i.e. the mean energy of the measured windows) for scale;
* ``irgen_metrics.md``: the same as Markdown tables;
* ``irgen_responses.png``: measured vs generated magnitude responses of one configuration at one
  distance, one curve per angle 0-180 degrees on a log-frequency axis (the paper's Figure 2);
  held-out angles are dashed in the generated panel.
"""

import os

import numpy as np

from asc_core.errors import UserError
from keras_asc.irgen import metrics as irm
from keras_asc.irgen.condition_encoding import ConditionEncoder
from keras_asc.irgen.generate import generate_irs
from keras_asc.irgen.generate import load_generator
from keras_asc.irgen.generate import load_run
from keras_asc.irgen.holdout import SPLITS
from keras_asc.irgen.holdout import read_holdout_list
from keras_asc.irgen.records import configuration_token
from keras_asc.irgen.records import load_dir_set

METRICS = ("mse", "lsd_db", "polar_db", "silence_mse")


def _dir_set_path(config, conditions):
    path = config["data"]["path"]
    if os.path.isdir(path):
        return path
    if os.path.isdir(conditions.get("data_path", "")):
        return conditions["data_path"]
    raise UserError(
        f"the DIR set of the run ({path}, trained from {conditions.get('data_path')}) is not "
        "found; run the report from the training working directory"
    )


def _aggregate(values, index):
    index = np.asarray(index, int)
    out = {"count": int(index.size)}
    for name in METRICS:
        selected = values[name][index] if index.size else np.zeros(0)
        finite = selected[np.isfinite(selected)]
        out[name] = float(finite.mean()) if finite.size else None
    return out


def evaluate_run(run_dir, batch_size=256):
    """Metrics of one run; returns ``(result dict, arrays for the figure)``."""
    config, conditions = load_run(run_dir)
    protocol = conditions["protocol"]
    dirset = load_dir_set(_dir_set_path(config, conditions))
    records = dirset.records
    lists = read_holdout_list(os.path.join(os.fspath(run_dir), "holdout"), protocol)
    index_of = {r["name"]: i for i, r in enumerate(records)}
    split_index = {}
    for split in SPLITS:
        unknown = [n for n in lists[split] if n not in index_of]
        if unknown:
            raise UserError(
                f"{run_dir}/holdout/{protocol}.tsv names {unknown[0]!r}, which is not in the DIR "
                f"set {dirset.path}; the set changed since training"
            )
        split_index[split] = np.array(sorted(index_of[n] for n in lists[split]), int)
    encoder = ConditionEncoder(**config["encoding"])
    generator = load_generator(run_dir)
    generated = generate_irs(generator, encoder.encode_many(records), batch_size)
    on_axis_meta = {}
    for r in records:
        on_axis_meta.setdefault(irm.group_key(r), {**r, "angle_deg": 0})
    keys = list(on_axis_meta)
    on_axis = generate_irs(
        generator, encoder.encode_many([on_axis_meta[k] for k in keys]), batch_size
    )
    values = {
        "mse": irm.mse_per_ir(dirset.irs, generated),
        "lsd_db": irm.log_spectral_distance(dirset.irs, generated, dirset.sample_rate),
        "polar_db": irm.polar_pattern_errors(
            records, dirset.irs, generated, dict(zip(keys, on_axis)), dirset.sample_rate
        ),
        "silence_mse": np.mean(dirset.irs.astype(np.float64) ** 2, axis=1),
    }
    result = {
        "run": os.path.abspath(os.fspath(run_dir)),
        "protocol": protocol,
        "splits": {s: _aggregate(values, split_index[s]) for s in SPLITS},
        "test_by_distance_cm": {},
        "test_by_microphone": {},
    }
    test = split_index["test"]
    for distance in sorted({records[i]["distance_cm"] for i in test}):
        chosen = [i for i in test if records[i]["distance_cm"] == distance]
        result["test_by_distance_cm"][str(distance)] = _aggregate(values, chosen)
    for mic in sorted({records[i]["microphone"] for i in test}):
        chosen = [i for i in test if records[i]["microphone"] == mic]
        result["test_by_microphone"][mic] = _aggregate(values, chosen)
    split_of = np.empty(len(records), object)
    for split, index in split_index.items():
        split_of[index] = split
    arrays = {
        "records": records,
        "measured": dirset.irs,
        "generated": generated,
        "split": split_of,
        "sample_rate": dirset.sample_rate,
    }
    return result, arrays


# === Markdown ===


def _fmt(value, digits):
    return "–" if value is None else f"{value:.{digits}f}"


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _metric_cells(m):
    return [
        str(m["count"]),
        _fmt(m["mse"], 5),
        _fmt(m["silence_mse"], 5),
        _fmt(m["lsd_db"], 2),
        _fmt(m["polar_db"], 2),
    ]


_HEADER = ["IRs", "MSE", "silence MSE", "LSD [dB]", "polar error [dB]"]


def markdown(results):
    """Markdown tables of :func:`evaluate_run` results."""
    lines = [
        "## DIR generator: IR-level metrics",
        "",
        "MSE on the stored 1024-sample peak-normalised window (paper: 0.00527, with unstated "
        "preprocessing, so not directly comparable); silence MSE = MSE of an all-zero IR; LSD "
        "50 Hz-16 kHz; polar error = dB error of the octave-band level (0.5-8 kHz) relative to "
        "0 degrees.",
        "",
        _row(["protocol", "split"] + _HEADER),
        _row(["---"] * (2 + len(_HEADER))),
    ]
    for res in results:
        for split in SPLITS:
            if res["splits"][split]["count"]:
                lines.append(_row([res["protocol"], split] + _metric_cells(res["splits"][split])))
    for key, title in (
        ("test_by_distance_cm", "distance [cm]"),
        ("test_by_microphone", "microphone"),
    ):
        lines += [
            "",
            f"### Held-out IRs per {title.split(' ')[0]}",
            "",
            _row(["protocol", title] + _HEADER),
            _row(["---"] * (2 + len(_HEADER))),
        ]
        for res in results:
            for name, m in res[key].items():
                lines.append(_row([res["protocol"], name] + _metric_cells(m)))
    return "\n".join(lines) + "\n"


# === Figure ===


def _figure_group(arrays, config_token=None, distance_cm=None):
    records = arrays["records"]
    groups = {}
    for i, r in enumerate(records):
        if 0 <= r["angle_deg"] <= 180:
            groups.setdefault((configuration_token(r), r["distance_cm"]), []).append(i)
    if config_token is not None or distance_cm is not None:
        chosen = [
            k
            for k in groups
            if (config_token is None or k[0] == config_token)
            and (distance_cm is None or k[1] == distance_cm)
        ]
        if not chosen:
            known = sorted({f"{k[0]} @ {k[1]} cm" for k in groups})
            raise UserError(
                f"--config {config_token} --distance {distance_cm}: no such measured series; "
                f"available: {', '.join(known)}"
            )
        key = sorted(chosen)[0]
    else:
        # Prefer a series with held-out IRs, then the most angles.
        key = max(
            sorted(groups),
            key=lambda k: (sum(arrays["split"][i] == "test" for i in groups[k]), len(groups[k])),
        )
    return key, sorted(groups[key], key=lambda i: records[i]["angle_deg"])


def plot_responses(arrays, path, config_token=None, distance_cm=None):
    """Measured | generated magnitude responses, one curve per angle (paper Figure 2)."""
    from keras_asc.evaluation.dir_plots import magnitude_responses
    from keras_asc.evaluation.plots import _pyplot
    from keras_asc.evaluation.plots import save_figure

    plt = _pyplot()
    import matplotlib

    (token, distance), index = _figure_group(arrays, config_token, distance_cm)
    sr = arrays["sample_rate"]
    angles = np.array([arrays["records"][i]["angle_deg"] for i in index], float)
    freqs, measured = magnitude_responses(arrays["measured"][index], sr, f_min=50.0, f_max=16000.0)
    _, generated = magnitude_responses(arrays["generated"][index], sr, f_min=50.0, f_max=16000.0)
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=180.0)
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, responses, title in (
        (axes[0], measured, "measured"),
        (axes[1], generated, "generated"),
    ):
        for j, i in enumerate(index):
            held_out = arrays["split"][i] == "test" and title == "generated"
            ax.plot(
                freqs,
                responses[j],
                color=cmap(norm(angles[j])),
                lw=1.0,
                ls="--" if held_out else "-",
            )
        ax.set_xscale("log")
        ax.set_xlim(freqs[0], freqs[-1])
        ax.set_xlabel("frequency [Hz]")
        ax.grid(which="both", alpha=0.25)
        ax.set_title(f"{title}: {token} at {distance} cm")
    axes[0].set_ylabel("magnitude [dB re 1 kHz]")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="angle [°]")
    return save_figure(fig, path)


# === Command line ===


def write_report(runs, out=None, config_token=None, distance_cm=None):
    """Evaluates ``runs`` and writes the JSON, Markdown and PNG; returns their paths."""
    from asc_core.files import atomic_write_text
    from asc_core.files import write_json

    if not runs:
        raise UserError("--run: give at least one run directory")
    results, first_arrays = [], None
    for run in runs:
        result, arrays = evaluate_run(run)
        results.append(result)
        first_arrays = first_arrays or arrays
    out = out or os.path.join(os.fspath(runs[0]), "report")
    os.makedirs(out, exist_ok=True)
    paths = {
        "json": os.path.join(out, "irgen_metrics.json"),
        "markdown": os.path.join(out, "irgen_metrics.md"),
        "figure": os.path.join(out, "irgen_responses.png"),
    }
    write_json(
        paths["json"],
        {
            "runs": results,
            "conventions": {
                "lsd_band_hz": list(irm.LSD_BAND_HZ),
                "octave_centres_hz": list(irm.OCTAVE_CENTRES_HZ),
                "magnitude_floor": irm.MAGNITUDE_FLOOR,
            },
        },
    )
    atomic_write_text(paths["markdown"], markdown(results))
    plot_responses(first_arrays, paths["figure"], config_token, distance_cm)
    return paths
