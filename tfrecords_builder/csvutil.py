"""Strict reading of the TAB-separated, headed CSV files of the DCASE datasets.

Every problem names the file and line and says what was expected: a file that is not UTF-8
text, a missing header, a wrong delimiter (``,`` or ``;`` instead of TAB), a missing column, or a
row whose number of fields differs from the header.
"""

import csv
import os

from keras_asc.errors import UserError


class Row(dict):
    """One CSV row as ``column -> value``; ``line`` is its 1-based line number in the file."""

    def __init__(self, values, line):
        super().__init__(values)
        self.line = line


def read_tsv(path, required, display=None):
    """Reads a TAB-separated file with a header row.

    Args:
        path: the CSV file.
        required: column names that must be present (others are kept too).
        display: how to name the file in messages (default: ``path``).

    Returns:
        ``(columns, rows)``: the header as a list and a list of :class:`Row`. Blank lines are
        ignored; values are stripped of surrounding whitespace.
    """
    display = display or os.fspath(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise UserError(f"{display} does not exist; expected a TAB-separated CSV file") from None
    except UnicodeDecodeError:
        raise UserError(f"{display} is not UTF-8 text; expected a TAB-separated CSV file") from None
    except OSError as err:
        raise UserError(f"cannot read {display} ({err.strerror})") from None
    numbered = [(i + 1, fields) for i, fields in enumerate(lines) if any(f.strip() for f in fields)]
    if not numbered:
        raise UserError(f"{display} is empty; expected a header row with {', '.join(required)}")
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
    if len(columns) == 1:  # one column: a comma/semicolon in its name means a wrong delimiter
        for delimiter in (",", ";"):
            if delimiter in columns[0]:
                raise UserError(
                    f"{display} line {header_line}: header {columns[0]!r} is not TAB-separated "
                    f"(found {delimiter!r}); expected TAB-separated columns "
                    f"{', '.join(required)}"
                )
    if len(set(columns)) != len(columns):
        raise UserError(f"{display} line {header_line}: duplicate column names in {columns}")
    missing = [c for c in required if c not in columns]
    if missing:
        hint = ""
        if any("," in c or ";" in c for c in columns):
            hint = " (is the file comma-separated? expected TAB-separated columns)"
        raise UserError(
            f"{display} line {header_line}: missing column {missing[0]!r}; found columns "
            f"{columns}, expected {list(required)}{hint}"
        )
    rows = []
    for line, fields in numbered[1:]:
        if len(fields) != len(columns):
            raise UserError(
                f"{display} line {line}: {len(fields)} TAB-separated fields, expected "
                f"{len(columns)} ({', '.join(columns)})"
            )
        rows.append(Row(zip(columns, (f.strip() for f in fields)), line))
    return columns, rows
