"""Optional libraries, imported when a feature asks for them, with an error that says how
to install them."""

from __future__ import annotations

import importlib
from typing import Any

#: The pip extra that installs each optional library.
EXTRAS = {"h5py": "storage", "zarr": "storage", "dask": "storage", "dask.array": "storage",
          "torch": "frameworks", "matplotlib": "bench"}


def require(module: str, feature: str) -> Any:
    """Import ``module`` for ``feature``, or raise an ``ImportError`` naming the extra.

    Examples
    --------
    >>> require("json", "reading JSON").__name__
    'json'
    >>> try:
    ...     require("no_such_module_here", "this example")
    ... except ImportError as e:
    ...     print(e)
    this example needs no_such_module_here, which is not installed: pip install no_such_module_here
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module)
        how = (f"pip install 'batchup[{extra}]' (or pip install {module.partition('.')[0]})"
               if extra else f"pip install {module.partition('.')[0]}")
        raise ImportError(f"{feature} needs {module}, which is not installed: {how}") from exc
