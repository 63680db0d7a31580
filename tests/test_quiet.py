"""Quiet by default: no Keras build() warning on DIR/mixup runs, no bar redraws in log files."""

import re
import warnings

import _corpus
import pytest

from keras_asc.training.runner import train

UNBUILT = "unbuilt state"


@pytest.fixture(scope="module")
def dir_workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    _corpus.write_learnable_set(
        str(root / "data"), recordings_per_scene=2, eval_per_scene=1, seconds=2
    )
    _corpus.write_dir_set(str(root / "dirs"), num_irs=4, length=64, sample_rate=32000)
    return root


def test_dir_and_mixup_task_builds_without_the_unbuilt_state_warning():
    import numpy as np

    from keras_asc.augment.augmenter import Augmenter
    from keras_asc.augment.dir_augmentation import DirAugmentation
    from keras_asc.models.scene_classifier import SceneClassifier

    irs = np.random.default_rng(0).normal(size=(3, 40)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = DirAugmentation(irs, probability=1.0, name="dir_augmentation")
        augmenter = Augmenter(layer, mixup_alpha=0.3)
        SceneClassifier.from_preset("passt_tiny", num_classes=10, augmenter=augmenter)
    assert layer.built
    assert [str(w.message) for w in caught if UNBUILT in str(w.message)] == []


def test_dir_run_into_a_log_file_has_no_warning_no_redraws_and_no_ansi(dir_workspace, capfd):
    from test_training import tiny_config

    config = tiny_config(
        str(dir_workspace / "data"),
        dirs={"sets": [str(dir_workspace / "dirs")]},
        training={"steps_per_epoch": 2, "verbose": 1},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, str(dir_workspace / "run"))
    assert [str(w.message) for w in caught if UNBUILT in str(w.message)] == []
    out, err = capfd.readouterr()  # captured: stdout is not a terminal, like a log file
    assert UNBUILT not in out + err
    assert not re.search(r"[\r\x1b]", out + err)
    # Keras' per-epoch line (verbose 2 off a terminal), with the step total.
    assert re.search(r"^2/2 - \d+s", out, re.MULTILINE), out
