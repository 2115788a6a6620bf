"""Waiting for another process in tests, with a deadline."""

import time


def wait_for(predicate, timeout=20.0):
    """Poll ``predicate()`` every 10 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)
