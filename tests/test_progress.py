"""asc_core.progress: a tqdm bar on a terminal, plain periodic lines with totals elsewhere."""

import io
import re

import pytest

from asc_core.progress import LineProgress
from asc_core.progress import format_count
from asc_core.progress import progress

CONTROL = re.compile(r"[\r\x1b]")  # carriage-return redraws and ANSI escapes


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_not_a_terminal_writes_plain_lines_every_ten_percent_with_the_total():
    stream = io.StringIO()
    clock = Clock()
    bar = LineProgress(total=50, desc="tau22", unit="clip", stream=stream, clock=clock)
    for _ in range(50):
        clock.now += 0.1
        bar.update(1)
    bar.close()
    text = stream.getvalue()
    assert not CONTROL.search(text)
    lines = text.splitlines()
    assert lines[0] == "tau22: 5/50 clip (10%), 0 s, ~4 s left"
    assert [line.split(" ")[1] for line in lines[:-1]] == [f"{n}/50" for n in range(5, 50, 5)]
    assert lines[-1] == "tau22: done 50/50 clip (100%), 5 s"


def test_not_a_terminal_writes_a_line_every_thirty_seconds_between_percent_steps():
    stream = io.StringIO()
    clock = Clock()
    bar = LineProgress(total=1000, desc="predict", unit="clip", stream=stream, clock=clock)
    for seconds in (10, 29, 31, 50, 62):
        clock.now = seconds
        bar.update(1)
    assert stream.getvalue().splitlines() == [
        "predict: 3/1000 clip (0%), 31 s, ~10302 s left",
        "predict: 5/1000 clip (0%), 62 s, ~12338 s left",
    ]
    bar.close()  # stopped early: the last line is not "done"
    assert stream.getvalue().splitlines()[-1] == "predict: 5/1000 clip (0%), 62 s, ~12338 s left"


def test_wrapped_iterable_gets_its_length_as_total_and_a_final_line():
    stream = io.StringIO()
    items = list(progress(range(7), desc="groups", unit="group", stream=stream))
    assert items == list(range(7))
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "groups: done 7/7 group (100%), 0 s"
    assert len(lines) == 7  # 14%, 28%, ... crossed once each, then the final line


def test_bytes_are_scaled_and_a_resumed_count_starts_at_initial():
    stream = io.StringIO()
    with progress(total=4 << 20, initial=1 << 20, unit="B", unit_scale=True, desc="x.zip",
                  stream=stream, every_percent=50) as bar:  # fmt: skip
        bar.update(3 << 20)
    assert stream.getvalue().splitlines() == ["x.zip: done 4.0 MiB/4.0 MiB (100%), 0 s"]
    assert format_count(1536, "B", True) == "1.5 KiB"
    assert format_count(2_500_000, "clip", True) == "2.5 Mclip"
    assert format_count(12, "clip") == "12 clip"


def test_postfix_is_appended():
    stream = io.StringIO()
    bar = progress(total=2, desc="irgen", unit="epoch", stream=stream, every_percent=50)
    bar.set_postfix({"mse": "0.25"})
    bar.update(1)
    bar.close()
    assert stream.getvalue().splitlines()[0].endswith(", mse=0.25")


def test_without_a_total_lines_come_by_time_only():
    stream = io.StringIO()
    clock = Clock()
    bar = LineProgress(desc="read", unit="clip", stream=stream, clock=clock)
    for seconds in (1, 2, 40):
        clock.now = seconds
        bar.update(10)
    bar.close()
    assert stream.getvalue().splitlines() == ["read: 30 clip, 40 s", "read: 30 clip, 40 s"]


def test_a_terminal_gets_a_tqdm_bar_with_the_total():
    from tqdm import tqdm

    bar = progress(total=3, desc="tau22", unit="clip", stream=Terminal())
    assert isinstance(bar, tqdm) and bar.total == 3
    bar.close()


def test_disabled_shows_nothing_and_passes_items_through(capsys):
    bar = progress([1, 2], enabled=False)
    assert list(bar) == [1, 2]
    bar.update(5)
    bar.close()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("stream", [io.StringIO(), None])
def test_log_files_get_line_progress(stream, capsys):
    bar = progress(total=1, desc="d", stream=stream)
    assert isinstance(bar, LineProgress)  # pytest's captured stderr is not a terminal either
    bar.close()


def test_keras_bar_becomes_one_line_per_epoch_off_a_terminal():
    from asc_core.progress import keras_verbose

    assert [keras_verbose(v, io.StringIO()) for v in (0, 1, 2)] == [0, 2, 2]
    assert [keras_verbose(v, Terminal()) for v in (0, 1, 2)] == [0, 1, 2]


def test_a_failure_leaves_no_final_line_so_the_error_is_the_last_line():
    stream = io.StringIO()
    with pytest.raises(OSError):
        with progress(total=50, desc="tau22", unit="clip", stream=stream) as bar:
            bar.update(1)
            raise OSError("File too large")
    with pytest.raises(KeyError):
        for _ in progress(range(5), desc="groups", stream=stream):
            raise KeyError("x")
    assert stream.getvalue() == ""
