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
by design), else "not shown".  Writes DIR/frontier.md (the table, each
engine's revision and build, what dominates what), DIR/frontier.json and
DIR/frontier.png (saved MiB against slowdown, both with their intervals,
a line per engine and sweep (and program and vCPU count, if there are
several) through its knob's values).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import plot as plot_mod
from . import stats

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


def dominates(a: Point, b: Point) -> str:
    """Does A dominate B (saves at least as much, at no more slowdown and
    daemon CPU), as far as the intervals show?  yes / no / not shown."""
    verdicts = [_better_or_equal(a.saved_mib, b.saved_mib, False),
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


def domination(pts: list[Point]) -> list[str]:
    """Each point of one engine against each of another on the same program
    and vCPUs: where one is shown to dominate."""
    out = []
    for a in pts:
        for b in pts:
            if a.engine != b.engine and (a.scenario, a.vcpus) == (b.scenario, b.vcpus) \
                    and dominates(a, b) == "yes":
                where = a.scenario + (f", {a.vcpus} vCPUs" if a.vcpus else "")
                out.append(f"{where}: {a.engine} {a.knob or ''} dominates "
                           f"{b.engine} {b.knob or ''}".replace("  ", " "))
    return out


def plot(pts: list[Point], out: Path, title: str) -> Path:
    """frontier.png: saved MiB against the co-runner slowdown, each with its
    95 % t interval, a line per engine and sweep through its knob's values
    (an engine with several sweeps, such as PKSM over all memory and over
    opted-in memory only, gets a line for each, named by its sweep); TITLE
    names the sweeps and the engines' builds (plot.sweep_sources)."""
    plt = plot_mod._pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = sorted({(p.engine, p.scenario, p.vcpus, p.sweep) for p in pts})
    several = len({(g[1], g[2]) for g in groups}) > 1
    sweeps_of = {e: {g[3] for g in groups if g[0] == e} for e in {g[0] for g in groups}}
    for eng, scen, vcpus, sweep in groups:
        mine = [p for p in pts if (p.engine, p.scenario, p.vcpus, p.sweep) == (eng, scen, vcpus, sweep)
                and p.slowdown.value is not None and p.saved_mib.value is not None]
        if not mine:
            continue
        label = f"{eng}, {scen}" + (f", {vcpus} vCPUs" if vcpus else "") if several else eng
        if len(sweeps_of[eng]) > 1:
            label += f" ({sweep})"
        xs = [p.slowdown.value or 0.0 for p in mine]
        ys = [p.saved_mib.value or 0.0 for p in mine]
        xerr = [[x - (p.slowdown.lo if p.slowdown.lo is not None else x) for x, p in zip(xs, mine)],
                [(p.slowdown.hi if p.slowdown.hi is not None else x) - x for x, p in zip(xs, mine)]]
        yerr = [[y - (p.saved_mib.lo if p.saved_mib.lo is not None else y) for y, p in zip(ys, mine)],
                [(p.saved_mib.hi if p.saved_mib.hi is not None else y) - y for y, p in zip(ys, mine)]]
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", capsize=3, label=label,
                    linestyle="-" if not several else ":")
        # label each point by the knob settings that vary along the line
        parts = [dict(kv.split("=", 1) for kv in p.knob.split()) for p in mine]
        varying = sorted({k for d in parts for k in d if len({e.get(k) for e in parts}) > 1})
        for x, y, d in zip(xs, ys, parts):
            text = " ".join(f"{k.split('.')[-1]}={d[k]}" for k in varying if k in d)
            ax.annotate(text, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.axvline(1.0, color="grey", linewidth=0.5)
    ax.axvline(1.05, color="grey", linewidth=0.5, linestyle="--")
    ax.set_xlabel("co-runner slowdown, throughput off / on (x, 95 % CI)")
    ax.set_ylabel("saved memory at the peak, MiB (95 % CI)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=8)
    ax.legend()
    return plot_mod.save(fig, out / "frontier.png")


def write(sweep_dirs: list[Path], out: Path) -> str:
    """The frontier of SWEEP_DIRS into OUT; the markdown written."""
    reports, pts = [], []
    for d in sweep_dirs:
        r, p = load(d)
        reports.append(r)
        pts += p
    out.mkdir(parents=True, exist_ok=True)
    revs = []
    for r in reports:
        rep = (r.get("reproduce") or [{}])[0]
        revs.append(f"{r.get('sweep')}: revision {str(rep.get('harness_revision') or rep.get('git_revision', '?'))[:10]}, "
                    f"started {rep.get('started_utc', '?')}")
    dom = domination(pts)
    md = "\n".join(["# Frontier: saving against cost", "", *[f"* {r}" for r in revs], "",
                    table(pts), "", "Shown to dominate (intervals):", "",
                    *([f"* {d}" for d in dom] or ["* none"]), ""])
    (out / "frontier.md").write_text(md)
    (out / "frontier.json").write_text(json.dumps(
        {"sweeps": [str(d) for d in sweep_dirs], "revisions": revs,
         "points": [asdict(p) for p in pts], "dominates": dom}, indent=1) + "\n")
    plot(pts, out, "saving against co-runner slowdown, means and 95 % t intervals\n"
         + "\n".join(f"{r.get('sweep')}: {plot_mod.sweep_sources(r)}" for r in reports))
    return md
