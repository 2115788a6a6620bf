"""What ``shuffle`` may be, and how random numbers are drawn from it.

Two kinds of randomness are supported:

*Streams* -- a ``numpy.random.RandomState`` (batchup 0.2.3's contract), the
``numpy.random`` module itself (``shuffle=True``), a ``numpy.random.Generator``
or any object with ``permutation``, ``choice`` and ``shuffle`` methods. Draws
are taken from the stream in exactly the order batchup 0.2.3 took them, so the
same ``RandomState`` seed gives the same batches.

*Seeds* -- an ``int`` (or a tuple of ints such as ``(seed, epoch)``). Nothing is
consumed from a shared stream: every random choice is derived from the seed and
an explicit path (which component, which pass, which block of batches) with
``numpy.random.SeedSequence``. The same seed gives the same batches on every
call, independently of what else draws random numbers, which is what makes
iteration state small and explicit: (seed, path, pass, position).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .validate import is_integer, show


@dataclass(frozen=True)
class SeedPath:
    """A seed plus a derivation path: the root of a family of independent generators.

    ``shuffle=seed`` and ``shuffle=(seed, epoch)`` are turned into a ``SeedPath``;
    composite sources hand each component ``path.child(i)``. ``generator(*key)``
    returns a fresh ``numpy.random.Generator`` for one pass or block.

    Parameters
    ----------
    seed : int
        Non-negative root seed.
    path : tuple of int
        Derivation path below the seed.

    Examples
    --------
    >>> p = SeedPath(42)
    >>> a = p.child(0).generator(0).permutation(5)
    >>> b = SeedPath(42, (0,)).generator(0).permutation(5)
    >>> bool((a == b).all())
    True
    """

    seed: int
    path: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not is_integer(self.seed) or self.seed < 0:
            raise ValueError(f"shuffle seed must be a non-negative integer, not {show(self.seed)}")
        for k in self.path:
            if not is_integer(k) or k < 0:
                raise ValueError(
                    f"shuffle seed path entries must be non-negative integers, not {show(k)}"
                )

    def child(self, *keys: int) -> SeedPath:
        """The ``SeedPath`` one level (or more) below this one (same kind, same settings)."""
        return dataclasses.replace(self, path=self.path + tuple(int(k) for k in keys))

    def describe(self) -> str:
        """How this seed is named in an iteration state's fingerprint."""
        return f"seed {self.seed}" + (f" path {list(self.path)}" if self.path else "")

    def generator(self, *keys: int) -> np.random.Generator:
        """A ``numpy.random.Generator`` derived from (seed, path, keys)."""
        seq = np.random.SeedSequence(self.seed, spawn_key=self.path + tuple(int(k) for k in keys))
        return np.random.Generator(np.random.PCG64(seq))


#: Anything ``shuffle`` resolves to: None (in order), a stream (``RandomState``,
#: ``Generator``, the ``numpy.random`` module or a look-alike), or a ``SeedPath``.
#: Spelled ``Any`` so that importing batchup does not import ``numpy.random``.
ShuffleRNG = Any

_STREAM_METHODS = ("permutation", "choice", "shuffle")


def resolve_shuffle(shuffle: Any) -> ShuffleRNG:
    """Resolve a ``shuffle`` argument (see the module docstring) or raise.

    Examples
    --------
    >>> resolve_shuffle(None) is None, resolve_shuffle(False) is None
    (True, True)
    >>> resolve_shuffle(True) is np.random
    True
    >>> resolve_shuffle(7)
    SeedPath(seed=7, path=())
    >>> resolve_shuffle((7, 2))
    SeedPath(seed=7, path=(2,))
    """
    if shuffle is None or shuffle is False or shuffle is np.False_:
        return None
    if shuffle is True or shuffle is np.True_:
        return np.random
    if isinstance(shuffle, (np.random.RandomState, np.random.Generator, SeedPath)):
        return shuffle
    if is_integer(shuffle):
        if shuffle < 0:
            raise ValueError(f"shuffle seed must be a non-negative integer, not {show(shuffle)}")
        return SeedPath(int(shuffle))
    if isinstance(shuffle, tuple) and shuffle and all(is_integer(k) for k in shuffle):
        if any(k < 0 for k in shuffle):
            raise ValueError(
                f"shuffle seed entries must be non-negative integers, not {show(shuffle)}")
        return SeedPath(int(shuffle[0]), tuple(int(k) for k in shuffle[1:]))
    if all(callable(getattr(shuffle, m, None)) for m in _STREAM_METHODS):
        return shuffle
    raise TypeError(
        "shuffle must be None/False (in order), True (NumPy's global generator), "
        "a numpy.random.RandomState or Generator, a non-negative int seed or a tuple of "
        f"such ints (e.g. (seed, epoch)), not {show(shuffle)}"
    )


def as_stream(rng: ShuffleRNG) -> Any:
    """A stream object for code that needs ``permutation``/``choice``/``shuffle`` methods.

    User callables (``CallableDataSource``) receive a Generator in place of a
    ``SeedPath`` so they can keep treating ``shuffle`` as a random state.
    """
    if isinstance(rng, SeedPath):
        return rng.generator()
    return rng


def uniform_sampler(rng: Any):
    """Return ``f(n)`` drawing ``n`` uniforms in [0, 1) the way ``rng.choice(..., p=...)`` does.

    NumPy's ``choice`` with probabilities builds a CDF, draws uniforms with
    ``random_sample`` (legacy) or ``random`` (Generator) and bisects; calling the
    same uniform method reproduces its output exactly. Returns None for
    duck-typed objects, whose ``choice`` must then be called as 0.2.3 did.
    """
    if isinstance(rng, np.random.RandomState) or rng is np.random:
        return rng.random_sample
    if isinstance(rng, np.random.Generator):
        return rng.random
    return None
