"""Image helpers (see :mod:`batchup.image.utils`)."""
