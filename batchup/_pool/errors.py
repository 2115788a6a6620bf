"""Carrying a worker's failure to the consumer with its type, message and traceback."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["WorkerCrashedError", "RemoteTraceback", "TaskFailure", "capture", "reraise"]


class WorkerCrashedError(RuntimeError):
    """A worker process died (killed, crashed, out of memory) while running a task.

    The pool replaces its workers on its next use; the iteration that saw the
    crash is over.

    Examples
    --------
    >>> isinstance(WorkerCrashedError("worker died"), RuntimeError)
    True
    """


class RemoteTraceback(Exception):
    """Holds the formatted traceback of an exception raised in a worker.

    Set as ``__cause__`` of the re-raised exception, so Python prints the
    worker's traceback above the consumer's.

    Examples
    --------
    >>> RemoteTraceback("Traceback ...").text
    'Traceback ...'
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}\n"""'


class TaskFailure(NamedTuple):
    """What a process worker sends back instead of a result when the task raised."""

    payload: bytes | None
    type_name: str
    message: str
    traceback_text: str


def capture(exc: BaseException) -> TaskFailure:
    """Package ``exc`` in a worker (the exception may not be picklable)."""
    import pickle
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    try:
        from .pickling import cloudpickle

        # The traceback holds frames: drop it before pickling, the text keeps it.
        payload = cloudpickle().dumps(exc.with_traceback(None))
        pickle.loads(payload)
    except Exception:
        payload = None
    kind = type(exc)
    return TaskFailure(payload, f"{kind.__module__}.{kind.__qualname__}", str(exc), text)


class WorkerError(RuntimeError):
    """Stands in for a worker exception that could not be sent back (unpicklable)."""


def rebuild(failure: TaskFailure) -> BaseException:
    """Turn a :class:`TaskFailure` back into an exception with the worker traceback attached."""
    import pickle

    exc: Any = None
    if failure.payload is not None:
        try:
            exc = pickle.loads(failure.payload)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = WorkerError(f"{failure.type_name}: {failure.message}")
    attach_traceback(exc, failure.traceback_text)
    return exc


def attach_traceback(exc: BaseException, text: str) -> None:
    """Record the worker traceback on ``exc`` (as an attribute and as the cause)."""
    exc.__cause__ = RemoteTraceback(text)
    try:
        exc.worker_traceback = text  # type: ignore[attr-defined]
    except Exception:
        pass


def reraise(failure: TaskFailure) -> None:
    """Raise the exception described by ``failure``."""
    raise rebuild(failure)
