"""Index batches over one or more passes of a sequence of positions.

This is the state machine of batchup 0.2.3's ``StandardSampler`` and
``SubsetSampler``, kept as an explicit iterator object (pass number, read
position, passes left) instead of a generator, so that its state is visible
and the exact timing of permutation draws -- part of the 0.2.3 contract when
one ``RandomState`` is shared by several consumers -- is easy to audit:

* one pass (``repeats == 1``): the sequence is drawn on the first request and
  cut into chunks; nothing is drawn at the end;
* several passes: a batch that fits in the current pass is a slice of it (the
  *fast path*, no draw even if the pass ends exactly there); otherwise the
  batch is assembled across the pass boundary, and the next pass is drawn the
  moment the current one is used up -- before the batch is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: ``draw(pass_number)`` returns the positions of that pass, in iteration order.
DrawPass = Callable[[int], np.ndarray]


class PassBatchIterator(Iterator[np.ndarray]):
    """Iterate index batches over ``repeats`` passes (``-1``: forever).

    Parameters
    ----------
    draw : callable
        ``draw(p)`` returns the sequence for pass ``p`` (a permutation, or the
        positions in order). Called lazily, in pass order.
    length : int
        Length of every pass.
    batch_size : int
        Batch size.
    repeats : int
        Number of passes, or -1 for infinitely many.
    drop_last : bool
        Drop a final batch shorter than ``batch_size``.

    Examples
    --------
    >>> it = PassBatchIterator(lambda p: np.arange(5), 5, 2, repeats=2)
    >>> [b.tolist() for b in it]
    [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]
    """

    __slots__ = ("_draw", "_length", "_batch_size", "_repeats", "_drop_last",
                 "_seq", "_pass", "_pos", "_left", "_done")

    def __init__(
        self, draw: DrawPass, length: int, batch_size: int, repeats: int, drop_last: bool = False
    ) -> None:
        self._draw = draw
        self._length = length
        self._batch_size = batch_size
        self._repeats = repeats
        self._drop_last = drop_last
        self._seq: np.ndarray | None = None
        self._pass = 0
        self._pos = 0
        self._left = repeats
        self._done = False

    def __iter__(self) -> PassBatchIterator:
        return self

    @property
    def state(self) -> dict:
        """The iterator's position: pass number, read position and passes left."""
        return {"pass": self._pass, "position": self._pos, "passes_left": self._left,
                "started": self._seq is not None, "done": self._done}

    def __next__(self) -> np.ndarray:
        if self._done:
            raise StopIteration
        if self._seq is None:
            self._seq = self._draw(0)
        seq, pos, size, length = self._seq, self._pos, self._batch_size, self._length

        if self._repeats == 1:
            if pos >= length:
                self._done = True
                raise StopIteration
            end = pos + size
            if end > length:
                self._done = True
                if self._drop_last:
                    raise StopIteration
                end = length
            self._pos = end
            return seq[pos:end]

        if pos + size <= length:
            self._pos = pos + size
            return seq[pos:pos + size]

        parts = []
        have = 0
        while have < size:
            take = min(size - have, length - pos)
            parts.append(seq[pos:pos + take])
            have += take
            pos += take
            if pos >= length:
                self._pass += 1
                seq = self._seq = self._draw(self._pass)
                pos = 0
                if self._left > 0:
                    self._left -= 1
                if self._left == 0:
                    break
        self._pos = pos
        if self._left == 0:
            self._done = True
            if have == 0 or (self._drop_last and have < size):
                raise StopIteration
        # 0.2.3 appended to an empty int64 array: a wrapped batch is int64 or wider.
        dtype = np.promote_types(np.int64, parts[0].dtype)
        if dtype.kind not in "iu":
            dtype = np.dtype(np.int64)
        return np.concatenate(parts).astype(dtype, copy=False)
