"""Shared test fixtures: tiny TAU22 layouts written on the fly and the synthetic corpus.

``write_tau22(root, recordings)`` writes a minimal valid TAU22 development layout (meta.csv,
evaluation_setup/fold1_{train,evaluate,test}.csv, 24-bit 44.1 kHz mono 1-s WAVs). Part ``k`` of
recording ``r`` is a sine at ``tone_hz(r, k)``, so a test can tell which file ended up where.
Tests then damage a copy to produce one bad input at a time.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The PyTorch oracle (`make install-oracle`: torch, timm, hear21passt, torchaudio) is a test
# dependency only. Without it these modules, which import it at the top, are not collected (and
# the header says so); CI installs it, so nothing is left out there.
ORACLE_MODULES = [
    "test_convert_passt.py",
    "test_kaldi_mel_spectrogram.py",
    "test_passt_parity.py",
    "test_weights_cache.py",
]
HAVE_ORACLE = all(
    importlib.util.find_spec(name) is not None for name in ("torch", "hear21passt", "torchaudio")
)
collect_ignore = [] if HAVE_ORACLE else ORACLE_MODULES


def pytest_report_header(config):
    if HAVE_ORACLE:
        return "PyTorch oracle: installed"
    return "PyTorch oracle: not installed (make install-oracle); not collected: " + ", ".join(
        ORACLE_MODULES
    )


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch, tmp_path_factory):
    """Official presets load AudioSet weights by default: a test that builds one without
    `load_weights=False` must fail, not fetch 330 MB. The mirror is a dead address and the
    cache a temporary folder, and (once keras-asc is imported) a weights download fails at
    once; tests that serve weights restore `fetch_resumable` and set their own mirror."""
    monkeypatch.setenv("KERAS_ASC_WEIGHTS_MIRROR", "http://127.0.0.1:9/no-downloads-in-tests")
    monkeypatch.setenv("KERAS_ASC_CACHE", str(tmp_path_factory.getbasetemp() / "weights-cache"))
    cache = sys.modules.get("keras_asc.models.weights_cache")
    if cache is not None:

        def refuse(url, *args, **kwargs):
            pytest.fail(f"a test tried to download {url}; pass load_weights=False")

        monkeypatch.setattr(cache, "fetch_resumable", refuse)


TAU_RATE = 44100
TAU_ROOT = "TAU-urban-acoustic-scenes-2022-mobile-development"

# (split, scene, city, location id, segment id, device): 10 one-second parts each.
DEFAULT_RECORDINGS = (
    ("train", "airport", "lisbon", 1000, 40000, "a"),
    ("train", "bus", "paris", 21, 7, "b"),
    ("train", "tram", "vienna", 3, 12, "s1"),
    ("evaluate", "park", "helsinki", 5, 90, "a"),
    ("evaluate", "metro", "prague", 8, 4, "s4"),
)


def tone_hz(recording, part):
    """Frequency of part ``part`` of recording ``recording`` (distinct, below 16 kHz)."""
    return 200.0 + 100.0 * part + 1000.0 * recording


def tone(freq, seconds=1.0, rate=TAU_RATE, amplitude=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tau_name(scene, city, loc, segment, part, device):
    return f"audio/{scene}-{city}-{loc}-{segment}-{part}-{device}.wav"


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")


def write_tau22(root, recordings=DEFAULT_RECORDINGS, parts=range(10)):
    """Writes a TAU22 development layout under ``root``; returns ``{split: [csv rows]}``.

    Args:
        root: the dataset folder to create.
        recordings: tuples ``(split, scene, city, location, segment, device)``.
        parts: which 1-s indices each recording has.

    Returns:
        dict split -> list of ``(filename, scene)`` in CSV order.
    """
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    os.makedirs(os.path.join(root, "evaluation_setup"), exist_ok=True)
    rows = {"train": [], "evaluate": []}
    meta = []
    for r, (split, scene, city, loc, segment, device) in enumerate(recordings):
        for k in parts:
            name = tau_name(scene, city, loc, segment, k, device)
            sf.write(os.path.join(root, name), tone(tone_hz(r, k)), TAU_RATE, subtype="PCM_24")
            rows[split].append((name, scene))
            meta.append((name, scene, f"{city}-{loc}", device))
    _write_tsv(
        os.path.join(root, "meta.csv"),
        ("filename", "scene_label", "identifier", "source_label"),
        sorted(meta),
    )
    setup = os.path.join(root, "evaluation_setup")
    _write_tsv(os.path.join(setup, "fold1_train.csv"), ("filename", "scene_label"), rows["train"])
    _write_tsv(
        os.path.join(setup, "fold1_evaluate.csv"), ("filename", "scene_label"), rows["evaluate"]
    )
    _write_tsv(
        os.path.join(setup, "fold1_test.csv"), ("filename",), [(n,) for n, _ in rows["evaluate"]]
    )
    return rows


@pytest.fixture
def tiny_tau(tmp_path):
    """A fresh 5-recording (50-file) TAU22 layout; returns its root folder."""
    root = tmp_path / "source" / TAU_ROOT
    write_tau22(str(root))
    return root


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """The generator's ``tiny`` corpus (seed 0): ``(folder, manifest)``; written once."""
    from tfrecords_builder.synthetic import generate_corpus

    folder = tmp_path_factory.mktemp("synthetic") / "raw"
    manifest = generate_corpus(str(folder), size="tiny", seed=0)
    return folder, manifest


@pytest.fixture
def drawn_figures(monkeypatch):
    """The matplotlib figures saved during a test, in order (their axes, lines, bars and texts
    stay readable after the library closes them), so a plot test can check what was drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    figures = []
    savefig = Figure.savefig

    def recording(self, *args, **kwargs):
        figures.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return figures
