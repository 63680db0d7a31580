"""Resumable HTTP(S) transfers with retries, shared by the dataset downloader and weight cache."""

import hashlib
import http.client
import socket
import time
import urllib.error
import urllib.request

from asc_core.errors import UserError
from asc_core.progress import progress

CHUNK = 1 << 20
_RETRYABLE = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
)


def file_digest(path, algorithm="md5"):
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _transfer(url, part, expected_size, timeout, desc):
    """One attempt: continue ``part`` from its current length. Returns the final length."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have == expected_size:
        return have
    request = urllib.request.Request(url, headers={"User-Agent": "keras-asc-downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts at the end: nothing left to fetch
            return have
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start over
        total = None
        if response.headers.get("Content-Length") is not None:
            total = have + int(response.headers["Content-Length"])
        if expected_size is not None and total is not None and total > expected_size:
            _too_large(url, part, desc, expected_size, f"announces {total} bytes")
        mode = "ab" if have else "wb"
        with (
            open(part, mode) as f,
            progress(
                total=total, initial=have, unit="B", unit_scale=True, desc=desc, leave=False
            ) as bar,
        ):
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                received = f.tell() + len(chunk)
                if expected_size is not None and received > expected_size:
                    # Stop now: a wrong mirror or table entry must not fill the disk.
                    f.close()
                    _too_large(url, part, desc, expected_size, f"sent {received} bytes or more")
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise http.client.IncompleteRead(b"", total - size)
    return size


def _too_large(url, part, desc, expected_size, what):
    """Removes ``part`` and raises the UserError for a transfer larger than expected."""
    part.unlink(missing_ok=True)
    raise UserError(
        f"download of {desc} from {url} stopped: the server {what}, more than the expected "
        f"{expected_size}; the mirror or the checksum table is wrong ({part} removed)"
    )


def fetch_resumable(url, part, expected_size=None, retries=5, backoff=1.0, timeout=60, desc=None):
    """Downloads ``url`` into ``part`` (a temporary name), continuing what is already there.

    Dropped connections and 5xx answers are retried with exponential back-off (``backoff`` ·
    2^attempt seconds) and an HTTP range request; 4xx answers and exhausted retries raise a
    :class:`UserError` that names the file and the URL. With ``expected_size`` the transfer
    stops (UserError, ``part`` removed) as soon as the server announces or sends more bytes.
    The caller verifies and renames ``part``.
    """
    desc = desc or part.name
    for attempt in range(retries + 1):
        try:
            return _transfer(url, part, expected_size, timeout, desc)
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:
                raise UserError(
                    f"download of {desc} failed: HTTP {err.code} {err.reason} for {url}"
                ) from None
            last = f"HTTP {err.code} {err.reason}"
        except _RETRYABLE as err:
            last = f"{type(err).__name__}: {err}"
        if attempt == retries:
            raise UserError(
                f"download of {desc} from {url} failed after {retries + 1} attempts "
                f"(last error: {last}); re-run the same command to resume from {part}"
            )
        delay = backoff * 2**attempt
        print(f"  {desc}: {last}; retrying in {delay:.1f}s", flush=True)
        time.sleep(delay)
    return None
