"""The order of one pass over a sequence: in order, seeded, or drawn from a stream.

A pass plan (``plans.PassPlan``) asks an *order* for the positions
``[start, stop)`` of pass ``p``; three kinds exist:

``InOrder``
    The values in order (``arange`` when there are none, handed out as
    slices so that storage can read contiguous runs).
``SeededOrder``
    An order that is a *function* of (seed, path, pass). Up to 2^18 samples
    it is ``Generator.permutation`` of a generator derived from (seed, path,
    pass), materialised per pass (cheap at that size). From 2^18 up, position
    ``k`` of pass ``p`` is ``cipher(k)``, a keyed Feistel permutation of
    ``[0, 2^bits)`` restricted to ``[0, length)`` by cycle walking: no
    permutation of length N is ever materialised, any batch of any pass costs
    O(batch), a plan restores in O(1) and a 10^10-sample epoch needs O(batch)
    memory. The Feistel network and its round function (a 64-bit
    multiply-xorshift mixer) are written here by hand: NumPy has no keyed
    permutation of an index range, and the few operations vectorise over a
    block of positions.
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

# Feistel rounds. Four are enough in theory (Luby-Rackoff) for wide halves; on
# tiny domains (halves of one or two bits) four rounds put consecutive
# positions on neighbouring values measurably more often than a uniform
# shuffle. Seeded orders use the cipher only from _MATERIALISE_BELOW samples
# up (halves of 9 bits or more); six rounds leave a margin there.
_ROUNDS = 6
# Below this many samples a seeded pass is materialised with
# ``Generator.permutation`` (the order pinned by tests/test_seed_golden.py):
# for such sizes the permutation costs less than enciphering, and restoring
# it costs at most ~2 ms. From here up, the keyed permutation keeps every
# batch O(batch) and restoring O(1).
_MATERIALISE_BELOW = 1 << 18
# Positions are enciphered a block at a time: large enough to amortise NumPy's
# per-call overhead over many batches, small enough that the first batch after
# a restore costs well under a millisecond.
_BLOCK = 4096
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_S32 = np.uint64(32)


class FeistelPermutation:
    """A keyed permutation of ``range(length)``, evaluated at any positions in O(count).

    An unbalanced Feistel network over ``[0, 2^bits)`` (the smallest power of
    two >= ``length``, at least 4), whose two halves alternate in width, with a
    multiply-xorshift round function; values that land outside ``[0, length)``
    are enciphered again (cycle walking), which ends because the network is a
    bijection. At most half of the domain lies outside, so a position needs
    two evaluations on average.

    Parameters
    ----------
    length : int
        Size of the permuted range.
    keys : array of uint64
        One key per round (derive them from a seed).

    Examples
    --------
    >>> p = FeistelPermutation(10, np.arange(1, 7, dtype=np.uint64))
    >>> sorted(p(np.arange(10)).tolist()) == list(range(10))
    True
    """

    __slots__ = ("length", "_keys", "_left", "_right")

    def __init__(self, length: int, keys: np.ndarray) -> None:
        self.length = int(length)
        bits = max(2, (max(self.length, 2) - 1).bit_length())
        self._left = bits // 2
        self._right = bits - self._left
        self._keys = [np.uint64(k) for k in keys]

    def _encipher(self, x: np.ndarray) -> np.ndarray:
        wl, wr = self._left, self._right
        left = x >> np.uint64(wr)
        right = x & np.uint64((1 << wr) - 1)
        for k in self._keys:
            t = (right ^ k) * _M1
            t ^= t >> _S32
            t *= _M2
            # The top bits of the product mix every input bit; take as many as
            # the left half is wide.
            left, right = right, left ^ (t >> np.uint64(64 - wl))
            wl, wr = wr, wl
        return (left << np.uint64(wr)) | right

    def _decipher(self, y: np.ndarray) -> np.ndarray:
        # The rounds of _encipher backwards: the halves end swapped when the
        # number of rounds is odd, so widths are tracked the same way.
        wl, wr = self._left, self._right
        for _ in self._keys:
            wl, wr = wr, wl
        left = y >> np.uint64(wr)
        right = y & np.uint64((1 << wr) - 1)
        for k in reversed(self._keys):
            wl, wr = wr, wl
            # Undo: (left, right) <- (right', left' ^ F(right')) with right' = previous left.
            t = (left ^ k) * _M1
            t ^= t >> _S32
            t *= _M2
            left, right = right ^ (t >> np.uint64(64 - wl)), left
        return (left << np.uint64(wr)) | right

    def _walk(self, step: Any, values: np.ndarray) -> np.ndarray:
        # Cycle walking: apply ``step`` again to whatever lands outside [0, length).
        y = step(np.asarray(values, dtype=np.uint64))
        n = np.uint64(self.length)
        out = np.flatnonzero(y >= n)
        while out.size:
            z = step(y[out])
            y[out] = z
            out = out[z >= n]
        return y.astype(np.int64)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """The positions that this permutation maps to ``values`` (each in ``[0, length)``)."""
        return self._walk(self._decipher, values)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The permuted values at ``positions`` (int64 array, each in ``[0, length)``)."""
        return self._walk(self._encipher, positions)


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

    def take(self, pass_number: int, start: int, stop: int,
             stride: int | None = None) -> Any:
        if self.values is None:
            return slice(start, stop)
        return self.values[start:stop]

    def take_array(self, pass_number: int, start: int, stop: int) -> np.ndarray:
        if self.values is None:
            return np.arange(start, stop)
        return self.values[start:stop]

    def sequence(self, pass_number: int) -> np.ndarray | None:
        """The whole pass as an array, if it is one (None: slices of ``arange``)."""
        return self.values

    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.values is None else self.values.dtype

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: Any, pass_number: int) -> None:
        """Nothing to restore."""


class SeededOrder:
    """Pass ``p`` is an order computed from (seed, path, p): no draws, any batch on demand.

    Below ``_MATERIALISE_BELOW`` samples a pass is
    ``seed.generator(p).permutation(length)``, materialised when first needed;
    from there up it is a :class:`FeistelPermutation` keyed by (seed, path, p),
    evaluated a block of positions at a time -- or, for a sharded plan, a
    block of this rank's own positions over the next steps (``stride``).

    Examples
    --------
    >>> o = SeededOrder(SeedPath(1), 6)
    >>> first = o.take(0, 0, 6)
    >>> sorted(first.tolist()), bool((o.take(0, 2, 4) == first[2:4]).all())
    ([0, 1, 2, 3, 4, 5], True)
    """

    kind = "seeded"
    __slots__ = ("seed", "length", "values", "_cipher", "_cache")

    def __init__(self, seed: SeedPath, length: int, values: np.ndarray | None = None) -> None:
        self.seed = seed
        self.length = length
        self.values = values
        self._cipher = length >= _MATERIALISE_BELOW
        # A few recently used passes / blocks: what the next batches will read.
        self._cache: dict[tuple, Any] = {}

    def _remember(self, key: tuple, value: Any) -> Any:
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = value
        return value

    def _perm(self, pass_number: int) -> Any:
        key = ("pass", pass_number)
        perm = self._cache.get(key)
        if perm is None:
            if self._cipher:
                keys = np.random.SeedSequence(
                    self.seed.seed, spawn_key=self.seed.path + (pass_number,)
                ).generate_state(_ROUNDS, np.uint64)
                perm = FeistelPermutation(self.length, keys)
            else:
                perm = self.seed.generator(pass_number).permutation(self.length)
            perm = self._remember(key, perm)
        return perm

    def _block(self, pass_number: int, block_no: int) -> np.ndarray:
        key = ("block", pass_number, block_no)
        block = self._cache.get(key)
        if block is None:
            start = block_no * _BLOCK
            stop = min(start + _BLOCK, self.length)
            block = self._remember(key, self._perm(pass_number)(np.arange(start, stop)))
        return block

    def _strided(self, pass_number: int, start: int, stop: int, stride: int) -> np.ndarray:
        """Positions ``[start, stop)`` of a rank that takes the same slice every ``stride``:
        enciphered together with its slices of the next steps of the pass."""
        width = stop - start
        last = self._cache.get("strided")
        if last is not None:
            key, rows = last
            if key[0] == pass_number and key[2] == stride:
                k, off = divmod(start - key[1], stride)
                if off == 0 and 0 <= k < len(rows) and rows.shape[1] == width:
                    return rows[k]
        steps = max(1, min(_BLOCK // max(width, 1), (self.length - stop) // stride + 1))
        pos = start + stride * np.arange(steps)[:, None] + np.arange(width)[None, :]
        rows = self._perm(pass_number)(pos.ravel()).reshape(steps, width)
        self._cache["strided"] = ((pass_number, start, stride), rows)
        return rows[0]

    def sequence(self, pass_number: int) -> np.ndarray | None:
        """The whole pass as an array if it is materialised (None for the cipher)."""
        if self._cipher:
            return None
        if self.values is None:
            return self._perm(pass_number)
        key = ("values", pass_number)
        seq = self._cache.get(key)
        if seq is None:
            seq = self._remember(key, self.values[self._perm(pass_number)])
        return seq

    def draw(self, pass_number: int) -> None:
        """Nothing to draw: every pass is a function of the seed."""

    def release(self, pass_number: int) -> None:
        """Nothing to forget: a few passes or blocks are cached at a time."""

    def positions(self, pass_number: int, start: int, stop: int,
                  stride: int | None = None) -> np.ndarray:
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        if not self._cipher:
            return self._perm(pass_number)[start:stop]
        if stride is not None and stride > stop - start:
            return self._strided(pass_number, start, stop, stride)
        if stop - start > _BLOCK:
            return self._perm(pass_number)(np.arange(start, stop))
        first, last = start // _BLOCK, (stop - 1) // _BLOCK
        off = first * _BLOCK
        if first == last:
            return self._block(pass_number, first)[start - off:stop - off]
        head = self._block(pass_number, first)[start - off:]
        tail = self._block(pass_number, last)[:stop - last * _BLOCK]
        return np.concatenate([head, tail])

    def take(self, pass_number: int, start: int, stop: int,
             stride: int | None = None) -> np.ndarray:
        pos = self.positions(pass_number, start, stop, stride)
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
    __slots__ = ("rng", "length", "values", "_seqs", "_before", "draws")

    def __init__(self, rng: Any, length: int, values: np.ndarray | None = None) -> None:
        self.rng = rng
        self.length = length
        self.values = values
        self._seqs: dict[int, np.ndarray] = {}
        self._before: dict[int, Any] = {}
        #: Draws taken from ``rng`` so far (a prefetching pool re-reads the
        #: stream's state only when this changes).
        self.draws = 0

    def _permute(self, rng: Any) -> np.ndarray:
        return rng.permutation(self.length if self.values is None else self.values)

    def draw(self, pass_number: int) -> None:
        before = capture_stream_state(self.rng)
        seq = self._permute(self.rng)
        self.draws += 1
        self._seqs[pass_number] = seq
        self._before[pass_number] = before

    def take(self, pass_number: int, start: int, stop: int,
             stride: int | None = None) -> np.ndarray:
        return self._seqs[pass_number][start:stop]

    def sequence(self, pass_number: int) -> np.ndarray | None:
        """The drawn pass."""
        return self._seqs[pass_number]

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
