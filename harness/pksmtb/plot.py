"""PNG of savings over time (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from .sampling import MIB, PAGE_SIZE, Series, saved_pages


def plot_savings(series: Series, out: Path, title: str,
                 filled_t_ms: int | None = None, achievable: int | None = None) -> Path | None:
    """Saved MiB against seconds; the fill moment and the achievable saving marked."""
    if not series.rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
