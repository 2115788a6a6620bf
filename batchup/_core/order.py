"""The order of one pass over a sequence: in order, seeded, or drawn from a stream.

A pass plan (``plans.PassPlan``) asks an *order* for the positions
``[start, stop)`` of pass ``p``; three kinds exist:

``InOrder``
    The values in order (``arange`` when there are none, handed out as
    slices so that storage can read contiguous runs).
``SeededOrder``
    A permutation that is a *function* of (seed, path, pass): position ``k``
    of pass ``p`` is ``cipher(k)`` where ``cipher`` is a keyed Feistel
    permutation of ``[0, 4^h)`` (the smallest power of four >= the length)
    restricted to ``[0, length)`` by cycle walking. No permutation of length
    N is ever materialised: any batch of any pass costs O(batch), so a plan
    restores in O(1) and a 10^10-sample epoch needs O(batch) memory. The
    Feistel network and its round function (a 64-bit multiply-xorshift
    mixer) are written here by hand: NumPy has no keyed permutation of an
    index range, and the few operations vectorise over a whole block.
``StreamOrder``
    ``rng.permutation(...)`` drawn from a stream (``RandomState``,
    ``Generator``) at exactly the moments batchup 0.2.3 drew it; the stream's
    state before each draw is recorded so that the pass can be drawn again,
    from a private copy, when an iteration is restored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .rng import SeedPath
from .rngstate import capture_stream_state, replay_stream

# Feistel rounds. Four suffice in theory (Luby-Rackoff) for wide halves, but
# small domains have halves of a few bits: measured over 3,000 seeds, four
# rounds put consecutive positions on neighbouring values about twice as often
# as a uniform shuffle; eight rounds remove that bias (tests/test_plans.py).
_ROUNDS = 8
# Positions are enciphered a block at a time: large enough to amortise NumPy's
# per-call overhead over many batches, small enough that the first batch after
# a restore costs well under a millisecond.
_BLOCK = 4096
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S29, _S31, _S32 = np.uint64(29), np.uint64(31), np.uint64(32)


class FeistelPermutation:
    """A keyed permutation of ``range(length)``, evaluated at any positions in O(count).

    Parameters
    ----------
    length : int
        Size of the permuted range.
    keys : array of uint64
        One key per round (derive them from a seed).

    Examples
    --------
    >>> p = FeistelPermutation(10, np.arange(1, 5, dtype=np.uint64))
    >>> sorted(p(np.arange(10)).tolist()) == list(range(10))
    True
    """

    __slots__ = ("length", "_keys", "_half", "_mask")

    def __init__(self, length: int, keys: np.ndarray) -> None:
        self.length = int(length)
        bits = max(2, (max(self.length, 2) - 1).bit_length())
        self._half = np.uint64((bits + 1) // 2)
        self._mask = np.uint64((1 << int(self._half)) - 1)
        self._keys = [np.uint64(k) for k in keys]

    def _encipher(self, x: np.ndarray) -> np.ndarray:
        half, mask = self._half, self._mask
        left = x >> half
        right = x & mask
        for k in self._keys:
            t = (right + k) * _M1
            t ^= t >> _S29
            t *= _M2
            t ^= t >> _S32
            t *= _M3
            t ^= t >> _S31
            left, right = right, left ^ (t & mask)
        return (left << half) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The permuted values at ``positions`` (int64 array, each in ``[0, length)``)."""
        y = self._encipher(np.asarray(positions, dtype=np.uint64))
        n = np.uint64(self.length)
        out = np.flatnonzero(y >= n)
        while out.size:
            # Cycle walking: values outside [0, length) are enciphered again;
            # the chain returns into the range because the cipher is a bijection.
            z = self._encipher(y[out])
            y[out] = z
            out = out[z >= n]
        return y.astype(np.int64)


class InOrder:
    """Positions in order: ``values[start:stop]``, or a slice when there are no values."""

    kind = "in order"
    __slots__ = ("values", "length")

    def __init__(self, length: int, values: np.ndarray | None = None) -> None:
        self.length = length
        self.values = values

    def draw(self, pass_number: int) -> None:
        """Nothing to draw."""

    def release(self, pass_number: int) -> None:
        """Nothing is kept."""

    def take(self, pass_number: int, start: int, stop: int) -> Any:
        if self.values is None:
            return slice(start, stop)
        return self.values[start:stop]

    def take_array(self, pass_number: int, start: int, stop: int) -> np.ndarray:
        if self.values is None:
            return np.arange(start, stop)
        return self.values[start:stop]

    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.values is None else self.values.dtype

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: Any, pass_number: int) -> None:
        """Nothing to restore."""


class SeededOrder:
    """Pass ``p`` is the permutation keyed by (seed, path, p): random access, no draws.

    Examples
    --------
    >>> o = SeededOrder(SeedPath(1), 6)
    >>> first = o.take(0, 0, 6)
    >>> sorted(first.tolist()), bool((o.take(0, 2, 4) == first[2:4]).all())
    ([0, 1, 2, 3, 4, 5], True)
    """

    kind = "seeded"
    __slots__ = ("seed", "length", "values", "_perms", "_blocks")

    def __init__(self, seed: SeedPath, length: int, values: np.ndarray | None = None) -> None:
        self.seed = seed
        self.length = length
        self.values = values
        self._perms: dict[int, FeistelPermutation] = {}
        self._blocks: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, pass_number: int) -> FeistelPermutation:
        perm = self._perms.get(pass_number)
        if perm is None:
            keys = np.random.SeedSequence(
                self.seed.seed, spawn_key=self.seed.path + (pass_number,)
            ).generate_state(_ROUNDS, np.uint64)
            if len(self._perms) >= 2:
                self._perms.clear()
            perm = self._perms[pass_number] = FeistelPermutation(self.length, keys)
        return perm

    def _block(self, pass_number: int, block_no: int) -> np.ndarray:
        key = (pass_number, block_no)
        block = self._blocks.get(key)
        if block is None:
            start = block_no * _BLOCK
            stop = min(start + _BLOCK, self.length)
            block = self._perm(pass_number)(np.arange(start, stop))
            if len(self._blocks) >= 4:
                self._blocks.clear()
            self._blocks[key] = block
        return block

    def draw(self, pass_number: int) -> None:
        """Nothing to draw: every pass is a function of the seed."""

    def release(self, pass_number: int) -> None:
        """Nothing to forget: blocks are cached a few at a time."""

    def positions(self, pass_number: int, start: int, stop: int) -> np.ndarray:
        if stop - start > _BLOCK:
            return self._perm(pass_number)(np.arange(start, stop))
        first, last = start // _BLOCK, (stop - 1) // _BLOCK
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        if first == last:
            off = first * _BLOCK
            return self._block(pass_number, first)[start - off:stop - off]
        off = first * _BLOCK
        head = self._block(pass_number, first)[start - off:]
        tail = self._block(pass_number, last)[:stop - last * _BLOCK]
        return np.concatenate([head, tail])

    def take(self, pass_number: int, start: int, stop: int) -> np.ndarray:
        pos = self.positions(pass_number, start, stop)
        return pos if self.values is None else self.values[pos]

    take_array = take

    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.values is None else self.values.dtype

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: Any, pass_number: int) -> None:
        """Nothing to restore."""


class StreamOrder:
    """Pass ``p`` is ``rng.permutation(...)``, drawn when batchup 0.2.3 drew it.

    The stream state before each draw is kept (``get_state``), so a restored
    plan can draw the same pass again from a private copy of the stream.
    """

    kind = "stream"
    __slots__ = ("rng", "length", "values", "_seqs", "_before")

    def __init__(self, rng: Any, length: int, values: np.ndarray | None = None) -> None:
        self.rng = rng
        self.length = length
        self.values = values
        self._seqs: dict[int, np.ndarray] = {}
        self._before: dict[int, Any] = {}

    def _permute(self, rng: Any) -> np.ndarray:
        return rng.permutation(self.length if self.values is None else self.values)

    def draw(self, pass_number: int) -> None:
        before = capture_stream_state(self.rng)
        seq = self._permute(self.rng)
        self._seqs[pass_number] = seq
        self._before[pass_number] = before

    def take(self, pass_number: int, start: int, stop: int) -> np.ndarray:
        return self._seqs[pass_number][start:stop]

    take_array = take

    def release(self, pass_number: int) -> None:
        """Forget the passes before ``pass_number`` (no batch will read them again)."""
        for p in [p for p in self._seqs if p < pass_number]:
            del self._seqs[p]
            self._before.pop(p, None)

    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.values is None else self.values.dtype

    def get_state(self) -> Any:
        """The stream state before the latest pass was drawn (None before the first draw)."""
        if not self._before:
            return None
        return self._before[max(self._before)]

    def set_state(self, state: Any, pass_number: int) -> None:
        """Redraw pass ``pass_number`` from the recorded stream state, leaving ``rng`` alone."""
        self._seqs.clear()
        self._before.clear()
        if state is None:
            return
        self._seqs[pass_number] = self._permute(replay_stream(self.rng, state))
        self._before[pass_number] = state
