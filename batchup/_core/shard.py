"""Which share of each global batch a rank takes: ``ShardSpec``.

Sharding in batchup is arithmetic on one global order, never a second order
per rank: with ``world_size`` ranks and a per-rank ``batch_size`` *b*, the
iteration is cut into *global* batches of ``G = b * world_size`` samples (the
batches an unsharded iteration with ``batch_size=G`` would give), and rank
*r* takes samples ``[r*b, (r+1)*b)`` of every global batch. So all ranks see
one shuffled order per epoch, disjoint shares of it, and the same number of
steps; the state of an iteration is the same on every rank, which is what
lets a state saved with one world size restore with another (same ``G``).

Only the last global batch of a finite iteration can be short (``R < G``
samples); ``remainder`` says what happens to it:

``"pad"`` (default)
    The short global batch is filled up to ``G`` with the first samples of
    the same epoch's order (cycling if the epoch is shorter than ``G``), so
    every rank gets the same number of full batches and every sample is seen
    at least once (``G - R`` are seen twice).
``"drop"``
    The short global batch is dropped: every rank gets the same number of
    full batches; up to ``G - 1`` samples of the epoch are not seen.
``"even"``
    No padding and nothing dropped: rank *r* takes ``[r*b, (r+1)*b)`` of the
    short batch, which may be short or empty. Ranks can then differ by one
    batch -- collective operations that expect every rank at every step
    will hang -- so use it only when that is handled.

With ``world_size == 1`` there is nothing to balance: "pad" and "even" keep
the short last batch as an unsharded iteration does, and "drop" drops it (as
``drop_last=True``), so ``detect_shard()`` in a single process changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .validate import is_integer, show

REMAINDER_POLICIES = ("pad", "drop", "even")


@dataclass(frozen=True)
class ShardSpec:
    """This process's share of a sharded iteration: ``rank`` of ``world_size``.

    Parameters
    ----------
    rank : int
        This process's rank, ``0 <= rank < world_size``.
    world_size : int
        Number of ranks sharing the iteration.
    remainder : {"pad", "drop", "even"}
        What to do with a final global batch shorter than
        ``batch_size * world_size`` (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(10)])
    >>> [b[0].tolist() for b in ds.batch_iterator(2, shard=ShardSpec(1, 2))]
    [[2, 3], [6, 7], [0, 1]]
    >>> [b[0].tolist() for b in ds.batch_iterator(2, shard=ShardSpec(1, 2, "drop"))]
    [[2, 3], [6, 7]]
    """

    rank: int
    world_size: int
    remainder: str = "pad"

    def __post_init__(self) -> None:
        if not is_integer(self.world_size) or self.world_size < 1:
            raise ValueError(f"world_size must be a positive integer, not {show(self.world_size)}")
        if not is_integer(self.rank) or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"rank must be an integer in [0, world_size={self.world_size}), "
                f"not {show(self.rank)}"
            )
        if self.remainder not in REMAINDER_POLICIES:
            raise ValueError(
                f"remainder must be one of {', '.join(map(repr, REMAINDER_POLICIES))}, "
                f"not {show(self.remainder)}"
            )
        object.__setattr__(self, "rank", int(self.rank))
        object.__setattr__(self, "world_size", int(self.world_size))


def resolve_shard(shard: Any) -> ShardSpec | None:
    """``shard`` as given to ``batch_iterator``: None, a ``ShardSpec`` or ``(rank, world_size)``.

    Examples
    --------
    >>> resolve_shard((0, 4))
    ShardSpec(rank=0, world_size=4, remainder='pad')
    >>> resolve_shard(None) is None
    True
    """
    if shard is None or isinstance(shard, ShardSpec):
        return shard
    if isinstance(shard, tuple) and len(shard) in (2, 3):
        return ShardSpec(*shard)
    raise TypeError(
        "shard must be None, a ShardSpec or a (rank, world_size[, remainder]) tuple, "
        f"not {show(shard)}"
    )
