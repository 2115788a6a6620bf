"""Weighted sampling (with replacement) and class-balancing weights.

batchup 0.2.3 called ``rng.choice(n, size=B, p=weights)`` for every batch,
which rebuilds the cumulative distribution: O(N) per batch. NumPy's
``choice`` is, inside, ``cdf = p.cumsum(); cdf /= cdf[-1]`` followed by one
uniform draw per sample and a bisection. Here the CDF is built once, at
construction, and each batch costs one uniform draw and a
``searchsorted``: O(B log N), with exactly the indices 0.2.3 returned for the
same ``RandomState``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .chunked import ChunkShuffle
from .plans import IndexBatch, shard_share
from .rng import SeedPath, ShuffleRNG, uniform_sampler
from .samplers import (
    AbstractSampler,
    InOrderNotSupportedError,
    _check_drop_last,
    _index_batches,
    content_digest,
    resolve_sampler_rng,
)
from .shard import ShardSpec
from .validate import as_index_array, check_batch_size, check_labels, check_weights, show

#: With a seed, uniforms are drawn for this many batches at a time from a
#: generator derived from (seed, path, block), so batch ``b`` is a pure function
#: of the seed and ``b``.
_SEED_BLOCK = 64


def _cdf(p: np.ndarray) -> np.ndarray:
    # The same operations, in the same order, as numpy's choice(p=...).
    cdf = np.asarray(p, dtype=np.float64).cumsum()
    cdf /= cdf[-1]
    return cdf


class WeightedPlan(Iterator[IndexBatch]):
    """Endless batches of indices drawn with replacement from a prepared CDF.

    With a seed, the uniforms of (global) batch ``b`` come from a generator
    derived from (seed, path, ``b // 64``), so the plan's state is the batch
    number alone. With a stream, they are drawn from it as 0.2.3 drew them.
    When sharded, every rank draws the global batch and keeps its slice.
    """

    kind = "weighted"
    __slots__ = ("_cdf", "_values", "_size", "_uniform", "_choice", "_p", "_seed",
                 "_block", "_block_no", "_batch_no", "_rank", "_batch_size")

    def __init__(self, cdf: np.ndarray, p: np.ndarray, values: np.ndarray | None,
                 batch_size: int, rng: Any, shard: ShardSpec | None = None) -> None:
        if isinstance(rng, ChunkShuffle):
            raise ValueError(
                f"shuffle={rng!r} does not apply to weighted sampling, which draws each "
                "sample independently (with replacement): pass an int seed instead")
        self._cdf = cdf
        self._p = p
        self._values = values
        self._batch_size = batch_size
        self._rank, _, self._size = shard_share(shard, batch_size)
        self._seed = rng if isinstance(rng, SeedPath) else None
        self._uniform: Callable[[int], np.ndarray] | None = (
            None if self._seed is not None else uniform_sampler(rng)
        )
        # Unknown RNG objects get 0.2.3's call, ``rng.choice``, unchanged.
        self._choice = rng.choice if (self._seed is None and self._uniform is None) else None
        self._block: np.ndarray | None = None
        self._block_no = -1
        self._batch_no = 0

    def __iter__(self) -> WeightedPlan:
        return self

    def num_batches(self) -> float:
        return np.inf

    def _seeded_uniforms(self) -> np.ndarray:
        block_no, offset = divmod(self._batch_no, _SEED_BLOCK)
        if block_no != self._block_no:
            assert self._seed is not None
            self._block = self._seed.generator(block_no).random(_SEED_BLOCK * self._size)
            self._block_no = block_no
        assert self._block is not None
        return self._block[offset * self._size:(offset + 1) * self._size]

    def __next__(self) -> IndexBatch:
        step = self._batch_no
        if self._choice is not None:
            a = len(self._p) if self._values is None else self._values
            idx = self._choice(a, size=(self._size,), p=self._p)
        else:
            if self._uniform is not None:
                u = self._uniform((self._size,))
            else:
                u = self._seeded_uniforms()
            idx = self._cdf.searchsorted(u, side="right")
            if self._values is not None:
                idx = self._values[idx]
        self._batch_no = step + 1
        lo = self._rank * self._batch_size
        if self._size != self._batch_size:
            idx = idx[lo:lo + self._batch_size]
        return IndexBatch(idx, 0, step, self._rank, self._seed, draws=step * self._size + lo)

    def stream_draws(self) -> int:
        """Draws from a stream ``shuffle``: one per batch (none with a seed)."""
        return 0 if self._seed is not None else self._batch_no

    def get_state(self) -> dict:
        return {"plan": self.kind, "step": self._batch_no}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("plan") != self.kind:
            raise ValueError(f"expected the state of a weighted plan, got {show(state)}")
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"weighted plan state: 'step' must be an integer >= 0, "
                             f"not {show(step)}")
        self._batch_no = step


class WeightedSampler(AbstractSampler):
    """Draw indices with replacement, index ``i`` with probability ``weights[i] / sum``.

    Iteration is endless (``num_indices_generated()`` is ``inf``) and only
    shuffled iteration is possible.

    Parameters
    ----------
    weights : array-like
        1-D non-negative, finite weights, one per sample, not all zero.

    Examples
    --------
    >>> s = WeightedSampler(np.array([1, 1, 2]))
    >>> it = s.shuffled_indices_batch_iterator(4, np.random.RandomState(3))
    >>> next(it).tolist(), next(it).tolist()
    ([2, 2, 1, 2], [2, 2, 0, 0])
    """

    def __init__(self, weights: Any) -> None:
        w = check_weights(weights, "weights").astype(np.float64)
        self.weights = w / w.sum()
        self.length = len(self.weights)
        self._cdf = _cdf(self.weights)

    def num_indices_generated(self) -> float:
        return np.inf

    def check_data_length(self, length: int) -> None:
        if self.length != length:
            raise ValueError(
                f"weights must hold one weight per sample: got {self.length} weights "
                f"for data of length {length}"
            )

    def in_order_indices_batch_iterator(self, batch_size: int, drop_last: bool = False):
        raise InOrderNotSupportedError(
            "In-order sampling not supported by WeightedSampler; pass shuffle=<a seed, "
            "RandomState or Generator> (shuffle=None/False means in order)"
        )

    def describe(self) -> str:
        return f"WeightedSampler(n={self.length}, weights sha1 {content_digest(self, self._cdf)})"

    def plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool = False,
             shard: ShardSpec | None = None) -> WeightedPlan:
        if rng is None:
            self.in_order_indices_batch_iterator(batch_size)
        return WeightedPlan(self._cdf, self.weights, None, batch_size, rng, shard)

    def shuffled_indices_batch_iterator(
        self, batch_size: int, shuffle_rng: ShuffleRNG, drop_last: bool = False
    ) -> Iterator[np.ndarray]:
        drop_last = _check_drop_last(drop_last)
        batch_size = check_batch_size(batch_size)
        rng = resolve_sampler_rng(shuffle_rng)
        return _index_batches(self.plan(batch_size, rng), rng, self.describe(), batch_size,
                              drop_last, None)

    @staticmethod
    def class_balancing_sample_weights(y: Any, n_classes: int | None = None) -> np.ndarray:
        """Per-sample weights that give every class present in ``y`` the same total weight.

        Parameters
        ----------
        y : array-like of int
            Non-negative class labels.
        n_classes : int, optional
            Number of classes; when given, every label must be below it.

        Returns
        -------
        numpy.ndarray
            float64 weights, summing to 1.

        Examples
        --------
        >>> w = WeightedSampler.class_balancing_sample_weights(np.array([0, 0, 1, 1, 1]))
        >>> w.round(4).tolist()
        [0.25, 0.25, 0.1667, 0.1667, 0.1667]
        """
        y, n_classes = check_labels(y, n_classes)
        counts = np.bincount(y, minlength=n_classes or 0)
        present = counts > 0
        n_present = int(present.sum())
        # Absent classes get no weight (0.2.3 computed 1/0 and warned).
        class_weight = np.zeros(len(counts), dtype=np.float64)
        class_weight[present] = 1.0 / (counts[present] * n_present)
        return class_weight[y]

    @staticmethod
    def class_balancing_sampler(y: Any, n_classes: int | None = None) -> WeightedSampler:
        """A ``WeightedSampler`` that draws every class equally often.

        Examples
        --------
        >>> s = WeightedSampler.class_balancing_sampler(np.array([0, 0, 0, 1]), n_classes=2)
        >>> s.weights.tolist()
        [0.16666666666666666, 0.16666666666666666, 0.16666666666666666, 0.5]
        """
        return WeightedSampler(WeightedSampler.class_balancing_sample_weights(y, n_classes))


class WeightedSubsetSampler(AbstractSampler):
    """Draw from the subset ``indices`` with replacement, weighted by ``sub_weights``.

    Parameters
    ----------
    sub_weights : array-like
        1-D non-negative weights, one per entry of ``indices``, not all zero.
    indices : array-like of int
        1-D data-level indices of the subset.

    Examples
    --------
    >>> s = WeightedSubsetSampler(np.array([0.0, 1.0]), indices=np.array([10, 20]))
    >>> next(s.shuffled_indices_batch_iterator(3, np.random.RandomState(0))).tolist()
    [20, 20, 20]
    """

    def __init__(self, sub_weights: Any, indices: Any) -> None:
        idx = as_index_array(indices)
        w = np.asarray(sub_weights)
        if w.ndim == 1 and len(w) != len(idx):
            raise ValueError(
                "sub_weights and indices should have the same length; "
                f"{len(w)} != {len(idx)}"
            )
        w = check_weights(w, "sub_weights")
        # Normalised in the input's own float dtype, as 0.2.3 did.
        self.sub_weights = w / w.sum()
        self.indices = idx if isinstance(indices, np.ndarray) else idx.astype(np.int64)
        self.length = len(self.indices)
        self._cdf = _cdf(self.sub_weights)

    def num_indices_generated(self) -> float:
        return np.inf

    def map_indices(self, indices: Any) -> Any:
        return self.indices[indices]

    def check_data_length(self, length: int) -> None:
        lo, hi = self.indices.min(), self.indices.max()
        if lo < 0 or hi >= length:
            raise ValueError(
                f"indices must lie in [0, {length}) for data of length {length}; "
                f"found index {lo if lo < 0 else hi}"
            )

    def in_order_indices_batch_iterator(self, batch_size: int, drop_last: bool = False):
        raise InOrderNotSupportedError(
            "In-order sampling not supported by WeightedSubsetSampler; pass shuffle=<a seed, "
            "RandomState or Generator> (shuffle=None/False means in order)"
        )

    def describe(self) -> str:
        digest = content_digest(self, self._cdf, self.indices)
        return f"WeightedSubsetSampler(n={self.length}, weights sha1 {digest})"

    def plan(self, batch_size: int, rng: ShuffleRNG, drop_last: bool = False,
             shard: ShardSpec | None = None) -> WeightedPlan:
        if rng is None:
            self.in_order_indices_batch_iterator(batch_size)
        return WeightedPlan(self._cdf, self.sub_weights, self.indices, batch_size, rng, shard)

    def shuffled_indices_batch_iterator(
        self, batch_size: int, shuffle_rng: ShuffleRNG, drop_last: bool = False
    ) -> Iterator[np.ndarray]:
        drop_last = _check_drop_last(drop_last)
        batch_size = check_batch_size(batch_size)
        rng = resolve_sampler_rng(shuffle_rng)
        return _index_batches(self.plan(batch_size, rng), rng, self.describe(), batch_size,
                              drop_last, None)

    @staticmethod
    def class_balancing_sampler(
        y: Any, indices: Any, n_classes: int | None = None
    ) -> WeightedSubsetSampler:
        """A ``WeightedSubsetSampler`` over ``indices`` that balances the classes of ``y``.

        Examples
        --------
        >>> y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
        >>> s = WeightedSubsetSampler.class_balancing_sampler(y, np.array([0, 2, 3, 5, 6, 7]))
        >>> (s.sub_weights * 18).round(6).tolist()
        [6.0, 3.0, 3.0, 2.0, 2.0, 2.0]
        """
        y_arr, n_classes = check_labels(y, n_classes)
        idx = as_index_array(indices)
        weights = WeightedSampler.class_balancing_sample_weights(y_arr[idx], n_classes)
        return WeightedSubsetSampler(weights, indices=indices)
