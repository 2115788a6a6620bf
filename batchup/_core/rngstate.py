"""Saving and replaying the state of a random stream (``RandomState``, ``Generator``).

Stream plans (``shuffle=RandomState(...)``, batchup 0.2.3's contract) cannot
compute a pass from a seed: they record the stream's state before each draw
and, to restore, draw again from a private copy set to that state. States are
encoded as JSON-serialisable dicts (arrays as base64 text).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .validate import show


class NotResumableError(TypeError):
    """Raised by ``get_state``/``set_state`` when part of an iteration cannot save its position.

    Examples
    --------
    >>> issubclass(NotResumableError, TypeError)
    True
    """


def _encode(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        data = np.ascontiguousarray(x)
        return {"__array__": base64.b64encode(data.tobytes()).decode("ascii"),
                "dtype": data.dtype.str, "shape": list(data.shape)}
    if isinstance(x, dict):
        return {k: _encode(v) for k, v in x.items()}
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def _decode(x: Any) -> Any:
    if isinstance(x, dict):
        if "__array__" in x:
            raw = base64.b64decode(x["__array__"], validate=True)
            return np.frombuffer(raw, dtype=np.dtype(x["dtype"])).reshape(x["shape"]).copy()
        return {k: _decode(v) for k, v in x.items()}
    return x


def stream_kind(rng: Any) -> str:
    """A short name for the kind of stream (part of an iteration's fingerprint).

    Examples
    --------
    >>> stream_kind(np.random.RandomState(0)), stream_kind(np.random.default_rng(0))
    ('RandomState', 'Generator(PCG64)')
    """
    if isinstance(rng, np.random.RandomState):
        return "RandomState"
    if rng is np.random:
        return "numpy.random"
    if isinstance(rng, np.random.Generator):
        return f"Generator({type(rng.bit_generator).__name__})"
    return type(rng).__name__


def capture_stream_state(rng: Any) -> dict:
    """The state of ``rng`` as a JSON-serialisable dict.

    Streams whose state cannot be read give ``{"kind": ..., "unsupported": True}``;
    restoring such a state raises ``NotResumableError``.

    Examples
    --------
    >>> s = capture_stream_state(np.random.RandomState(0))
    >>> sorted(s)
    ['gauss', 'has_gauss', 'keys', 'kind', 'pos']
    """
    if isinstance(rng, np.random.RandomState) or rng is np.random:
        name, keys, pos, has_gauss, gauss = rng.get_state(legacy=True)
        return {"kind": stream_kind(rng), "keys": _encode(keys), "pos": int(pos),
                "has_gauss": int(has_gauss), "gauss": float(gauss)}
    if isinstance(rng, np.random.Generator):
        return {"kind": stream_kind(rng), "bit_generator": _encode(rng.bit_generator.state)}
    return {"kind": stream_kind(rng), "unsupported": True}


def _check_kind(rng: Any, state: Any) -> None:
    if not isinstance(state, dict) or not isinstance(state.get("kind"), str):
        raise ValueError(f"malformed random stream state: {show(state)}")
    if state.get("unsupported"):
        raise NotResumableError(
            f"the random stream ({state.get('kind')}) cannot save its state; use an int seed, "
            "a numpy.random.RandomState or a numpy.random.Generator as shuffle"
        )
    kind = stream_kind(rng)
    legacy = {"RandomState", "numpy.random"}
    if kind != state["kind"] and not (kind in legacy and state["kind"] in legacy):
        raise ValueError(
            f"the state was saved from a {state['kind']} stream but shuffle is a {kind}"
        )


def _set(rng: Any, state: dict) -> None:
    try:
        if state["kind"] in ("RandomState", "numpy.random"):
            keys = _decode(state["keys"])
            if not isinstance(keys, np.ndarray) or keys.shape != (624,):
                raise ValueError("'keys' must hold 624 32-bit words")
            pos = state["pos"]
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= 624:
                raise ValueError(f"'pos' must be an integer in [0, 624], not {show(pos)}")
            rng.set_state(("MT19937", keys.astype(np.uint32), pos, int(state["has_gauss"]),
                           float(state["gauss"])))
        else:
            rng.bit_generator.state = _decode(state["bit_generator"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed random stream state ({state['kind']}): {exc}") from None


def replay_stream(rng: Any, state: dict) -> Any:
    """A private stream of ``rng``'s kind set to ``state`` (``rng`` itself is untouched).

    Examples
    --------
    >>> r = np.random.RandomState(5)
    >>> s = capture_stream_state(r)
    >>> a = r.permutation(4)
    >>> bool((replay_stream(r, s).permutation(4) == a).all())
    True
    """
    _check_kind(rng, state)
    if state["kind"] in ("RandomState", "numpy.random"):
        copy: Any = np.random.RandomState()
    else:
        copy = np.random.Generator(type(rng.bit_generator)())
    _set(copy, state)
    return copy


def restore_stream(rng: Any, state: dict) -> None:
    """Set ``rng`` (the user's stream) to ``state``.

    Examples
    --------
    >>> r = np.random.RandomState(5)
    >>> s = capture_stream_state(r)
    >>> a = r.rand()
    >>> restore_stream(r, s); r.rand() == a
    True
    """
    _check_kind(rng, state)
    _set(rng, state)
