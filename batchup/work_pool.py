"""Worker pools that prepare mini-batches in background threads or processes.

batchup 0.2.3's ``work_pool`` API, made robust:

- :class:`WorkerThreadPool` for work that releases the GIL (NumPy, I/O);
- :class:`WorkerProcessPool` for work that holds it (Python loops), built on
  loky: lambdas and ``__main__`` functions work, dead workers are detected,
  batch arrays come back through shared memory;
- :class:`WorkStream` runs tasks ahead of the consumer, results in order;
- :class:`ParallelDataSource` (``pool.parallel_data_source(ds)``) yields the
  same batches as ``ds``, prepared by the pool;
- :func:`task_rng` gives each task its own reproducible random generator.

Pools are context managers; ``close()`` is idempotent. See ``docs/work_pool.md``.

Examples
--------
>>> import numpy as np
>>> from batchup import data_source, work_pool
>>> ds = data_source.ArrayDataSource([np.arange(8)])
>>> with work_pool.WorkerThreadPool(processes=2) as pool:
...     par_ds = pool.parallel_data_source(ds, batch_buffer_size=4)
...     for (batch,) in par_ds.batch_iterator(batch_size=4, shuffle=np.random.RandomState(1)):
...         print(batch)
[7 2 1 6]
[0 4 3 5]
"""

from batchup._pool.cpu import available_cpus
from batchup._pool.errors import RemoteTraceback, WorkerCrashedError
from batchup._pool.parallel import ParallelDataSource
from batchup._pool.pools import AbstractWorkerPool
from batchup._pool.processes import SharedConstant, WorkerProcessPool
from batchup._pool.randomness import task_rng
from batchup._pool.stream import WorkStream, WorkStreamIterator
from batchup._pool.threads import WorkerThreadPool

__all__ = [
    "AbstractWorkerPool",
    "WorkerThreadPool",
    "WorkerProcessPool",
    "SharedConstant",
    "WorkStream",
    "WorkStreamIterator",
    "ParallelDataSource",
    "WorkerCrashedError",
    "RemoteTraceback",
    "task_rng",
    "available_cpus",
]
