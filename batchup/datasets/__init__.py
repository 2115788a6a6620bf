"""Standard datasets: download, verify, convert to HDF5 once, load.

Modules: :mod:`~batchup.datasets.mnist`, :mod:`~batchup.datasets.fashion_mnist`,
:mod:`~batchup.datasets.svhn`, :mod:`~batchup.datasets.cifar10`,
:mod:`~batchup.datasets.cifar100`, :mod:`~batchup.datasets.stl`,
:mod:`~batchup.datasets.usps`, :mod:`~batchup.datasets.digits` (shipped with
the package). Source files and their checksums are listed in
:mod:`~batchup.datasets.registry`. Importing this package imports NumPy only.

Examples
--------
>>> import batchup.datasets
>>> from batchup.datasets import registry
>>> "mnist" in registry.datasets()
True
"""
