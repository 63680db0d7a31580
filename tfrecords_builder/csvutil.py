"""Strict reading of the TAB-separated, headed CSV files of the DCASE datasets.

Every problem names the file and line and says what was expected: a file that is not UTF-8
text, a missing header, a wrong delimiter (``,`` or ``;`` instead of TAB), a missing column, or a
row whose number of fields differs from the header.

:func:`iter_tsv` streams the rows (memory independent of the file's length: ``meta.csv`` of a
full corpus lists ~10^5-10^6 files); :func:`read_tsv` returns them as a list.
"""

import csv
import os

from asc_core.errors import UserError


class Row(dict):
    """One CSV row as ``column -> value``; ``line`` is its 1-based line number in the file."""

    def __init__(self, values, line):
        super().__init__(values)
        self.line = line


def iter_tsv(path, required, display=None):
    """Streams the rows of a TAB-separated file with a header row.

    The file is opened and its header checked when iteration starts; a bad row raises when it
    is reached (the rows before it have been yielded). The file is closed when the iteration
    ends or the generator is closed.

    Args:
        path: the CSV file.
        required: column names that must be present (others are kept too).
        display: how to name the file in messages (default: ``path``).

    Yields:
        :class:`Row`, in file order. Blank lines are skipped; values are stripped of
        surrounding whitespace.
    """
    rows = _rows(path, required, display)
    try:
        next(rows)  # the header
        yield from rows
    finally:
        rows.close()  # closes the file when the caller stops early


def iter_tsv_values(path, required, columns, display=None):
    """Streams chosen columns of a TAB-separated file: :func:`iter_tsv` without a dict per row.

    Args:
        path, required, display: as in :func:`iter_tsv` (same checks, same messages).
        columns: the columns to return; one not in the header gives ``""``.

    Yields:
        ``(line, values)``: the 1-based line number and the stripped values of ``columns``.
    """
    rows = _rows(path, required, display, columns)
    try:
        next(rows)  # the header
        yield from rows
    finally:
        rows.close()


def read_tsv(path, required, display=None):
    """Reads a whole TAB-separated file with a header row (arguments as :func:`iter_tsv`).

    Returns:
        ``(columns, rows)``: the header as a list and a list of :class:`Row`.
    """
    rows = _rows(path, required, display)
    columns = next(rows)
    return columns, list(rows)


def _rows(path, required, display, select=None):
    """Yields the header's column list, then each :class:`Row` (or ``(line, values of
    select)``, see :func:`iter_tsv_values`)."""
    display = display or os.fspath(path)
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise UserError(f"{display} does not exist; expected a TAB-separated CSV file") from None
    except OSError as err:
        raise UserError(f"cannot read {display} ({err.strerror})") from None
    with handle:
        lines = enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), 1)
        columns = None
        while True:
            try:
                line, fields = next(lines)
            except StopIteration:
                break
            except UnicodeDecodeError:
                raise UserError(
                    f"{display} is not UTF-8 text; expected a TAB-separated CSV file"
                ) from None
            except OSError as err:
                raise UserError(f"cannot read {display} ({err.strerror})") from None
            if not "".join(fields).strip():
                continue  # a blank line (every field empty or white space)
            if columns is None:
                columns = _check_header(display, line, fields, required)
                if select is not None:
                    at = {name: i for i, name in enumerate(columns)}
                    picks = [at.get(name) for name in select]
                yield columns
                continue
            if len(fields) != len(columns):
                raise UserError(
                    f"{display} line {line}: {len(fields)} TAB-separated fields, expected "
                    f"{len(columns)} ({', '.join(columns)})"
                )
            if select is None:
                yield Row(zip(columns, (f.strip() for f in fields)), line)
            else:
                yield line, [fields[i].strip() if i is not None else "" for i in picks]
    if columns is None:
        raise UserError(f"{display} is empty; expected a header row with {', '.join(required)}")


def _check_header(display, line, header, required):
    """The stripped column names of a header row; UserError when they are unusable."""
    columns = [c.strip() for c in header]
    if len(columns) == 1:  # one column: a comma/semicolon in its name means a wrong delimiter
        for delimiter in (",", ";"):
            if delimiter in columns[0]:
                raise UserError(
                    f"{display} line {line}: header {columns[0]!r} is not TAB-separated "
                    f"(found {delimiter!r}); expected TAB-separated columns "
                    f"{', '.join(required)}"
                )
    if len(set(columns)) != len(columns):
        raise UserError(f"{display} line {line}: duplicate column names in {columns}")
    missing = [c for c in required if c not in columns]
    if missing:
        hint = ""
        if any("," in c or ";" in c for c in columns):
            hint = " (is the file comma-separated? expected TAB-separated columns)"
        raise UserError(
            f"{display} line {line}: missing column {missing[0]!r}; found columns "
            f"{columns}, expected {list(required)}{hint}"
        )
    return columns
