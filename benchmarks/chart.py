"""The benchmark chart: throughput of every implementation relative to its workload's floor.

``write_chart(tables, caption, path)`` draws one panel per table that has a
``× floor`` column -- a horizontal bar per row, batchup's rows in one colour,
floors, ceilings and bandwidth references in grey, peers in another -- with a
line at 1× (the floor) and the machine and versions as the caption, and
saves it as a PNG. matplotlib is imported here only (the ``bench`` extra).

It can also redraw the chart of a saved report (``run.py --markdown``)::

    python benchmarks/chart.py docs/benchmarks.md docs/benchmarks.png
    python benchmarks/chart.py docs/benchmarks.md summary.png W1 W8 W9   # some workloads
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Table  # noqa: E402

_RATIO = re.compile(r"^\s*([0-9.]+)\s*×")

# Bar colours by what a row is (the label says: "batchup ...", "floor: ...", ...).
_OURS, _REFERENCE, _PEER = "#2a6fb0", "#9a9a9a", "#d9822b"


def _kind(label: str) -> str:
    lower = label.lower()
    if lower.startswith(("floor", "ceiling", "bandwidth", "serial")):
        return _REFERENCE
    if lower.startswith("batchup") and "0.2.3" not in lower:
        return _OURS
    return _PEER


def chart_rows(table: Table) -> list[tuple[str, float]]:
    """(label, ratio to the floor) of every row of ``table`` that has a ratio."""
    try:
        col = table.columns.index("× floor")
    except ValueError:
        return []
    rows = []
    for row in table.rows:
        match = _RATIO.match(row[col]) if col < len(row) else None
        if match:
            rows.append((row[0], float(match.group(1))))
    return rows


def write_chart(tables: list[Table], caption: str, path: str | Path) -> Path:
    """Draw the tables with ratios as one PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    panels = [(t.title, chart_rows(t)) for t in tables]
    panels = [(title, rows) for title, rows in panels if rows]
    if not panels:
        raise ValueError("no table with a '× floor' column to draw")
    heights = [0.6 + 0.28 * len(rows) for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(heights) + 1.2),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels, strict=True):
        labels = [label if len(label) <= 70 else label[:67] + "..." for label, _ in rows]
        values = [v for _, v in rows]
        y = range(len(rows))
        ax.barh(list(y), values, color=[_kind(label) for label, _ in rows], height=0.7)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}×", va="center", fontsize=7)
        ax.set_xlim(0, max(values) * 1.15 + 0.05)
        ax.set_title(title if len(title) <= 100 else title[:97] + "...", fontsize=9,
                     loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("throughput ÷ the workload's floor (1× = plain NumPy loop); "
                           "blue: batchup, grey: floors and ceilings, orange: peers",
                           fontsize=8)
    fig.text(0.01, 0.003, caption, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def tables_from_markdown(text: str) -> tuple[list[Table], str]:
    """The tables of a saved report, and its machine lines joined as a caption."""
    tables: list[Table] = []
    caption: list[str] = []
    current: Table | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = Table(line[3:].strip(), [])
            tables.append(current)
        elif current is None:
            if line.strip() and not line.startswith(("#", "![")):
                caption.append(line.strip())
        elif line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not current.columns:
                current.columns = cells
            else:
                current.rows.append(cells)
    return tables, " · ".join(caption)


def main(argv: list[str] | None = None) -> int:
    """``chart.py REPORT.md OUT.png [WORKLOAD ...]``: redraw the chart of a saved report
    (only the named workloads' tables, when given)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python benchmarks/chart.py REPORT.md OUT.png [WORKLOAD ...]",
              file=sys.stderr)
        return 2
    tables, caption = tables_from_markdown(Path(args[0]).read_text(encoding="utf-8"))
    wanted = args[2:]
    if wanted:
        tables = [t for t in tables if t.title.split(" ", 1)[0] in wanted]
    print(write_chart(tables, caption, args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
