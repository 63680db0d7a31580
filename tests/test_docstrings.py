"""Every ``>>>`` example in the docstrings of keras_asc and asc_core runs and prints what it says.

Modules are found by their text (only those holding a ``>>>`` are imported); each example runs
in its module's namespace with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``, as ``python -m
doctest`` would with those flags.
"""

import doctest
import importlib
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("asc_core", "keras_asc")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The public entry points whose docstrings must show a runnable example.
DOCUMENTED = {
    "keras_asc.models.scene_classifier": "SceneClassifier.from_preset",
    "keras_asc.losses.inverse_contrastive_loss": "InverseContrastiveLoss",
    "keras_asc.layers.kaldi_mel_spectrogram": "KaldiMelSpectrogram",
    "keras_asc.augment.dir_augmentation": "DirAugmentation",
    "keras_asc.data.schema": "parse_audio_example",
    "keras_asc.data.pipeline": "random_window",
    "asc_core.audio": "resample",
}


def _modules_with_examples():
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(p for p in parts if p != "__init__"))
    return names


MODULES = _modules_with_examples()


def _doctests(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # Only the module's own objects (not ones it imports from elsewhere).
    return [t for t in finder.find(module) if t.name.startswith(module_name)]


def test_entry_points_have_examples():
    assert set(DOCUMENTED) <= set(MODULES), "modules without a >>> example"
    for module_name, qualname in DOCUMENTED.items():
        names = {t.name for t in _doctests(module_name)}
        assert f"{module_name}.{qualname}" in names, f"{qualname}: no docstring example"


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    tests = _doctests(module_name)
    assert tests, f"{module_name} has '>>>' in its text but no docstring example"
    failures = []
    for test in tests:
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        output = []
        result = runner.run(test, out=output.append)
        if result.failed:
            failures.append("".join(output))
    assert not failures, "\n".join(failures)


def test_every_package_folder_is_searched():
    # A renamed package would silently drop its examples from the list above.
    for package in PACKAGES:
        assert os.path.isfile(ROOT / package / "__init__.py")
