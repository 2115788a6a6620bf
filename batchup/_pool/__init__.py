"""Implementation of :mod:`batchup.work_pool` (private; import from there).

Modules, one job each: ``cpu`` (how many workers), ``randomness`` (per-task
random streams), ``errors`` (carrying worker failures to the consumer),
``shm`` (shared-memory slots and constants), ``worker`` (what runs inside a
worker), ``executor`` (the protocol between streams and pools), ``stream``
(ordered, buffered task streams), ``parallel`` (the parallel data source),
``pools`` (the pools' common base), ``threads`` (the thread pool) and
``processes`` (the process pool). Design notes on who calls what between a
stream and its pool, the process pool's lifecycle, its shared-memory protocol
and how randomness reaches the workers sit in the docstrings of ``executor``,
``processes``, ``shm`` and ``randomness``.

Imports go one way, with no cycle (``tests/test_work_pool.py`` checks it)::

    executor <- stream <- parallel <- pools <- threads, processes
"""
