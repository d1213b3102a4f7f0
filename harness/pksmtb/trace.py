"""PKSM tracepoints recorded during a run -> per-page timelines and lifetimes.

The guest enables the chosen events under /sys/kernel/tracing/events/pksm/
before the workloads start and copies the trace buffer into the run
directory (trace.txt) when they end.  Here it becomes:

  timeline.csv       one row per page life (a pfn reused by a later page
                     starts a new row): when it was registered, passed
                     probation, merged (kind, into which KSM page) and when
                     its item was released; times in seconds of guest uptime
  merge_to_cow.png   histogram of how long merged pages lived before a
                     write broke them (COW): short lives are wasted merges
"""

from __future__ import annotations

import csv
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plot

# A merge whose page is broken by a write within this many seconds.
WASTED_S = 1.0

_LINE = re.compile(r"^\s*\S.*?\s+\[\d+\]\s+\S*\s+(\d+\.\d+):\s+(\w+):\s*(.*)$")
_KV = re.compile(r"(\w+)=(\S+)")


@dataclass
class Record:
    ts: float
    event: str
    fields: dict[str, str]

    def pfn(self, key: str = "pfn") -> int:
        return int(self.fields[key], 16)


def read_trace(path: Path) -> list[Record]:
    recs = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            recs.append(Record(float(m.group(1)), m.group(2), dict(_KV.findall(m.group(3)))))
    return recs


@dataclass
class Page:
    registered: float | None = None
    probation: float | None = None
    merged: float | None = None
    kind: str = ""
    kpfn: int | None = None
    released: float | None = None


@dataclass
class Analysis:
    lives: list[tuple[int, Page]] = field(default_factory=list)
    current: dict[int, Page] = field(default_factory=dict)
    lifetimes: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def analyse(recs: list[Record]) -> Analysis:
    """Per-page timelines; merge->COW lifetimes of merged pages.

    A pfn can be reused by a later page: each registration starts a new
    life for it.  A COW break of KSM page kpfn ends the most recent merge
    into kpfn that is still unbroken.
    """
    a = Analysis()
    live_merges: dict[int, list[float]] = {}

    def life(pfn: int) -> Page:
        if pfn not in a.current:  # born before tracing started
            a.current[pfn] = Page()
            a.lives.append((pfn, a.current[pfn]))
        return a.current[pfn]

    for r in sorted(recs, key=lambda r: r.ts):
        a.counts[r.event] = a.counts.get(r.event, 0) + 1
        if r.event == "pksm_page_registered":
            a.current[r.pfn()] = Page(registered=r.ts)
            a.lives.append((r.pfn(), a.current[r.pfn()]))
        elif r.event == "pksm_probation_passed":
            life(r.pfn()).probation = r.ts
        elif r.event == "pksm_merge":
            p = life(r.pfn())
            p.merged, p.kind, p.kpfn = r.ts, r.fields.get("kind", ""), r.pfn("kpfn")
            if p.kind != "zero":
                live_merges.setdefault(r.pfn("kpfn"), []).append(r.ts)
        elif r.event == "pksm_cow_break":
            stack = live_merges.get(r.pfn())
            if stack:
                a.lifetimes.append(r.ts - stack.pop())
        elif r.event == "pksm_item_released":
            life(r.pfn()).released = r.ts
            del a.current[r.pfn()]
    return a


def write_timeline(a: Analysis, out: Path) -> None:
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pfn", "registered_s", "probation_s", "merged_s", "kind", "kpfn",
                    "released_s"])
        for pfn, p in a.lives:
            w.writerow([hex(pfn), p.registered, p.probation, p.merged, p.kind,
                        hex(p.kpfn) if p.kpfn is not None else "", p.released])


def summary(a: Analysis) -> dict[str, Any]:
    out: dict[str, Any] = {"events": dict(sorted(a.counts.items())),
                           "pages": len(a.lives),
                           "cow_after_merge": len(a.lifetimes),
                           "wasted_merges": sum(1 for x in a.lifetimes if x < WASTED_S),
                           "wasted_threshold_s": WASTED_S}
    if a.lifetimes:
        out["merge_to_cow_median_s"] = round(statistics.median(a.lifetimes), 4)
    waits = [p.probation - p.registered for _, p in a.lives
             if p.probation is not None and p.registered is not None]
    if waits:
        out["probation_median_s"] = round(statistics.median(waits), 4)
    return out


def process_run(run_dir: Path, title: str) -> dict[str, Any] | None:
    """Analyse run_dir/trace.txt if the run recorded one."""
    path = run_dir / "trace.txt"
    if not path.is_file():
        return None
    a = analyse(read_trace(path))
    write_timeline(a, run_dir / "timeline.csv")
    plot.plot_lifetimes(a.lifetimes, WASTED_S, run_dir / "merge_to_cow.png", title)
    return summary(a)
