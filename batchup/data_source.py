"""Data sources: where mini-batches come from.

The public home of batchup's data sources, at batchup 0.2.3's import path.
The implementation lives in ``batchup._core``; this module only re-exports it.

Examples
--------
>>> import numpy as np
>>> from batchup import data_source
>>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 3
>>> ds = data_source.ArrayDataSource([X, y])
>>> for batch_X, batch_y in ds.batch_iterator(batch_size=4, shuffle=np.random.RandomState(0)):
...     print(batch_y)
[2 2 1 0]
[1 0 1 0]
[0 2]
"""

from batchup._core.batch_map import batch_map_concat, batch_map_mean
from batchup._core.choice import ChoiceDataSource
from batchup._core.chunked import ChunkShuffle
from batchup._core.composite import CompositeDataSource
from batchup._core.iteration import BatchIterator, IndexIterator
from batchup._core.rngstate import NotResumableError
from batchup._core.shard import ShardSpec
from batchup._core.sources import (
    AbstractDataSource,
    ArrayDataSource,
    CallableDataSource,
    IteratorDataSource,
    MapDataSource,
    RandomAccessDataSource,
    coerce_data_source,
)
from batchup._core.structure import ChoiceBatch
from batchup._core.structure import length_of_batch as _length_of_batch
from batchup._core.structure import trim_batch as _trim_batch
from batchup._core.validate import is_array_like as _is_array_like

__all__ = [
    "AbstractDataSource",
    "RandomAccessDataSource",
    "ArrayDataSource",
    "CallableDataSource",
    "IteratorDataSource",
    "CompositeDataSource",
    "ChoiceDataSource",
    "ChoiceBatch",
    "MapDataSource",
    "BatchIterator",
    "IndexIterator",
    "NotResumableError",
    "ShardSpec",
    "ChunkShuffle",
    "batch_map_concat",
    "batch_map_mean",
    "coerce_data_source",
    "_length_of_batch",
    "_trim_batch",
    "_is_array_like",
]
