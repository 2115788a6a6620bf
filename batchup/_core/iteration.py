"""``BatchIterator``: a plan plus a fetch, with a position that can be saved and restored.

``ds.batch_iterator(...)`` returns one. ``get_state()`` gives a small
JSON-serialisable dict; ``ds.batch_iterator(..., state=state)`` (or
``it.set_state(state)``) continues with exactly the batches the
uninterrupted iterator would have yielded next.

A state holds:

* ``plan`` -- the plan's position (pass, position, step; seeded plans need
  nothing else, so the state is a few hundred bytes whatever the size of
  the data);
* ``rng`` -- for a stream ``shuffle`` (``RandomState``/``Generator``), the
  stream's state at the consumer's position; restoring sets the stream given
  to the new iterator to it, so later draws continue as they would have;
* ``fingerprint`` -- what the iteration was over (source structure and
  lengths, batch size, shuffle, shard policy); restoring into anything else
  raises ``ValueError`` naming what differs.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from .rng import SeedPath
from .rngstate import NotResumableError, capture_stream_state, restore_stream, stream_kind
from .validate import show

STATE_VERSION = 1


def describe_shuffle(rng: Any) -> str:
    """How a resolved ``shuffle`` is named in a fingerprint."""
    if rng is None:
        return "in order"
    if isinstance(rng, SeedPath):
        return rng.describe()
    return f"stream {stream_kind(rng)}"


def make_fingerprint(source: str, batch_size: int, rng: Any, drop_last: bool,
                     shard: Any) -> dict:
    """What a state is valid for. The source description is hashed when long.

    The batch size recorded is the *global* one (``batch_size * world_size``)
    and the rank is left out, so that a state restores on any rank and with a
    different world size of the same global batch size.
    """
    world = 1 if shard is None else shard.world_size
    if len(source) > 160:
        digest = hashlib.sha1(source.encode()).hexdigest()[:16]
        source = f"{source[:120]}... sha1:{digest}"
    return {"source": source, "global_batch_size": batch_size * world,
            "shuffle": describe_shuffle(rng), "drop_last": bool(drop_last),
            "shard": None if shard is None else shard.remainder}


_FIELD_NAMES = {"source": "the data source", "global_batch_size": "the global batch size "
                "(batch_size * world_size)", "shuffle": "shuffle", "drop_last": "drop_last",
                "shard": "the shard remainder policy (or sharding itself)"}


def check_fingerprint(saved: Any, mine: dict) -> None:
    """Raise ``ValueError`` naming every field in which ``saved`` differs from ``mine``."""
    if not isinstance(saved, dict):
        raise ValueError(f"state has no valid fingerprint: {show(saved)}")
    diffs = [f"{_FIELD_NAMES[k]}: saved {saved.get(k)!r}, now {show(mine[k])}"
             for k in mine if saved.get(k) != mine[k]]
    if diffs:
        raise ValueError("the state was saved from a different iteration; "
                         + "; ".join(diffs))


def check_state(state: Any) -> dict:
    if not isinstance(state, dict) or state.get("batchup_state") != STATE_VERSION:
        raise ValueError(
            "state must be a dict returned by a batchup iterator's get_state() "
            f"(batchup_state={STATE_VERSION}), not {show(state)}"
        )
    return state


def build_state(fingerprint: dict, plan: Any, rng: Any) -> dict:
    """The user-facing state: a deep copy, so editing it never reaches the iterator."""
    state = {"batchup_state": STATE_VERSION, "fingerprint": fingerprint, "plan": plan}
    if rng is not None:
        state["rng"] = rng
    return copy.deepcopy(state)


def restore_position(plan: Any, stream: Any, state: Any, fingerprint: dict) -> dict:
    """Move ``plan`` (and the user's ``stream``) to ``state``; all or nothing.

    A state that is rejected part-way (a malformed child, a missing stream
    state) leaves the plan and the stream exactly as they were.
    """
    state = check_state(state)
    check_fingerprint(state.get("fingerprint"), fingerprint)
    rng = state.get("rng")
    if stream is not None and not isinstance(rng, dict):
        raise ValueError("state lacks the random stream's state ('rng')")
    before = plan.get_state()
    before_rng = None if stream is None else capture_stream_state(stream)
    try:
        plan.set_state(state.get("plan"))
        if stream is not None:
            restore_stream(stream, rng)
    except BaseException:
        plan.set_state(before)
        if stream is not None:
            restore_stream(stream, before_rng)
        raise
    return state


class AheadPositions:
    """Positions of a plan that runs ahead of its consumer (prefetching iterators).

    A prefetching iterator plans items before the consumer asks for them;
    ``take()`` records the position after each planned item, ``last`` holds
    the one after the last batch handed out, ``state()`` turns it into a user
    state and ``restore(state)`` moves the plan there from wherever it ran
    ahead to. Shared by the thread prefetch and the worker pools.
    """

    __slots__ = ("plan", "stream", "fingerprint", "last", "_draws", "_rng_state")

    def __init__(self, plan: Any, stream: Any, fingerprint: dict) -> None:
        self.plan = plan
        self.stream = stream
        self.fingerprint = fingerprint
        self._draws: Any = None
        self._rng_state: Any = None
        self.last = self.take()

    def take(self) -> tuple:
        """(plan position or None if it cannot save one, stream state) now."""
        try:
            plan_state = self.plan.get_state()
        except NotResumableError:  # state() raises it again when asked
            plan_state = None
        if self.stream is None:
            return plan_state, None
        plan = self.plan
        draws = plan.stream_draws() if hasattr(plan, "stream_draws") else None
        if draws is None or draws != self._draws:
            # Reading a RandomState's state costs ~25 us: only when the plan drew.
            self._draws, self._rng_state = draws, capture_stream_state(self.stream)
        return plan_state, self._rng_state

    def state(self) -> dict:
        """The user state of the consumer's position (``last``)."""
        plan_state, rng = self.last
        if plan_state is None:
            self.plan.get_state()  # raises NotResumableError with the reason
        return build_state(self.fingerprint, plan_state, rng)

    def next_step(self) -> int | None:
        """The step of the batch after ``last``."""
        plan_state = self.last[0]
        return None if plan_state is None else plan_state.get("step")

    def restore(self, state: Any) -> None:
        """Rewind the plan to the consumer's position, then move it to ``state``.

        All or nothing: a rejected state leaves the plan at the consumer's position.
        """
        plan_now, rng_now = self.last
        if plan_now is not None:
            self.plan.set_state(plan_now)
            if self.stream is not None:
                restore_stream(self.stream, rng_now)
        restore_position(self.plan, self.stream, state, self.fingerprint)
        self._draws = None
        self.last = self.take()


class BatchIterator(Iterator):
    """Iterator over mini-batches with ``get_state()`` / ``set_state()``.

    Returned by ``batch_iterator`` of every batchup data source.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from batchup import data_source
    >>> ds = data_source.ArrayDataSource([np.arange(10)])
    >>> it = ds.batch_iterator(3, shuffle=7)
    >>> first = next(it)
    >>> saved = json.dumps(it.get_state())
    >>> rest = [b[0].tolist() for b in it]
    >>> again = ds.batch_iterator(3, shuffle=7, state=json.loads(saved))
    >>> [b[0].tolist() for b in again] == rest
    True
    """

    __slots__ = ("_plan", "_fetch", "_fingerprint", "_stream", "__weakref__")

    def __init__(self, plan: Any, fetch: Callable, fingerprint: dict, stream: Any) -> None:
        self._plan = plan
        self._fetch = fetch
        self._fingerprint = fingerprint
        self._stream = stream

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> Any:
        return self._fetch(next(self._plan))

    @property
    def plan(self) -> Any:
        """The index plan behind this iterator."""
        return self._plan

    def snapshot(self) -> tuple:
        """The position now, cheaply (``state_from_snapshot`` turns it into a state)."""
        rng = None if self._stream is None else capture_stream_state(self._stream)
        return self._plan.get_state(), rng

    def state_from_snapshot(self, snap: tuple) -> dict:
        return build_state(self._fingerprint, *snap)

    def get_state(self) -> dict:
        """The position after the last batch returned: a small JSON-serialisable dict."""
        return self.state_from_snapshot(self.snapshot())

    def set_state(self, state: dict) -> None:
        """Continue from ``state`` (from ``get_state`` of an iterator over the same source
        with the same arguments); raises ``ValueError`` naming what differs otherwise."""
        restore_position(self._plan, self._stream, state, self._fingerprint)

    def num_batches(self) -> Any:
        """Batches a full iteration yields (``inf`` if endless, None if unknown)."""
        return self._plan.num_batches()

    def __reduce__(self) -> Any:
        # Pickling would copy the source's data into the pickle; the position is
        # what a checkpoint needs.
        raise TypeError(
            f"a {type(self).__name__} cannot be pickled; save its position with "
            "get_state() (a small JSON-serialisable dict) and pass it back as "
            "batch_iterator(..., state=state)"
        )

    def close(self) -> None:
        """Release what the iteration holds (idempotent)."""
        close = getattr(self._plan, "close", None)
        if close is not None:
            close()


class IndexIterator(BatchIterator):
    """Iterator over index batches (``batch_indices_iterator``), with ``get_state``.

    Examples
    --------
    >>> import numpy as np
    >>> from batchup import data_source
    >>> it = data_source.ArrayDataSource([np.arange(5)]).batch_indices_iterator(2)
    >>> [b.tolist() for b in it]
    [[0, 1], [2, 3], [4]]
    """

    __slots__ = ()
