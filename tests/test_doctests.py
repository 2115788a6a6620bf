"""Every docstring example in the core modules runs and prints what it says."""

import doctest
import importlib

import numpy as np
import pytest

from batchup import data_source, sampling

MODULES = [
    "batchup",
    "batchup.data_source",
    "batchup.sampling",
    "batchup._core.rng",
    "batchup._core.structure",
    "batchup._core.samplers",
    "batchup._core.weighted",
    "batchup._core.sources",
    "batchup._core.composite",
    "batchup._core.choice",
    "batchup._core.batch_map",
    "batchup._core.order",
    "batchup._core.plans",
    "batchup._core.iteration",
    "batchup._core.rngstate",
    "batchup._core.context",
    "batchup._core.shard",
    "batchup.randomness",
    "batchup.distributed",
    "batchup.testing",
    "batchup._core.fetch",
    "batchup._core.prefetch",
    "batchup.datasets.digits",
    "batchup.demo",
]

GLOBS = {"np": np, **{n: getattr(data_source, n) for n in data_source.__all__},
         **{n: getattr(sampling, n) for n in sampling.__all__}}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs=GLOBS, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
