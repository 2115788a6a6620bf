"""batchup: mini-batches from NumPy arrays, in memory, on disk or generated.

The package root stays tiny on purpose: ``import batchup`` imports NumPy and
nothing else. The public modules keep batchup 0.2.3's import paths:

- :mod:`batchup.data_source` -- data sources and batch iteration
- :mod:`batchup.sampling` -- samplers (standard, subset, weighted)
- :mod:`batchup.work_pool` -- thread and process pools that prefetch batches
- :mod:`batchup.config` -- data directory and downloads
- :mod:`batchup.datasets` -- standard data sets (MNIST, CIFAR, ...)
- :mod:`batchup.image` -- image helpers

Example
-------
>>> import numpy as np
>>> from batchup import data_source
>>> ds = data_source.ArrayDataSource([np.arange(10), np.arange(10) * 2])
>>> [len(x) for x, y in ds.batch_iterator(batch_size=4)]
[4, 4, 2]
"""

__version__ = "1.0.0.dev0"
