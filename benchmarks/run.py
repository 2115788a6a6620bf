"""Run batchup's benchmarks and print markdown tables.

Usage (from the repository root; ``PYTHONPATH`` need not be set)::

    python benchmarks/run.py                 # every workload of every benchmarks/bench_*.py
    python benchmarks/run.py W1 import       # only the named workloads
    python benchmarks/run.py --quick         # small data, two rounds: a smoke run
    python benchmarks/run.py --repeats 9     # override the number of alternated rounds
    python benchmarks/run.py --list          # list the discovered workloads
    python benchmarks/run.py --chart c.png --markdown c.md   # also a chart and the tables

Workloads are discovered from ``benchmarks/bench_*.py`` modules defining ``WORKLOADS`` (see
the conventions at the top of ``benchmarks/harness.py``). Tables go to stdout, progress to
stderr. The working tree's ``batchup`` is the one measured: the repository root is put first
on ``sys.path``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.harness import Context, Table, log, machine_header  # noqa: E402


def discover() -> dict[str, tuple[str, object]]:
    """Map workload name → (module name, function) over every ``bench_*.py`` module."""
    found: dict[str, tuple[str, object]] = {}
    for path in sorted((REPO_ROOT / "benchmarks").glob("bench_*.py")):
        module_name = f"benchmarks.{path.stem}"
        try:
            module = importlib.import_module(module_name)
        except Exception:
            log(f"skipping {module_name}: it failed to import")
            traceback.print_exc()
            continue
        for name, func in getattr(module, "WORKLOADS", {}).items():
            if name in found:
                log(f"workload {name} of {module_name} shadows {found[name][0]}; skipped")
                continue
            found[name] = (module_name, func)
    return found


def as_page(report: str) -> str:
    """The printed report as a page of its own: headings one level up (a title, then the
    tables as sections), so that a docs site can include it."""
    lines = report.splitlines()
    out = []
    for line in lines:
        if line.startswith("## batchup benchmarks"):
            line = line[1:]
        elif line.startswith("### "):
            line = line[1:]
        out.append(line)
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", help="workload names (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="alternated rounds per workload (default: each workload's own)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--list", action="store_true", help="list workloads and exit")
    parser.add_argument("--chart", metavar="PNG", default=None,
                        help="also draw the ratios to each floor as a PNG (needs matplotlib: "
                             "pip install '.[bench]')")
    parser.add_argument("--markdown", metavar="FILE", default=None,
                        help="also write the header and tables printed to this file")
    parser.add_argument("--no-download", action="store_true",
                        help="do not pip-download batchup 0.2.3 if it is not cached")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads and print their tables; returns the exit status."""
    args = parse_args(argv)
    available = discover()
    if args.list:
        for name, (module_name, func) in available.items():
            summary = (getattr(func, "__doc__", None) or "").strip().splitlines()[:1]
            print(f"{name:10s} {module_name:28s} {' '.join(summary)}")
        return 0
    by_lower = {name.lower(): name for name in available}
    selected = []
    for wanted in args.workloads or list(available):
        name = by_lower.get(wanted.lower())
        if name is None:
            print(f"unknown workload {wanted!r}; available: {', '.join(available)}",
                  file=sys.stderr)
            return 2
        selected.append(name)
    ctx = Context(repeats=args.repeats, quick=args.quick, download=not args.no_download)
    if args.chart:
        import matplotlib  # noqa: F401 - fail now, not after an hour of benchmarks
    header = machine_header()
    report = ["## batchup benchmarks" + (" (--quick smoke run)" if args.quick else ""), "",
              header, ""]
    print("\n".join(report), flush=True)
    done: list[Table] = []
    start = time.perf_counter()
    for name in selected:
        _, func = available[name]
        try:
            tables = func(ctx)
        except Exception:
            log(f"workload {name} failed:")
            traceback.print_exc()
            tables = Table(f"{name} — failed (see stderr)", ["result"], [["error"]])
        for table in tables if isinstance(tables, list) else [tables]:
            print(table.render())
            print(flush=True)
            report += [table.render(), ""]
            done.append(table)
    wall = f"Total wall time: {time.perf_counter() - start:.0f} s"
    log(wall)
    report.append(wall)
    if args.markdown:
        if args.chart:  # the page shows its chart, linked relative to the page
            rel = os.path.relpath(Path(args.chart).resolve(), Path(args.markdown).resolve().parent)
            report[2:2] = [f"![The ratios of every table below]({rel})", ""]
        Path(args.markdown).write_text(as_page("\n".join(report)) + "\n", encoding="utf-8")
    if args.chart:
        from benchmarks.chart import write_chart

        caption = " · ".join(line.strip() for line in header.splitlines() if line.strip())
        try:
            log(f"chart written to {write_chart(done, caption, args.chart)}")
        except ValueError as exc:  # e.g. only the import-time table: no ratios to draw
            log(f"no chart: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
