"""The microphone table: one row of metadata per measured microphone configuration.

A CSV keyed by the configuration token (``config``), with the columns of
:data:`asc_core.vocab.MICROPHONE_COLUMNS`. The ``multi-dirs`` builder joins it to the Surrey IRs
(default: the shipped :data:`DEFAULT_MICROPHONES`, package data of ``asc_core``), and the DIR
generator (``keras_asc.irgen``) writes and reads one per trained model, so the reader lives here,
below both.
"""

import csv
import dataclasses
import io
from pathlib import Path

from asc_core import vocab
from asc_core.errors import UserError

DEFAULT_MICROPHONES = Path(__file__).parent / "data" / "surrey_microphones.csv"

PATTERNS = ("omni", "cardioid", "supercardioid", "hypercardioid", "bidirectional", "shotgun")
TRANSDUCERS = ("condenser", "dynamic", "ribbon")
DIAPHRAGM_SIZES = ("large", "small", "ribbon")
ADDRESSES = ("side", "end")
MICROPHONE_COLUMNS = vocab.MICROPHONE_COLUMNS


@dataclasses.dataclass(frozen=True)
class MicrophoneInfo:
    """One row of the microphone table (see ``data/surrey_microphones.csv``)."""

    config: str
    microphone: str
    variant: str
    model: str
    pattern: str
    transducer: str
    diaphragm_size: str
    diaphragm_count: int
    address: str
    unverified: tuple
    notes: str


def load_microphones(path=None):
    """Reads the microphone table.

    Args:
        path: CSV path, or None for the shipped table. Lines starting with ``#`` are comments;
            the header must hold the columns of :data:`MICROPHONE_COLUMNS` (``model``,
            ``variant``, ``unverified`` and ``notes`` may be omitted).

    Returns:
        dict config token -> :class:`MicrophoneInfo`.

    Raises:
        UserError: missing file or column, duplicate config, or a value outside the allowed set
            (the message names the file, line, column and value).
    """
    path = Path(path) if path is not None else DEFAULT_MICROPHONES
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read the microphone table ({err.strerror})") from err
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    lines = [(n, line) for n, line in lines if not line.lstrip().startswith("#")]
    if not lines:
        raise UserError(f"{path}: the microphone table is empty; expected a CSV header")
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
    required = (
        "config",
        "microphone",
        "pattern",
        "transducer",
        "diaphragm_size",
        "diaphragm_count",
        "address",
    )
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(
            f"{path}: the microphone table lacks the column(s) {', '.join(missing)}; "
            f"expected {', '.join(MICROPHONE_COLUMNS)}"
        )
    allowed = {
        "pattern": PATTERNS,
        "transducer": TRANSDUCERS,
        "diaphragm_size": DIAPHRAGM_SIZES,
        "address": ADDRESSES,
    }
    table = {}
    for (line_no, _), row in zip(lines[1:], reader):
        if None in row or any(v is None for v in row.values()):
            raise UserError(f"{path}:{line_no}: wrong number of fields for the header")
        row = {k: v.strip() for k, v in row.items()}
        where = f"{path}:{line_no}"
        if not row["config"] or not row["microphone"]:
            raise UserError(f"{where}: 'config' and 'microphone' must not be empty")
        if row["config"] in table:
            raise UserError(f"{where}: config {row['config']!r} is listed twice")
        for column, choices in allowed.items():
            if row[column] and row[column] not in choices:
                raise UserError(
                    f"{where}: {column} {row[column]!r} is not one of {', '.join(choices)} "
                    "(or empty for unknown)"
                )
        count = row["diaphragm_count"]
        if count and not (count.isdigit() and int(count) > 0):
            raise UserError(f"{where}: diaphragm_count {count!r} is not a positive integer")
        table[row["config"]] = MicrophoneInfo(
            config=row["config"],
            microphone=row["microphone"],
            variant=row.get("variant", ""),
            model=row.get("model", ""),
            pattern=row["pattern"],
            transducer=row["transducer"],
            diaphragm_size=row["diaphragm_size"],
            diaphragm_count=int(count) if count else -1,
            address=row["address"],
            unverified=tuple(f for f in row.get("unverified", "").split(";") if f),
            notes=row.get("notes", ""),
        )
    return table
