"""Every figure the harness draws (matplotlib, headless): PNGs of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .sampling import MIB, PAGE_SIZE, Series, saved_pages


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, plt: Any, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_savings(series: Series, out: Path, title: str,
                 filled_t_ms: int | None = None, achievable: int | None = None) -> Path | None:
    """Saved MiB against seconds; the fill moment and the achievable saving marked."""
    if not series.rows:
        return None
    plt = _pyplot()
    t0 = series.rows[0]["t_ms"]
    xs = [(r["t_ms"] - t0) / 1000.0 for r in series.rows]
    ys = [saved_pages(r) * PAGE_SIZE / MIB for r in series.rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(xs, ys, label="saved (pages_sharing + ksm_zero_pages)")
    if achievable:
        ax.axhline(achievable * PAGE_SIZE / MIB, linestyle="--", color="grey",
                   label="achievable")
    if filled_t_ms is not None:
        ax.axvline((filled_t_ms - t0) / 1000.0, linestyle=":", color="green",
                   label="workload filled")
    ax.set_xlabel("time since sampling started (s)")
    ax.set_ylabel("saved memory (MiB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, plt, out)


def plot_lifetimes(lifetimes_s: list[float], wasted_s: float, out: Path,
                   title: str) -> Path | None:
    """Histogram of merge-to-COW lifetimes; the 'wasted merge' threshold marked."""
    if not lifetimes_s:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.hist([x * 1000 for x in lifetimes_s], bins=50)
    ax.axvline(wasted_s * 1000, linestyle="--", color="red",
               label=f"wasted merge (< {wasted_s:g} s)")
    ax.set_xlabel("merge to COW break (ms)")
    ax.set_ylabel("merged pages")
    ax.set_title(title)
    ax.legend()
    return _save(fig, plt, out)
