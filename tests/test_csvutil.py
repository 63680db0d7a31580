"""csvutil: streaming TAB-separated reading with one clear error per problem."""

import re

import pytest

from asc_core.errors import UserError
from tfrecords_builder import csvutil


def _write(tmp_path, text, name="meta.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_iter_tsv_yields_stripped_rows_with_line_numbers(tmp_path):
    path = _write(tmp_path, "filename\tscene_label \n\n a.wav \tbus\n\nb.wav\tpark\n")
    rows = list(csvutil.iter_tsv(path, ["filename"]))
    assert rows == [
        {"filename": "a.wav", "scene_label": "bus"},
        {"filename": "b.wav", "scene_label": "park"},
    ]
    assert [r.line for r in rows] == [3, 5]  # blank lines are skipped but counted
    columns, listed = csvutil.read_tsv(path, ["filename"])
    assert columns == ["filename", "scene_label"]
    assert listed == rows and [r.line for r in listed] == [3, 5]


def test_iter_tsv_streams_rows_before_a_later_bad_line(tmp_path):
    lines = ["filename\tscene_label"] + [f"{i}.wav\tbus" for i in range(1000)] + ["x.wav"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    rows = csvutil.iter_tsv(path, ["filename"])
    assert next(rows) == {"filename": "0.wav", "scene_label": "bus"}  # before the bad line
    assert sum(1 for _ in zip(range(999), rows)) == 999
    with pytest.raises(
        UserError,
        match=re.escape("line 1002: 1 TAB-separated fields, expected 2 (filename, scene_label)"),
    ):
        next(rows)
    rows = csvutil.iter_tsv(path, ["filename"])
    assert next(rows)["filename"] == "0.wav"
    rows.close()  # stopping early closes the file; nothing is raised


BAD = {
    "missing file": (None, "x.csv does not exist; expected a TAB-separated CSV file"),
    "not utf-8": (
        "filename\n\xe9.wav\n".encode("latin-1"),
        "x.csv is not UTF-8 text; expected a TAB-separated CSV file",
    ),
    "empty": ("\n \n", "x.csv is empty; expected a header row with filename, scene_label"),
    "comma": (
        "filename,scene_label\na.wav,bus\n",
        "x.csv line 1: header 'filename,scene_label' is not TAB-separated (found ','); "
        "expected TAB-separated columns filename, scene_label",
    ),
    "semicolon": (
        "\nfilename;scene_label\n",
        "x.csv line 2: header 'filename;scene_label' is not TAB-separated (found ';'); "
        "expected TAB-separated columns filename, scene_label",
    ),
    "duplicate column": (
        "filename\tfilename\n",
        "x.csv line 1: duplicate column names in ['filename', 'filename']",
    ),
    "missing column": (
        "filename\tscene\n",
        "x.csv line 1: missing column 'scene_label'; found columns ['filename', "
        "'scene'], expected ['filename', 'scene_label']",
    ),
    "missing column, commas": (
        "filename\tscene,city\n",
        "x.csv line 1: missing column 'scene_label'; found columns "
        "['filename', 'scene,city'], expected ['filename', "
        "'scene_label'] (is the file comma-separated? expected "
        "TAB-separated columns)",
    ),
    "field count": (
        "filename\tscene_label\na.wav\tbus\nb.wav\tbus\textra\n",
        "x.csv line 3: 3 TAB-separated fields, expected 2 (filename, scene_label)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("reader", ["iter_tsv", "read_tsv"])
def test_bad_file_one_clear_error(case, reader, tmp_path):
    content, message = BAD[case]
    path = tmp_path / "x.csv" if content is None else _write(tmp_path, content, "x.csv")
    read = getattr(csvutil, reader)
    with pytest.raises(UserError) as caught:
        result = read(path, ["filename", "scene_label"], display="x.csv")
        list(result)  # iter_tsv raises while iterating
    assert str(caught.value) == message
