"""This process's rank and world size, read from the launcher: ``detect_shard`` and friends.

A sharded iteration gives each of ``world_size`` processes a disjoint share of
every global batch (see :class:`ShardSpec`). The helpers here build that
``ShardSpec`` from wherever the rank is known: the environment variables set by
torchrun, OpenMPI, MPICH / Intel MPI or SLURM (:func:`shard_from_env`), an
initialised ``torch.distributed`` process group (:func:`shard_from_torch`) or
JAX (:func:`shard_from_jax`); :func:`detect_shard` picks one. Neither torch nor
jax is imported by ``import batchup.distributed``: only the function that needs
one imports it, when called.

Example
-------
In a training script, however it was launched::

    from batchup.distributed import detect_shard

    for x, y in ds.batch_iterator(64, shuffle=42, shard=detect_shard()):
        ...

Every rank passes the same ``shuffle`` seed: the ranks share one order and take
disjoint parts of it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from batchup._core.shard import ShardSpec

__all__ = ["ShardSpec", "shard_from_env", "shard_from_torch", "shard_from_jax", "detect_shard"]

# (rank variable, world size variable, who sets them), highest precedence first.
ENV_FAMILIES = (
    ("RANK", "WORLD_SIZE", "torchrun"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OpenMPI"),
    ("PMI_RANK", "PMI_SIZE", "MPICH / Intel MPI"),
    ("SLURM_PROCID", "SLURM_NTASKS", "SLURM"),
)
# torchrun's per-node pair: a rank among this node's processes, not a global rank.
LOCAL_FAMILY = ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "torchrun, per node")

_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _parse_int(name: str, value: str, source: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise ValueError(f"{name}={value!r} is not an integer ({source})")
    return int(value)


def _read_pair(environ: Mapping[str, str], rank_var: str, size_var: str,
               source: str) -> tuple[int, int] | None:
    """``(rank, world_size)`` from one pair of variables; None if neither is set."""
    rank_raw, size_raw = environ.get(rank_var), environ.get(size_var)
    if rank_raw is None and size_raw is None:
        return None
    if rank_raw is None or size_raw is None:
        have, missing = (rank_var, size_var) if size_raw is None else (size_var, rank_var)
        raise ValueError(
            f"{have}={environ[have]!r} is set but {missing} is not ({source}); "
            "set both or neither"
        )
    rank = _parse_int(rank_var, rank_raw, source)
    world_size = _parse_int(size_var, size_raw, source)
    if world_size < 1:
        raise ValueError(f"{size_var}={size_raw!r} must be at least 1 ({source})")
    if rank < 0:
        raise ValueError(f"{rank_var}={rank_raw!r} must not be negative ({source})")
    if rank >= world_size:
        raise ValueError(
            f"{rank_var}={rank_raw!r} must be less than {size_var}={size_raw!r} ({source})"
        )
    return rank, world_size


def shard_from_env(remainder: str = "pad", environ: Mapping[str, str] | None = None) -> ShardSpec:
    """This process's ``ShardSpec`` from the launcher's environment variables.

    The first pair of variables in this list that is set (either variable of
    it) gives the rank and world size; the pairs after it are not read:

    1. ``RANK`` / ``WORLD_SIZE`` -- torchrun, and many other launchers
    2. ``OMPI_COMM_WORLD_RANK`` / ``OMPI_COMM_WORLD_SIZE`` -- OpenMPI
    3. ``PMI_RANK`` / ``PMI_SIZE`` -- MPICH, Intel MPI
    4. ``SLURM_PROCID`` / ``SLURM_NTASKS`` -- SLURM
    5. ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` -- torchrun's rank *within one
       node*. It is a global rank only on a single node, so it is used only
       when none of the pairs above is set; on several nodes, ranks on
       different nodes would then take the same share.

    If none is set, this is a single process: ``ShardSpec(0, 1, remainder)``.

    Parameters
    ----------
    remainder : {"pad", "drop", "even"}
        Passed on to :class:`ShardSpec`.
    environ : mapping of str to str, optional
        Where to read the variables; default ``os.environ``.

    Returns
    -------
    ShardSpec

    Raises
    ------
    ValueError
        If the pair used has only one of its two variables set, a value that
        is not an integer, a negative rank, a world size below 1 or a rank not
        below the world size. The message names the variables and values.

    Examples
    --------
    >>> shard_from_env(environ={"RANK": "1", "WORLD_SIZE": "4"})
    ShardSpec(rank=1, world_size=4, remainder='pad')
    >>> shard_from_env("drop", environ={"SLURM_PROCID": "3", "SLURM_NTASKS": "8"})
    ShardSpec(rank=3, world_size=8, remainder='drop')
    >>> shard_from_env(environ={})
    ShardSpec(rank=0, world_size=1, remainder='pad')
    >>> shard_from_env(environ={"RANK": "x", "WORLD_SIZE": "2"})
    Traceback (most recent call last):
    ...
    ValueError: RANK='x' is not an integer (torchrun)
    """
    if environ is None:
        environ = os.environ
    for rank_var, size_var, source in (*ENV_FAMILIES, LOCAL_FAMILY):
        pair = _read_pair(environ, rank_var, size_var, source)
        if pair is not None:
            return ShardSpec(pair[0], pair[1], remainder)
    return ShardSpec(0, 1, remainder)


def shard_from_torch(remainder: str = "pad") -> ShardSpec:
    """This process's ``ShardSpec`` from the default ``torch.distributed`` process group.

    Imports ``torch.distributed`` when called (not before).

    Parameters
    ----------
    remainder : {"pad", "drop", "even"}
        Passed on to :class:`ShardSpec`.

    Returns
    -------
    ShardSpec
        ``ShardSpec(dist.get_rank(), dist.get_world_size(), remainder)``.

    Raises
    ------
    ImportError
        If PyTorch is not installed.
    RuntimeError
        If ``torch.distributed`` is not available in this build of PyTorch or
        its default process group is not initialised yet.

    Examples
    --------
    Without a process group (or without torch), fall back on the environment:

    >>> try:
    ...     shard = shard_from_torch()
    ... except (ImportError, RuntimeError):
    ...     shard = shard_from_env(environ={"RANK": "0", "WORLD_SIZE": "1"})
    >>> shard.rank, shard.world_size
    (0, 1)
    """
    try:
        import torch.distributed as dist
    except ImportError as exc:
        raise ImportError(
            "shard_from_torch needs PyTorch, which is not installed; install torch, or "
            "use batchup.distributed.shard_from_env() to read RANK/WORLD_SIZE instead"
        ) from exc
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "torch.distributed has no initialised default process group: call "
            "torch.distributed.init_process_group(...) first, or use "
            "batchup.distributed.shard_from_env() to read the launcher's environment variables"
        )
    return ShardSpec(dist.get_rank(), dist.get_world_size(), remainder)


def shard_from_jax(remainder: str = "pad") -> ShardSpec:
    """This process's ``ShardSpec`` from JAX: ``jax.process_index()`` of ``jax.process_count()``.

    Imports ``jax`` when called (not before). On several hosts, call
    ``jax.distributed.initialize()`` first: before it, every process is
    process 0 of 1. Like any JAX call, this initialises JAX's backends.

    Parameters
    ----------
    remainder : {"pad", "drop", "even"}
        Passed on to :class:`ShardSpec`.

    Returns
    -------
    ShardSpec

    Raises
    ------
    ImportError
        If JAX is not installed.

    Examples
    --------
    >>> try:
    ...     shard = shard_from_jax()
    ... except ImportError:  # no jax here
    ...     shard = ShardSpec(0, 1)
    >>> shard.world_size >= 1
    True
    """
    try:
        import jax
    except ImportError as exc:
        raise ImportError(
            "shard_from_jax needs JAX, which is not installed; install jax, or use "
            "batchup.distributed.shard_from_env() to read the launcher's environment variables"
        ) from exc
    return ShardSpec(jax.process_index(), jax.process_count(), remainder)


def _torch_group_ready() -> bool:
    """Whether ``torch.distributed`` is already imported and has a default group."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return False
    is_available = getattr(dist, "is_available", None)
    is_initialized = getattr(dist, "is_initialized", None)
    return bool(is_available is not None and is_available()
                and is_initialized is not None and is_initialized())


def detect_shard(remainder: str = "pad") -> ShardSpec:
    """This process's ``ShardSpec`` from whichever framework or launcher is in use.

    Tried in this order, importing nothing that is not imported already:

    1. ``torch.distributed``, if it is already imported and its default
       process group is initialised: :func:`shard_from_torch`;
    2. ``jax``, if it is already imported: :func:`shard_from_jax` (so call
       ``jax.distributed.initialize()`` first on several hosts) -- unless JAX
       says one process while the launcher's environment names several ranks
       (JAX imported but not initialised), where the environment wins;
    3. otherwise the environment variables: :func:`shard_from_env`, which
       gives ``ShardSpec(0, 1)`` when no launcher set any.

    Parameters
    ----------
    remainder : {"pad", "drop", "even"}
        Passed on to :class:`ShardSpec`.

    Returns
    -------
    ShardSpec

    Raises
    ------
    ValueError
        From :func:`shard_from_env`, on malformed environment variables.

    Examples
    --------
    >>> shard = detect_shard("drop")
    >>> 0 <= shard.rank < shard.world_size, shard.remainder
    (True, 'drop')
    """
    if _torch_group_ready():
        return shard_from_torch(remainder)
    from_env = shard_from_env(remainder)
    if sys.modules.get("jax") is not None:
        from_jax = shard_from_jax(remainder)
        # jax imported by some library but never initialised for several hosts
        # says "process 0 of 1"; a launcher that started several ranks knows better.
        if from_jax.world_size == 1 and from_env.world_size > 1:
            return from_env
        return from_jax
    return from_env
