"""Verified, resumable downloads of TAU22, its evaluation sets, MicIRP and the Surrey IRs.

``python -m tfrecords_builder download <dataset> --to DIR [--base-url URL]``

What a user gets:
- a free-space check before anything is fetched (download + extraction, numbers in the message);
- resumable transfers: a file is fetched into ``<name>.part`` and continued with an HTTP range
  request after an interruption; only a verified file gets its final name;
- verification of size and md5 against ``tfrecords_builder/data/checksums.tsv``; a mismatch moves
  the file aside to ``<name>.corrupt`` and stops with a message that says which file and what to do;
  rows without a published md5 are hashed on first download and checked against that record later
  (trust on first use, reported as such);
- retries with exponential back-off on dropped connections, then a clear error;
- safe zip extraction: a member with an absolute path, ``..`` or a link that escapes the target is
  refused by name; archives with or without their top-level folder both land in ``DIR/<root>/``,
  the layout the builders expect;
- files already downloaded and verified are skipped without a request (state in
  ``DIR/.keras_asc_download.json``, keyed by name, size and mtime).

A mirror can replace the hosts: ``--base-url URL`` or the ``KERAS_ASC_DATA_MIRROR`` environment
variable; the mirror serves every file under ``URL/<filename>``.
"""

import csv
import dataclasses
import json
import os
import shutil
import stat
import urllib.parse
import zipfile
from pathlib import Path
from pathlib import PurePosixPath

from asc_core.download import fetch_resumable
from asc_core.download import file_digest
from asc_core.errors import UserError
from asc_core.files import write_json

DEFAULT_TABLE = Path(__file__).parent / "data" / "checksums.tsv"
MIRROR_ENV = "KERAS_ASC_DATA_MIRROR"
STATE_NAME = ".keras_asc_download.json"
# Extracted TAU audio is ~11% larger than its zips (30.5 GB vs 27.5 GB); keep a margin.
EXTRACTION_FACTOR = 1.15
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the checksum table."""

    dataset: str
    filename: str
    url: str
    size: int | None
    md5: str | None
    root: str

    @property
    def is_archive(self):
        return self.filename.endswith(".zip")


def load_table(path=None):
    """Reads a checksum table (TSV: dataset, filename, url, size, md5, root; ``-`` = unknown)."""
    path = Path(path or DEFAULT_TABLE)
    try:
        lines = [
            ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")
        ]
    except OSError as err:
        raise UserError(f"cannot read checksum table {path}: {err.strerror}") from None
    reader = csv.DictReader(lines, delimiter="\t")
    expected = ["dataset", "filename", "url", "size", "md5", "root"]
    if reader.fieldnames != expected:
        raise UserError(
            f"checksum table {path}: header {reader.fieldnames} is not the expected {expected}"
        )
    entries = []
    for lineno, row in enumerate(reader, start=2):
        try:
            size = None if row["size"] == "-" else int(row["size"])
        except (TypeError, ValueError):
            raise UserError(
                f"checksum table {path} row {lineno}: size {row['size']!r} is not an integer or '-'"
            ) from None
        entries.append(
            Entry(
                row["dataset"],
                row["filename"],
                row["url"],
                size,
                None if row["md5"] == "-" else row["md5"].lower(),
                row["root"],
            )
        )
    return entries


def datasets(entries):
    return sorted({e.dataset for e in entries})


def disk_free_bytes(path):
    """Free bytes where ``path`` lives (a function, so tests can simulate a full disk)."""
    return shutil.disk_usage(path).free


def _gb(n):
    return f"{n / 1e9:.2f} GB"


class _State:
    """What is already downloaded, verified and extracted under one target folder."""

    def __init__(self, folder):
        self.path = Path(folder) / STATE_NAME
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("files", {})
        self.data.setdefault("extracted", [])

    def save(self):
        write_json(self.path, self.data, indent=1, sort_keys=True)

    def verified(self, entry, path):
        rec = self.data["files"].get(entry.filename)
        if rec is None or not path.exists():
            return False
        st = path.stat()
        md5_ok = entry.md5 is None or rec.get("md5") == entry.md5
        return rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns and md5_ok

    def record(self, entry, path, md5):
        st = path.stat()
        self.data["files"][entry.filename] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "md5": md5,
            "md5_source": "table" if entry.md5 else "first download",
        }
        self.save()


def _final_path(entry, folder):
    if entry.is_archive:
        return Path(folder) / "archives" / entry.filename
    return Path(folder) / entry.root / entry.filename


def _resolve_url(entry, base_url):
    if not base_url:
        return entry.url
    return base_url.rstrip("/") + "/" + urllib.parse.quote(entry.filename)


def fetch(entry, folder, base_url=None, retries=5, backoff=1.0, timeout=60):
    """Downloads one entry into its final place, verified; returns the final path."""
    final = _final_path(entry, folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    url = _resolve_url(entry, base_url)
    fetch_resumable(url, part, entry.size, retries, backoff, timeout, desc=entry.filename)
    got_size = part.stat().st_size
    got_md5 = file_digest(part, "md5")
    problems = []
    if entry.size is not None and got_size != entry.size:
        problems.append(f"size {got_size} != expected {entry.size}")
    if entry.md5 is not None and got_md5 != entry.md5:
        problems.append(f"md5 {got_md5} != expected {entry.md5}")
    if problems:
        aside = final.with_name(final.name + ".corrupt")
        os.replace(part, aside)
        raise UserError(
            f"{entry.filename} failed verification ({'; '.join(problems)}); moved it to "
            f"{aside}. Delete that file and re-run to download it again; if it fails "
            "again, the mirror or table is wrong."
        )
    os.replace(part, final)
    return final, got_md5


def _check_member(archive, info, target):
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UserError(
            f"refusing to extract {archive}: member {info.filename!r} would be written "
            f"outside {target}"
        )
    return name


def safe_extract(archive, folder, root):
    """Extracts ``archive`` so its content lies in ``folder/root``; refuses escaping members."""
    folder = Path(folder).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise UserError(f"{archive} is not a valid zip archive") from None
    with zf:
        infos = zf.infolist()
        names = [_check_member(archive, i, folder) for i in infos]
        has_root = bool(names) and all(n == root + "/" or n.startswith(root + "/") for n in names)
        target = folder if has_root else folder / root
        for info, name in zip(infos, names):
            dest = (target / name).resolve()
            if dest != target and target not in dest.parents:
                raise UserError(
                    f"refusing to extract {archive}: member {info.filename!r} would be "
                    f"written outside {target}"
                )
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                link = zf.read(info).decode("utf-8", "replace")
                resolved = (dest.parent / link).resolve()
                if link.startswith("/") or (resolved != target and target not in resolved.parents):
                    raise UserError(
                        f"refusing to extract {archive}: link {info.filename!r} -> "
                        f"{link!r} points outside {target}"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(link, dest)
                continue
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            with zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, dest)
    return target


def download_dataset(
    dataset, to, base_url=None, table=None, extract=True, retries=5, backoff=1.0, timeout=60
):
    """Downloads (and extracts) every file of ``dataset`` into ``to``; returns a summary dict."""
    entries = load_table(table)
    chosen = [e for e in entries if e.dataset == dataset]
    if not chosen:
        raise UserError(f"unknown dataset {dataset!r}; expected one of {datasets(entries)}")
    to = Path(to)
    try:
        to.mkdir(parents=True, exist_ok=True)
        probe = to / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to download folder {to}: {err.strerror}") from None
    base_url = base_url or os.environ.get(MIRROR_ENV) or None
    state = _State(to)
    todo = [e for e in chosen if not state.verified(e, _final_path(e, to))]
    need_download = sum((e.size or 0) - _partial_size(e, to) for e in todo)
    need_extract = sum(
        int((e.size or 0) * EXTRACTION_FACTOR)
        for e in chosen
        if extract and e.is_archive and e.filename not in state.data["extracted"]
    )
    free = disk_free_bytes(to)
    if need_download + need_extract > free:
        raise UserError(
            f"not enough free space in {to}: {dataset} needs {_gb(need_download)} to "
            f"download + {_gb(need_extract)} to extract = "
            f"{_gb(need_download + need_extract)}, but only {_gb(free)} is free"
        )
    fetched, skipped, extracted, first_use = [], [], [], []
    for i, entry in enumerate(chosen, 1):
        final = _final_path(entry, to)
        if entry in todo:
            print(f"[{i}/{len(chosen)}] {entry.filename}", flush=True)
            final, md5 = fetch(entry, to, base_url, retries, backoff, timeout)
            if entry.md5 is None:
                recorded = state.data["files"].get(entry.filename, {}).get("md5")
                if recorded and recorded != md5:
                    aside = final.with_name(final.name + ".corrupt")
                    os.replace(final, aside)
                    raise UserError(
                        f"{entry.filename} has md5 {md5}, but the first download had "
                        f"{recorded}; moved it to {aside}"
                    )
                first_use.append(entry.filename)
            state.record(entry, final, md5)
            fetched.append(entry.filename)
        else:
            skipped.append(entry.filename)
        if extract and entry.is_archive and entry.filename not in state.data["extracted"]:
            print(f"  extracting {entry.filename}", flush=True)
            safe_extract(final, to, entry.root)
            state.data["extracted"].append(entry.filename)
            state.save()
            extracted.append(entry.filename)
    return {
        "dataset": dataset,
        "folder": str(to / chosen[0].root),
        "fetched": fetched,
        "skipped": skipped,
        "extracted": extracted,
        "md5_first_use": first_use,
    }


def _partial_size(entry, to):
    part = _final_path(entry, to)
    part = part.with_name(part.name + ".part")
    return part.stat().st_size if part.exists() else 0


def add_arguments(parser):
    parser.add_argument(
        "dataset",
        help="tau22, tau22-eval-2022, tau22-eval-2023, micirp or multi-dirs (rows of --checksums)",
    )
    parser.add_argument("--to", required=True, help="target folder")
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"mirror serving URL/<filename> (default: ${MIRROR_ENV} or the hosts)",
    )
    parser.add_argument(
        "--checksums", default=None, help="checksum table (default: the shipped one)"
    )
    parser.add_argument("--no-extract", action="store_true", help="keep archives packed")
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")


def run(args):
    summary = download_dataset(
        args.dataset,
        args.to,
        base_url=args.base_url,
        table=args.checksums,
        extract=not args.no_extract,
        retries=args.retries,
        backoff=args.backoff,
        timeout=args.timeout,
    )
    print(
        f"{summary['dataset']}: {len(summary['fetched'])} fetched, {len(summary['skipped'])} "
        f"already verified, {len(summary['extracted'])} extracted -> {summary['folder']}"
    )
    if summary["md5_first_use"]:
        print(
            f"note: no published md5 for {len(summary['md5_first_use'])} file(s); their md5 was "
            f"recorded now and is checked on later runs ({STATE_NAME})"
        )
    return 0
