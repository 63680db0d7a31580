"""Downloads against a real HTTP server on 127.0.0.1 serving small synthetic archives."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import _http_server
import pytest

from asc_core.errors import UserError
from tfrecords_builder import download

ROOT = "TAU-urban-acoustic-scenes-2022-mobile-development"


@pytest.fixture
def server():
    srv = _http_server.serve()
    yield srv
    _http_server.stop(srv)


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _table(tmp_path, srv, rows):
    """Writes a checksum table for ``rows`` = [(dataset, filename, root, md5_override)]."""
    lines = ["dataset\tfilename\turl\tsize\tmd5\troot"]
    for dataset, filename, root, md5 in rows:
        body = srv.files[filename]
        md5 = md5 or hashlib.md5(body).hexdigest()
        size = "-" if md5 == "-" else len(body)
        lines.append(f"{dataset}\t{filename}\t{srv.base}/{filename}\t{size}\t{md5}\t{root}")
    path = tmp_path / "checksums.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tau(server, tmp_path):
    """A two-zip 'tau22': meta zip with the top folder, audio zip without it."""
    server.files["meta.zip"] = _zip(
        {
            f"{ROOT}/meta.csv": b"filename\tscene_label\n",
            f"{ROOT}/evaluation_setup/fold1_train.csv": b"x\n",
        }
    )
    server.files["audio.1.zip"] = _zip({"audio/a-b-1-2-0-a.wav": b"R" * 300_000})
    table = _table(
        tmp_path, server, [("tau22", "meta.zip", ROOT, None), ("tau22", "audio.1.zip", ROOT, None)]
    )
    return table


def test_complete_download_and_extraction(tau, server, tmp_path):
    out = tmp_path / "data"
    summary = download.download_dataset("tau22", out, table=tau, backoff=0.01)
    assert summary["fetched"] == ["meta.zip", "audio.1.zip"]
    assert (out / ROOT / "meta.csv").read_bytes() == b"filename\tscene_label\n"
    assert (out / ROOT / "evaluation_setup" / "fold1_train.csv").exists()
    # The audio zip had no top folder: it still lands under ROOT, as the builders expect.
    assert (out / ROOT / "audio" / "a-b-1-2-0-a.wav").stat().st_size == 300_000
    assert not list(out.rglob("*.part"))


def test_already_downloaded_set_fetches_nothing(tau, server, tmp_path):
    out = tmp_path / "data"
    download.download_dataset("tau22", out, table=tau)
    n = len(server.log)
    summary = download.download_dataset("tau22", out, table=tau)
    assert len(server.log) == n  # no request at all
    assert summary["skipped"] == ["meta.zip", "audio.1.zip"] and summary["fetched"] == []


def test_dropped_connection_resumes_with_range(tau, server, tmp_path):
    server.drop_after["audio.1.zip"] = 100_000
    out = tmp_path / "data"
    download.download_dataset("tau22", out, table=tau, backoff=0.01)
    ranges = [r for name, r in server.log if name == "audio.1.zip"]
    assert ranges[0] is None and ranges[1] is not None
    assert int(ranges[1].split("=")[1].rstrip("-")) >= 90_000  # continued, not restarted
    archive = out / "archives" / "audio.1.zip"
    assert (
        hashlib.md5(archive.read_bytes()).hexdigest()
        == hashlib.md5(server.files["audio.1.zip"]).hexdigest()
    )


def test_interrupted_part_file_is_continued_by_next_run(tau, server, tmp_path):
    out = tmp_path / "data"
    (out / "archives").mkdir(parents=True)
    body = server.files["audio.1.zip"]
    (out / "archives" / "audio.1.zip.part").write_bytes(body[:1234])
    download.download_dataset("tau22", out, table=tau)
    assert ("audio.1.zip", "bytes=1234-") in server.log
    assert (out / "archives" / "audio.1.zip").read_bytes() == body


def test_server_ignoring_range_restarts_cleanly(tau, server, tmp_path):
    server.ranges = False
    out = tmp_path / "data"
    (out / "archives").mkdir(parents=True)
    (out / "archives" / "audio.1.zip.part").write_bytes(b"garbage")
    download.download_dataset("tau22", out, table=tau)
    assert (out / "archives" / "audio.1.zip").read_bytes() == server.files["audio.1.zip"]


def test_wrong_md5_moves_file_aside_and_stops(server, tmp_path):
    server.files["meta.zip"] = _zip({f"{ROOT}/meta.csv": b"x"})
    table = _table(tmp_path, server, [("tau22", "meta.zip", ROOT, "0" * 32)])
    out = tmp_path / "data"
    with pytest.raises(
        UserError,
        match=r"meta\.zip failed verification \(md5 [0-9a-f]{32} != "
        r"expected 0{32}\); moved it to .*meta\.zip\.corrupt",
    ):
        download.download_dataset("tau22", out, table=table)
    assert (out / "archives" / "meta.zip.corrupt").exists()
    assert not (out / "archives" / "meta.zip").exists()
    assert not (out / ROOT).exists()


def test_404_is_a_clear_error(server, tmp_path):
    server.files["meta.zip"] = b"x"
    table = _table(tmp_path, server, [("tau22", "meta.zip", ROOT, None)])
    del server.files["meta.zip"]
    with pytest.raises(UserError, match=r"download of meta\.zip failed: HTTP 404"):
        download.download_dataset("tau22", tmp_path / "d", table=table)


def test_retries_give_up_with_clear_error(server, tmp_path, monkeypatch):
    server.files["meta.zip"] = b"y" * 5000
    table = _table(tmp_path, server, [("tau22", "meta.zip", ROOT, None)])
    _http_server.stop(server)
    with pytest.raises(UserError, match=r"failed after 3 attempts .*re-run the same command"):
        download.download_dataset(
            "tau22", tmp_path / "d", table=table, retries=2, backoff=0.001, timeout=2
        )


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_zip_slip_member_is_refused_by_name(server, tmp_path, member):
    server.files["bad.zip"] = _zip({f"{ROOT}/meta.csv": b"x", member: b"evil"})
    table = _table(tmp_path, server, [("tau22", "bad.zip", ROOT, None)])
    with pytest.raises(
        UserError,
        match="refusing to extract .*bad.zip: member '" + member.replace(".", r"\.") + "'",
    ):
        download.download_dataset("tau22", tmp_path / "d", table=table)
    assert not (tmp_path / "evil.txt").exists()


def test_escaping_symlink_member_is_refused(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(f"{ROOT}/link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "../../etc/passwd")
    server.files["link.zip"] = buf.getvalue()
    table = _table(tmp_path, server, [("tau22", "link.zip", ROOT, None)])
    with pytest.raises(UserError, match=r"link '.*link' -> '\.\./\.\./etc/passwd' points outside"):
        download.download_dataset("tau22", tmp_path / "d", table=table)


def test_too_little_free_space_is_reported_with_numbers(tau, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "disk_free_bytes", lambda path: 1000)
    with pytest.raises(
        UserError,
        match=r"not enough free space .*needs 0\.00 GB to download \+ "
        r"0\.00 GB to extract = 0\.00 GB, but only 0\.00 GB is free",
    ):
        download.download_dataset("tau22", tmp_path / "d", table=tau)
    assert not (tmp_path / "d" / "archives").exists()


def test_plain_files_without_md5_use_trust_on_first_use(server, tmp_path):
    server.files["B&O_BM2.wav"] = b"RIFF" + b"\0" * 100
    table = _table(tmp_path, server, [("micirp", "B&O_BM2.wav", "micirp", "-")])
    out = tmp_path / "d"
    summary = download.download_dataset("micirp", out, table=table)
    assert summary["md5_first_use"] == ["B&O_BM2.wav"]
    assert (out / "micirp" / "B&O_BM2.wav").exists()
    state = json.loads((out / download.STATE_NAME).read_text())
    assert state["files"]["B&O_BM2.wav"]["md5_source"] == "first download"


def test_mirror_base_url_from_environment(server, tmp_path, monkeypatch):
    server.files["meta.zip"] = _zip({f"{ROOT}/meta.csv": b"x"})
    table = _table(tmp_path, server, [("tau22", "meta.zip", ROOT, None)])
    text = table.read_text().replace(server.base, "http://unreachable.invalid")
    table.write_text(text)
    monkeypatch.setenv(download.MIRROR_ENV, server.base)
    download.download_dataset("tau22", tmp_path / "d", table=table)
    assert ("meta.zip", None) in server.log


def test_unknown_dataset_and_unwritable_target(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'nope'; expected one of .*'tau22'"):
        download.download_dataset("nope", tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write to download folder"):
        download.download_dataset("micirp", blocker / "sub")


def test_shipped_table_is_complete():
    entries = download.load_table()
    by = {d: [e for e in entries if e.dataset == d] for d in download.datasets(entries)}
    assert sorted(by) == ["micirp", "multi-dirs", "tau22", "tau22-eval-2022", "tau22-eval-2023"]
    assert len(by["tau22"]) == 18 and all(e.md5 and e.size for e in by["tau22"])
    # The reference states the 16 audio zips total 27.50 GB: an independent check of the rows.
    assert round(sum(e.size for e in by["tau22"] if "audio" in e.filename) / 1e9, 2) == 27.50
    assert len(by["tau22-eval-2022"]) == 10 and len(by["tau22-eval-2023"]) == 10
    assert len(by["micirp"]) == 66
    assert by["multi-dirs"][0].md5 == "c66c4f46be850aa25022145431b93caa"
    assert Path(download.DEFAULT_TABLE).exists()


OVERSIZED = {  # the table says 1000 bytes; the server has 24 MiB
    "announced by Content-Length": (
        False,
        r"the server announces 25165824 bytes, more than the "
        r"expected 1000",
    ),
    "streamed without a length": (
        True,
        r"the server sent 1048576 bytes or more, more than the "
        r"expected 1000",
    ),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_download_stops_when_more_than_the_expected_size_arrives(case, server, tmp_path):
    import time

    no_length, message = OVERSIZED[case]
    server.files["meta.zip"] = b"m" * 1000
    table = _table(tmp_path, server, [("tau22", "meta.zip", ROOT, None)])
    server.files["meta.zip"] = b"M" * (24 << 20)
    if no_length:
        server.no_length.add("meta.zip")
    out = tmp_path / "data"
    with pytest.raises(
        UserError,
        match=r"download of meta\.zip from http://127\.0\.0\.1:\d+/"
        r"meta\.zip stopped: " + message + r"; the mirror or the checksum table "
        r"is wrong \(.*meta\.zip\.part removed\)",
    ):
        download.download_dataset("tau22", out, table=table)
    deadline = time.monotonic() + 10
    while "meta.zip" not in server.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.sent["meta.zip"] < (8 << 20)  # stopped early (socket buffers hold a few MB)
    assert len(server.log) == 1  # not retried
    assert not [p for p in out.rglob("*") if p.is_file() and p.name != ".keras_asc_download.json"]
