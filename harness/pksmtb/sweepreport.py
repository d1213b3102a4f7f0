"""A sweep's report: per cell the mean ± stddev of each figure, its change
against the baseline cell, Welch's t-test and LKP's ranges rule beside it;
as report.txt, report.csv, report.json and a plot per figure.

The figures of a run (run_figures) are its summary.json numbers, plus what
its console and samples say: 'throughput' (the sum over a real program's
workers of their PKSMTB-EVENT throughput value=..., requests or operations
per second), 'cow_breaks' (PKSM's cow_breaks over the run) and
'saved_mib_s' (saved MiB integrated over the run's seconds).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from . import console, results, sampling, stats
from .sweep import Sweep, build_mismatch, iter_runs
from .sweepspec import Cell, baseline_of, cells
LABELS = {
    "peak_saved_mib": "saved MiB (peak)",
    "saved_fraction": "saved / achievable",
    "t50_s": "time to 50 % (s)",
    "t90_s": "time to 90 % (s)",
    "daemon_cpu_s": "daemon CPU (s)",
    "daemon_busy_s": "daemon busy, wall (s)",
    "cow_breaks": "COW breaks",
    "saved_mib_s": "saved MiB x s",
    "throughput": "throughput (ops/s, all workers)",
    "build_s": "workers' build time (s)",
    "wall_s": "wall time (s)",
    "objective": "saved MiB x s per CPU-s (busy + COW x cost)",
    "cost_cpu_s": "CPU-s: daemon CPU + COW breaks x cost",
    "pages_scanned_delta": "pages scanned",
    "duration_s": "sampled duration (s)",
}


def run_figures(run: Path, cow_cost_us: float = 0.0) -> dict[str, float]:
    """Every number a run left: summary.json's and the derived ones.

    'objective' is saved MiB x s per CPU-second the saving cost: daemon
    busy time plus COW breaks x cow_cost_us (what a write fault that
    copies a merged page costs the program that writes it)."""
    out: dict[str, float] = {}
    s = run / "summary.json"
    if s.is_file():
        for k, v in results.read_json(s).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = float(v)
    if (run / console.EVENTS_FILE).is_file():
        con = console.load_events(run)
        cowksm = {e.fields.get("when"): e.num("n") for e in con.events_named("cowksm")}
        if "0" in cowksm and "1" in cowksm:
            out["cow_breaks"] = cowksm["1"] - cowksm["0"]
        tp = con.events_named("throughput")
        if tp:
            out["throughput"] = sum(e.num("value") for e in tp)
            out["throughput_workers"] = float(len(tp))
            builds = [e.num("build_s") for e in tp if "build_s" in e.fields]
            if builds:
                out["build_s"] = statistics.fmean(builds)
    csv_path = run / "timeseries.csv"
    if csv_path.is_file():
        series = sampling.read_csv(csv_path)
        rows = series.rows
        if rows and "pksm_cow_breaks" in rows[0]:
            out["cow_breaks"] = float(rows[-1]["pksm_cow_breaks"] - rows[0]["pksm_cow_breaks"])
        if len(rows) > 1:
            area = 0.0
            for a, b in zip(rows, rows[1:]):
                mib = (sampling.saved_pages(a) + sampling.saved_pages(b)) / 2 \
                    * sampling.PAGE_SIZE / sampling.MIB
                area += mib * (b["t_ms"] - a["t_ms"]) / 1000
            out["saved_mib_s"] = round(area, 3)
    # the daemon's CPU time where the kernel counts it, else its wall time
    busy = out.get("daemon_cpu_s")
    if busy is None:
        busy = out.get("daemon_busy_s")
    if busy is not None and "saved_mib_s" in out:
        cost = busy + out.get("cow_breaks", 0.0) * cow_cost_us / 1e6
        out["cost_cpu_s"] = cost
        if cost > 0:
            out["objective"] = out["saved_mib_s"] / cost
    return out


def collect(sw: Sweep) -> dict[Cell, list[tuple[Path, dict[str, float]]]]:
    """Each cell's finished, passing runs with their figures; a run of
    another build than the sweep pinned is left out."""
    out: dict[Cell, list[tuple[Path, dict[str, float]]]] = {c: [] for c in cells(sw.spec)}
    for job, run in iter_runs(sw):
        if results.verdict_of(run) == "pass" and not build_mismatch(sw.state, run):
            out[job.cell].append((run, run_figures(run, sw.spec.cow_cost_us)))
    return out


def values(runs: list[tuple[Path, dict[str, float]]], metric: str) -> list[float]:
    return [f[metric] for _, f in runs if metric in f]


def build(sw: Sweep) -> dict[str, Any]:
    """The report as data (report.json)."""
    data = collect(sw)
    out_cells = []
    for c, runs in data.items():
        base = baseline_of(c, sw.spec)
        figs: dict[str, Any] = {}
        for m in sw.spec.metrics:
            vals = values(runs, m)
            sample = stats.Sample.of(vals)
            entry: dict[str, Any] = {"values": vals,
                                     "sample": sample.__dict__ if sample else None}
            if base is not None and base != c and base in data:
                cmp = stats.compare(vals, values(data[base], m), sw.spec.alpha)
                entry["vs_baseline"] = cmp.to_json() if cmp else None
            figs[m] = entry
        out_cells.append({"id": c.id, "label": c.label, "coords": c.to_json(),
                          "baseline": base.id if base is not None else None,
                          "is_baseline": base == c,
                          "runs": [str(r.relative_to(sw.dir)) for r, _ in runs],
                          "failed_or_missing": sw.spec.repeats - len(runs),
                          "figures": figs})
    return {"sweep": sw.spec.name, "description": sw.spec.description,
            "alpha": sw.spec.alpha, "cow_cost_us": sw.spec.cow_cost_us, "repeats": sw.spec.repeats, "axes": sw.spec.axes,
            "baseline": sw.spec.baseline, "metrics": sw.spec.metrics,
            "reproduce": sw.state.get("invocations", [])[-1:],
            "builds": sw.state.get("builds", {}),
            "build_mismatches": mismatches(sw),
            "cells": out_cells}


def mismatches(sw: Sweep) -> list[dict[str, str]]:
    """The finished runs whose kernel is not the build the sweep pinned."""
    out = []
    for job, run in iter_runs(sw):
        why = build_mismatch(sw.state, run)
        if why:
            out.append({"job": job.key, "cell": job.cell.label,
                        "run": str(run.relative_to(sw.dir)) if run.is_relative_to(sw.dir)
                        else str(run), "why": why})
    return out


def _pair(mean: float, sd: float) -> str:
    """mean ± stddev with the decimals the mean's size calls for."""
    d = 1 if abs(mean) >= 100 else 2 if abs(mean) >= 1 else 4
    return f"{mean:,.{d}f} ± {sd:,.{d}f}"


def _yes(b: bool | None) -> str:
    return "-" if b is None else ("yes" if b else "no")


def text(rep: dict[str, Any]) -> str:
    """LKP-style: per figure, a row per cell with mean ± stddev, %change
    against the baseline, Welch's p and both significance calls."""
    lines = [f"sweep {rep['sweep']}: {rep['description']}".rstrip(": "),
             f"{rep['repeats']} repeat(s) a cell; baseline: "
             + (", ".join(f"{k}={v}" for k, v in rep["baseline"].items()) or "none")
             + f"; significant: Welch's p < {rep['alpha']:g} / LKP ranges do not overlap"]
    bad = rep.get("build_mismatches") or []
    if bad:
        lines += ["", f"WARNING: {len(bad)} boot(s) ran another kernel than the build this "
                  "sweep pinned (rebuilt under it); they are left out of every figure below:"]
        lines += [f"  {b['cell']} ({b['job']}): {b['why']}" for b in bad]
        lines.append("")
    pins = rep.get("builds") or {}
    if pins:
        lines.append("builds: " + ", ".join(
            f"{n} {p.get('id') or 'binary ' + str(p.get('binary_sha256'))[:12]}"
            + (f" (revision {str(p.get('revision'))[:12]}{', dirty' if p.get('dirty') else ''})"
               if p.get("revision") else "") for n, p in sorted(pins.items())))
    short = [c for c in rep["cells"] if c["failed_or_missing"]]
    for c in short:
        lines.append(f"note: {c['label']}: {c['failed_or_missing']} run(s) failed or missing")
    width = max(len(c["label"]) for c in rep["cells"]) + 2
    for m in rep["metrics"]:
        lines += ["", f"{LABELS.get(m, m)} [{m}]",
                  f"  {'cell':<{width}} {'n':>2}  {'mean ± stddev':<24} {'%stddev':>8} "
                  f"{'%change':>8} {'p':>7}  welch  ranges"]
        for c in rep["cells"]:
            f = c["figures"][m]
            s = f["sample"]
            mark = " *" if c["is_baseline"] else ""
            if not s:
                lines.append(f"  {c['label'] + mark:<{width}}  0  -")
                continue
            ms = _pair(s["mean"], s["stddev"])
            rel = f"{100 * s['stddev'] / abs(s['mean']):.1f}%" if s["mean"] else "-"
            row = f"  {c['label'] + mark:<{width}} {s['n']:>2}  {ms:<24} {rel:>8} "
            cmp = f.get("vs_baseline")
            if cmp:
                ch = f"{cmp['change_pct']:+.1f}%" if cmp["change_pct"] is not None else "-"
                p = "-" if cmp["p"] is None else \
                    "<0.001" if cmp["p"] < 0.001 else f"{cmp['p']:.3f}"
                row += (f"{ch:>8} {p:>7}  {_yes(cmp['welch_significant']):<5}  "
                        f"{_yes(cmp['ranges_disjoint'])}")
            elif c["is_baseline"]:
                row += f"{'base':>8}"
            lines.append(row.rstrip())
    slow = slowdown(rep)
    if slow:
        lines += ["", "co-runner slowdown: baseline throughput / cell throughput "
                  "(ratio of means [spread: extremes of the runs])"]
        lines += [f"  {label:<{width}} {r:.3f} [{lo:.3f}-{hi:.3f}]" for label, r, lo, hi in slow]
    lines += ["", "* the baseline cell (each cell is compared with the cell that has the "
              "baseline's coordinates and its own otherwise)"]
    return "\n".join(lines) + "\n"


def slowdown(rep: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(cell, base/cell throughput, low, high) for cells with a baseline."""
    out = []
    for c in rep["cells"]:
        cmp = c["figures"].get("throughput", {}).get("vs_baseline")
        if cmp and cmp["ratio"] and cmp["ratio_lo"] and cmp["ratio_hi"]:
            out.append((c["label"], 1 / cmp["ratio"], 1 / cmp["ratio_hi"], 1 / cmp["ratio_lo"]))
    return out


CSV_COLUMNS = ["cell", "metric", "n", "mean", "stddev", "min", "max", "baseline",
               "change_pct", "ratio", "ratio_lo", "ratio_hi", "welch_p", "welch_significant",
               "ranges_disjoint"]


def csv_text(rep: dict[str, Any]) -> str:
    axes = sorted({k for c in rep["cells"] for k in c["coords"]},
                  key=lambda k: (k not in ("scenario", "variant"), k))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_COLUMNS[:1], *axes, *CSV_COLUMNS[1:]])
    for c in rep["cells"]:
        for m in rep["metrics"]:
            f = c["figures"][m]
            s = f["sample"] or {}
            cmp = f.get("vs_baseline") or {}
            w.writerow([c["id"], *[c["coords"].get(a, "") for a in axes], m, s.get("n", 0),
                        s.get("mean", ""), s.get("stddev", ""), s.get("lo", ""),
                        s.get("hi", ""), c["baseline"] or "", cmp.get("change_pct", ""),
                        cmp.get("ratio", ""), cmp.get("ratio_lo", ""), cmp.get("ratio_hi", ""),
                        cmp.get("p", ""), cmp.get("welch_significant", ""),
                        cmp.get("ranges_disjoint", "")])
    return buf.getvalue()


def _write(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.replace(path)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _lines(rep: dict[str, Any], m: str, x_axis: str
           ) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """scenario -> line label (the other coordinates that vary) -> points."""
    xs_text = rep["axes"][x_axis]
    numeric = all(_as_number(x) is not None for x in xs_text)
    panels: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for c in rep["cells"]:
        s = c["figures"][m]["sample"]
        if not s:
            continue
        label = " ".join(f"{k.split('.')[-1]}={v}" for k, v in c["coords"].items()
                         if k not in (x_axis, "scenario") and (
                             k == "variant" or len(rep["axes"].get(k, [])) > 1))
        xv = c["coords"][x_axis]
        x = _as_number(xv) if numeric else float(xs_text.index(xv))
        assert x is not None
        panel = Path(c["coords"]["scenario"]).stem
        panels.setdefault(panel, {}).setdefault(label, []).append((x, s["mean"], s["stddev"]))
    return panels


def plot(rep: dict[str, Any], out_dir: Path) -> list[Path]:
    """A figure per metric: mean ± stddev (error bars) against the swept
    knob with the most values, a panel per scenario (each its own scale)
    and a line per combination of the other coordinates; a bar per cell
    when no knob is swept."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir.mkdir(exist_ok=True)
    knob_axes = [a for a, vs in rep["axes"].items() if len(vs) > 1]
    x_axis = max(knob_axes, key=lambda a: len(rep["axes"][a])) if knob_axes else None
    made = []
    title = f"{rep['sweep']}: %s (mean ± stddev, n={rep['repeats']})"
    for m in rep["metrics"]:
        if x_axis:
            panels = _lines(rep, m, x_axis)
            if not panels:
                continue
            xs_text = rep["axes"][x_axis]
            numeric = all(_as_number(x) is not None for x in xs_text)
            n = len(panels)
            cols = 2 if n > 1 else 1
            rows = (n + cols - 1) // cols
            fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.4 * rows + 0.6),
                                     squeeze=False)
            for ax, (panel, lines) in zip(axes.flat, sorted(panels.items())):
                for label, pts in sorted(lines.items()):
                    pts.sort()
                    ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                                yerr=[p[2] for p in pts], marker="o", capsize=4,
                                label=label or None)
                ax.set_title(panel, fontsize="medium")
                ax.set_xlabel(x_axis)
                ax.set_ylabel(LABELS.get(m, m), fontsize="small")
                if not numeric:
                    ax.set_xticks(range(len(xs_text)), xs_text)
                if len(lines) > 1:
                    ax.legend(fontsize="small")
                ax.grid(alpha=0.3)
            for ax in list(axes.flat)[n:]:
                ax.set_visible(False)
            fig.suptitle(title % LABELS.get(m, m), fontsize="medium")
        else:
            pts2 = [(c["label"], c["figures"][m]["sample"]) for c in rep["cells"]]
            pts2 = [(lbl, s) for lbl, s in pts2 if s]
            if not pts2:
                continue
            fig, ax = plt.subplots(figsize=(7, 4.2))
            ax.bar(range(len(pts2)), [s["mean"] for _, s in pts2],
                   yerr=[s["stddev"] for _, s in pts2], capsize=4)
            ax.set_xticks(range(len(pts2)), [lbl for lbl, _ in pts2], rotation=20,
                          ha="right", fontsize="small")
            ax.set_ylabel(LABELS.get(m, m))
            ax.set_title(title % LABELS.get(m, m), fontsize="medium")
            ax.grid(alpha=0.3)
        path = out_dir / f"{m}.png"
        tmp = out_dir / f".{m}.tmp.png"
        fig.tight_layout()
        fig.savefig(tmp)
        tmp.replace(path)
        made.append(path)
        plt.close(fig)
    return made


def write(sw: Sweep) -> dict[str, Any]:
    """report.json, report.csv, report.txt and plots/ in the sweep directory."""
    rep = build(sw)
    _write(sw.dir / "report.json", json.dumps(rep, indent=2, sort_keys=True) + "\n")
    _write(sw.dir / "report.csv", csv_text(rep))
    _write(sw.dir / "report.txt", text(rep))
    try:
        plot(rep, sw.dir / "plots")
    except Exception as e:  # a plot is a convenience, never a reason to lose a report
        rep["plot_error"] = str(e)
    return rep
