"""Command-line tools for the dataset cache: ``sources``, ``fetch``, ``info``, ``delete``.

``batchup.__main__`` calls :func:`add_commands` on its subparsers, so these run
as ``python -m batchup sources``, ``python -m batchup fetch mnist cifar10``,
``python -m batchup info`` and ``python -m batchup delete mnist``.

When ``fetch`` fails to download a file it prints one line saying why (the
per-attempt lines come from :mod:`batchup.datasets._download`) and then, once,
where to place each missing source file by hand: its exact path in the data
directory, its SHA-256 and size. ``--verbose`` (or ``BATCHUP_DEBUG=1``) also
prints every full error and the traceback.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="batchup")
>>> add_commands(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["fetch", "mnist", "--download-only"])
>>> args.names, args.download_only
(['mnist'], True)
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib
import json
import os
import shutil
import sys
import traceback

from batchup import config
from batchup.datasets import registry
from batchup.datasets._download import ENV_DEBUG

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclasses.dataclass(frozen=True)
class _Target:
    module: str
    fetchers: tuple[str, ...]
    h5_files: tuple[str, ...]


# Which module builds each dataset, and the converted files it leaves in <data>/.
_TARGETS = {
    "mnist": _Target("batchup.datasets.mnist", ("fetch_mnist",), ("mnist.h5",)),
    "fashion_mnist": _Target("batchup.datasets.fashion_mnist", ("fetch_fashion_mnist",),
                             ("fashion-mnist.h5",)),
    "svhn": _Target("batchup.datasets.svhn", ("fetch_svhn_train_test",),
                    ("svhn_train_test.h5",)),
    "svhn_extra": _Target("batchup.datasets.svhn", ("fetch_svhn_extra",), ("svhn_extra.h5",)),
    "cifar10": _Target("batchup.datasets.cifar10", ("fetch_cifar10",), ("cifar10.h5",)),
    "cifar100": _Target("batchup.datasets.cifar100", ("fetch_cifar100",), ("cifar100.h5",)),
    "stl": _Target("batchup.datasets.stl", ("fetch_stl",), ("stl10.h5",)),
    "usps": _Target("batchup.datasets.usps", ("usps_data",), ("usps.h5",)),
}


def known_names() -> list[str]:
    """Return every dataset name the commands accept.

    Examples
    --------
    >>> "cifar100" in known_names() and "digits" in known_names()
    True
    """
    return registry.datasets()


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _check_names(names: list[str]) -> list[str] | None:
    wanted = [_normalise(n) for n in names]
    unknown = [n for n, w in zip(names, wanted, strict=True) if w not in known_names()]
    if unknown:
        print(f"batchup: unknown dataset name(s): {', '.join(unknown)}; "
              f"known names: {', '.join(known_names())}", file=sys.stderr)
        return None
    return list(dict.fromkeys(wanted))


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _cmd_sources(args: argparse.Namespace) -> int:
    names = _check_names(args.names) if args.names else known_names()
    if names is None:
        return EXIT_USAGE
    if args.json:
        rows = [dataclasses.asdict(s) for name in names for s in registry.sources(name)]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for name in names:
        if name in registry.SHIPPED:
            print(f"{name}: {registry.SHIPPED[name]}")
            continue
        for s in registry.sources(name):
            size = f", {s.size} bytes" if s.size else ""
            print(f"{s.dataset}  {s.filename}  sha256={s.sha256}{size}")
            for url in s.urls:
                print(f"    {url}")
    return EXIT_OK


def _download_error(exc: BaseException):
    """Return the ``DownloadError`` behind ``exc`` (itself or in its chain), or ``None``."""
    from batchup.datasets._download import DownloadError

    seen: list[BaseException] = []
    while exc is not None and not any(exc is e for e in seen):
        if isinstance(exc, DownloadError):
            return exc
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def manual_install_lines(name: str) -> list[str]:
    """Say where to place each missing source file of dataset ``name`` by hand.

    Lists, for every registry file of ``name`` that has no verified copy on
    disk yet, its exact path in the downloads folder with its SHA-256 and
    size (when published); then the ``BATCHUP_DOWNLOADS`` alternative.

    Examples
    --------
    >>> lines = manual_install_lines("usps")  # doctest: +SKIP
    >>> lines[1].endswith("downloads/usps/usps.h5")  # doctest: +SKIP
    True
    """
    from batchup.datasets.dataset import RegistrySourceFile

    missing = [(RegistrySourceFile(name, s.filename), s) for s in registry.sources(name)]
    missing = [(f, s) for f, s in missing if f.find_verified() is None]
    if not missing:
        return []
    files = "this file" if len(missing) == 1 else f"these {len(missing)} files"
    lines = [f"To install {name} by hand, copy {files} to the path shown "
             "(checked by SHA-256):"]
    for source_file, entry in missing:
        size = f", {entry.size:,} bytes" if entry.size else ""
        lines += [f"  {source_file.local_path}", f"      sha256 {entry.sha256}{size}"]
    offline_dir = config.get_offline_dir()
    if offline_dir:
        per_dataset, flat = os.path.join(offline_dir, name, ""), os.path.join(offline_dir, "")
        lines.append(f"or to {per_dataset} or {flat} (${config.ENV_DOWNLOADS}).")
    else:
        lines.append(f"or to <dir>/{name}/ or <dir>/ of a folder named by ${config.ENV_DOWNLOADS}.")
    lines.append(f"`python -m batchup sources {name}` lists the URLs to get them from.")
    return lines


def _report_fetch_failure(name: str, exc: BaseException) -> bool:
    """Print why fetching ``name`` failed; return whether a download failed."""
    from batchup.datasets import _download

    err = _download_error(exc)
    if err is None:
        print(f"batchup: fetching {name} failed: {exc}", file=sys.stderr)
    elif config.is_offline() and not err.failures:
        value = os.environ.get(config.ENV_OFFLINE, "")
        print(f"batchup: cannot fetch {name}: network access is off because "
              f"{config.ENV_OFFLINE}={value} is set (unset it to download)", file=sys.stderr)
    else:
        print(f"batchup: fetching {name} failed: {err.summary}", file=sys.stderr)
    if err is not None:
        hint = manual_install_lines(name) or err.hint.splitlines()
        for line in hint:
            print(line, file=sys.stderr)
    if _download.debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    return err is not None and bool(err.failures)


def _cmd_fetch(args: argparse.Namespace) -> int:
    names = _check_names(args.names)
    if names is None:
        return EXIT_USAGE
    from batchup.datasets import _download
    from batchup.datasets.dataset import RegistrySourceFile

    status = EXIT_OK
    download_failed = False
    with _download.verbose(args.verbose):
        for name in names:
            if name in registry.SHIPPED:
                print(f"{name}: {registry.SHIPPED[name]}; nothing to fetch")
                continue
            try:
                if args.download_only:
                    for s in registry.sources(name):
                        print(f"{name}: {RegistrySourceFile(name, s.filename).acquire()}")
                else:
                    target = _TARGETS[name]
                    module = importlib.import_module(target.module)
                    for fetcher in target.fetchers:
                        print(f"{name}: {getattr(module, fetcher)()}")
            except (RuntimeError, OSError, ValueError) as exc:
                sys.stdout.flush()
                download_failed |= _report_fetch_failure(name, exc)
                status = EXIT_FAILED
        if download_failed and not _download.debug_enabled():
            print(f"For the full errors, add --verbose or set {ENV_DEBUG}=1.",
                  file=sys.stderr)
    return status


def _files_under(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


def _cmd_info(args: argparse.Namespace) -> int:
    base, origin = config.get_batchup_path(), config.get_batchup_path_origin()
    data_dir = config.get_data_dir()
    downloads = config.get_downloads_dir()
    offline = config.get_offline_dir()
    print(f"batchup base directory: {base} (from {origin})")
    print(f"data directory: {data_dir}{'' if os.path.isdir(data_dir) else ' (not created yet)'}")
    print(f"downloads folder: {downloads}")
    print(f"offline folder (${config.ENV_DOWNLOADS}): {offline or 'not set'}")
    if config.is_offline():
        print(f"${config.ENV_OFFLINE} is set: no network access")
    total = 0
    for name in known_names():
        if name in registry.SHIPPED:
            print(f"  {name:<14} {registry.SHIPPED[name]}")
            continue
        parts = []
        for h5 in _TARGETS[name].h5_files:
            path = os.path.join(data_dir, h5)
            if os.path.isfile(path):
                size = os.path.getsize(path)
                total += size
                parts.append(f"{h5} {_human(size)}")
        for path in _files_under(os.path.join(downloads, name)):
            size = os.path.getsize(path)
            total += size
            parts.append(f"downloads/{name}/{os.path.basename(path)} {_human(size)}")
        print(f"  {name:<14} {', '.join(parts) if parts else 'not cached'}")
    leftovers = sorted(glob.glob(os.path.join(glob.escape(data_dir), "*.tmp")))
    if leftovers:
        print("unfinished conversions (removed by the next fetch):")
        for path in leftovers:
            print(f"  {path} {_human(os.path.getsize(path))}")
    print(f"total: {_human(total)}")
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace) -> int:
    names = _check_names(args.names)
    if names is None:
        return EXIT_USAGE
    data_dir = config.get_data_dir()
    for name in names:
        if name in registry.SHIPPED:
            print(f"{name}: {registry.SHIPPED[name]}; nothing to delete")
            continue
        removed = []
        for h5 in _TARGETS[name].h5_files:
            path = os.path.join(data_dir, h5)
            for p in [path] + glob.glob(glob.escape(path) + ".*.tmp"):
                if os.path.isfile(p):
                    os.remove(p)
                    removed.append(p)
        folder = os.path.join(config.get_downloads_dir(), name)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
            removed.append(folder)
        print(f"{name}: removed {', '.join(removed)}" if removed else f"{name}: nothing cached")
    return EXIT_OK


def add_commands(subparsers) -> None:
    """Register ``sources``, ``fetch``, ``info`` and ``delete`` on ``subparsers``.

    Each sets ``func``, a callable taking the parsed arguments and returning
    an exit code (2 for unknown dataset names).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_commands(p.add_subparsers())
    >>> p.parse_args(["info"]).func.__name__
    '_cmd_info'
    """
    names_help = f"dataset names: {', '.join(known_names())}"
    p = subparsers.add_parser(
        "sources", help="list every source file with its URLs and SHA-256",
        description="List each dataset's source files: name, SHA-256, size and the URLs "
                    "tried in order (for preparing machines without network access).")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"{names_help} (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_sources)

    p = subparsers.add_parser(
        "fetch", help="download, verify and convert datasets now",
        description="Download each dataset's source files, verify their SHA-256 and\n"
                    "convert them to HDF5 in the data directory (see `info`).",
        epilog=FETCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", metavar="NAME", help=names_help)
    p.add_argument("--download-only", action="store_true",
                   help="only download and verify the source files")
    p.add_argument("--verbose", action="store_true",
                   help=f"print full errors and tracebacks (or {ENV_DEBUG}=1)")
    p.set_defaults(func=_cmd_fetch)

    p = subparsers.add_parser(
        "info", help="show the data directory and what is cached",
        description="Show where batchup keeps its data (and why), the offline settings, "
                    "and the cached files of each dataset with their sizes.")
    p.set_defaults(func=_cmd_info)

    p = subparsers.add_parser(
        "delete", help="delete the cached files of datasets",
        description="Delete the converted HDF5 files and downloaded sources of datasets "
                    "(files in $BATCHUP_DOWNLOADS are never touched).")
    p.add_argument("names", nargs="+", metavar="NAME", help=names_help)
    p.set_defaults(func=_cmd_delete)


FETCH_EPILOG = f"""\
A failed download attempt prints one line: the host and a short reason
(e.g. "connection refused", "HTTP 404", "timed out"). Each URL gets up to 3
attempts; after the last URL, fetch says once where to place each missing file
by hand (exact path, SHA-256 and size). --verbose, or {ENV_DEBUG}=1, also
prints every full error and the final traceback.

environment:
  {config.ENV_OFFLINE}=1      never use the network: only files already in place
  {config.ENV_DOWNLOADS}=DIR  a read-only folder of source files, checked first
                         (as DIR/<dataset>/<file> or DIR/<file>)
"""


def main(argv: list[str] | None = None) -> int:
    """Run only the dataset commands (``batchup.__main__`` offers them all).

    Examples
    --------
    >>> main(["sources", "usps"])  # doctest: +ELLIPSIS
    usps  usps.h5  sha256=ba768d9a...
    ...
    0
    """
    parser = argparse.ArgumentParser(prog="python -m batchup.datasets.cli",
                                     description="Manage batchup's dataset cache.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
