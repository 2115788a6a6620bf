"""Progress bars for downloads and conversions that stay quiet in CI logs.

A bar is drawn only when stderr is a terminal; otherwise the caller's own
one-line messages are all that appears, so logs of batch jobs stay readable.
Setting ``BATCHUP_PROGRESS=0`` disables bars everywhere, ``1`` forces them.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def bars_enabled() -> bool:
    """Return whether progress bars should be drawn.

    Examples
    --------
    >>> isinstance(bars_enabled(), bool)
    True
    """
    forced = os.environ.get("BATCHUP_PROGRESS", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def progress_bar(total: int | None, desc: str, unit: str = "B", initial: int = 0) -> Any:
    """Return a tqdm bar, disabled when bars are off.

    Parameters
    ----------
    total : int or None
        Expected total (bytes or items); ``None`` if unknown.
    desc : str
        Short label shown before the bar.
    unit : str
        ``"B"`` for byte counts (scaled to kB/MB), anything else for items.
    initial : int
        Starting count, e.g. the bytes already present when resuming.

    Examples
    --------
    >>> with progress_bar(3, "demo", unit="step") as bar:
    ...     bar.update(3)
    """
    from tqdm.auto import tqdm

    byte_unit = unit == "B"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=byte_unit,
        unit_divisor=1024 if byte_unit else 1000,
        initial=initial,
        disable=not bars_enabled(),
        leave=False,
        dynamic_ncols=True,
    )
