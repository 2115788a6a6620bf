"""batchup's benchmarks (run with ``python benchmarks/run.py``); never part of the tests."""
