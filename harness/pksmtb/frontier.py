"""The saving/cost frontier of merge engines, from their sweeps' reports.

    pksmtb.py frontier SWEEP_DIR [SWEEP_DIR...] --out DIR

Each SWEEP_DIR is a sweep of one engine's knob with its daemon on and
off (harness/sweeps/frontier-ksm.toml, frontier-pksm.toml) whose report
(report.json, sweepreport.py) pairs each daemon-on cell with the
daemon-off cell of the same knob value, repeat by repeat.  For every
daemon-on cell, one operating point:

* slowdown: the co-runner slowdown, throughput off / on, the inverse of
  the paired ratio of throughput (geometric mean of the per-repeat ratios,
  95 % t interval on the log ratios);
* saved MiB at the peak, saved MiB-seconds (the saving integrated over
  the run: what a peak taken just before COW breaks undo it does not
  show), daemon CPU seconds and COW breaks: the mean of the daemon-on
  runs with its 95 % t interval.

A point dominates another when it saves at least as much at no more
slowdown and no more daemon CPU, and is better in one of them; with the
intervals, "dominates" is claimed only when the intervals say so (each
comparison's intervals do not overlap in the point's favour or are equal
by design), else "not shown".  The saving is judged twice: at the peak,
and integrated over the run (MiB-seconds: a peak taken just before COW
breaks undo merges says little of what a program keeps).  Writes
DIR/frontier.md (the table, each engine's revision and build, what
dominates what by either saving), DIR/frontier.json and DIR/frontier.png:
three panels, saved MiB at the peak and saved MiB-seconds against the
slowdown, saved MiB-seconds against daemon CPU, every value with its
interval; a point per operating point, numbered (the key beside them),
joined by a line only along a sweep's one numeric knob (a categorical
knob's cells, such as merge domains, are separate points).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import plot as plot_mod
from . import results, stats

# coordinates that are not the engine's knob
_NOT_KNOB = {"daemon", "scenario", "variant", "vcpus"}


class FrontierError(Exception):
    """A sweep directory without a usable report."""


@dataclass
class Interval:
    value: float | None
    lo: float | None
    hi: float | None

    def text(self, digits: int = 2) -> str:
        if self.value is None:
            return "-"
        if self.lo is None or self.hi is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}-{self.hi:.{digits}f}]"


@dataclass
class Point:
    engine: str                 # the variant: pksm or ksm
    sweep: str
    scenario: str
    vcpus: str                  # the guest's vCPUs ("" if the sweep has no such axis)
    knob: str                   # e.g. "ksm.pages_to_scan=400 ksm.sleep_millisecs=20"
    n: int
    slowdown: Interval
    saved_mib: Interval
    daemon_cpu_s: Interval
    cow_breaks: Interval
    saved_mib_s: Interval = field(default_factory=lambda: Interval(None, None, None))


def _mean(values: list[float]) -> Interval:
    m = stats.mean_interval(values)
    return Interval(m.mean, m.lo, m.hi)


def points(report: dict[str, Any]) -> list[Point]:
    """The operating points of one sweep's report.json."""
    out = []
    for cell in report.get("cells", []):
        coords = cell.get("coords", {})
        if coords.get("daemon") != "on":
            continue
        figs = cell.get("figures", {})
        thr = figs.get("throughput", {}).get("paired") or {}
        slow = Interval(None, None, None)
        if thr.get("ratio"):
            r = stats.PairedRatio(thr["n"], thr["ratio"], thr.get("lo"), thr.get("hi")).inverse()
            slow = Interval(r.ratio, r.lo, r.hi)
        knob = " ".join(f"{k}={v}" for k, v in sorted(coords.items()) if k not in _NOT_KNOB)

        def vals(name: str) -> list[float]:
            return [float(v) for v in figs.get(name, {}).get("values", []) if v is not None]
        out.append(Point(coords.get("variant", "?"), str(report.get("sweep", "")),
                         coords.get("scenario", "?"), str(coords.get("vcpus", "")), knob, len(vals("peak_saved_mib")), slow,
                         _mean(vals("peak_saved_mib")), _mean(vals("daemon_cpu_s")),
                         _mean(vals("cow_breaks")), _mean(vals("saved_mib_s"))))
    return out


def load(sweep_dir: Path) -> tuple[dict[str, Any], list[Point]]:
    path = sweep_dir / "report.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FrontierError(f"{path}: {e} (run 'pksmtb.py sweep SPEC --report' first)") from None
    pts = points(report)
    if not pts:
        raise FrontierError(f"{path}: no daemon-on cell: a frontier sweep has daemon = "
                            "[\"on\", \"off\"] with the off cells as baseline")
    return report, pts


def _better_or_equal(a: Interval, b: Interval, lower_is_better: bool) -> str:
    """'yes' if a is shown at least as good as b, 'no' if shown worse,
    'not shown' if the intervals overlap."""
    if a.value is None or b.value is None:
        return "not shown"
    alo, ahi = (a.lo, a.hi) if a.lo is not None and a.hi is not None else (a.value, a.value)
    blo, bhi = (b.lo, b.hi) if b.lo is not None and b.hi is not None else (b.value, b.value)
    if lower_is_better:
        alo, ahi, blo, bhi = -ahi, -alo, -bhi, -blo
    if alo >= bhi:
        return "yes"
    if ahi < blo:
        return "no"
    return "not shown"


# the two savings a point is judged by: field, how frontier.md names it
SAVINGS = {"saved_mib": "the saving at the peak (MiB)",
           "saved_mib_s": "the saving over the run (MiB*s)"}


def dominates(a: Point, b: Point, saving: str = "saved_mib") -> str:
    """Does A dominate B (saves at least as much, by SAVING: saved_mib at
    the peak or saved_mib_s over the run, at no more slowdown and daemon
    CPU), as far as the intervals show?  yes / no / not shown."""
    verdicts = [_better_or_equal(getattr(a, saving), getattr(b, saving), False),
                _better_or_equal(a.slowdown, b.slowdown, True),
                _better_or_equal(a.daemon_cpu_s, b.daemon_cpu_s, True)]
    if "no" in verdicts:
        return "no"
    return "yes" if all(v == "yes" for v in verdicts) else "not shown"


def table(pts: list[Point]) -> str:
    lines = ["| program | vCPUs | engine | knob | n | slowdown (off/on), 95 % CI | "
             "saved MiB (peak) | saved MiB*s (run) | daemon CPU s | COW breaks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in pts:
        lines.append(f"| {p.scenario} | {p.vcpus or '-'} | {p.engine} | {p.knob or '-'} | "
                     f"{p.n} | {p.slowdown.text(3)} | "
                     f"{p.saved_mib.text(1)} | {p.saved_mib_s.text(0)} | "
                     f"{p.daemon_cpu_s.text(2)} | "
                     f"{p.cow_breaks.text(0)} |")
    return "\n".join(lines)


def domination(pts: list[Point], saving: str = "saved_mib") -> list[str]:
    """Each point of one engine against each of another on the same program
    and vCPUs: where one is shown to dominate, by SAVING (dominates())."""
    out = []
    for a in pts:
        for b in pts:
            if a.engine != b.engine and (a.scenario, a.vcpus) == (b.scenario, b.vcpus) \
                    and dominates(a, b, saving) == "yes":
                where = a.scenario + (f", {a.vcpus} vCPUs" if a.vcpus else "")
                out.append(f"{where}: {a.engine} {a.knob or ''} dominates "
                           f"{b.engine} {b.knob or ''}".replace("  ", " "))
    return out


Group = tuple[str, str, str, str]      # engine, scenario, vCPUs, sweep


def _knob(p: Point) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in p.knob.split())


def _line_knob(mine: list[Point]) -> str | None:
    """The knob a group's points are joined along: the one knob setting
    that varies among them, if it is numeric (plot.joined); None (separate
    points) when none, several, or a categorical one vary."""
    parts = [_knob(p) for p in mine]
    varying = sorted({k for d in parts for k in d if len({e.get(k) for e in parts}) > 1})
    if len(varying) != 1:
        return None
    values = [d.get(varying[0], "") for d in parts]
    return varying[0] if plot_mod.joined(varying[0], values) else None


# the panels: x field, y field, their axis labels
PANELS = (
    ("slowdown", "saved_mib", "co-runner slowdown, throughput off / on (x)",
     "saved memory at the peak (MiB)"),
    ("slowdown", "saved_mib_s", "co-runner slowdown, throughput off / on (x)",
     "saved memory over the run (MiB*s)"),
    ("daemon_cpu_s", "saved_mib_s", "daemon CPU (s)", "saved memory over the run (MiB*s)"),
)


def figure(pts: list[Point], head: str) -> Any:
    """The frontier's figure: a panel per PANELS entry, each value with its
    95 % t interval, the points of an engine's sweep (and program and vCPU
    count, if there are several) in one colour, numbered, joined only along
    a numeric knob (_line_knob); the fourth panel the key: each group's
    colour and each number's knob settings.  HEAD, the title, names the
    sweeps and the engines' builds (title())."""
    plt = plot_mod._pyplot()
    fig, axes = plot_mod.subplots(2, 2, figsize=(12, 9.5))
    groups: list[Group] = sorted({(p.engine, p.scenario, p.vcpus, p.sweep) for p in pts})
    several = len({(g[1], g[2]) for g in groups}) > 1
    sweeps_of = {e: {g[3] for g in groups if g[0] == e} for e in {g[0] for g in groups}}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    numbered: list[tuple[int, Group, Point]] = []
    line_of: dict[Group, str | None] = {}
    for g in groups:
        of_g = [p for p in pts if (p.engine, p.scenario, p.vcpus, p.sweep) == g]
        knob = line_of[g] = _line_knob(of_g)
        if knob is not None:
            along_knob: str = knob
            of_g.sort(key=lambda p: float(_knob(p)[along_knob]))
        numbered += [(i, g, p) for i, p in enumerate(of_g, len(numbered) + 1)]

    def group_label(g: Group) -> str:
        eng, scen, vcpus, sweep = g
        label = f"{eng}, {scen}" + (f", {vcpus} vCPUs" if vcpus else "") if several else eng
        return label + (f" ({sweep})" if len(sweeps_of[eng]) > 1 else "")

    handles = []
    to_label: list[tuple[Any, list[tuple[float, float, str]]]] = []
    for ax, (xf, yf, xlabel, ylabel) in zip(axes.flat, PANELS):
        labels: list[tuple[float, float, str]] = []
        for k, g in enumerate(groups):
            mine = [(i, p) for i, gg, p in numbered if gg == g
                    and getattr(p, xf).value is not None and getattr(p, yf).value is not None]
            if not mine:
                continue
            xs = [(getattr(p, xf).value, getattr(p, xf).lo, getattr(p, xf).hi) for _, p in mine]
            ys = [(getattr(p, yf).value, getattr(p, yf).lo, getattr(p, yf).hi) for _, p in mine]
            along = line_of[g]
            eb = ax.errorbar([x[0] for x in xs], [y[0] for y in ys],
                             xerr=plot_mod.interval_err(xs), yerr=plot_mod.interval_err(ys),
                             marker=markers[k % len(markers)], color=colours[k % len(colours)],
                             capsize=3, linestyle="-" if along else "none",
                             label=group_label(g) + (f", along {along.split('.')[-1]}"
                                                     if along else ""))
            if ax is axes.flat[0]:
                handles.append(eb)
            labels += [(x[0], y[0], str(i)) for (i, _), x, y in zip(mine, xs, ys)]
        if xf == "slowdown":
            ax.axvline(1.0, color="grey", linewidth=0.5)
            ax.axvline(1.05, color="grey", linewidth=0.5, linestyle="--")
        else:
            ax.set_xlim(left=0)
        ax.set_xlabel(f"{xlabel}, {plot_mod.LEVEL_TEXT} CI")
        ax.set_ylabel(f"{ylabel}, {plot_mod.LEVEL_TEXT} CI")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if not labels:
            ax.text(0.5, 0.5, "no values in these reports", ha="center",
                    transform=ax.transAxes)
        ax.set_title(f"{ylabel.split(' (')[0]} against {xlabel.split(',')[0].split(' (')[0]}",
                     fontsize="medium")
        to_label.append((ax, labels))
    key = axes.flat[3]
    key.axis("off")
    def key_line(i: int, p: Point) -> str:
        knob = " ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(_knob(p).items()))
        return (f"{i}  {p.engine}" + (f" {p.scenario}" if several else "")
                + (f" {p.vcpus} vCPUs" if several and p.vcpus else "")
                + (f": {knob}" if knob else ""))
    lines = [key_line(i, p) for i, _, p in numbered]
    leg = key.legend(handles, [h.get_label() for h in handles], loc="upper left",
                     fontsize="small", title="engine and sweep (a line: along a numeric knob)",
                     title_fontsize="small")
    fig.suptitle(plot_mod.wrap(head, fig.get_figwidth()), fontsize="medium")
    # the key's points under its legend, the numbers last: once the layout has settled
    fig.canvas.draw()
    below = leg.get_window_extent(fig.canvas.get_renderer()).transformed(
        key.transAxes.inverted()).y0
    key.text(0.0, below - 0.03, plot_mod.wrap("points:\n" + "\n".join(lines), 5.5, 8),
             fontsize=8, va="top", ha="left", transform=key.transAxes, family="monospace")
    for ax, labels in to_label:
        plot_mod.place_labels(ax, [(x, y) for x, y, _ in labels], [t for _, _, t in labels])
    return fig


def title(reports: list[dict[str, Any]]) -> str:
    """The figure's title: what it shows, each sweep's engines and the
    builds it pinned (or the revision it ran at)."""
    return ("saving against cost, means and 95 % t intervals\n"
            + "\n".join(f"{r.get('sweep')}: {plot_mod.sweep_sources(r)}" for r in reports))


def plot(pts: list[Point], out: Path, head: str) -> Path:
    """frontier.png: figure() into OUT."""
    return plot_mod.save(figure(pts, head), out / "frontier.png")


def boots(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every boot's meta.json of a sweep: a committed study's copies
    (meta/*.json, one a boot) if it has them, else its run directories'
    (runs/**/meta.json)."""
    found = sorted(sweep_dir.glob("meta/*.json")) or sorted(sweep_dir.glob("runs/**/meta.json"))
    metas = []
    for f in found:
        try:
            metas.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise FrontierError(f"{f}: {e}") from None
    return metas


def provenance(sweep_dir: Path, report: dict[str, Any] | None = None) -> tuple[str, set[str]]:
    """What ran a sweep's boots, as a line for frontier.md
    (results.provenance_text()), and the host CPU models recorded: the
    report's own count of the boots in its figures if it has one, else
    every boot's meta.json kept in the sweep directory (boots())."""
    prov = (report or {}).get("boots")
    if not prov or not prov.get("host_cpu_models"):
        metas = boots(sweep_dir)
        if not metas:
            return "boots' meta.json not kept: harness revisions and host CPUs unknown", set()
        prov = results.boot_provenance(metas)
    return results.provenance_text(prov), results.known_cpus(prov)


def write(sweep_dirs: list[Path], out: Path) -> str:
    """The frontier of SWEEP_DIRS into OUT; the markdown written."""
    reports, pts = [], []
    for d in sweep_dirs:
        r, p = load(d)
        reports.append(r)
        pts += p
    out.mkdir(parents=True, exist_ok=True)
    revs, cpus_all = [], set()
    for r, d in zip(reports, sweep_dirs):
        rep = (r.get("reproduce") or [{}])[0]
        line, cpus = provenance(d, r)
        cpus_all |= cpus
        revs.append(f"{r.get('sweep')}: revision {str(rep.get('harness_revision') or rep.get('git_revision', '?'))[:10]}, "
                    f"started {rep.get('started_utc', '?')}; {line}")
    dom = {s: domination(pts, s) for s in SAVINGS}
    md = ["# Frontier: saving against cost", "", *[f"* {r}" for r in revs], ""]
    if len(cpus_all) > 1:
        md += [f"**The boots ran on {len(cpus_all)} host CPU models** ({', '.join(sorted(cpus_all))}): "
               "a slowdown is paired within its sweep, but savings, daemon CPU and COW breaks "
               "of sweeps on different CPUs do not compare.", ""]
    md += [table(pts)]
    for s, what in SAVINGS.items():
        md += ["", f"Shown to dominate by {what}, slowdown and daemon CPU (intervals):", "",
               *([f"* {d}" for d in dom[s]] or ["* none"])]
    text = "\n".join([*md, ""])
    (out / "frontier.md").write_text(text)
    (out / "frontier.json").write_text(json.dumps(
        {"sweeps": [str(d) for d in sweep_dirs], "revisions": revs,
         "host_cpu_models": sorted(cpus_all),
         "points": [asdict(p) for p in pts], "dominates": dom["saved_mib"],
         "dominates_by_saved_mib_s": dom["saved_mib_s"]}, indent=1) + "\n")
    plot(pts, out, title(reports))
    return text
