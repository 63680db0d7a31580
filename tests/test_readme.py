"""The README's "The model in your own project" block runs as written (tiny sizes)."""

import os
import re

import pytest
from _corpus import write_learnable_set

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

# The block's settings lines, replaced by CPU-sized ones: the official preset would download
# 330 MB, the real data are 40+ GB. Anything else in the block runs unchanged.
TINY = {
    "PRESET": '"passt_tiny"',
    "DATA": None,  # the tiny corpus folder, set per test
    "BATCH_SIZE": "5",
    "EPOCHS": "1",
}


def _library_block():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### The model in your own project", 1)
    assert len(section) == 2, "README.md lost its section 'The model in your own project'"
    match = re.search(r"```python\n(.*?)```", section[1], re.S)
    assert match, "README.md: no python block in 'The model in your own project'"
    return match.group(1)


def test_readme_library_snippet_runs(tmp_path, monkeypatch, capsys):
    data = tmp_path / "tau22"
    write_learnable_set(str(data), recordings_per_scene=1, eval_per_scene=1, seconds=2)
    code = _library_block()
    for name, value in {**TINY, "DATA": repr(str(data))}.items():
        code, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", code, flags=re.M)
        assert count == 1, f"README block: expected one line '{name} = ...', found {count}"
    monkeypatch.chdir(tmp_path)  # save_to_preset("my_preset") writes here
    scope = {"__name__": "readme"}
    exec(compile(code, README, "exec"), scope)  # noqa: S102 - our own README

    model = scope["model"]
    assert model.backbone.hidden_dim < 768 and model.num_classes == 10  # passt_tiny ran
    assert os.path.isfile(tmp_path / "my_preset" / "model.weights.h5")
    assert scope["data"].steps_per_epoch == 2  # 10 recordings, batch 5
    # The last line prints the ICL model's scene-only evaluation: CE and accuracy, no ICL.
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"\{'accuracy': [0-9.]+, 'loss': [0-9.]+\}", last), last


def test_readme_settings_are_the_official_ones():
    # The published block must show the paper's preset and sizes, not the test's.
    code = _library_block()
    assert re.search(r'^PRESET = "passt_s_swa_p16_128_ap476"', code, re.M)
    assert re.search(r"^EPOCHS = 250$", code, re.M)
    assert re.search(r"^BATCH_SIZE = 64$", code, re.M)
    assert "train_ds" in code and "val_ds" in code


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
