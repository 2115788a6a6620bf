"""Copy a data set from slow shared storage to a local folder, once.

:func:`copy_to_local` copies a folder -- or extracts a ``.zip`` file -- to a
local directory before training reads it, and does nothing when an up-to-date
copy is already there. See ``docs/caching.md``.

Design note: how a copy appears, and when it is redone
--------------------------------------------------------
For ``dest = <parent>/<name>``::

    <name>/                            the finished copy; appears by a rename
    <name>/.batchup-copy.json          the done marker, written last: the source's fingerprint
    .<name>.batchup-partial/           the copy in progress (resumable)
    .<name>.batchup-partial/.batchup-copy-partial.json    the fingerprint it copies
    .<name>.batchup-lock               flock'ed while checking or copying (left in place)
    .<name>.batchup-old-*/             a replaced copy, removed right after the swap

* The *fingerprint* of a folder is the list of its files' relative paths,
  sizes and modification times (ns); of a zip file, its size and mtime and
  its members' names, sizes and CRCs. A copy whose marker holds the current
  fingerprint is returned as it is; otherwise the source is copied again.
* Each file is written under a temporary name and renamed when complete, so
  a file at its own name in the partial folder is whole. A copy that was
  killed resumes: files already there (with the source's size and, for
  folders, mtime) are kept, the rest are copied. A partial folder of another
  fingerprint is discarded.
* The finished partial folder gets its marker, then replaces ``dest`` (an
  older copy is first renamed aside, then removed). ``dest`` therefore is
  either missing, an older complete copy, or the new complete copy -- never
  half-copied. A ``dest`` that exists without a marker is not ours and is
  never deleted (an empty folder is the exception).
* Processes on one host serialise on the lock file; the one that waited
  finds the finished copy and returns at once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from batchup._core.validate import show
from batchup.cache import _file_lock, _read_json, _write_json

__all__ = ["MARKER", "copy_to_local"]

#: The done marker inside a finished copy.
MARKER = ".batchup-copy.json"
_PARTIAL_RECORD = ".batchup-copy-partial.json"
_FORMAT = "batchup-local-copy"
_PART_SUFFIX = ".batchup-part"


def _copy_file(src: str, dst: str) -> None:
    """Copy one file with its modification time, whole or not at all (renamed when done)."""
    tmp = dst + _PART_SUFFIX
    shutil.copyfile(src, tmp)
    shutil.copystat(src, tmp)
    os.replace(tmp, dst)


def _folder_listing(src: Path) -> tuple[list[list], list[str]]:
    """``[relative path, size, mtime_ns]`` of every file under ``src``, and its empty folders.

    Links to folders are followed (each folder once, so a link loop ends).
    """
    files: list[list] = []
    empty: list[str] = []
    seen: set[tuple[int, int]] = set()
    for root, dirs, names in os.walk(src, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        rel_root = os.path.relpath(root, src)
        dirs.sort()
        kept = 0
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            if rel == MARKER:  # the source is itself a copy made here
                continue
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue  # a broken link
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, fifos and broken links are not data
            files.append([rel, st.st_size, st.st_mtime_ns])
            kept += 1
        if not kept and not dirs and rel_root != ".":
            empty.append(rel_root.replace(os.sep, "/"))
    return files, empty


def _zip_listing(src: Path) -> list[list]:
    with zipfile.ZipFile(src) as zf:
        return [[info.filename, info.file_size, info.CRC] for info in zf.infolist()]


def _fingerprint(src: Path, kind: str) -> tuple[str, dict]:
    """(sha1 of the source's listing, what the copy needs to know)."""
    if kind == "folder":
        files, empty = _folder_listing(src)
        listing: Any = {"files": files, "empty": empty}
        total = sum(f[1] for f in files)
    else:
        st = os.stat(src)
        members = _zip_listing(src)
        for member in members:
            _safe_member(member[0], src)  # before anything is extracted
        listing = {"zip": [src.name, st.st_size, st.st_mtime_ns], "members": members}
        files = [m for m in members if not m[0].endswith("/")]
        total = sum(m[1] for m in files)
    digest = hashlib.sha1(json.dumps(listing, sort_keys=True).encode()).hexdigest()
    return digest, {"listing": listing, "n_files": len(files), "bytes": total}


def _safe_member(name: str, src: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"the zip file {src} holds the member {name!r}, which would be "
                         "extracted outside dest; refusing to extract it")
    return path


def _copy_folder(src: Path, partial: Path, info: dict, bar: Any) -> None:
    for rel, size, mtime_ns in info["listing"]["files"]:
        target = partial / rel
        try:
            st = target.stat()
            if st.st_size == size and st.st_mtime_ns == mtime_ns:
                if bar is not None:
                    bar.update(size)
                continue  # copied before the last run was interrupted
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(os.fspath(src / rel), os.fspath(target))
        if bar is not None:
            bar.update(size)
    for rel in info["listing"]["empty"]:
        (partial / rel).mkdir(parents=True, exist_ok=True)


def _extract_zip(src: Path, partial: Path, bar: Any) -> None:
    with zipfile.ZipFile(src) as zf:
        for member in zf.infolist():
            rel = _safe_member(member.filename, src)
            target = partial.joinpath(*rel.parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            try:
                if target.stat().st_size == member.file_size:
                    if bar is not None:
                        bar.update(member.file_size)
                    continue  # extracted before the last run was interrupted
            except FileNotFoundError:
                pass
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = os.fspath(target) + _PART_SUFFIX
            with zf.open(member) as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            os.replace(tmp, target)
            if bar is not None:
                bar.update(member.file_size)


def _remove_part_files(folder: Path) -> None:
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name.endswith(_PART_SUFFIX):
                os.remove(os.path.join(root, name))


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def copy_to_local(source: str | os.PathLike, dest: str | os.PathLike, *,
                  progress: bool = False) -> Path:
    """Copy a data set folder, or extract a ``.zip`` file, to ``dest`` unless it is there.

    ``dest`` receives the folder's contents (or the zip file's members).
    A later call returns at once when ``dest`` holds a finished copy of the
    same source (same files, sizes and modification times); when the source
    changed, it is copied again. Several processes on one host may call this
    at once (e.g. one per GPU): one copies, the others wait and then return
    the path. A copy that was interrupted resumes with the files still
    missing.

    Parameters
    ----------
    source : str or os.PathLike
        A folder, or a zip file, typically on slow shared storage.
    dest : str or os.PathLike
        The local folder to create. Its parent is created if needed. A
        finished copy holds a hidden marker file, ``.batchup-copy.json``.
    progress : bool
        Show a tqdm progress bar (bytes) while copying.

    Returns
    -------
    pathlib.Path
        ``dest``, complete.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    ValueError
        ``source`` is neither a folder nor a zip file, or ``dest`` lies
        inside ``source`` (or is it).
    FileExistsError
        ``dest`` exists but is not a copy made by this function (a file, or
        a non-empty folder without the marker): it is left untouched.

    Examples
    --------
    >>> import os, tempfile
    >>> shared = tempfile.mkdtemp()
    >>> with open(os.path.join(shared, "train.csv"), "w") as f:
    ...     _ = f.write("x,y\\n1,2\\n")
    >>> local = copy_to_local(shared, os.path.join(tempfile.mkdtemp(), "data"))
    >>> (local / "train.csv").read_text()
    'x,y\\n1,2\\n'
    >>> copy_to_local(shared, local) == local      # up to date: nothing is copied
    True
    """
    for name, value in (("source", source), ("dest", dest)):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a str or os.PathLike, not {show(value)}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, not {show(progress)}")
    src = Path(os.path.abspath(os.fspath(source)))
    dst = Path(os.path.abspath(os.fspath(dest)))
    if not src.exists():
        raise FileNotFoundError(f"source {os.fspath(source)!r} does not exist (expected a "
                                "data set folder or a .zip file)")
    if src.is_dir():
        kind = "folder"
        if _is_within(dst.resolve(), src.resolve()):
            raise ValueError(f"dest {os.fspath(dest)!r} lies inside source "
                             f"{os.fspath(source)!r}; choose a dest outside it")
    elif src.is_file() and zipfile.is_zipfile(src):
        kind = "zip"
    else:
        raise ValueError(f"source {os.fspath(source)!r} is neither a folder nor a zip file")
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"dest {os.fspath(dest)!r} exists and is not a folder; it is "
                              "left untouched: remove it or choose another dest")
    parent, name = dst.parent, dst.name
    parent.mkdir(parents=True, exist_ok=True)
    partial = parent / f".{name}.batchup-partial"
    with _file_lock(os.fspath(parent / f".{name}.batchup-lock")):
        for old in glob.glob(os.path.join(glob.escape(os.fspath(parent)),
                                          f".{glob.escape(name)}.batchup-old-*")):
            shutil.rmtree(old, ignore_errors=True)  # left by a swap that was interrupted
        digest, info = _fingerprint(src, kind)
        if dst.is_dir():
            marker = _read_json(os.fspath(dst / MARKER))
            if marker is not None and marker.get("format") == _FORMAT:
                if marker.get("fingerprint") == digest:
                    return dst
            elif any(dst.iterdir()):
                raise FileExistsError(
                    f"dest {os.fspath(dest)!r} exists and is not a copy made by copy_to_local "
                    f"(it has no {MARKER}); it is left untouched: remove it or choose another "
                    "dest")
        record_path = os.fspath(partial / _PARTIAL_RECORD)
        if partial.exists():
            # The record, or the marker once the copy was complete, says what it holds.
            record = _read_json(record_path) or _read_json(os.fspath(partial / MARKER))
            if record is None or record.get("fingerprint") != digest:
                shutil.rmtree(partial)  # another source's files (or unknown): start again
            else:
                _remove_part_files(partial)  # files cut short by the interruption
        partial.mkdir(exist_ok=True)
        _write_json(record_path, {"format": _FORMAT, "fingerprint": digest})
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=info["bytes"], unit="B", unit_scale=True,
                       desc=f"copying {src.name}")
        try:
            if kind == "folder":
                _copy_folder(src, partial, info, bar)
            else:
                _extract_zip(src, partial, bar)
        finally:
            if bar is not None:
                bar.close()
        _write_json(os.fspath(partial / MARKER), {
            "format": _FORMAT, "fingerprint": digest, "source": os.fspath(src), "kind": kind,
            "files": info["n_files"], "bytes": info["bytes"]})
        os.remove(record_path)
        aside = None
        if dst.exists():
            aside = parent / f".{name}.batchup-old-{uuid.uuid4().hex}"
            os.rename(dst, aside)
        os.rename(partial, dst)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return dst
