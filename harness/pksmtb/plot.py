"""The harness's figures (matplotlib, headless: the Agg backend), PNGs.

A run's saved memory over time (runner.py) and its merge-to-COW lifetimes
(trace.py); a sweep's figure per metric and its co-runner slowdown
(sweepreport.py); the frontier of merge engines is drawn by frontier.py
with the helpers here.  Every figure keeps these rules (test_plot.py
checks them on the figures themselves):

* its title names the engine and the build each figure came from: the
  build name (pksm, ksm, pksm-debug...), its build id and the source
  revision it was built from ("dirty": the sources differed from it), as
  the build record says (buildinfo.py; source_text());
* both axes are labelled, with their units;
* the value axis starts at zero (ylim_from_zero());
* a spread is a 95 % interval, never mean ± one standard deviation: the
  t interval of a mean (stats.mean_interval) or of a paired ratio
  (stats.paired_ratio); a point that has none (one value, no spread) is
  drawn without a bar, and the title says which interval is drawn;
* points are joined by a line only along a numeric knob: the cells of a
  categorical axis (the daemon on and off, a 0/1 switch, the vCPU count)
  are separate points, never joined;
* nothing is cut off or drawn over something else: the layout is
  matplotlib's constrained one, long titles are wrapped to the figure's
  width, legends lie inside the figure, tick labels name only what
  differs between cells (layout_problems() finds any text outside the
  figure or over another).

Each figure has a builder (figure_*, which returns the matplotlib Figure,
for the tests) and a writer (plot_*, which saves the PNG and closes it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import stats
from .sampling import MIB, PAGE_SIZE, Series, saved_pages

LEVEL_TEXT = f"{100 * stats.LEVEL:g} %"


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def subplots(*args: Any, **kw: Any) -> tuple[Any, Any]:
    """plt.subplots() with the constrained layout: titles, labels and
    legends are given room, not cut off."""
    return _pyplot().subplots(*args, layout="constrained", **kw)  # type: ignore[no-any-return]


def wrap(text: str, inches: float, fontsize: float = 10.0) -> str:
    """TEXT with each line wrapped to fit INCHES at FONTSIZE points (a
    conservative 0.62 em a character), continued lines indented."""
    chars = max(20, int(inches * 72 / (0.62 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, subsequent_indent="  ", break_long_words=False,
                                   break_on_hyphens=False)
                     for line in text.splitlines())


def save(fig: Any, out: Path) -> Path:
    """Write FIG to OUT (through a temporary file, so a reader never sees
    half a PNG) and close it."""
    plt = _pyplot()
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        fig.savefig(tmp)
        tmp.replace(out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out


# ---- where a figure came from -------------------------------------------------------

def build_text(name: str, pin: Mapping[str, Any] | None) -> str:
    """'pksm build 5c2c62184ace, revision bbe96ab1c2d3' for build NAME as
    PIN (a build record or a sweep's pin: id, revision, dirty, clean_at,
    binary_sha256) describes it; 'dirty' when its sources differed from
    the revision, the binary's hash when it has no id.  A build made in a
    dirty tree whose sources a commit was later found to equal (the
    record's clean_at) names that commit: 'sources of revision R (built
    at B, dirty)'."""
    pin = pin or {}
    bid = pin.get("id") or pin.get("build_id")
    if not bid and pin.get("binary_sha256"):
        bid = f"binary {str(pin['binary_sha256'])[:12]}"
    text = f"{name} build {bid or 'unknown'}"
    rev = pin.get("revision")
    clean = [str(c) for c in pin.get("clean_at") or []]
    if clean:
        # built in a dirty tree whose sources a later commit equals: that
        # commit is what it was built from
        text += f", sources of revision {clean[0][:12]}"
        if rev and rev != "unknown" and rev != clean[0]:
            text += f" (built at {str(rev)[:12]}" + (", dirty)" if pin.get("dirty") else ")")
    elif rev and rev != "unknown":
        text += f", revision {str(rev)[:12]}" + (" (dirty)" if pin.get("dirty") else "")
    return text


def source_text(builds: Mapping[str, Mapping[str, Any] | None]) -> str:
    """Every build of BUILDS (name -> pin), for a title."""
    return "; ".join(build_text(n, p) for n, p in sorted(builds.items())) or "build unknown"


def run_builds(meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The build a run booted, from its meta.json: {name: pin}."""
    rec = meta.get("build") or {}
    return {str(meta.get("kernel_build") or "kernel"): {
        "id": meta.get("build_id"), "revision": rec.get("revision"),
        "dirty": rec.get("dirty"), "clean_at": rec.get("clean_at") or [],
        "binary_sha256": meta.get("kernel_binary_sha256")}}


def ylim_from_zero(ax: Any) -> None:
    """The value axis from zero (or from the lowest value drawn, bars
    included, if that is below zero)."""
    ax.set_ylim(bottom=min(0.0, float(ax.dataLim.y0)))


def interval_err(values: list[tuple[float, float | None, float | None]]
                 ) -> list[list[float]]:
    """matplotlib's asymmetric yerr for (value, lo, hi): no bar where there
    is no interval."""
    return [[v - lo if lo is not None else 0.0 for v, lo, _ in values],
            [hi - v if hi is not None else 0.0 for v, _, hi in values]]


def _texts(fig: Any, renderer: Any) -> list[tuple[str, Any]]:
    """Every visible text of FIG (titles, labels, tick labels, the axis
    offset, annotations) and every legend, with its extent in pixels."""
    out: list[tuple[str, Any]] = []

    def add(what: str, artist: Any) -> None:
        if artist is not None and artist.get_visible() and (
                not hasattr(artist, "get_text") or artist.get_text()):
            out.append((what, artist.get_window_extent(renderer)))
    sup = getattr(fig, "_suptitle", None)
    add(f"suptitle {sup.get_text()[:40]!r}" if sup is not None else "", sup)
    for leg in fig.legends:
        add("figure legend", leg)
    for n, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for what, t in (("title", ax.title), ("xlabel", ax.xaxis.label),
                        ("ylabel", ax.yaxis.label), ("offset", ax.yaxis.get_offset_text())):
            add(f"axes {n} {what} {t.get_text()[:40]!r}", t)
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks():
                if lo - eps <= tick.get_loc() <= hi + eps:
                    add(f"axes {n} tick label {tick.label1.get_text()[:30]!r}", tick.label1)
        for t in ax.texts:
            add(f"axes {n} text {t.get_text()[:30]!r}", t)
        add(f"axes {n} legend", ax.get_legend())
    return out


def layout_problems(fig: Any) -> list[str]:
    """What is wrong with FIG's layout once drawn: a text or legend that
    runs past the figure's edge, two that lie over each other.  Empty when
    nothing is clipped or overprinted."""
    fig.canvas.draw()
    texts = _texts(fig, fig.canvas.get_renderer())
    fb = fig.bbox
    out = [f"{what} runs past the figure" for what, bb in texts
           if bb.x0 < fb.x0 - 1 or bb.y0 < fb.y0 - 1 or bb.x1 > fb.x1 + 1 or bb.y1 > fb.y1 + 1]
    for i, (a, abb) in enumerate(texts):
        for b, bbb in texts[i + 1:]:
            w = min(abb.x1, bbb.x1) - max(abb.x0, bbb.x0)
            h = min(abb.y1, bbb.y1) - max(abb.y0, bbb.y0)
            if w > 1 and h > 1:
                out.append(f"{a} lies over {b}")
    return out


def place_labels(ax: Any, xy: list[tuple[float, float]], texts: list[str],
                 fontsize: float = 8.0) -> list[Any]:
    """Annotate the points XY (data coordinates) with TEXTS, each put at the
    first of a few offsets around its point where it lies over no label
    placed before it and stays inside the axes."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    offsets = [(4, 4), (4, -12), (-14, 4), (-14, -12), (4, 14), (-14, 14), (4, -22),
               (-14, -22), (14, -4), (-24, -4), (4, 24), (4, -32)]
    placed: list[Any] = []
    out = []
    for (x, y), text in zip(xy, texts):
        ann: Any = None
        for dx, dy in offsets:
            if ann is not None:
                ann.remove()
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=fontsize)
            bb = ann.get_window_extent(renderer)
            inside = box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1
            if inside and not any(bb.padded(2).overlaps(p) for p in placed):
                break
        assert ann is not None
        placed.append(ann.get_window_extent(renderer))
        out.append(ann)
    return out


# ---- a run --------------------------------------------------------------------------

def run_title(scenario: str, meta: Mapping[str, Any]) -> str:
    """'SCENARIO on BUILD' and the build's id and revision (two lines)."""
    builds = run_builds(meta)
    return f"{scenario} on {next(iter(builds))}\n{source_text(builds)}"


def figure_savings(series: Series, title: str, filled_t_ms: int | None = None,
                   achievable: int | None = None) -> Any:
    """Saved MiB against seconds; the fill moment and the achievable saving
    marked.  None without samples."""
    if not series.rows:
        return None
    t0 = series.rows[0]["t_ms"]
    xs = [(r["t_ms"] - t0) / 1000.0 for r in series.rows]
    ys = [saved_pages(r) * PAGE_SIZE / MIB for r in series.rows]
    fig, ax = subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(xs, ys, label="saved (pages_sharing + ksm_zero_pages)")
    if achievable:
        ax.axhline(achievable * PAGE_SIZE / MIB, linestyle="--", color="grey",
                   label="achievable")
    if filled_t_ms is not None:
        ax.axvline((filled_t_ms - t0) / 1000.0, linestyle=":", color="green",
                   label="workload filled")
    ax.set_xlabel("time since sampling started (s)")
    ax.set_ylabel("saved memory (MiB)")
    ax.set_title(wrap(title, fig.get_figwidth()), fontsize="medium")
    ylim_from_zero(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_savings(series: Series, out: Path, title: str,
                 filled_t_ms: int | None = None, achievable: int | None = None) -> Path | None:
    """figure_savings() into OUT."""
    fig = figure_savings(series, title, filled_t_ms, achievable)
    return None if fig is None else save(fig, out)


def figure_lifetimes(lifetimes_s: list[float], wasted_s: float, title: str) -> Any:
    """Histogram of merge-to-COW lifetimes; the 'wasted merge' threshold
    marked.  None without lifetimes."""
    if not lifetimes_s:
        return None
    fig, ax = subplots(figsize=(8, 4.5), dpi=100)
    ax.hist([x * 1000 for x in lifetimes_s], bins=50)
    ax.axvline(wasted_s * 1000, linestyle="--", color="red",
               label=f"wasted merge (< {wasted_s:g} s)")
    ax.set_xlabel("merge to COW break (ms)")
    ax.set_ylabel("merged pages (count)")
    ax.set_title(wrap(title, fig.get_figwidth()), fontsize="medium")
    ylim_from_zero(ax)
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_lifetimes(lifetimes_s: list[float], wasted_s: float, out: Path,
                   title: str) -> Path | None:
    """figure_lifetimes() into OUT."""
    fig = figure_lifetimes(lifetimes_s, wasted_s, title)
    return None if fig is None else save(fig, out)


# ---- a sweep ------------------------------------------------------------------------

# Axes whose values are categories even when they are numbers.
CATEGORICAL_AXES = ("daemon", "vcpus", "scenario", "variant")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def joined(axis: str, values: list[str]) -> bool:
    """Are points along AXIS (its VALUES) joined by a line?  Only along a
    numeric knob that is not a switch (values 0 and 1 only)."""
    nums = [_number(v) for v in values]
    if axis in CATEGORICAL_AXES or any(n is None for n in nums):
        return False
    return not set(nums) <= {0.0, 1.0}


def sweep_revision(rep: Mapping[str, Any]) -> str | None:
    """The git revision the sweep's last invocation ran at (its harness and,
    for a report from before builds were recorded, the sources its kernels
    were built from), 'R (dirty)' when its tree differed; None if not
    recorded."""
    inv = (rep.get("reproduce") or [{}])[-1] or {}
    rev = str(inv.get("harness_revision") or inv.get("git_revision") or "")
    if not rev or rev == "unknown":
        return None
    dirty = rev.endswith("-dirty")
    return rev.removesuffix("-dirty")[:12] + (" (dirty)" if dirty else "")


def sweep_sources(rep: Mapping[str, Any]) -> str:
    """The engines of a sweep's report and the builds its boots ran; for a
    report that does not record its builds, the revision the sweep ran at."""
    engines = sorted({str(c["coords"].get("variant", "?")) for c in rep["cells"]})
    builds = rep.get("builds") or {}
    if builds:
        return f"engine {', '.join(engines)}: {source_text(builds)}"
    rev = sweep_revision(rep)
    return (f"engine {', '.join(engines)}: build not recorded in this report"
            + (f"; the sweep ran at revision {rev}" if rev else ""))


def cell_names(rep: Mapping[str, Any], labels: list[str]) -> tuple[list[str], str]:
    """Short names for the cells of REP labelled LABELS: the coordinates
    that differ between them, one a line ("pages_to_scan=100"), and what
    they all share ("real-pyserve/ksm, daemon=on, ...")."""
    coords = {c["label"]: {str(k): str(v) for k, v in c["coords"].items()} for c in rep["cells"]}
    mine = [coords.get(lbl, {}) for lbl in labels]
    keys = sorted(dict.fromkeys(k for d in mine for k in d),
                  key=lambda k: k not in ("scenario", "variant"))
    varying = [k for k in keys if len({d.get(k) for d in mine}) > 1]
    names = ["\n".join(f"{k.split('.')[-1]}={d[k]}" if k not in ("scenario", "variant")
                       else Path(d[k]).stem for k in varying if k in d) or lbl
             for d, lbl in zip(mine, labels)]
    same = [k for k in keys if k not in varying]
    shared = ", ".join(Path(mine[0][k]).stem if k in ("scenario", "variant")
                       else f"{k.split('.')[-1]}={mine[0][k]}" for k in same if k in mine[0])
    return names, shared


def sweep_x_axis(rep: Mapping[str, Any]) -> str | None:
    """The axis a sweep's figures are drawn against: the numeric knob with
    the most values, else any axis with the most values; None if nothing
    varies."""
    varying = [a for a, vs in rep["axes"].items() if len(vs) > 1]
    if not varying:
        return None
    knobs = [a for a in varying if joined(a, rep["axes"][a])]
    return str(max(knobs or varying, key=lambda a: len(rep["axes"][a])))


Point = tuple[float, float, float | None, float | None]   # x, mean, lo, hi


def sweep_lines(rep: Mapping[str, Any], m: str, x_axis: str
                ) -> dict[str, dict[str, list[Point]]]:
    """scenario -> line label (the other coordinates that vary) -> points:
    the mean of METRIC's values and its 95 % t interval at each value of
    X_AXIS (its index, for a categorical axis)."""
    xs_text = rep["axes"][x_axis]
    join = joined(x_axis, xs_text)
    panels: dict[str, dict[str, list[Point]]] = {}
    for c in rep["cells"]:
        vals = [float(v) for v in c["figures"].get(m, {}).get("values") or [] if v is not None]
        if not vals:
            continue
        mi = stats.mean_interval(vals)
        assert mi.mean is not None
        label = " ".join(f"{k.split('.')[-1]}={v}" for k, v in c["coords"].items()
                         if k not in (x_axis, "scenario") and (
                             k == "variant" or len(rep["axes"].get(k, [])) > 1))
        xv = c["coords"][x_axis]
        x = _number(xv) if join else float(xs_text.index(xv))
        assert x is not None
        panel = Path(str(c["coords"]["scenario"])).stem
        panels.setdefault(panel, {}).setdefault(label, []).append((x, mi.mean, mi.lo, mi.hi))
    return panels


def figure_sweep(rep: Mapping[str, Any], m: str, label: str) -> Any:
    """A sweep's figure of metric M (axis label LABEL, with its unit): the
    mean and its 95 % t interval against the sweep's x axis, a panel per
    scenario (each its own scale), a line (or, on a categorical axis, a
    row of separate points, side by side) per combination of the other
    coordinates; a bar per cell when nothing is swept.  None without
    values."""
    x_axis = sweep_x_axis(rep)
    head = (f"{rep['sweep']}: {label}, mean and {LEVEL_TEXT} t interval "
            f"(n={rep['repeats']} a cell; no bar: no interval)\n{sweep_sources(rep)}")
    if x_axis is None:
        cells = []
        for c in rep["cells"]:
            vals = [float(v) for v in c["figures"].get(m, {}).get("values") or []
                    if v is not None]
            if vals:
                mi = stats.mean_interval(vals)
                assert mi.mean is not None
                cells.append((c["label"], (mi.mean, mi.lo, mi.hi)))
        if not cells:
            return None
        fig, ax = subplots(figsize=(7, 4.6))
        ax.bar(range(len(cells)), [v[0] for _, v in cells],
               yerr=interval_err([v for _, v in cells]), capsize=4)
        names, shared = cell_names(rep, [lbl for lbl, _ in cells])
        ax.set_xticks(range(len(cells)), names, fontsize="small")
        ax.set_xlabel(wrap(f"cell ({shared})" if shared else "cell", 0.8 * fig.get_figwidth()))
        ax.set_ylabel(label)
        ylim_from_zero(ax)
        ax.set_title(wrap(head, fig.get_figwidth(), 8.33), fontsize="small")
        ax.grid(alpha=0.3)
        return fig
    panels = sweep_lines(rep, m, x_axis)
    if not panels:
        return None
    xs_text = rep["axes"][x_axis]
    join = joined(x_axis, xs_text)
    n = len(panels)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = subplots(rows, cols, figsize=(6.5 * cols, 3.4 * rows + 1.2), squeeze=False)
    for ax, (panel, lines) in zip(axes.flat, sorted(panels.items())):
        k = len(lines)
        for i, (lbl, pts) in enumerate(sorted(lines.items())):
            pts.sort()
            # separate points side by side, so that their bars do not hide each other
            dx = 0.0 if join else (i - (k - 1) / 2) * min(0.6 / k, 0.15)
            ax.errorbar([p[0] + dx for p in pts], [p[1] for p in pts],
                        yerr=interval_err([p[1:] for p in pts]), marker="o", capsize=4,
                        linestyle="-" if join else "none", label=lbl or None)
        ax.set_title(panel, fontsize="medium")
        ax.set_xlabel(x_axis + ("" if join else " (separate cells)"))
        ax.set_ylabel(wrap(label, 2.6, 8.33), fontsize="small")
        if not join:
            ax.set_xticks(range(len(xs_text)), xs_text)
            ax.set_xlim(-0.5, len(xs_text) - 0.5)
        ylim_from_zero(ax)
        if k > 1:
            ax.legend(loc="best", fontsize="x-small")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(wrap(head, fig.get_figwidth()), fontsize="medium")
    return fig


def figure_slowdown(rep: Mapping[str, Any],
                    slow: list[tuple[str, str, float, float | None, float | None]]) -> Any:
    """The co-runner slowdown of a sweep's cells (SLOW: sweepreport.slowdown(),
    (cell, how, baseline / cell throughput, lo, hi)): a point per cell with
    its 95 % t interval where the cell pairs with its baseline by repeat; a
    hollow point and no bar where it does not (the ratio of the means, no
    interval).  1 (no slowdown) marked.  None without cells."""
    if not slow:
        return None
    plt = _pyplot()
    fig, ax = subplots(figsize=(max(7.0, 1.1 * len(slow) + 2), 5.2))
    engine_of = {c["label"]: str(c["coords"].get("variant", "?")) for c in rep["cells"]}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, eng in enumerate(sorted({engine_of.get(s[0], "?") for s in slow})):
        colour = colours[k % len(colours)]
        mine = [(i, s) for i, s in enumerate(slow) if engine_of.get(s[0], "?") == eng]
        paired = [(i, s) for i, s in mine if s[3] is not None and s[1].startswith("paired")]
        other = [(i, s) for i, s in mine if (i, s) not in paired]
        if paired:
            ax.errorbar([i for i, _ in paired], [s[2] for _, s in paired],
                        yerr=interval_err([(s[2], s[3], s[4]) for _, s in paired]),
                        marker="o", capsize=4, linestyle="none", color=colour,
                        label=f"{eng}: paired, {LEVEL_TEXT} t interval")
        if other:
            ax.plot([i for i, _ in other], [s[2] for _, s in other], marker="o",
                    fillstyle="none", linestyle="none", color=colour,
                    label=f"{eng}: not paired, no interval")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--", label="no slowdown")
    names, shared = cell_names(rep, [s[0] for s in slow])
    ax.set_xticks(range(len(slow)), names, fontsize="small")
    ax.set_xlim(-0.5, len(slow) - 0.5)
    ax.set_xlabel(wrap("cell" + (f" (every cell here: {shared})" if shared else "")
                       + ", each against its baseline cell",
                       0.85 * fig.get_figwidth()))
    ax.set_ylabel("slowdown: baseline / cell throughput (x)")
    ylim_from_zero(ax)
    # room above the highest bar for the legend
    ax.set_ylim(top=1.3 * ax.get_ylim()[1])
    ax.set_title(wrap(f"{rep['sweep']}: co-runner slowdown, geometric mean of the paired "
                      f"ratios and its {LEVEL_TEXT} t interval (hollow, no bar: not paired, "
                      f"the ratio of the means)\n{sweep_sources(rep)}", fig.get_figwidth(), 8.33),
                 fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", ncols=2)
    return fig


def plot_sweep(rep: Mapping[str, Any], out_dir: Path, labels: Mapping[str, str],
               slow: list[tuple[str, str, float, float | None, float | None]]) -> list[Path]:
    """A sweep's figures into OUT_DIR: METRIC.png per metric (LABELS: each
    metric's axis label) and slowdown.png when cells have a slowdown."""
    out_dir.mkdir(exist_ok=True)
    made = []
    for m in rep["metrics"]:
        fig = figure_sweep(rep, m, labels.get(m, m))
        if fig is not None:
            made.append(save(fig, out_dir / f"{m}.png"))
    fig = figure_slowdown(rep, slow)
    if fig is not None:
        made.append(save(fig, out_dir / "slowdown.png"))
    return made
