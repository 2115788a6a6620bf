"""Where batchup keeps its data, and verified file acquisition.

The base directory is resolved at every call, in this order:

1. the ``BATCHUP_HOME`` environment variable, if set and non-empty;
2. ``data_dir`` in section ``[paths]`` of ``~/.batchup.cfg``;
3. ``~/.batchup``.

Datasets live in ``<base>/data`` (the layout of batchup 0.2.3, so existing
caches stay valid). ``~`` is expanded in both settings. Nothing is cached, so
changing ``BATCHUP_HOME`` at run time (as tests do) takes effect at once, and
nothing is created until something is written.

Examples
--------
>>> import os
>>> saved = os.environ.get("BATCHUP_HOME")
>>> os.environ["BATCHUP_HOME"] = "/tmp/bu_home"
>>> get_data_dir()
'/tmp/bu_home/data'
>>> _ = os.environ.pop("BATCHUP_HOME") if saved is None else os.environ.update(BATCHUP_HOME=saved)
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
from collections.abc import Sequence

CONFIG_PATH = os.path.join("~", ".batchup.cfg")
DEFAULT_BASE_PATH = os.path.join("~", ".batchup")
ENV_HOME = "BATCHUP_HOME"
ENV_DOWNLOADS = "BATCHUP_DOWNLOADS"
ENV_OFFLINE = "BATCHUP_OFFLINE"
DATA_DIR_NAME = "data"
DOWNLOADS_DIR_NAME = "downloads"
_HASH_CHUNK = 10 * 1024 * 1024


class ConfigError(ValueError):
    """The configuration file exists but cannot be parsed.

    Examples
    --------
    >>> issubclass(ConfigError, ValueError)
    True
    """


def get_config() -> configparser.RawConfigParser:
    """Read ``~/.batchup.cfg`` (an empty parser if it does not exist).

    Raises
    ------
    ConfigError
        If the file exists but is not valid INI syntax; the message names
        the file.

    Examples
    --------
    >>> isinstance(get_config(), configparser.RawConfigParser)
    True
    """
    path = os.path.expanduser(CONFIG_PATH)
    parser = configparser.RawConfigParser()
    if os.path.isfile(path):
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"batchup: config file {path} does not parse: {exc}. Fix it, delete it, "
                f"or set {ENV_HOME} (which takes precedence)."
            ) from exc
    return parser


def _resolve_base() -> tuple[str, str]:
    env = os.environ.get(ENV_HOME, "")
    if env:
        return os.path.expanduser(env), f"environment variable {ENV_HOME}"
    config = get_config()
    if config.has_option("paths", "data_dir"):
        value = config.get("paths", "data_dir").strip()
        if value:
            return os.path.expanduser(value), f"[paths] data_dir in {CONFIG_PATH}"
    return os.path.expanduser(DEFAULT_BASE_PATH), "the default"


def get_batchup_path_origin() -> str:
    """Say where the base directory comes from (for messages and ``info``).

    Examples
    --------
    >>> isinstance(get_batchup_path_origin(), str)
    True
    """
    return _resolve_base()[1]


def get_batchup_path() -> str:
    """Return the batchup base directory (see the module docstring).

    Raises
    ------
    RuntimeError
        If the path exists and is not a directory.

    Examples
    --------
    >>> isinstance(get_batchup_path(), str)
    True
    """
    path, _ = _resolve_base()
    if os.path.exists(path) and not os.path.isdir(path):
        raise RuntimeError(f"batchup: the DATA directory path ({path}) is not a directory")
    return path


def get_data_dir() -> str:
    """Return ``<base>/data``, where converted datasets are stored.

    Examples
    --------
    >>> get_data_dir().endswith("data")
    True
    """
    return os.path.join(get_batchup_path(), DATA_DIR_NAME)


def get_data_path(filename: str) -> str:
    """Return ``filename`` if absolute, else its path inside the data directory.

    Examples
    --------
    >>> get_data_path("/abs/file.h5")
    '/abs/file.h5'
    """
    if os.path.isabs(filename):
        return filename
    return os.path.join(get_data_dir(), filename)


def get_downloads_dir() -> str:
    """Return ``<base>/data/downloads``, where source files are downloaded.

    A verified file placed by hand at ``downloads/<dataset>/<filename>`` is
    used without the network.

    Examples
    --------
    >>> os.path.basename(get_downloads_dir())
    'downloads'
    """
    return os.path.join(get_data_dir(), DOWNLOADS_DIR_NAME)


def get_offline_dir() -> str | None:
    """Return the folder named by ``BATCHUP_DOWNLOADS``, or ``None``.

    batchup looks there (as ``<dir>/<dataset>/<filename>`` or
    ``<dir>/<filename>``) for source files before downloading, and never
    writes to or deletes from it.

    Examples
    --------
    >>> get_offline_dir() is None or isinstance(get_offline_dir(), str)
    True
    """
    value = os.environ.get(ENV_DOWNLOADS, "")
    return os.path.expanduser(value) if value else None


def is_offline() -> bool:
    """Return whether ``BATCHUP_OFFLINE`` forbids network access.

    Examples
    --------
    >>> isinstance(is_offline(), bool)
    True
    """
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def ensure_dir(path: str) -> str:
    """Create ``path`` if needed and check that it is writable.

    Raises
    ------
    PermissionError
        Naming the directory and where its location came from.

    Examples
    --------
    >>> ensure_dir("/tmp")
    '/tmp'
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        origin = get_batchup_path_origin()
        raise PermissionError(
            f"batchup: cannot create data directory {path} (set by {origin}): {exc}; "
            f"set {ENV_HOME} to a writable directory"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        origin = get_batchup_path_origin()
        raise PermissionError(
            f"batchup: data directory {path} (set by {origin}) is not writable; "
            f"set {ENV_HOME} to a writable directory"
        )
    return path


def compute_sha256(path: str) -> str:
    """Return the lowercase hex SHA-256 of a file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     compute_sha256(f.name)[:8]
    'e3b0c442'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str, sha256: str | None) -> bool:
    """Return whether ``path`` is a regular file with the given SHA-256.

    With ``sha256=None`` the digest is printed and any file passes.

    Examples
    --------
    >>> verify_file("/nonexistent", None)
    False
    """
    if not os.path.isfile(path):
        return False
    digest = compute_sha256(path)
    if sha256 is None:
        print(f"SHA-256 of {path}:")
        print(f'  "{digest}"')
        return True
    return digest == sha256.lower()


def download(path: str, source_url: str | Sequence[str]) -> str:
    """Download ``source_url`` to ``path`` unless ``path`` exists.

    The file is written under a temporary name and renamed when complete.
    ``source_url`` may be a list of mirrors, tried in order.

    Raises
    ------
    batchup.datasets._download.DownloadError
        If every URL failed.

    Examples
    --------
    >>> download("/tmp/bu/x.bin", "http://127.0.0.1:1/x.bin")  # doctest: +SKIP
    """
    from batchup.datasets._download import fetch_url_list

    if os.path.exists(path):
        return path
    ensure_dir(os.path.dirname(os.path.abspath(path)))
    urls = [source_url] if isinstance(source_url, str) else list(source_url)
    return fetch_url_list(path, urls, None)


def _reuse_existing(path: str, sha256: str | None) -> bool:
    # An existing file is re-verified (0.2.3 trusted it, so one bad file
    # poisoned the cache forever).
    if not os.path.isfile(path):
        return False
    if sha256 is None:
        print(f'The SHA-256 of {path} is "{compute_sha256(path)}"')
        return True
    if verify_file(path, sha256):
        return True
    print(f"batchup: {path} does not match its SHA-256; deleting and fetching it again")
    os.remove(path)
    return False


def download_and_verify(
    path: str, source_url: str | Sequence[str], sha256: str | None
) -> str | None:
    """Make ``path`` a verified copy of ``source_url``; return it, or ``None``.

    An existing ``path`` is verified; a mismatch is deleted and re-fetched.
    ``source_url`` may be a list of mirrors: a failed download or a hash
    mismatch moves on to the next.

    Examples
    --------
    >>> download_and_verify("/tmp/bu/x", [], "00" * 32)  # doctest: +SKIP
    """
    from batchup.datasets._download import DownloadError, fetch_url_list

    if _reuse_existing(path, sha256):
        return path
    ensure_dir(os.path.dirname(os.path.abspath(path)))
    urls = [source_url] if isinstance(source_url, str) else list(source_url)
    try:
        return fetch_url_list(path, urls, sha256)
    except DownloadError as exc:
        print(f"Did not succeed in downloading {path}: {exc}")
        return None


def copy_and_verify(path: str, source_path: str, sha256: str | None) -> str | None:
    """Copy ``source_path`` to ``path`` if it verifies; return ``path`` or ``None``.

    The copy is made under a temporary name and renamed only once verified.

    Examples
    --------
    >>> copy_and_verify("/tmp/bu/y", "/nonexistent", None) is None
    True
    """
    if _reuse_existing(path, sha256):
        return path
    if not os.path.isfile(source_path):
        return None
    ensure_dir(os.path.dirname(os.path.abspath(path)))
    temp = f"{path}.{os.getpid()}.unverified"
    try:
        shutil.copy(source_path, temp)
        if verify_file(temp, sha256):
            os.replace(temp, path)
            return path
        print(f"SHA verification of file {source_path} failed")
        return None
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def download_data(filename: str, source_url: str | Sequence[str], sha256: str | None) -> str | None:
    """:func:`download_and_verify` into the data directory.

    Examples
    --------
    >>> download_data("x.bin", "http://127.0.0.1:1/x.bin", None)  # doctest: +SKIP
    """
    return download_and_verify(get_data_path(filename), source_url, sha256)


def copy_data(filename: str, source_path: str, sha256: str | None) -> str | None:
    """:func:`copy_and_verify` into the data directory.

    Examples
    --------
    >>> copy_data("y.bin", "/nonexistent", None) is None
    True
    """
    return copy_and_verify(get_data_path(filename), source_path, sha256)
