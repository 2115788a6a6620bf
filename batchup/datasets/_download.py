"""Fetch one file from an ordered list of URLs, verified by its SHA-256.

pooch does the bookkeeping: it streams into a temporary file in the target
folder, checks the hash and moves the file to its final name only when the
hash matches, so a half-written or wrong file never sits at the final path.

pooch cannot resume an interrupted transfer (CIFAR's host is throttled to
about 55 kB/s, so losing 100 MB of progress costs half an hour), so the
transport that pooch calls is ours: it keeps the bytes received so far in
``<target>.part`` and asks for the rest with an HTTP ``Range`` request on the
next attempt, from the same URL or the next mirror (mirrors serve identical
bytes; the checksum has the last word either way).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence

from batchup.datasets._progress import progress_bar

USER_AGENT = "batchup-datasets/1.0 (python-requests)"
ATTEMPTS_PER_URL = 3
RETRY_WAIT_SECONDS = 1.0
TIMEOUT_SECONDS = (30.0, 120.0)  # (connect, read between bytes)
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """Every URL of a file failed; ``failures`` holds ``(url, reason)`` pairs.

    Examples
    --------
    >>> err = DownloadError("a.gz", [("http://x/a.gz", "HTTP 404")])
    >>> "HTTP 404" in str(err)
    True
    """

    def __init__(self, filename: str, failures: Sequence[tuple[str, str]], hint: str = ""):
        self.filename = filename
        self.failures = list(failures)
        lines = [f"could not download {filename}; attempts:"]
        lines += [f"  {url}: {reason}" for url, reason in self.failures]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class _ResumingTransport:
    """pooch downloader that resumes from ``partial_path`` with HTTP Range."""

    def __init__(self, partial_path: str, label: str):
        self.partial_path = partial_path
        self.label = label
        self.resumed_from = 0
        self.completed = False

    def __call__(self, url: str, output_file: str, pooch: object = None, check_only=False):
        import requests

        have = _size_or_zero(self.partial_path)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_SECONDS) as resp:
            if resp.status_code == 416 and have:
                # The partial file is already as long as (or longer than) the
                # remote one; it cannot be trusted, so start again.
                os.remove(self.partial_path)
                return self(url, output_file, pooch)
            resp.raise_for_status()
            content_range = resp.headers.get("Content-Range", "")
            resuming = have and resp.status_code == 206 and content_range.startswith(
                f"bytes {have}-"
            )
            if not resuming:
                have = 0
            self.resumed_from = have
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            with (
                open(self.partial_path, "ab" if resuming else "wb") as out,
                progress_bar(total, self.label, initial=have) as bar,
            ):
                # Raw bytes: a server that labels a .gz file Content-Encoding
                # gzip must not get it silently decompressed.
                for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(self.partial_path, output_file)
        self.completed = True
        return None


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@contextlib.contextmanager
def _quiet_pooch():
    # pooch logs its own "Downloading ..." lines; ours already say it.
    import pooch

    logger = pooch.get_logger()
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield pooch
    finally:
        logger.setLevel(old)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def fetch_url_list(
    dest: str, urls: Sequence[str], sha256: str | None, hint: str = ""
) -> str:
    """Download ``dest`` from the first URL that delivers the right bytes.

    Each URL is tried up to ``ATTEMPTS_PER_URL`` times on network errors or
    5xx replies (resuming where the last attempt stopped); an HTTP 4xx reply
    or a SHA-256 mismatch (e.g. an HTML error page served with status 200)
    moves on to the next URL at once.

    Parameters
    ----------
    dest : str
        Final path; its folder is created if needed.
    urls : sequence of str
        URLs in order of preference.
    sha256 : str or None
        Expected lowercase hex digest; ``None`` accepts any content.
    hint : str
        Extra line appended to the error message.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    DownloadError
        If no URL delivered a matching file.

    Examples
    --------
    >>> fetch_url_list("/tmp/x.gz", [], None)  # doctest: +SKIP
    """
    folder, name = os.path.split(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, name + ".part")
    known_hash = f"sha256:{sha256}" if sha256 else None
    failures: list[tuple[str, str]] = []
    for url in urls:
        attempt = 0
        while attempt < ATTEMPTS_PER_URL:
            attempt += 1
            print(f"Downloading {url} to {dest}", flush=True)
            transport = _ResumingTransport(partial, name)
            try:
                with _quiet_pooch() as pooch:
                    pooch.retrieve(
                        url, known_hash=known_hash, fname=name, path=folder,
                        downloader=transport, progressbar=False,
                    )
                return dest
            except ValueError:
                if not transport.completed:
                    # e.g. requests' InvalidURL: this URL cannot work.
                    failures.append((url, f"invalid: {sys.exc_info()[1]}"))
                    break
                # pooch raises ValueError on a hash mismatch (its temporary
                # copy, which held our partial bytes, is already deleted).
                if transport.resumed_from:
                    failures.append((url, "SHA-256 mismatch after resuming; retrying whole"))
                    continue
                failures.append((url, "SHA-256 mismatch (wrong or corrupt content)"))
                break
            except Exception as exc:  # noqa: BLE001 - any transport failure means "try again"
                status = _http_status(exc)
                if status is not None and 400 <= status < 500:
                    failures.append((url, f"HTTP {status}"))
                    break
                failures.append((url, f"{type(exc).__name__}: {exc}"))
                if attempt < ATTEMPTS_PER_URL:
                    time.sleep(RETRY_WAIT_SECONDS * attempt)
    raise DownloadError(name, failures, hint)
