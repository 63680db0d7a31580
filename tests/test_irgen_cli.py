"""End to end: train_irgen → run directory → generate_dirs (loads as a DIR set) → irgen_report,
and the bad inputs of each step. One tiny GAN is trained once for the whole module."""

import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from asc_core.errors import UserError
from asc_core.errors import run_cli
from asc_core.microphones import load_microphones
from keras_asc.cli import irgen_generate
from keras_asc.cli import irgen_train
from keras_asc.data.dirs import load_dirs
from keras_asc.irgen import generate as generate_lib
from keras_asc.irgen import report as report_lib
from keras_asc.irgen import train as train_lib
from keras_asc.irgen.config import load_irgen_config
from keras_asc.irgen.holdout import read_holdout_list
from keras_asc.irgen.records import load_dir_set

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "irgen" / "small_cpu.yaml"
SR, L = 32000, 1024
EPOCHS = 10
# (config token, microphone, pattern, transducer, diaphragm size, distances)
CONFIGS = (
    ("MicAOmni", "MicA", "omni", "condenser", "large", (50, 125, 500)),
    ("MicACardioid", "MicA", "cardioid", "condenser", "large", (50, 125, 500)),
    ("MicB", "MicB", "cardioid", "dynamic", "small", (50, 125)),
    ("MicC", "MicC", "bidirectional", "ribbon", "ribbon", (125, 500)),
)
PATTERN_A = {"omni": 1.0, "cardioid": 0.5, "bidirectional": 0.0}
TONE_HZ = {"condenser": 3000.0, "dynamic": 1500.0, "ribbon": 700.0}
TINY = [
    "generator.initial_channels=8",
    "generator.channels=[8, 4]",
    "generator.strides=[8, 8]",
    "generator.kernel_size=9",
    "discriminator.filters=[4, 8]",
    "discriminator.strides=[8, 8]",
    "discriminator.kernel_size=9",
    "discriminator.joint_filters=4",
    "data.batch_size=8",
    "optimizer.learning_rate=3.0e-3",
    f"training.epochs={EPOCHS}",
    "training.verbose=0",
]


def _ir(pattern, transducer, distance_cm, angle_deg):
    """A direct click plus a tone whose level follows the polar pattern, peak-normalised."""
    t = np.arange(L) / SR
    gain = abs(PATTERN_A[pattern] + (1 - PATTERN_A[pattern]) * np.cos(np.radians(angle_deg)))
    decay = np.exp(-t * (300.0 + distance_cm))
    ir = decay * (0.3 + 0.7 * gain) * np.sin(2 * np.pi * TONE_HZ[transducer] * t)
    ir[16] += 1.0
    return (ir / np.max(np.abs(ir))).astype(np.float32)


def _write_dir_set(out, with_metadata=True):
    from asc_core.example import encode_dir_example
    from asc_core.writer import OutputDir

    with OutputDir(out, builder="multi-dirs") as output:
        writer = output.sharded_writer("dirs", 2)
        for token, mic, pattern, transducer, size, distances in CONFIGS:
            for d in distances:
                for a in range(0, 360, 45):
                    meta = {}
                    if with_metadata:
                        meta = dict(
                            microphone=mic,
                            pattern=pattern,
                            distance_cm=d,
                            angle_deg=a,
                            transducer=transducer,
                            diaphragm_size=size,
                            diaphragm_count=1,
                            address="end",
                        )
                    writer.write(
                        encode_dir_example(
                            _ir(pattern, transducer, d, a),
                            name=f"Normalised_IRs/{token}_{d}cm/24bit/{token}_{d}cm_{a}Deg.wav",
                            set="multi",
                            source_sample_rate=48000,
                            **meta,
                        )
                    )
        return output.finish({"set": "multi", "num_examples": writer.num_examples})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("irgen")
    data = _write_dir_set(str(root / "multi"))
    run = str(root / "run")
    argv = ["--config", str(CONFIG), "--run-dir", run, "--set", f"data.path={data}"]
    for item in TINY:
        argv += ["--set", item]
    assert irgen_train.main(argv) == 0
    return {"root": root, "data": data, "run": run, "argv": argv}


def test_run_directory(trained):
    run = trained["run"]
    for name in (
        "config.yaml",
        "generator.keras",
        "discriminator.keras",
        "history.json",
        "history.csv",
        "microphones.csv",
        "conditions.json",
        "summary.json",
        "checkpoints/generator_best.weights.h5",
        "checkpoints/generator_last.weights.h5",
        "holdout/holdout.json",
    ):
        assert os.path.isfile(os.path.join(run, name)), name
    config = load_irgen_config(os.path.join(run, "config.yaml"))
    assert config["generator"]["channels"] == [8, 4] and config["holdout"]["protocol"] == "angles"
    history = json.loads(Path(run, "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert {"d_loss", "g_loss", "mse", "val_mse", "val_lsd_db"} <= set(history[0])
    summary = json.loads(Path(run, "summary.json").read_text())
    lists = read_holdout_list(os.path.join(run, "holdout"), "angles")
    assert summary["counts"] == {s: len(v) for s, v in lists.items()}
    assert summary["counts"]["test"] == 10 * 2  # 10 configuration-distance groups, 2 of 8 angles
    for protocol in ("distance", "microphones", "none"):
        assert read_holdout_list(os.path.join(run, "holdout"), protocol)
    table = load_microphones(os.path.join(run, "microphones.csv"))
    assert sorted(table) == ["MicA_cardioid", "MicA_omni", "MicB_cardioid", "MicC_bidirectional"]
    conditions = json.loads(Path(run, "conditions.json").read_text())
    assert conditions["trained"]["distance_range_cm"] == [50, 500]
    # MicA cardioid and MicB cardioid differ in transducer and size: no collisions here.
    assert conditions["trained"]["collisions"] == []
    # Asking for the same run directory again is refused.
    with pytest.raises(UserError, match="already holds a finished generator run"):
        irgen_train.main(trained["argv"])


def test_training_lowers_the_validation_mse(trained):
    run = trained["run"]
    config = load_irgen_config(os.path.join(run, "config.yaml"))
    dirset = load_dir_set(trained["data"])
    names = set(read_holdout_list(os.path.join(run, "holdout"), "angles")["validation"])
    index = [i for i, r in enumerate(dirset.records) if r["name"] in names]
    from keras_asc.irgen.condition_encoding import ConditionEncoder

    conditions = ConditionEncoder().encode_many([dirset.records[i] for i in index])
    untrained, _, _ = train_lib.build_networks(config, L)  # same seed: the initial weights
    before = np.mean((generate_lib.generate_irs(untrained, conditions) - dirset.irs[index]) ** 2)
    trained_generator = generate_lib.load_generator(run)
    after = np.mean(
        (generate_lib.generate_irs(trained_generator, conditions) - dirset.irs[index]) ** 2
    )
    print(f"validation MSE before {before:.6f} after {after:.6f}")
    assert after < 0.5 * before, (before, after)


def test_generated_set_loads_through_the_dir_loader(trained):
    out = str(trained["root"] / "generated")
    code = run_cli(
        irgen_generate.main,
        ["--run", trained["run"], "--out", out, "--grid", "angles=0:360:90", "distances=50,125"],
    )
    assert code == 0
    bank = load_dirs([out])
    assert len(bank) == 4 * 4 * 2 and set(bank.sets) == {"generated"}
    assert bank.microphones == ["generated/MicA", "generated/MicB", "generated/MicC"]
    dirset = load_dir_set(out)
    np.testing.assert_allclose(np.max(np.abs(dirset.irs), axis=1), 1.0, rtol=1e-6)
    first = dirset.records[0]
    assert first["name"] == "MicA_omni_50cm/MicA_omni_50cm_0Deg"
    assert (
        first["microphone"],
        first["pattern"],
        first["transducer"],
        first["diaphragm_size"],
        first["distance_cm"],
        first["angle_deg"],
    ) == ("MicA", "omni", "condenser", "large", 50, 0)
    info = json.loads(Path(out, "info.json").read_text())
    assert info["builder"] == "irgen-generate" and info["out_of_range"] == []
    assert info["grid"] == {"angles": [0, 90, 180, 270], "distances_cm": [50, 125]}
    # Both generated and measured sets combine as `dirs.sets` does.
    assert len(load_dirs([out, trained["data"]])) == 32 + 80


def test_out_of_range_and_user_described_microphones(trained, tmp_path):
    table = tmp_path / "mics.csv"
    table.write_text(
        "config,microphone,variant,model,pattern,transducer,diaphragm_size,diaphragm_count,"
        "address\n"
        "MyShotgun,MyShotgun,,,shotgun,ribbon,ribbon,1,end\n"
        "MyCardioid,MyCardioid,,,cardioid,condenser,large,2,side\n"
    )
    out = str(tmp_path / "user")
    with pytest.warns(generate_lib.OutOfRangeWarning) as caught:
        generate_lib.generate_set(
            trained["run"], out, ["angles=0,90", "distances=125,900"], microphones=str(table)
        )
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "MyCardioid: outside the trained range (distance 900 cm outside the trained 50-500 cm)"
        "; generating anyway",
        "MyShotgun: outside the trained range (distance 900 cm outside the trained 50-500 cm; "
        "untrained combination shotgun/ribbon/no size); generating anyway",
    ]
    assert len(load_dirs([out])) == 2 * 2 * 2
    info = json.loads(Path(out, "info.json").read_text())
    assert [w["config"] for w in info["out_of_range"]] == ["MyShotgun", "MyCardioid"]

    with pytest.raises(UserError) as err:
        irgen_generate.main(
            [
                "--run",
                trained["run"],
                "--out",
                str(tmp_path / "x"),
                "--microphones",
                str(table),
                "--select",
                "MyCardioid,Nope",
            ]
        )
    assert str(err.value) == (
        f"--select Nope: no such microphone configuration in {table}; it has MyShotgun, MyCardioid"
    )
    with open(table, "a", encoding="utf-8") as f:
        f.write("Mystery,Mystery,,,cardioid,,large,1,side\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bad row fails before any range warning
        with pytest.raises(UserError) as err:
            generate_lib.generate_set(
                trained["run"], str(tmp_path / "y"), microphones=str(table), select=["Mystery"]
            )
    assert str(err.value).startswith("Mystery: transducer is unknown (empty)")
    assert not os.path.exists(tmp_path / "y")


def test_bad_inputs(trained, tmp_path):
    # A DIR set without microphone metadata (MicIRP-like) cannot train a generator.
    bare = _write_dir_set(str(tmp_path / "bare"), with_metadata=False)
    argv = list(trained["argv"])
    argv[argv.index("--run-dir") + 1] = str(tmp_path / "run2")
    argv[argv.index(f"data.path={trained['data']}")] = f"data.path={bare}"
    with pytest.raises(UserError) as err:
        irgen_train.main(argv)
    assert str(err.value) == (
        f"{bare}: 80 of 80 IRs carry no microphone metadata (first: "
        "'Normalised_IRs/MicAOmni_50cm/24bit/MicAOmni_50cm_0Deg.wav': microphone '', "
        "distance_cm -1, angle_deg -1); the generator needs a set built by `python -m "
        "tfrecords_builder multi-dirs` (with its microphone table)"
    )
    assert run_cli(irgen_train.main, argv) == 2
    # Weights of a generator of another size.
    from keras_asc.irgen.generator import DirGenerator

    other = DirGenerator(initial_channels=16, channels=[8, 4], strides=[8, 8], kernel_size=9)
    other.build((None, 12))
    weights = str(tmp_path / "other.weights.h5")
    other.save_weights(weights)
    with pytest.raises(
        UserError,
        match=r"other\.weights\.h5 does not fit the generator of .*"
        r"it is a checkpoint of another size",
    ):
        irgen_generate.main(
            ["--run", trained["run"], "--out", str(tmp_path / "z"), "--checkpoint", weights]
        )
    # The run's own checkpoint loads.
    generator = generate_lib.load_generator(
        trained["run"], os.path.join(trained["run"], "checkpoints", "generator_last.weights.h5")
    )
    assert generator.initial_channels == 8
    with pytest.raises(UserError, match="--grid angles=0:400: angle 360 is outside"):
        generate_lib.parse_grid(["angles=0:400"], [0], [50])


def test_report(trained, tmp_path):
    out = str(tmp_path / "report")
    paths = report_lib.write_report([trained["run"]], out)
    result = json.loads(Path(paths["json"]).read_text())["runs"][0]
    lists = read_holdout_list(os.path.join(trained["run"], "holdout"), "angles")
    assert {s: result["splits"][s]["count"] for s in lists} == {s: len(v) for s, v in lists.items()}
    test = result["splits"]["test"]
    assert test["mse"] < test["silence_mse"]
    assert test["lsd_db"] > 0 and test["polar_db"] >= 0
    assert sorted(result["test_by_distance_cm"]) == ["125", "50", "500"]
    assert sum(m["count"] for m in result["test_by_microphone"].values()) == test["count"]
    markdown = Path(paths["markdown"]).read_text()
    header = "| protocol | split | IRs | MSE | silence MSE | LSD [dB] | polar error [dB] |"
    assert header in markdown
    assert "| angles | test | 20 |" in markdown
    assert Path(paths["figure"]).stat().st_size > 10000
    with pytest.raises(UserError, match="--config MicZ/omni --distance 50: no such measured"):
        report_lib.write_report([trained["run"]], out, "MicZ/omni", 50)
    # CSV lists are readable TSV with one row per record.
    with open(os.path.join(trained["run"], "holdout", "angles.tsv"), encoding="utf-8") as f:
        assert len(list(csv.reader(f, delimiter="\t"))) == 1 + 80


@pytest.mark.parametrize("scale", ["", "demo_"])
def test_asc_comparison_configs_differ_only_in_dirs(scale):
    from keras_asc.config.loader import config_differences
    from keras_asc.config.loader import load_config

    folder = CONFIG.parent
    none = load_config(str(folder / f"asc_{scale}none.yaml"))
    assert none["dirs"] is None
    for source in ("measured", "generated", "micirp"):
        config = load_config(str(folder / f"asc_{scale}{source}.yaml"))
        assert config_differences(none, config) == ["dirs"], source
    generated = load_config(str(folder / f"asc_{scale}generated.yaml"))
    assert generated["dirs"]["sets"][0].endswith("generated_dirs")
