"""Random generators for map functions that do not depend on how the work is split.

Inside a function given to ``.map``, :func:`batch_rng` returns a generator for
the batch and :func:`sample_rngs` one generator per sample. With a seeded
iteration (``shuffle=42``, ``(42, epoch)``) they are keyed on
(seed, epoch, step, rank) and (seed, epoch, sample index) respectively, so the
augmentation is the same serially, in threads or in processes, with any
number of workers or ranks -- and, per sample, with any batch size or order.
A new epoch gives new draws. Without a seed they are not repeatable
(see :func:`batchup.work_pool.task_rng`).

Examples
--------
>>> import numpy as np
>>> from batchup import data_source, randomness
>>> def flip(x):
...     flips = np.array([g.random() < 0.5 for g in randomness.sample_rngs()])
...     return (np.where(flips, -x, x),)
>>> ds = data_source.ArrayDataSource([np.arange(1, 7)]).map(flip)
>>> a = np.concatenate([b[0] for b in ds.batch_iterator(2, shuffle=0)])
>>> b = np.concatenate([b[0] for b in ds.batch_iterator(3, shuffle=0)])
>>> bool((a == b).all())
True
"""

from batchup._core.context import BatchInfo, batch_rng, current_batch, sample_rngs

__all__ = ["BatchInfo", "batch_rng", "current_batch", "sample_rngs"]
