"""Index plans: which indices each batch holds, with a position that can be saved.

A *plan* is an iterator of :class:`IndexBatch` items plus ``get_state()`` /
``set_state(state)`` (small JSON-serialisable dicts) and ``num_batches()``.
A data source is a plan plus a way to fetch the samples at an item's
indices; iterating, resuming, sharding and prefetching in a pool all work on
plans, so every source kind gets them the same way.

* ``PassPlan`` -- passes over a sequence (in order, seeded, or drawn from a
  stream; ``repeats``; ``drop_last``; sharding).
* ``WeightedPlan`` (in ``weighted``) -- draws with replacement.
* ``CompositePlan`` -- one item from each child per step (``CompositeDataSource``).
* ``ChoicePlan`` -- each step takes an item from one child (``ChoiceDataSource``).
* ``IteratorPlan`` -- wraps an iterator that has no plan (a user's function, a
  look-alike source); it iterates but cannot save its position.

Sharding (``ShardSpec``) is arithmetic on the *global* batches an unsharded
plan with ``batch_size * world_size`` would give: every rank runs the same
plan and takes its slice of each global batch, so a plan's state is the same
on every rank and does not depend on the world size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from .rngstate import NotResumableError
from .shard import ShardSpec
from .validate import show


class IndexBatch(NamedTuple):
    """One planned batch: its indices and where it sits in the iteration.

    Attributes
    ----------
    indices : ndarray, slice, tuple or object
        Data-level indices (a slice for contiguous in-order runs); a tuple of
        child items for composite plans; the child item for choice plans;
        the batch itself for iterator plans.
    epoch : int
        The pass the batch's first sample belongs to.
    step : int
        The batch's number in the iteration (global step when sharded).
    rank : int
        The rank that takes this batch (0 when not sharded).
    seed : SeedPath or None
        The seed path the plan derives from (None for in-order or stream plans).
    segs : list of (pass, start, stop) or None
        Where the samples come from, pass by pass (pass plans).
    component : int or None
        The chosen child (choice plans).
    draws : int or None
        Number of the first draw (with-replacement plans).
    """

    indices: Any
    epoch: int
    step: int
    rank: int = 0
    seed: Any = None
    segs: Any = None
    component: int | None = None
    draws: int | None = None


#: Builds an ``IndexBatch`` from a tuple of all its fields, skipping the
#: keyword handling of the generated ``__new__`` (the hot path of iteration).
_new_item = tuple.__new__


def _int_field(state: dict, key: str, owner: str, low: int = 0) -> int:
    value = state.get(key) if isinstance(state, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner} state: {key!r} must be an integer >= {low}, "
                         f"not {show(value)}")
    return value


def _bool_field(state: dict, key: str, owner: str) -> bool:
    value = state.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{owner} state: {show(key)} must be true or false, not {show(value)}")
    return value


def _check_kind(state: Any, kind: str) -> dict:
    if not isinstance(state, dict) or state.get("plan") != kind:
        got = state.get("plan") if isinstance(state, dict) else state
        raise ValueError(f"expected the state of a {kind} plan, got {show(got)}")
    return state


def _sum_draws(plans: list) -> int | None:
    """Total stream draws of ``plans`` (None if one of them cannot tell)."""
    total = 0
    for plan in plans:
        n = plan.stream_draws() if hasattr(plan, "stream_draws") else None
        if n is None:
            return None
        total += n
    return total


def shard_share(shard: ShardSpec | None, batch_size: int) -> tuple[int, int, int]:
    """(rank, world_size, global batch size) for a per-rank ``batch_size``."""
    if shard is None:
        return 0, 1, batch_size
    return shard.rank, shard.world_size, batch_size * shard.world_size


def count_batches(total: float, batch_size: int, drop_last: bool,
                  shard: ShardSpec | None) -> float:
    """Batches a rank gets from ``total`` samples cut into global batches.

    Examples
    --------
    >>> count_batches(10, 4, False, None), count_batches(10, 4, True, None)
    (3, 2)
    >>> [count_batches(10, 2, False, ShardSpec(r, 2, "even")) for r in range(2)]
    [3, 2]
    """
    if total == np.inf:
        return np.inf
    total = int(total)
    if shard is None:
        return total // batch_size if drop_last else -(-total // batch_size)
    rank, _, size = shard_share(shard, batch_size)
    full, rem = divmod(total, size)
    if rem == 0 or shard.remainder == "drop":
        return full
    if shard.remainder == "pad" and shard.world_size > 1:
        return full + 1
    mine = min(max(rem - rank * batch_size, 0), batch_size)
    return full + (1 if mine > 0 and not (drop_last and mine < batch_size) else 0)


def _cut(segs: list, lo: int, hi: int) -> list:
    """The part ``[lo, hi)`` of the samples described by ``segs``."""
    out = []
    at = 0
    for p, a, b in segs:
        n = b - a
        s, e = max(lo - at, 0), min(hi - at, n)
        if s < e:
            out.append((p, a + s, a + e))
        at += n
        if at >= hi:
            break
    return out


class PassPlan(Iterator[IndexBatch]):
    """Batches over ``repeats`` passes (-1: forever) of an order of ``length`` positions.

    This is batchup 0.2.3's ``StandardSampler``/``SubsetSampler`` iteration,
    kept as an explicit state machine so that the moments a stream order is
    drawn are exactly 0.2.3's (shared ``RandomState`` streams depend on it):

    * one pass: drawn on the first request, cut into chunks;
    * several passes: a batch that fits in the current pass is a slice of it
      (no draw, even if the pass ends exactly there); otherwise the batch is
      assembled across the boundary and the next pass is drawn the moment the
      current one is used up -- before the batch is returned.

    Parameters
    ----------
    order : InOrder, SeededOrder or StreamOrder
        The order of each pass.
    length : int
        Length of every pass.
    batch_size : int
        Batch size (per rank when sharded).
    repeats : int
        Number of passes, or -1.
    drop_last : bool
        Drop a final batch shorter than ``batch_size``.
    shard : ShardSpec or None
        This rank's share.
    seed : SeedPath or None
        Carried on every item (for per-batch and per-sample randomness).

    Examples
    --------
    >>> from batchup._core.order import InOrder
    >>> plan = PassPlan(InOrder(5, np.arange(5)), 5, 2, repeats=2)
    >>> [item.indices.tolist() for item in plan]
    [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]
    """

    kind = "pass"

    def __init__(self, order: Any, length: int, batch_size: int, repeats: int,
                 drop_last: bool = False, shard: ShardSpec | None = None,
                 seed: Any = None) -> None:
        self._order = order
        self._length = length
        self._batch_size = batch_size
        self._rank, self._world, self._size = shard_share(shard, batch_size)
        self._shard = shard
        self._repeats = repeats
        self._drop_last = drop_last
        self._drop_global = drop_last if shard is None else shard.remainder == "drop"
        self._plain = shard is None
        # The current pass as an array (when the order has one), for the hot path.
        self._seq: np.ndarray | None = None
        self._seq_pass = -1
        self._seed = seed
        dt = order.dtype()
        # 0.2.3 appended to an empty int64 array: a wrapped batch is int64 or wider.
        self._joined = np.promote_types(np.int64, dt) if dt.kind in "iu" else np.dtype(np.int64)
        self._pass = 0
        self._pos = 0
        self._left = repeats
        self._done = False
        self._started = False
        self._step = 0
        # The batch was assembled across a pass boundary (0.2.3 then returned int64).
        self._crossed = False

    def __iter__(self) -> PassPlan:
        return self

    def num_batches(self) -> float:
        total = np.inf if self._repeats == -1 else self._length * self._repeats
        return count_batches(total, self._batch_size, self._drop_last, self._shard)

    def _next_global(self) -> list:
        if self._done:
            raise StopIteration
        if not self._started:
            self._order.draw(0)
            self._started = True
        pos, size, length = self._pos, self._size, self._length
        if self._repeats == 1:
            if pos >= length:
                self._done = True
                raise StopIteration
            end = pos + size
            if end > length:
                self._done = True
                if self._drop_global:
                    raise StopIteration
                end = length
            self._pos = end
            return [(0, pos, end)]
        if pos + size <= length:
            self._pos = pos + size
            return [(self._pass, pos, pos + size)]
        segs = []
        have = 0
        while have < size:
            take = min(size - have, length - pos)
            if take > 0:
                segs.append((self._pass, pos, pos + take))
            have += take
            pos += take
            if pos >= length:
                self._pass += 1
                self._order.draw(self._pass)
                pos = 0
                if self._left > 0:
                    self._left -= 1
                if self._left == 0:
                    break
        self._pos = pos
        if self._left == 0:
            self._done = True
            if have == 0 or (self._drop_global and have < size):
                raise StopIteration
        self._crossed = True
        return segs

    def _share(self, segs: list) -> list:
        """This rank's part of a global batch (padded or cut per the remainder policy)."""
        if len(segs) == 1:
            p, a, b = segs[0]
            if b - a == self._size:  # the common case: a full batch within one pass
                lo = a + self._rank * self._batch_size
                return [(p, lo, lo + self._batch_size)]
        n = sum(b - a for _, a, b in segs)
        if n < self._size and self._world > 1 and self._shard.remainder == "pad":
            last = segs[-1][0]
            need = self._size - n
            segs = list(segs)
            while need > 0:
                take = min(need, self._length)
                segs.append((last, 0, take))
                need -= take
            n = self._size
        lo = self._rank * self._batch_size
        hi = min(lo + self._batch_size, n)
        if hi <= lo or (self._drop_last and hi - lo < self._batch_size):
            self._done = True
            raise StopIteration
        return _cut(segs, lo, hi)

    def _materialise(self, segs: list) -> Any:
        order = self._order
        if not self._crossed:
            if len(segs) == 1:
                # A rank reads the same slice of every global batch: say so, and a
                # seeded order enciphers this rank's positions only.
                return order.take(*segs[0], stride=self._size if self._world > 1 else None)
            return np.concatenate([order.take_array(*s) for s in segs])
        self._crossed = False
        out = np.concatenate([order.take_array(*s) for s in segs]).astype(
            self._joined, copy=False)
        order.release(self._pass)
        return out

    def __next__(self) -> IndexBatch:
        pos = self._pos
        end = pos + self._size
        if self._plain and end <= self._length and self._started and not self._done:
            # The hot path of unsharded iteration: a batch inside the current pass
            # (what the general path below also gives, without building segments).
            p = self._pass
            if self._seq_pass != p:
                self._seq = self._order.sequence(p)
                self._seq_pass = p
            seq = self._seq
            self._pos = end
            step = self._step
            self._step = step + 1
            idx = seq[pos:end] if seq is not None else self._order.take(p, pos, end)
            return _new_item(IndexBatch, (idx, p, step, 0, self._seed, None, None, None))
        segs = self._next_global()
        step = self._step
        self._step = step + 1
        if not self._plain:
            segs = self._share(segs)
        return IndexBatch(self._materialise(segs), segs[0][0], step, self._rank, self._seed,
                          segs)

    def stream_draws(self) -> int:
        """How many times this plan has drawn from a stream ``shuffle`` (0 if it never does)."""
        return getattr(self._order, "draws", 0)

    def get_state(self) -> dict:
        return {"plan": self.kind, "pass": self._pass, "pos": self._pos, "left": self._left,
                "done": self._done, "started": self._started, "step": self._step,
                "order": self._order.get_state() if self._started else None}

    def set_state(self, state: dict) -> None:
        state = _check_kind(state, self.kind)
        owner = "pass plan"
        p = _int_field(state, "pass", owner)
        pos = _int_field(state, "pos", owner)
        left = _int_field(state, "left", owner, low=-1)
        step = _int_field(state, "step", owner)
        done = _bool_field(state, "done", owner)
        started = _bool_field(state, "started", owner)
        if pos > self._length:
            raise ValueError(f"pass plan state: 'pos' {pos} lies beyond the pass length "
                             f"{self._length}")
        if self._repeats != -1 and p > self._repeats:
            raise ValueError(f"pass plan state: 'pass' {p} is beyond repeats={self._repeats}")
        if self._repeats == -1 and left != -1 or self._repeats != -1 and left > self._repeats:
            raise ValueError(f"pass plan state: 'left' {left} does not fit repeats="
                             f"{self._repeats}")
        self._pass, self._pos, self._left, self._step = p, pos, left, step
        self._done, self._started = done, started
        self._seq, self._seq_pass = None, -1
        if started:
            self._order.set_state(state.get("order"), p)


class CompositePlan(Iterator[IndexBatch]):
    """One item from every child per step; ends when any child ends (children before
    it have then been advanced, as in batchup 0.2.3).

    Examples
    --------
    >>> from batchup._core.order import InOrder
    >>> a = PassPlan(InOrder(3, np.arange(3)), 3, 2, repeats=-1)
    >>> b = PassPlan(InOrder(5, np.arange(5)), 5, 2, repeats=1)
    >>> [[c.indices.tolist() for c in item.indices] for item in CompositePlan([a, b])]
    [[[0, 1], [0, 1]], [[2, 0], [2, 3]], [[1, 2], [4]]]
    """

    kind = "composite"

    def __init__(self, children: list, seed: Any = None, rank: int = 0) -> None:
        self._children = children
        self._seed = seed
        self._rank = rank
        self._step = 0
        self._done = False

    def __iter__(self) -> CompositePlan:
        return self

    def num_batches(self) -> float | None:
        counts = [c.num_batches() for c in self._children]
        if any(c is None for c in counts):
            return None
        return min(counts)

    def __next__(self) -> IndexBatch:
        if self._done:
            raise StopIteration
        items = []
        for child in self._children:
            try:
                items.append(next(child))
            except StopIteration:
                self._done = True
                raise
        step = self._step
        self._step = step + 1
        return IndexBatch(tuple(items), items[0].epoch, step, self._rank, self._seed)

    def stream_draws(self) -> int | None:
        return _sum_draws(self._children)

    def get_state(self) -> dict:
        return {"plan": self.kind, "step": self._step, "done": self._done,
                "children": [c.get_state() for c in self._children]}

    def set_state(self, state: dict) -> None:
        state = _check_kind(state, self.kind)
        children = state.get("children")
        if not isinstance(children, list) or len(children) != len(self._children):
            raise ValueError(f"composite plan state: expected {len(self._children)} child "
                             f"states, got {show(children)}")
        step = _int_field(state, "step", "composite plan")
        done = _bool_field(state, "done", "composite plan")
        for child, s in zip(self._children, children, strict=True):
            child.set_state(s)
        self._step, self._done = step, done


class ChoicePlan(Iterator[IndexBatch]):
    """Each step takes the next item of one child, chosen by a schedule.

    Parameters
    ----------
    children : list of plans
    batches_per_child : list of int or None
        Stratified mode: child ``d`` contributes ``batches_per_child[d]`` (global)
        steps to the schedule, the same on every rank. None: rounds, every child
        once per round, until a chosen child ends.
    count : list of int, optional
        This rank's items per child (what ``num_batches`` adds up).
    skip_empty : bool
        Skip a scheduled child that has nothing left for this rank (remainder
        "even") instead of ending.
    own : None, SeedPath or stream
        Orders the schedule (None: in order).
    make_schedule : callable
        ``make_schedule(batches_per_child, rng_or_None)`` builds the stratified schedule.
    """

    kind = "choice"

    def __init__(self, children: list, batches_per_child: list | None, own: Any,
                 schedule_fns: tuple[Callable, Callable], seed: Any = None,
                 rank: int = 0, count: list | None = None, skip_empty: bool = False) -> None:
        from .rng import SeedPath

        self._children = children
        self._nb = batches_per_child
        self._count = batches_per_child if count is None else count
        self._skip_empty = skip_empty
        self._own = own
        self._seeded = isinstance(own, SeedPath)
        self._in_order_fn, self._shuffled_fn = schedule_fns
        self._seed = seed
        self._rank = rank
        self._order: Any = None
        self._before: Any = None
        self._draws = 0
        self._round = 0
        self._pos = 0
        self._step = 0
        self._done = False

    def __iter__(self) -> ChoicePlan:
        return self

    def _draw_order(self, rng: Any) -> Any:
        """The schedule (stratified) or the order of round ``self._round``, from ``rng``."""
        if self._nb is not None:
            if rng is None:
                return self._in_order_fn(self._nb)
            return self._shuffled_fn(self._nb, rng)
        n = len(self._children)
        if rng is None:
            return range(n)
        return rng.permutation(n)

    def _new_order(self) -> None:
        from .rngstate import capture_stream_state

        own = self._own
        if own is None:
            self._order = self._draw_order(None)
        elif self._seeded:
            key = () if self._nb is not None else (self._round,)
            self._order = self._draw_order(own.generator(*key))
        else:
            self._before = capture_stream_state(own)
            self._order = self._draw_order(own)
            self._draws += 1

    def num_batches(self) -> float | None:
        return choice_num_batches(self._count, [c.num_batches() for c in self._children],
                                  self._own)

    def _next_choice(self) -> int:
        """The child the next step takes from (draws a schedule or round order if due)."""
        if self._nb is not None:
            if self._order is None:
                self._new_order()
            if self._pos >= len(self._order):
                self._done = True
                raise StopIteration
        elif self._order is None or self._pos >= len(self._children):
            if self._order is not None:
                self._round += 1
            self._new_order()
            self._pos = 0
        d = int(self._order[self._pos])
        self._pos += 1
        return d

    def __next__(self) -> IndexBatch:
        while not self._done:
            d = self._next_choice()
            try:
                item = next(self._children[d])
            except StopIteration:
                if self._skip_empty and self._nb is not None:
                    # Sharded with remainder "even": this rank has no share of
                    # the child's last global batch; other ranks do.
                    continue
                self._done = True
                raise
            step = self._step
            self._step = step + 1
            return IndexBatch(item, item.epoch, step, self._rank, self._seed, component=d)
        raise StopIteration

    def stream_draws(self) -> int | None:
        children = _sum_draws(self._children)
        return None if children is None else children + self._draws

    def get_state(self) -> dict:
        return {"plan": self.kind, "step": self._step, "done": self._done,
                "round": self._round, "pos": self._pos, "started": self._order is not None,
                "order": self._before,
                "children": [c.get_state() for c in self._children]}

    def set_state(self, state: dict) -> None:
        from .rngstate import replay_stream

        state = _check_kind(state, self.kind)
        owner = "choice plan"
        children = state.get("children")
        if not isinstance(children, list) or len(children) != len(self._children):
            raise ValueError(f"choice plan state: expected {len(self._children)} child "
                             f"states, got {show(children)}")
        step = _int_field(state, "step", owner)
        rnd = _int_field(state, "round", owner)
        pos = _int_field(state, "pos", owner)
        done = _bool_field(state, "done", owner)
        started = _bool_field(state, "started", owner)
        for child, s in zip(self._children, children, strict=True):
            child.set_state(s)
        self._step, self._round, self._pos, self._done = step, rnd, pos, done
        self._order = self._before = None
        if started:
            own = self._own
            if own is None or self._seeded:
                self._new_order()
            else:
                self._before = state.get("order")
                if self._before is None:
                    raise ValueError("choice plan state: the schedule's stream state is missing")
                self._order = self._draw_order(replay_stream(own, self._before))


def choice_num_batches(batches_per_child: list | None, counts: list, own: Any) -> float | None:
    """Batches a choice plan yields: the stratified total, or where round mode ends.

    In round mode the iteration ends in round ``m = min(counts)`` at the first
    child holding only ``m`` batches; with a stream order that round's order is
    not drawn yet, so the count is unknown (None).

    Examples
    --------
    >>> choice_num_batches(None, [4, 2, 1], None)
    5
    """
    from .rng import SeedPath

    if batches_per_child is not None:
        return sum(batches_per_child)
    if all(c == np.inf for c in counts):
        return np.inf
    if any(c is None for c in counts):
        return None
    m = int(min(counts))
    if own is None:
        order: Any = range(len(counts))
    elif isinstance(own, SeedPath):
        order = own.generator(m).permutation(len(counts))
    else:
        return None
    return len(counts) * m + next(i for i, d in enumerate(order) if counts[d] == m)


class IteratorPlan(Iterator[IndexBatch]):
    """Items from an iterator made on first use; cannot save its position.

    Used for sources without a plan (a ``CallableDataSource``'s function, an
    ``IteratorDataSource``, look-alike sources, custom samplers): each item's
    ``indices`` is whatever the iterator yields.

    Examples
    --------
    >>> plan = IteratorPlan(lambda: iter(["a", "b"]), "letters")
    >>> [item.indices for item in plan]
    ['a', 'b']
    """

    kind = "iterator"

    def __init__(self, factory: Callable[[], Any], name: str,
                 count: Callable[[], Any] | None = None) -> None:
        self._factory = factory
        self._name = name
        self._count = count
        self._it: Iterator | None = None
        self._step = 0

    def __iter__(self) -> IteratorPlan:
        return self

    def num_batches(self) -> float | None:
        return self._count() if self._count is not None else None

    def make_iterator(self) -> Any:
        """What the wrapped factory returns (sources whose ``batch_iterator`` returns it)."""
        return self._factory()

    def __next__(self) -> IndexBatch:
        if self._it is None:
            self._it = iter(self._factory())
        value = next(self._it)
        step = self._step
        self._step = step + 1
        return IndexBatch(value, 0, step)

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def get_state(self) -> dict:
        raise NotResumableError(
            f"{self._name} cannot save its position: it iterates a function or iterator of "
            "its own, not an index plan (use array-backed sources to resume)"
        )

    def set_state(self, state: dict) -> None:
        self.get_state()
