"""Implementation of :mod:`batchup.work_pool` (private; import from there).

Modules, one job each: ``cpu`` (how many workers), ``randomness`` (per-task
random streams), ``errors`` (carrying worker failures to the consumer),
``shm`` (shared-memory slots and constants), ``worker`` (what runs inside a
worker), ``pools`` (thread and process pools), ``stream`` (ordered, buffered
task streams) and ``parallel`` (the parallel data source). Design notes on the process
pool's lifecycle, its shared-memory protocol and how randomness reaches the
workers sit in the docstrings of ``pools``, ``shm`` and ``randomness``.
"""
