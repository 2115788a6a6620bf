"""Every docstring example in the core modules runs and prints what it says."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import batchup
from batchup import data_source, sampling

# Every module of the package, found by walking it, so a new module's examples
# run without editing a list. The work pools' modules run theirs in
# tests/test_work_pool.py (with pool fixtures); package __init__ files that only
# re-export have none of their own.
_ELSEWHERE = ("batchup._pool", "batchup.work_pool")
_NO_EXAMPLES = {"batchup._core", "batchup._pool", "batchup.image"}
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(batchup.__path__, "batchup.")
    if not m.name.startswith(_ELSEWHERE) and m.name not in _NO_EXAMPLES) + ["batchup"]

GLOBS = {"np": np, **{n: getattr(data_source, n) for n in data_source.__all__},
         **{n: getattr(sampling, n) for n in sampling.__all__}}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs=GLOBS, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
