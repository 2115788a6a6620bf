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

What is printed: one ``Downloading <file> into <folder>/`` line per file, then
one short line per failed attempt naming the host and the reason (``connection
refused``, ``name resolution failed``, ``HTTP 404``, ``timed out``, ``SHA-256
mismatch`` ...). The full exceptions are kept on :class:`DownloadError`
(``errors``, and the last one as ``__cause__``); with ``BATCHUP_DEBUG=1`` (or
inside :func:`verbose`, which ``python -m batchup fetch --verbose`` uses) each
one is printed in full under its short line.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import textwrap
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from batchup.datasets._progress import progress_bar

USER_AGENT = "batchup-datasets/1.0 (python-requests)"
ATTEMPTS_PER_URL = 3
RETRY_WAIT_SECONDS = 1.0
TIMEOUT_SECONDS = (30.0, 120.0)  # (connect, read between bytes)
_CHUNK = 1 << 16
ENV_DEBUG = "BATCHUP_DEBUG"
_HINT_WIDTH = 100
_REASON_WIDTH = 60
_verbose = False


def debug_enabled() -> bool:
    """Return whether full download errors are printed (``BATCHUP_DEBUG`` or :func:`verbose`).

    Examples
    --------
    >>> with verbose():
    ...     debug_enabled()
    True
    """
    if _verbose:
        return True
    return os.environ.get(ENV_DEBUG, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def verbose(enabled: bool = True) -> Iterator[None]:
    """Print full download errors inside the block, as ``BATCHUP_DEBUG=1`` does.

    Examples
    --------
    >>> with verbose(False):
    ...     pass
    """
    global _verbose
    saved = _verbose
    _verbose = _verbose or enabled
    try:
        yield
    finally:
        _verbose = saved


def host_of(url: str) -> str:
    """Return the ``host[:port]`` part of ``url`` (the URL itself if it has none).

    Examples
    --------
    >>> host_of("https://storage.googleapis.com/cvdf-datasets/mnist/a.gz")
    'storage.googleapis.com'
    >>> host_of("http://127.0.0.1:8000/a.gz")
    '127.0.0.1:8000'
    """
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def _causes(exc: BaseException) -> list[BaseException]:
    # requests wraps urllib3, which wraps the socket error: walk every link
    # (``reason`` of urllib3's MaxRetryError, exception args, the chain).
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return found


def _http_status(exc: BaseException) -> int | None:
    for cause in _causes(exc):
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _shorten(text: str, width: int = _REASON_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def short_reason(exc: BaseException) -> str:
    """Describe a failed download attempt in a few words, for a one-line message.

    Recognises HTTP errors, name resolution, timeouts, refused, reset or cut
    connections, unreachable networks, TLS and proxy errors; anything else is
    its type and the start of its message.

    Examples
    --------
    >>> short_reason(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    >>> short_reason(socket.gaierror(-2, "Name or service not known"))
    'name resolution failed'
    >>> short_reason(KeyError("x"))
    "KeyError: 'x'"
    """
    import ssl

    import requests
    import urllib3

    status = _http_status(exc)
    if status is not None:
        return f"HTTP {status}"
    causes = _causes(exc)

    def has(*types) -> bool:
        return any(isinstance(c, types) for c in causes)

    # The socket-level cause decides. Note urllib3's NewConnectionError (a
    # refused connection, a failed look-up) subclasses its ConnectTimeoutError,
    # so timeouts are only recognised once those are ruled out.
    codes = {getattr(c, "errno", None) for c in causes}
    name_error = getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror)
    if has(socket.gaierror, name_error):
        reason = "name resolution failed"
    elif has(ConnectionRefusedError):
        reason = "connection refused"
    elif errno.ENETUNREACH in codes:
        reason = "network unreachable"
    elif errno.EHOSTUNREACH in codes:
        reason = "host unreachable"
    elif has(ConnectionResetError):
        reason = "connection reset"
    elif has(requests.exceptions.ConnectTimeout):
        reason = "connection timed out"
    elif has(TimeoutError, requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError):
        reason = "timed out"
    elif has(ssl.SSLCertVerificationError):
        reason = "TLS certificate not trusted"
    elif has(ssl.SSLError, requests.exceptions.SSLError):
        reason = "TLS error"
    elif has(urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError):
        reason = "connection closed mid-transfer"
    elif has(requests.exceptions.TooManyRedirects):
        reason = "too many redirects"
    elif has(requests.exceptions.ProxyError, urllib3.exceptions.ProxyError):
        return "proxy error"
    elif (isinstance(exc, OSError) and exc.strerror
          and not isinstance(exc, requests.RequestException)):
        return _shorten(exc.strerror)  # a local problem, e.g. a full disk
    else:
        return _shorten(f"{type(exc).__name__}: {exc}")
    if has(requests.exceptions.ProxyError, urllib3.exceptions.ProxyError):
        return f"proxy error ({reason})"
    return reason


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class DownloadError(RuntimeError):
    """Every URL of a file failed.

    Attributes
    ----------
    filename : str
        The file that could not be downloaded.
    failures : list of (str, str)
        ``(url, short reason)`` for each failed attempt, in order.
    errors : list of BaseException
        The full exception of each attempt (aligned with ``failures``); the
        last one is also chained as ``__cause__``.
    summary : str
        One line: the file, and how many attempts at how many hosts failed.
    hint : str
        What to do about it (e.g. where to place the file by hand).

    ``str(err)`` is the summary, one line per URL with its reasons, then the
    hint (wrapped to 100 columns).

    Examples
    --------
    >>> err = DownloadError("a.gz", [("http://x/a.gz", "HTTP 404")])
    >>> print(err)
    could not download a.gz (1 attempt at 1 host failed)
      http://x/a.gz: HTTP 404
    >>> print(DownloadError("a.gz", []))
    could not download a.gz: no URL was tried
    """

    def __init__(self, filename: str, failures: Sequence[tuple[str, str]], hint: str = "",
                 errors: Sequence[BaseException] = ()):
        self.filename = filename
        self.failures = list(failures)
        self.errors = list(errors)
        self.hint = hint
        if self.failures:
            hosts = dict.fromkeys(host_of(url) for url, _ in self.failures)
            tried = _plural(len(self.failures), "attempt")
            self.summary = (f"could not download {filename} ({tried} at "
                            f"{_plural(len(hosts), 'host')} failed)")
        else:
            self.summary = f"could not download {filename}: no URL was tried"
        lines = [self.summary]
        by_url: dict[str, list[str]] = {}
        for url, reason in self.failures:
            by_url.setdefault(url, []).append(reason)
        for url, reasons in by_url.items():
            counted = [r if reasons.count(r) == 1 else f"{r} (x{reasons.count(r)})"
                       for r in dict.fromkeys(reasons)]
            lines.append(f"  {url}: {'; '.join(counted)}")
        for paragraph in hint.splitlines():
            lines += textwrap.wrap(paragraph, _HINT_WIDTH, break_long_words=False,
                                   break_on_hyphens=False) or [""]
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


def _report(host: str, reason: str, attempt: int, retried: bool, exc: BaseException) -> None:
    """Print one line for a failed attempt, and the full error when debugging."""
    counter = f" (attempt {attempt} of {ATTEMPTS_PER_URL})" if retried else ""
    print(f"  {host} failed: {reason}{counter}", flush=True)
    if debug_enabled():
        print(f"    {type(exc).__module__}.{type(exc).__name__}: {exc}", flush=True)


def _invalid_url(exc: BaseException) -> str:
    import requests

    url_errors = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                  requests.exceptions.InvalidSchema)
    return "invalid URL" if isinstance(exc, url_errors) else short_reason(exc)


def fetch_url_list(
    dest: str, urls: Sequence[str], sha256: str | None, hint: str = ""
) -> str:
    """Download ``dest`` from the first URL that delivers the right bytes.

    Each URL is tried up to ``ATTEMPTS_PER_URL`` times on network errors or
    5xx replies (resuming where the last attempt stopped); an HTTP 4xx reply
    or a SHA-256 mismatch (e.g. an HTML error page served with status 200)
    moves on to the next URL at once.

    Prints ``Downloading <file> into <folder>/`` once, then one line per
    failed attempt: ``  <host> failed: <reason> (attempt i of n)`` (without
    the counter when the URL is not retried). With ``BATCHUP_DEBUG=1`` or
    inside :func:`verbose`, each full exception follows its line.

    Parameters
    ----------
    dest : str
        Final path; its folder is created if needed.
    urls : sequence of str
        URLs in order of preference.
    sha256 : str or None
        Expected lowercase hex digest; ``None`` accepts any content.
    hint : str
        What to do if every URL fails; ends the error message.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    DownloadError
        If no URL delivered a matching file; the last attempt's exception is
        its ``__cause__``.

    Examples
    --------
    >>> fetch_url_list("/tmp/x.gz", [], None)  # doctest: +SKIP
    """
    folder, name = os.path.split(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, name + ".part")
    known_hash = f"sha256:{sha256}" if sha256 else None
    failures: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    if urls:
        print(f"Downloading {name} into {os.path.join(folder, '')}", flush=True)
    for url in urls:
        attempt = 0
        while attempt < ATTEMPTS_PER_URL:
            attempt += 1
            transport = _ResumingTransport(partial, name)
            try:
                with _quiet_pooch() as pooch:
                    pooch.retrieve(
                        url, known_hash=known_hash, fname=name, path=folder,
                        downloader=transport, progressbar=False,
                    )
                return dest
            except ValueError as exc:
                # Before the transfer completed: e.g. requests' InvalidURL, so
                # this URL cannot work. After: pooch's hash mismatch (its
                # temporary copy, which held our partial bytes, is deleted),
                # retried from scratch only if the bytes were a resumed copy.
                error: BaseException = exc
                if not transport.completed:
                    reason, retry = _invalid_url(exc), False
                elif transport.resumed_from:
                    reason, retry = "SHA-256 mismatch after resuming; retrying from scratch", True
                else:
                    reason, retry = "SHA-256 mismatch (wrong or corrupt content)", False
                wait = 0.0
            except Exception as exc:  # noqa: BLE001 - any transport failure means "try again"
                error = exc
                status = _http_status(exc)
                reason = short_reason(exc)
                retry = status is None or not 400 <= status < 500
                wait = RETRY_WAIT_SECONDS * attempt
            failures.append((url, reason))
            errors.append(error)
            _report(host_of(url), reason, attempt, retry, error)
            if not retry:
                break
            if wait and attempt < ATTEMPTS_PER_URL:
                time.sleep(wait)
    raise DownloadError(name, failures, hint, errors) from (errors[-1] if errors else None)
