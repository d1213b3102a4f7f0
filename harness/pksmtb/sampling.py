"""timeseries.csv (written by the guest's sampler) -> figures.

"Saved" follows upstream KSM's accounting: every page mapping a shared KSM
page except the first saves a page (pages_sharing), and every page mapped
to the kernel's zero page by the merger saves one (ksm_zero_pages).  Both
variants keep those upstream counters, so one definition serves both.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGE_SIZE = 4096
MIB = 1 << 20


@dataclass
class Series:
    columns: list[str]
    rows: list[dict[str, int]]

    def column(self, name: str) -> list[int]:
        return [r.get(name, 0) for r in self.rows]


def parse_row(header: list[str], cells: list[str]) -> dict[str, int] | None:
    """One CSV record as counters; None for a torn or malformed line."""
    if len(cells) != len(header):
        return None
    try:
        return {k: int(v) for k, v in zip(header, cells)}
    except ValueError:
        return None


def read_csv(path: Path) -> Series:
    """Parse the sampler's CSV; a torn last line (guest stopped mid-write) is dropped."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return Series([], [])
        rows = [row for row in (parse_row(header, rec) for rec in reader) if row is not None]
    return Series(header, rows)


class Follower:
    """Reads a CSV the guest is still writing, new complete lines each time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: list[str] = []
        self.rows: list[dict[str, int]] = []
        self._offset = 0
        self._partial = ""

    def poll(self) -> list[dict[str, int]]:
        """The rows that arrived since the last poll."""
        try:
            with open(self.path) as f:
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except OSError:
            return []
        *lines, self._partial = (self._partial + data).split("\n")
        new = []
        for line in lines:
            cells = line.split(",")
            if not self.header:
                self.header = cells
                continue
            row = parse_row(self.header, cells)
            if row is not None:
                new.append(row)
        self.rows += new
        return new


def saved_pages(row: dict[str, int]) -> int:
    return row.get("ksm_pages_sharing", 0) + row.get("ksm_ksm_zero_pages", 0)


def busy_ns(row: dict[str, int]) -> int | None:
    """The merge daemon's own busy-time counter (PKSM's, else ksmd's)."""
    for key in ("pksm_busy_ns", "ksm_ksmd_busy_ns"):
        if key in row:
            return row[key]
    return None


def cpu_ns(row: dict[str, int]) -> int | None:
    """The merge daemon's own CPU-time counter (PKSM's, else ksmd's)."""
    for key in ("pksm_cpu_ns", "ksm_ksmd_cpu_ns"):
        if key in row:
            return row[key]
    return None


def time_to_fraction(series: Series, start_ms: int, target_pages: float) -> float | None:
    """Seconds from start_ms until saved pages first reach target_pages."""
    for r in series.rows:
        if r["t_ms"] >= start_ms and saved_pages(r) >= target_pages:
            return (r["t_ms"] - start_ms) / 1000.0
    return None


def summarize(series: Series, filled_t_ms: int | None, achievable: int | None) -> dict[str, Any]:
    """The figures of a run: peak saving, time to 50 %/90 %, daemon CPU."""
    out: dict[str, Any] = {"samples": len(series.rows)}
    if not series.rows:
        return out
    first, last = series.rows[0], series.rows[-1]
    peak = max(saved_pages(r) for r in series.rows)
    out["peak_saved_pages"] = peak
    out["peak_saved_mib"] = round(peak * PAGE_SIZE / MIB, 2)
    out["duration_s"] = round((last["t_ms"] - first["t_ms"]) / 1000.0, 3)
    b0, b1 = busy_ns(first), busy_ns(last)
    out["daemon_busy_s"] = round((b1 - b0) / 1e9, 4) if b0 is not None and b1 is not None else None
    c0, c1 = cpu_ns(first), cpu_ns(last)
    if c0 is not None and c1 is not None:    # kernels that count CPU time
        out["daemon_cpu_s"] = round((c1 - c0) / 1e9, 4)
    if "daemon_cpu_ticks" in first and first["daemon_cpu_ticks"] >= 0:
        # Tick-sampled (10 ms steps under UML): kept for reference only.
        out["daemon_cpu_ticks_s"] = (last["daemon_cpu_ticks"] - first["daemon_cpu_ticks"]) / 100.0
    for key in ("ksm_full_scans", "ksm_pages_scanned"):
        if key in first:
            out[key.removeprefix("ksm_") + "_delta"] = last[key] - first[key]
    out["achievable_pages"] = achievable
    if achievable:
        out["saved_fraction"] = round(peak / achievable, 4)
        start = filled_t_ms if filled_t_ms is not None else first["t_ms"]
        out["t50_s"] = time_to_fraction(series, start, 0.5 * achievable)
        out["t90_s"] = time_to_fraction(series, start, 0.9 * achievable)
    return out
