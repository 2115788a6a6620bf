"""Samplers: which indices a data source visits, in which order, how often.

The public home of batchup's samplers, at batchup 0.2.3's import path. The
implementation lives in ``batchup._core``; this module only re-exports it.

Examples
--------
>>> import numpy as np
>>> from batchup import sampling
>>> y = np.array([0, 0, 0, 0, 1])
>>> sampler = sampling.WeightedSampler.class_balancing_sampler(y, n_classes=2)
>>> next(sampler.shuffled_indices_batch_iterator(6, np.random.RandomState(1))).tolist()
[3, 4, 0, 2, 1, 0]
"""

from batchup._core.chunked import ChunkShuffle
from batchup._core.rng import SeedPath
from batchup._core.samplers import (
    AbstractSampler,
    InOrderNotSupportedError,
    StandardSampler,
    SubsetSampler,
    num_batches,
)
from batchup._core.weighted import WeightedSampler, WeightedSubsetSampler

__all__ = [
    "AbstractSampler",
    "StandardSampler",
    "SubsetSampler",
    "WeightedSampler",
    "WeightedSubsetSampler",
    "InOrderNotSupportedError",
    "SeedPath",
    "ChunkShuffle",
    "num_batches",
]
