"""Which cloudpickle to use: the standalone package, or the copy older joblibs bundle."""

from __future__ import annotations

from types import ModuleType

__all__ = ["cloudpickle"]


def cloudpickle() -> ModuleType:
    """The cloudpickle module (joblib >= 1.5 depends on it; older joblibs bundle it).

    Examples
    --------
    >>> cloudpickle().loads(cloudpickle().dumps(lambda x: x + 1))(1)
    2
    """
    try:
        import cloudpickle as module
    except ImportError:  # pragma: no cover - joblib < 1.5
        from joblib.externals import cloudpickle as module  # type: ignore[no-redef]
    return module
