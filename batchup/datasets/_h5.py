"""HDF5 helpers: check a cached file, name temporary files, close files at exit.

A converted file is written as ``<target>.<host>-<pid>.tmp`` and renamed to
``<target>`` only once complete and checked, so a reader either sees a whole
file or none. Leftover temporaries of dead processes on this host are removed
by the next conversion.
"""

from __future__ import annotations

import atexit
import glob
import os
import socket
import weakref
from collections.abc import Iterable

_open_finalizers: list[weakref.finalize] = []
_atexit_registered = False


def temp_path_for(target: str) -> str:
    """Return the temporary name a conversion of ``target`` writes to.

    Examples
    --------
    >>> temp_path_for("/d/mnist.h5").endswith(".tmp")
    True
    """
    return f"{target}.{socket.gethostname()}-{os.getpid()}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: str) -> list[str]:
    """Delete temporaries of ``target`` left by dead processes on this host.

    Examples
    --------
    >>> remove_stale_temps("/nonexistent/x.h5")
    []
    """
    removed = []
    host = socket.gethostname()
    for path in glob.glob(glob.escape(target) + ".*.tmp"):
        tag = path[len(target) + 1 : -len(".tmp")]
        tag_host, _, pid = tag.rpartition("-")
        if tag_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            print(f"batchup: removing {path}, left by an interrupted conversion")
            os.remove(path)
            removed.append(path)
    return removed


def problem_with(path: str, nodes: Iterable[str]) -> str | None:
    """Return why ``path`` is not a usable HDF5 file with ``nodes``, or ``None``.

    ``nodes`` are absolute node paths such as ``"/mnist/train_X_u8"``.

    Examples
    --------
    >>> problem_with("/nonexistent.h5", ["/x"])
    'it does not exist'
    """
    import tables

    if not os.path.isfile(path):
        return "it does not exist"
    try:
        with tables.open_file(path, mode="r") as f:
            missing = [n for n in nodes if n not in f]
            if missing:
                return f"it lacks {', '.join(missing)}"
            for n in nodes:
                node = f.get_node(n)
                # Touch the first row so a truncated data block shows up here.
                if hasattr(node, "shape") and node.shape and node.shape[0]:
                    node[0]
    except Exception as exc:  # noqa: BLE001 - any failure means "unusable"
        return f"it cannot be read ({type(exc).__name__}: {exc})"
    return None


def _close_all_at_exit() -> None:
    for fin in list(_open_finalizers):
        fin()


def open_read_only(path: str, owner: object):
    """Open ``path`` with PyTables; it is closed when ``owner`` is collected.

    Open files are also closed at interpreter exit before PyTables' own exit
    hook would complain about them.

    Examples
    --------
    >>> open_read_only("/nonexistent.h5", object())  # doctest: +SKIP
    """
    global _atexit_registered
    import tables

    if not _atexit_registered:
        # Registered after `tables` is imported, so it runs before PyTables'
        # own exit hook (atexit runs hooks last-in first-out).
        atexit.register(_close_all_at_exit)
        _atexit_registered = True
    h5 = tables.open_file(path, mode="r")
    fin = weakref.finalize(owner, _close_quietly, h5)
    _open_finalizers.append(fin)
    _open_finalizers[:] = [f for f in _open_finalizers if f.alive]
    return h5, fin


def _close_quietly(h5) -> None:
    try:
        if h5.isopen:
            h5.close()
    except Exception:  # noqa: BLE001 - closing during shutdown must never raise
        pass
