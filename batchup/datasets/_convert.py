"""Small helpers shared by the converters that write HDF5 files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

BLOSC9 = {"complevel": 9, "complib": "blosc", "shuffle": True}


@contextlib.contextmanager
def new_h5(path: str, group: str, title: str) -> Iterator[tuple[object, object]]:
    """Create ``path`` with one group; yield ``(file, group_node)``; always close.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.h5")
    >>> with new_h5(p, "g", "demo") as (f, g):
    ...     _ = f.create_array(g, "a", np.arange(3))
    """
    import tables

    f = tables.open_file(path, mode="w")
    try:
        yield f, f.create_group(f.root, group, title)
    finally:
        f.close()


def compressed_earray(f, group, name: str, dtype, trailing_shape: tuple, expected: int = 1000):
    """Create an extendable blosc-9 array with rows of ``trailing_shape``.

    Examples
    --------
    >>> compressed_earray  # doctest: +ELLIPSIS
    <function compressed_earray at ...>
    """
    import tables

    return f.create_earray(
        group, name, atom=tables.Atom.from_dtype(np.dtype(dtype)),
        shape=(0,) + tuple(trailing_shape), filters=tables.Filters(**BLOSC9),
        expectedrows=max(int(expected), 1),
    )


def byte_strings(names) -> np.ndarray:
    """Encode names as a NumPy byte-string array (stored as class names).

    Examples
    --------
    >>> byte_strings(["cat", b"dog"]).tolist()
    [b'cat', b'dog']
    """
    return np.array([n if isinstance(n, bytes) else str(n).encode("latin-1") for n in names])
