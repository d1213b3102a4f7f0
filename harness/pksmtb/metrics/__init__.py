"""Named metric functions: a finished run directory in, one number out.

A metric is a function of a run (RunData: its summary.json, events.json
and timeseries.csv, each read once when first asked for) that gives a
float, or None when the run holds no such figure (a counter the kernel
lacks, a path that did not run).  Each lives in a module of its own kind
(run.py: every run's derived figures; swap.py: the zswap bench's) and is
registered here by name, so a
sweep spec can ask for it by name (sweepspec: [sweep].metrics) and the
sweep's report computes it (sweepreport.run_figures).

    from pksmtb import metrics
    metrics.compute(run_dir, ["pool_peak_bytes", "compress_calls"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .rundata import RunData as RunData

Metric = Callable[[RunData], float | None]
_REGISTRY: dict[str, tuple[Metric, str]] = {}


def metric(name: str, doc: str) -> Callable[[Metric], Metric]:
    """Register the decorated function under NAME (one home per name)."""
    def wrap(fn: Metric) -> Metric:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} registered twice")
        _REGISTRY[name] = (fn, doc)
        return fn
    return wrap


def known() -> list[str]:
    """Every registered metric's name, sorted."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    """A metric's one-line description (KeyError for an unknown name)."""
    return _REGISTRY[name][1]


def compute(run: Path | RunData, names: list[str]) -> dict[str, float]:
    """NAMES' values for RUN, leaving out those it has none for.  An
    unknown name is a KeyError (a spec names only known metrics)."""
    data = run if isinstance(run, RunData) else RunData(run)
    out: dict[str, float] = {}
    for name in names:
        fn = _REGISTRY[name][0]
        value = fn(data)
        if value is not None:
            out[name] = float(value)
    return out


# The modules that register metrics, imported for that effect.
from . import run, swap  # noqa: E402,F401
