"""Implementation of batchup's data sources and samplers.

Private: import from :mod:`batchup.data_source` and :mod:`batchup.sampling`.
Modules: ``validate`` (argument checks), ``rng`` (what ``shuffle`` may be),
``structure`` (tuple-structured batches), ``passes`` (index batches over
passes of a sequence), ``samplers``, ``weighted``, ``sources``,
``composite``, ``choice`` and ``batch_map``.
"""
