"""What a finished run directory holds, read once each, for the metrics."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from .. import console, results, sampling


class RunData:
    """A run directory's summary.json, events.json and timeseries.csv,
    each read when first asked for; a file that is not there reads as
    empty (a metric then has nothing to say: None)."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir

    @cached_property
    def summary(self) -> dict[str, Any]:
        p = self.dir / "summary.json"
        return results.read_json(p) if p.is_file() else {}

    @cached_property
    def meta(self) -> dict[str, Any]:
        p = self.dir / "meta.json"
        return results.read_json(p) if p.is_file() else {}

    @cached_property
    def console(self) -> console.Console:
        if (self.dir / console.EVENTS_FILE).is_file():
            return console.load_events(self.dir)
        return console.Console()

    @cached_property
    def series(self) -> sampling.Series:
        p = self.dir / "timeseries.csv"
        return sampling.read_csv(p) if p.is_file() else sampling.Series([], [])

    def event(self, name: str) -> dict[str, float] | None:
        """The numeric fields of the run's last NAME event, or None."""
        evs = self.console.events_named(name)
        return evs[-1].floats() if evs else None

    def delta(self, column: str) -> float | None:
        """COLUMN's growth from the first sample to the last; None if the
        samples do not have it."""
        rows = self.series.rows
        if not rows or column not in rows[0] or column not in rows[-1]:
            return None
        return float(rows[-1][column] - rows[0][column])

    def last(self, column: str) -> float | None:
        rows = self.series.rows
        return float(rows[-1][column]) if rows and column in rows[-1] else None
