"""Reusable pieces for batchup's benchmarks: alternated timing, peers, tables.

Conventions (read this before adding a workload)
------------------------------------------------
* A benchmark module is ``benchmarks/bench_<topic>.py``. It defines ``WORKLOADS``, a dict
  mapping a short workload name (``"W1"``, ``"import"``, ...) to a function
  ``fn(ctx: Context) -> Table | list[Table]``. ``benchmarks/run.py`` discovers every such
  module, so a new module plugs in without editing ``run.py``. Import heavy or optional
  packages (torch, grain, batchup itself) *inside* functions, never at module top level:
  discovery must work when peers are missing.
* An implementation of a workload is an :class:`Impl`. Its ``factory`` is a *module-level*
  function (a worker subprocess imports it by ``module:qualname``). ``factory(**kwargs)``
  performs the untimed setup (build data, samplers, loaders) and returns a zero-argument
  ``run`` callable. One call of ``run()`` does one unit of timed work (e.g. one epoch) and
  returns the number of items it processed (samples or batches); throughput is
  items / seconds. Exactly one ``Impl`` per comparison has ``floor=True``: the plain-NumPy
  floor every other row is divided by. If ``run`` has a callable attribute ``close`` (e.g.
  ``run.close = pool.close``), the harness calls it once when the comparison ends, so
  factories that start pools or threads can release them.
* :func:`compare` sets every implementation up, runs each once untimed (warm-up), then
  performs ``repeats`` *rounds*. A round runs every implementation once, round-robin; the
  starting implementation rotates from round to round so that no implementation always
  follows the same neighbour. Inside a round one measurement calls ``run()`` repeatedly
  until ``min_time`` seconds have elapsed (at least once). ``gc.collect()`` runs before
  each measurement; the garbage collector stays enabled while timing, as in real use.
* Reported per row: the median throughput over rounds, its spread as the interquartile
  range (p25-p75) and the ratio to the floor. The ratio is the median of the per-round
  ratios (each round's throughput divided by the floor's throughput in the same round),
  which cancels slow drift of the machine; it can differ slightly from median / median.
* Peers: ``Impl.requires`` lists importable module names (e.g. ``("torch",)``). A missing
  one turns the row into "not installed" instead of an error. Any other exception during
  setup or timing becomes an "error: ..." row and its traceback goes to stderr, so one
  broken implementation never hides the rest of the table.
* batchup 0.2.3 (``env=BATCHUP_023``): its modules import each other absolutely
  (``from batchup import sampling``), so it cannot live next to ours under another name in
  one process. Such an implementation runs in a worker subprocess whose ``sys.path`` starts
  with the extracted 0.2.3 wheel (``benchmarks/.peers/batchup-0.2.3/``, git-ignored), so
  ``import batchup`` there is 0.2.3. The same factory can therefore serve for "ours" and
  "0.2.3". Setup, warm-up and each timed measurement happen inside the worker; the parent
  still drives the rounds, so 0.2.3 alternates with the in-process implementations. The
  wheel is fetched once with ``pip download batchup==0.2.3 --no-deps`` (never vendored).
* Benchmarks never assert anything and are never part of the tests.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import pickle
import platform
import statistics
import struct
import subprocess
import sys
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"
BATCHUP_023_DIR = PEERS_DIR / "batchup-0.2.3"

OURS = "ours"
BATCHUP_023 = "batchup-0.2.3"


# --------------------------------------------------------------------------------------------
# Run context and tables
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """Options of one benchmark run, handed to every workload function.

    ``repeats`` overrides a workload's default number of rounds when not ``None``;
    ``quick`` asks for a fast smoke run (smaller data, two rounds); ``download`` allows
    fetching batchup 0.2.3 with pip when it is not cached yet.
    """

    repeats: int | None = None
    quick: bool = False
    download: bool = True

    def rounds(self, default: int) -> int:
        """Number of rounds to use for a workload whose normal choice is ``default``."""
        if self.repeats is not None:
            return max(1, self.repeats)
        return 2 if self.quick else default

    def size(self, full: int, quick: int) -> int:
        """Pick a data size: ``full`` normally, ``quick`` for a ``--quick`` run."""
        return quick if self.quick else full


@dataclass
class Table:
    """A printed result: a title, column names, rows of strings and free-form notes."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """Return the table as GitHub-flavoured markdown (pasteable into a README)."""
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))

        def line(cells: list[str]) -> str:
            padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells)]
            return "| " + " | ".join(padded) + " |"

        out = [f"### {self.title}", "", line(self.columns)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out.extend(line(row) for row in self.rows)
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out)


def fmt_number(value: float) -> str:
    """Format a positive rate compactly: ``1.23M``, ``456.7k``, ``12.3``."""
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Return (p25, median, p75) of ``values`` (inclusive method; fine for few values)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def log(message: str) -> None:
    """Progress message on stderr (stdout carries only the tables)."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Machine description and peer detection
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or platform's best guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dist_version(name: str) -> str | None:
    """Installed version of distribution ``name`` without importing it, or ``None``."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def machine_header() -> str:
    """Markdown lines naming the machine and the software versions of this run."""
    import numpy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    peers = []
    for dist in ("torch", "grain"):
        version = dist_version(dist)
        peers.append(f"{dist} {version}" if version else f"{dist} not installed")
    peers.append("batchup 0.2.3 " + ("available" if batchup_023_path(False) else "not available"))
    ours = importlib.util.find_spec("batchup")
    where = Path(ours.origin).parent if ours and ours.origin else "not importable"
    return "\n".join(
        [
            f"Machine: {cpu_model()}, {usable} usable cores ({os.cpu_count()} logical), "
            f"{platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, NumPy {numpy.__version__}; "
            + "; ".join(peers),
            f"batchup under test: {where}",
            f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        ]
    )


def batchup_023_path(download: bool = True) -> Path | None:
    """Directory whose ``batchup/`` package is 0.2.3, fetching it once if allowed.

    Looks for an extracted copy in ``benchmarks/.peers/batchup-0.2.3``; otherwise extracts
    a wheel already in ``benchmarks/.peers``; otherwise (when ``download``) runs
    ``pip download batchup==0.2.3 --no-deps -d benchmarks/.peers`` first. Returns ``None``
    when none of this works.
    """
    if (BATCHUP_023_DIR / "batchup" / "data_source.py").is_file():
        return BATCHUP_023_DIR
    wheels = sorted(PEERS_DIR.glob("batchup-0.2.3-*.whl"))
    if not wheels and download:
        PEERS_DIR.mkdir(parents=True, exist_ok=True)
        log("fetching batchup 0.2.3 with pip download (once) ...")
        cmd = [sys.executable, "-m", "pip", "download", "batchup==0.2.3", "--no-deps",
               "--only-binary", ":all:", "-d", str(PEERS_DIR), "-q"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            log("pip download of batchup 0.2.3 failed:\n" + result.stderr.strip())
        wheels = sorted(PEERS_DIR.glob("batchup-0.2.3-*.whl"))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[0]) as archive:
        members = [m for m in archive.namelist() if m.startswith("batchup/")]
        archive.extractall(BATCHUP_023_DIR, members=members)
    return BATCHUP_023_DIR


# --------------------------------------------------------------------------------------------
# Implementations and timing
# --------------------------------------------------------------------------------------------


@dataclass
class Impl:
    """One implementation of a workload (see the module docstring for the conventions)."""

    label: str
    factory: Callable[..., Callable[[], int]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    env: str = OURS
    floor: bool = False


def measure(run: Callable[[], int], min_time: float) -> tuple[int, float]:
    """Call ``run`` until ``min_time`` seconds have passed (at least once).

    Returns ``(items, seconds)`` summed over the calls.
    """
    gc.collect()
    items = 0
    start = time.perf_counter()
    while True:
        items += run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return items, elapsed


def resolve(path: str) -> Callable[..., Any]:
    """Import ``"package.module:qualname"`` and return the object."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def qualified_name(func: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a module-level function, for the worker subprocess."""
    module = func.__module__
    if module == "__main__":
        raise ValueError(f"{func!r} must live in an importable module, not __main__")
    return f"{module}:{func.__qualname__}"


class _LocalRunner:
    """Runs an implementation in this process."""

    def __init__(self, impl: Impl):
        self._run = impl.factory(**impl.kwargs)

    def warm_up(self) -> None:
        self._run()

    def measure(self, min_time: float) -> tuple[int, float]:
        return measure(self._run, min_time)

    def close(self) -> None:
        run, self._run = self._run, None
        _close_run(run)


def _close_run(run: Any) -> None:
    """Call ``run.close()`` when the factory provided one (see the conventions)."""
    close = getattr(run, "close", None)
    if callable(close):
        close()


class WorkerProcess:
    """A subprocess that imports batchup 0.2.3 as ``batchup`` and runs factories on request.

    Messages are length-prefixed pickles over the worker's stdin and a duplicate of its
    original stdout; the worker's own stdout is redirected to stderr so prints from
    imported libraries cannot corrupt the protocol.
    """

    def __init__(self, prefix: Path):
        code = (
            "import sys; "
            f"sys.path[:0] = [{str(prefix)!r}, {str(REPO_ROOT)!r}]; "
            "from benchmarks.harness import _worker_main; _worker_main()"
        )
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        version_file = self.call("where")
        if not str(version_file).startswith(str(prefix)):
            self.close()
            raise RuntimeError(f"worker imported batchup from {version_file}, not {prefix}")

    def call(self, *message: Any) -> Any:
        """Send a request and return the reply; re-raise a worker error here."""
        _send(self._proc.stdin, message)
        status, payload = _receive(self._proc.stdout)
        if status == "error":
            kind, text = payload
            if kind in ("ImportError", "ModuleNotFoundError"):
                raise ImportError(text)
            raise RuntimeError(f"{kind} in batchup 0.2.3 worker: {text}")
        return payload

    def close(self) -> None:
        """Ask the worker to exit and reap it (safe to call twice)."""
        if self._proc.poll() is None:
            try:
                _send(self._proc.stdin, ("exit",))
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()


class _RemoteRunner:
    """Runs an implementation inside a :class:`WorkerProcess`."""

    def __init__(self, impl: Impl, worker: WorkerProcess, key: int):
        self._worker, self._key = worker, key
        worker.call("setup", key, qualified_name(impl.factory), impl.kwargs)

    def warm_up(self) -> None:
        self._worker.call("warm_up", self._key)

    def measure(self, min_time: float) -> tuple[int, float]:
        return self._worker.call("measure", self._key, min_time)

    def close(self) -> None:
        self._worker.call("drop", self._key)


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream: Any) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise RuntimeError("benchmark worker exited unexpectedly (see stderr)")
    (size,) = struct.unpack("<Q", header)
    return pickle.loads(stream.read(size))


def _worker_main() -> None:
    """Entry point of a :class:`WorkerProcess` (serves requests until told to exit)."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    runs: dict[int, Callable[[], int]] = {}
    while True:
        header = requests.read(8)
        if len(header) < 8:
            return
        (size,) = struct.unpack("<Q", header)
        op, *args = pickle.loads(requests.read(size))
        if op == "exit":
            return
        try:
            if op == "where":
                import batchup

                reply: Any = str(Path(batchup.__file__).resolve())
            elif op == "setup":
                key, path, kwargs = args
                runs[key] = resolve(path)(**kwargs)
                reply = None
            elif op == "warm_up":
                runs[args[0]]()
                reply = None
            elif op == "measure":
                reply = measure(runs[args[0]], args[1])
            elif op == "drop":
                _close_run(runs.pop(args[0], None))
                gc.collect()
                reply = None
            else:
                raise ValueError(f"unknown request {op!r}")
            _send(replies, ("ok", reply))
        except Exception as exc:  # reported to the parent, which prints the row as failed
            traceback.print_exc()
            _send(replies, ("error", (type(exc).__name__, str(exc))))


@dataclass
class Result:
    """Timings of one implementation: per-round throughputs, or why there are none."""

    impl: Impl
    rates: list[float] = field(default_factory=list)
    problem: str | None = None


def _missing(impl: Impl, ctx: Context) -> str | None:
    """Reason why ``impl`` cannot run here (a peer not installed), else ``None``."""
    absent = [m for m in impl.requires if not is_installed(m)]
    if absent:
        return "not installed (" + ", ".join(absent) + ")"
    if impl.env == BATCHUP_023 and batchup_023_path(ctx.download) is None:
        how = "pip download failed" if ctx.download else "not cached; --no-download"
        return f"not installed (batchup 0.2.3: {how})"
    return None


def _problem_text(exc: BaseException) -> str:
    """Short table cell describing why an implementation has no numbers."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, ImportError):
        return _clip(f"not installed ({text})")
    return _clip(f"error: {type(exc).__name__}: {text}")


def _clip(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_alternated(
    ctx: Context, impls: list[Impl], repeats: int, min_time: float = 0.0
) -> list[Result]:
    """Set up, warm up and time ``impls`` round-robin for ``repeats`` rounds.

    Returns one :class:`Result` per implementation, in the given order.
    """
    results = [Result(impl) for impl in impls]
    runners: list[Any] = [None] * len(impls)
    worker: WorkerProcess | None = None
    try:
        for i, result in enumerate(results):
            impl = result.impl
            result.problem = _missing(impl, ctx)
            if result.problem:
                continue
            log(f"  setting up {impl.label}")
            try:
                if impl.env == BATCHUP_023:
                    if worker is None:
                        worker = WorkerProcess(batchup_023_path(ctx.download))
                    runners[i] = _RemoteRunner(impl, worker, i)
                else:
                    runners[i] = _LocalRunner(impl)
                runners[i].warm_up()
            except Exception as exc:
                traceback.print_exc()
                result.problem = _problem_text(exc)
                runners[i] = None
        active = [i for i, runner in enumerate(runners) if runner is not None]
        for round_no in range(repeats):
            log(f"  round {round_no + 1}/{repeats}")
            shift = round_no % max(1, len(active))
            for i in active[shift:] + active[:shift]:
                if runners[i] is None:
                    continue
                try:
                    items, seconds = runners[i].measure(min_time)
                    results[i].rates.append(items / seconds)
                except Exception as exc:
                    traceback.print_exc()
                    results[i].problem = _problem_text(exc)
                    results[i].rates.clear()
                    runners[i] = None
    finally:
        for runner in runners:
            if runner is not None:
                try:
                    runner.close()
                except Exception:
                    traceback.print_exc()
        if worker is not None:
            worker.close()
    return results


def compare(
    ctx: Context,
    title: str,
    unit: str,
    impls: list[Impl],
    repeats: int,
    min_time: float = 0.0,
    notes: list[str] | None = None,
) -> tuple[Table, dict[str, float]]:
    """Time ``impls`` alternated and return the table plus ``{label: ratio to floor}``.

    ``unit`` names the throughput (e.g. ``"samples/s"``). The ratio dictionary lets a
    workload add target notes (see :func:`target_note`).
    """
    repeats = ctx.rounds(repeats)
    log(f"{title}: {repeats} rounds")
    results = run_alternated(ctx, impls, repeats, min_time)
    floors = [r for r in results if r.impl.floor and r.rates]
    floor_rates = floors[0].rates if floors else None
    table = Table(
        title=title,
        columns=["implementation", f"median {unit}", "IQR (p25-p75)", "× floor"],
        notes=list(notes or []),
    )
    ratios: dict[str, float] = {}
    for result in results:
        label = result.impl.label
        if result.problem or not result.rates:
            table.rows.append([label, "—", result.problem or "no data", "—"])
            continue
        q1, med, q3 = quartiles(result.rates)
        ratio_text = "—"
        if floor_rates is not None and len(floor_rates) == len(result.rates):
            ratio = statistics.median(r / f for r, f in zip(result.rates, floor_rates, strict=True))
            ratios[label] = ratio
            ratio_text = f"{ratio:.2f}×"
        table.rows.append([label, fmt_number(med), f"{fmt_number(q1)}–{fmt_number(q3)}",
                           ratio_text])
    table.notes.append(
        f"{repeats} alternated rounds; each measurement ≥ {min_time:g} s; ratio = median of "
        "per-round ratios to the floor."
    )
    return table, ratios


def target_note(ratios: dict[str, float], label: str, target: float) -> str:
    """One line saying whether ``label`` reached ``target`` × floor."""
    if label not in ratios:
        return f"Target for {label}: ≥ {target:.2f}× floor — not measured."
    ratio = ratios[label]
    verdict = "met" if ratio >= target else f"missed by {target - ratio:.3f}×"
    return f"Target for {label}: ≥ {target:.2f}× floor — {ratio:.3f}×, {verdict}."
