"""How many workers ``processes=0`` means, and validation of ``processes``."""

from __future__ import annotations

import math
import numbers
import os

__all__ = ["available_cpus", "resolve_processes"]


def _cgroup_cpu_limit() -> float | None:
    """CPU quota of this container from cgroup v2 or v1, or ``None`` if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period_us = int(f.read())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """Number of CPUs this process may use: affinity mask and container quota.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> available_cpus() >= 1
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        # A quota of 1.5 CPUs still lets two workers make progress.
        n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def resolve_processes(processes: object) -> int:
    """Validate ``processes`` and turn ``0`` into one worker per available CPU.

    Parameters
    ----------
    processes : int
        Number of workers; ``0`` means :func:`available_cpus`.

    Returns
    -------
    int
        A positive number of workers.

    Raises
    ------
    TypeError
        If ``processes`` is not an integer (``bool`` is rejected too).
    ValueError
        If ``processes`` is negative.

    Examples
    --------
    >>> resolve_processes(3)
    3
    >>> resolve_processes(0) == available_cpus()
    True
    """
    if isinstance(processes, bool) or not isinstance(processes, numbers.Integral):
        raise TypeError(
            f"processes must be a non-negative int (0 = one per available CPU), "
            f"not {processes!r} of type {type(processes).__name__}"
        )
    n = int(processes)
    if n < 0:
        raise ValueError(
            f"processes must be a non-negative int (0 = one per available CPU), not {n}"
        )
    return n if n > 0 else available_cpus()
