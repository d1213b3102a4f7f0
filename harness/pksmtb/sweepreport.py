"""A sweep's report: per cell the mean ± stddev of each figure and its
change against the baseline cell; as report.txt, report.csv, report.json
and a plot per figure.

A cell and its baseline are booted in the same repeat (jobs are
repeat-major: every cell's r1, then every cell's r2, ...), so they share
the host's load at the time: a comparison pairs them by repeat index, the
geometric mean of the per-repeat ratios with its 95 % t interval
(stats.paired_ratio).  Where they do not pair up (fewer than two repeats
with a value on both sides, a value <= 0, a report that does not say which
repeat each value came from) Welch's unpaired t-test stands in, labelled
so.  The p-values of all the sweep's comparisons are one family: Holm's
and Benjamini-Hochberg's adjusted p-values are reported beside each, and
so is the smallest change the comparison could have detected.  LKP's
ranges rule stays as a second call.

analyze() computes all of that from a report's values alone; reanalyze()
re-renders a report.json that outlived its run directories.

The figures of a run (run_figures) are its summary.json numbers, plus what
its console and samples say, the metric functions of pksmtb/metrics/run.py:
'throughput' (the sum over a real program's workers of their PKSMTB-EVENT
throughput value=..., requests or operations per second), 'cow_breaks'
(PKSM's cow_breaks over the run) and 'saved_mib_s' (saved MiB integrated
over the run's seconds); and those a spec names among the others.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from . import config, metrics, results, stats
from . import plot as plot_mod
from .sweep import Sweep, build_mismatch, iter_runs
from .sweepspec import Cell, baseline_of, cells
LABELS = {
    "peak_saved_mib": "saved MiB (peak)",
    "saved_fraction": "saved / achievable (fraction)",
    "t50_s": "time to 50 % (s)",
    "t90_s": "time to 90 % (s)",
    "daemon_cpu_s": "daemon CPU (s)",
    "daemon_busy_s": "daemon busy, wall (s)",
    "cow_breaks": "COW breaks (count)",
    "saved_mib_s": "saved memory x time (MiB s)",
    "throughput": "throughput (ops/s, all workers)",
    "build_s": "workers' build time (s)",
    "wall_s": "wall time (s)",
    "objective": "saving per cost: saved MiB s / CPU s (busy + COW x cost)",
    "cost_cpu_s": "daemon CPU + COW breaks x cost (CPU-s)",
    "pages_scanned_delta": "pages scanned (pages)",
    "duration_s": "sampled duration (s)",
}


def run_figures(run: Path, cow_cost_us: float = 0.0,
                named: list[str] | None = None) -> dict[str, float]:
    """Every number a run left: summary.json's, the derived ones every run
    has (metrics/run.py: throughput, build_s, cow_breaks, saved_mib_s...),
    cost_cpu_s and objective, and the registered metrics among NAMED
    (pksmtb/metrics) it has a value for.

    'objective' is saved MiB x s per CPU-second the saving cost: daemon
    busy time plus COW breaks x cow_cost_us (what a write fault that
    copies a merged page costs the program that writes it)."""
    out: dict[str, float] = {}
    s = run / "summary.json"
    if s.is_file():
        for k, v in results.read_json(s).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = float(v)
    data = metrics.RunData(run)
    out.update(metrics.compute(data, list(metrics.run.ALWAYS)))
    # the daemon's CPU time where the kernel counts it, else its wall time
    busy = out.get("daemon_cpu_s")
    if busy is None:
        busy = out.get("daemon_busy_s")
    if busy is not None and "saved_mib_s" in out:
        cost = busy + out.get("cow_breaks", 0.0) * cow_cost_us / 1e6
        out["cost_cpu_s"] = cost
        if cost > 0:
            out["objective"] = out["saved_mib_s"] / cost
    out.update(metrics.compute(data, [m for m in named or [] if m in metrics.known()
                                      and m not in out]))
    return out


# (run directory, repeat index, figures)
CellRuns = list[tuple[Path, int, dict[str, float]]]


def collect(sw: Sweep) -> dict[Cell, CellRuns]:
    """Each cell's finished, passing runs with their repeat and figures; a
    run of another build than the sweep pinned is left out."""
    out: dict[Cell, CellRuns] = {c: [] for c in cells(sw.spec)}
    for job, run in iter_runs(sw):
        if results.verdict_of(run) == "pass" and not build_mismatch(sw.state, run):
            out[job.cell].append((run, job.repeat, run_figures(run, sw.spec.cow_cost_us,
                                                                sw.spec.metrics)))
    return out


def values(runs: CellRuns, metric: str) -> tuple[list[float], list[int]]:
    """The metric's values and the repeat each came from."""
    got = [(f[metric], rep) for _, rep, f in runs if metric in f]
    return [v for v, _ in got], [r for _, r in got]


def build(sw: Sweep) -> dict[str, Any]:
    """The report as data (report.json)."""
    data = collect(sw)
    out_cells = []
    for c, runs in data.items():
        base = baseline_of(c, sw.spec)
        figs: dict[str, Any] = {}
        for m in sw.spec.metrics:
            vals, reps = values(runs, m)
            sample = stats.Sample.of(vals)
            figs[m] = {"values": vals, "repeats": reps,
                       "sample": sample.__dict__ if sample else None}
        out_cells.append({"id": c.id, "label": c.label, "coords": c.to_json(),
                          "baseline": base.id if base is not None else None,
                          "is_baseline": base == c,
                          "runs": [str(r.relative_to(sw.dir)) for r, _, _ in runs],
                          "failed_or_missing": sw.spec.repeats - len(runs),
                          "figures": figs})
    return analyze({"sweep": sw.spec.name, "description": sw.spec.description,
                    "alpha": sw.spec.alpha, "cow_cost_us": sw.spec.cow_cost_us,
                    "repeats": sw.spec.repeats, "axes": sw.spec.axes,
                    "baseline": sw.spec.baseline, "metrics": sw.spec.metrics,
                    "reproduce": sw.state.get("invocations", [])[-1:],
                    "builds": sw.state.get("builds", {}),
                    "build_mismatches": mismatches(sw),
                    "boots": results.boot_provenance(
                        [results.read_json(r / "meta.json") for runs in data.values()
                         for r, _, _ in runs if (r / "meta.json").is_file()]),
                    "cells": out_cells})


# ---- the comparisons ---------------------------------------------------------------

PAIRED, WELCH = "paired", "welch"
# what analyze() adds to a figure with a baseline
ANALYSIS_KEYS = ("vs_baseline", "paired", "test", "unpaired_why", "p", "mde_pct",
                 "p_holm", "p_bh", "holm_significant", "bh_significant")


def compare_entry(entry: dict[str, Any], base: dict[str, Any], alpha: float) -> dict[str, Any]:
    """A figure of a cell against its baseline's: the fields analyze() adds.

    vs_baseline: the unpaired comparison (stats.compare: Welch, ranges).
    paired: stats.paired_ratio of cell / baseline over the repeats both
    have a value for (its 'repeats': the repeat indexes paired), or None.
    test: PAIRED when the paired ratio stands, WELCH when it cannot
    (unpaired_why says why).  p and mde_pct: that test's p-value and
    smallest detectable change (%: of the ratio, or of the baseline's mean
    for Welch)."""
    vals, bvals = entry["values"], base["values"]
    cmp = stats.compare(vals, bvals, alpha)
    out: dict[str, Any] = {"vs_baseline": cmp.to_json() if cmp else None, "paired": None}
    reps, breps = entry.get("repeats"), base.get("repeats")
    pr: stats.PairedRatio | None = None
    why: str | None
    if reps is None or breps is None:
        why = "the report does not say which repeat each value came from"
    else:
        keys, a, b = stats.pairs_by_key(dict(zip(reps, vals)), dict(zip(breps, bvals)))
        if len(keys) < 2:
            why = f"{len(keys)} repeat(s) with a value on both sides: fewer than 2 pairs"
        else:
            pr = stats.paired_ratio(a, b, alpha=alpha)
            out["paired"] = pr.to_json() | {"repeats": keys}
            why = pr.reason if pr.ratio is None else None
    if pr is not None and why is None:
        out.update(test=PAIRED, unpaired_why=None, p=pr.p, mde_pct=pr.mde_pct)
    else:
        out.update(test=WELCH, unpaired_why=why, p=cmp.p if cmp else None,
                   mde_pct=cmp.mde_pct if cmp else None)
    return out


def analyze(rep: dict[str, Any]) -> dict[str, Any]:
    """Every cell's figures against its baseline's (compare_entry), then
    the family: Holm's and Benjamini-Hochberg's adjusted p-values over
    every comparison of the sweep that has a p (p_holm, p_bh and the calls
    holm_significant, bh_significant: adjusted p <= alpha); rep['family']
    says how many there were and the constants used.  REP is changed in
    place and returned."""
    alpha = rep["alpha"]
    by_id = {c["id"]: c for c in rep["cells"]}
    family: list[dict[str, Any]] = []
    for c in rep["cells"]:
        base = by_id.get(c["baseline"]) if c["baseline"] else None
        for m, entry in c["figures"].items():
            for k in ANALYSIS_KEYS:
                entry.pop(k, None)
            if base is None or base is c or m not in base["figures"]:
                continue
            entry.update(compare_entry(entry, base["figures"][m], alpha))
            if entry["p"] is not None:
                family.append(entry)
    ps = [e["p"] for e in family]
    holm, bh = stats.holm(ps, alpha), stats.benjamini_hochberg(ps, alpha)
    for i, e in enumerate(family):
        e.update(p_holm=holm.p[i], p_bh=bh.p[i], holm_significant=holm.reject[i],
                 bh_significant=bh.reject[i])
    rep["family"] = {"comparisons": len(family), "alpha": alpha,
                     "adjustments": ["holm", "benjamini-hochberg"],
                     "level": stats.LEVEL, "power": stats.POWER,
                     "boot_seed": stats.BOOT_SEED, "boot_resamples": stats.BOOT_RESAMPLES}
    return rep


_REPEAT_DIR = re.compile(r"(?:^|/)r(\d+)/")


def reanalyze(rep: dict[str, Any]) -> dict[str, Any]:
    """A report's comparisons computed again from its values (no run
    directory needed).  A report from before values kept their repeat
    ('repeats') gets them from its 'runs' (runs/<cell>/r<k>/...) when
    every run gave the figure a value (none: no repeat); otherwise that
    figure's comparisons are unpaired (Welch), and say so."""
    for c in rep["cells"]:
        from_runs = [int(mt.group(1)) if (mt := _REPEAT_DIR.search(r)) else None
                     for r in c.get("runs", [])]
        for entry in c["figures"].values():
            if entry.get("repeats") is not None:
                continue
            whole = len(from_runs) == len(entry["values"]) and None not in from_runs
            entry["repeats"] = from_runs if whole else [] if not entry["values"] else None
    return analyze(rep)


def reanalyze_dir(d: Path, plots: bool = False) -> dict[str, Any]:
    """D's report.json analysed again (reanalyze): report.json, report.csv
    and report.txt rewritten; D/plots drawn again from it if PLOTS, else
    left as they are.  No report, or not a sweep's, is a ConfigError."""
    path = d / "report.json"
    if not path.is_file():
        raise config.ConfigError(f"{path}: no sweep report there")
    try:
        rep = reanalyze(json.loads(path.read_text()))
        txt = text(rep)
        table = csv_text(rep)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise config.ConfigError(f"{path}: not a sweep report ({type(e).__name__}: {e})") \
            from None
    _write(d / "report.json", json.dumps(rep, indent=2, sort_keys=True) + "\n")
    _write(d / "report.csv", table)
    _write(d / "report.txt", txt)
    if plots:
        plot(rep, d / "plots")
    return rep


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


def _described(m: str) -> str:
    """A registered metric's own description, else its name."""
    return metrics.describe(m) if m in metrics.known() else m


def _pair(mean: float, sd: float) -> str:
    """mean ± stddev with the decimals the mean's size calls for."""
    d = 1 if abs(mean) >= 100 else 2 if abs(mean) >= 1 else 4
    return f"{mean:,.{d}f} ± {sd:,.{d}f}"


def _yes(b: bool | None) -> str:
    return "-" if b is None else ("yes" if b else "no")


def _p(p: float | None) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def _paired(entry: dict[str, Any]) -> stats.PairedRatio | None:
    """The figure's paired ratio back from its JSON, when it is the test."""
    pj = entry.get("paired")
    if entry.get("test") != PAIRED or not pj:
        return None
    fields = set(stats.PairedRatio.__dataclass_fields__)
    return stats.PairedRatio(**{k: v for k, v in pj.items() if k in fields})


def _ratio_text(entry: dict[str, Any]) -> str:
    """The paired ratio [95 % CI], or Welch's ratio of the means."""
    pr = _paired(entry)
    if pr is not None:
        return pr.brief()
    cmp = entry.get("vs_baseline") or {}
    return f"{cmp['ratio']:.3f}" if cmp.get("ratio") is not None else "-"


def _call(entry: dict[str, Any]) -> str:
    """'yes' when the Holm-adjusted p is significant; 'no' with the
    smallest change the comparison could have detected."""
    if entry.get("holm_significant") is None:
        return "-"
    if entry["holm_significant"]:
        return "yes"
    mde = entry.get("mde_pct")
    return f"no, MDE {mde:.0f}%" if mde is not None else "no"


def text(rep: dict[str, Any]) -> str:
    """LKP-style: per figure, a row per cell with mean ± stddev and, against
    the baseline, %change, the ratio (paired, with its interval, or
    Welch's ratio of means), the test, its p, Holm's and BH's adjusted p,
    the call with the smallest detectable change, LKP's ranges rule."""
    fam = rep.get("family") or {}
    alpha = rep["alpha"]
    lines = [f"sweep {rep['sweep']}: {rep['description']}".rstrip(": "),
             f"{rep['repeats']} repeat(s) a cell; baseline: "
             + (", ".join(f"{k}={v}" for k, v in rep["baseline"].items()) or "none"),
             "each cell against its baseline, paired by repeat: the geometric mean of the "
             f"ratios cell/baseline [{100 * fam.get('level', stats.LEVEL):g} % t interval on "
             "the log ratios], paired t-test's p",
             "(test 'welch': they do not pair up, why below each figure: Welch's unpaired "
             "t-test, the ratio of the means, no interval);",
             f"p adjusted over the sweep's {fam.get('comparisons', 0)} comparisons by Holm and "
             f"by Benjamini-Hochberg; significant: Holm's p <= {alpha:g}; MDE: the smallest "
             f"change detectable at {100 * fam.get('power', stats.POWER):g} % power"]
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
    prov = rep.get("boots")
    if prov and prov.get("host_cpu_models"):
        lines.append("boots in the figures: " + results.provenance_text(prov))
        cpus = results.known_cpus(prov)
        if len(cpus) > 1:
            lines += [f"WARNING: the boots ran on {len(cpus)} host CPU models: "
                      "a cell and its baseline may have run on different hosts"]
    short = [c for c in rep["cells"] if c["failed_or_missing"]]
    for c in short:
        lines.append(f"note: {c['label']}: {c['failed_or_missing']} run(s) failed or missing")
    width = max(len(c["label"]) for c in rep["cells"]) + 2
    for m in rep["metrics"]:
        rows = [["cell", "n", "mean ± stddev", "%stddev", "%change", "ratio [95 % CI]",
                 "test", "p", "p holm", "p BH", "significant", "ranges"]]
        unpaired: dict[str, list[str]] = {}
        for c in rep["cells"]:
            f = c["figures"][m]
            s = f["sample"]
            label = c["label"] + (" *" if c["is_baseline"] else "")
            if not s:
                rows.append([label, "0", "-"])
                continue
            rel = f"{100 * s['stddev'] / abs(s['mean']):.1f}%" if s["mean"] else "-"
            row = [label, str(s["n"]), _pair(s["mean"], s["stddev"]), rel]
            cmp = f.get("vs_baseline")
            if cmp:
                row += [f"{cmp['change_pct']:+.1f}%" if cmp["change_pct"] is not None else "-",
                        _ratio_text(f), f["test"], _p(f["p"]), _p(f.get("p_holm")),
                        _p(f.get("p_bh")), _call(f), _yes(cmp["ranges_disjoint"])]
                if f["test"] == WELCH:
                    unpaired.setdefault(f["unpaired_why"] or "?", []).append(c["label"])
            elif c["is_baseline"]:
                row.append("base")
            rows.append(row)
        cols = max(len(r) for r in rows)
        w = [max(len(r[i]) for r in rows if len(r) > i) for i in range(cols)]
        w[0] = max(w[0], width - 2)
        lines += ["", f"{LABELS.get(m) or _described(m)} [{m}]"]
        for r in rows:
            lines.append("  " + "  ".join(x.ljust(w[i]) if i in (0, 2, 5, 6, 10) else
                                          x.rjust(w[i]) for i, x in enumerate(r)).rstrip())
        for why, labels in unpaired.items():
            lines.append(f"  welch (unpaired), {len(labels)} cell(s): {why}")
    slow = slowdown(rep)
    if slow:
        lines += ["", "co-runner slowdown: baseline throughput / cell throughput"]
        for label, how, x, lo, hi in slow:
            rng = f" [{lo:.3f}-{hi:.3f}]" if lo is not None and hi is not None else ""
            lines.append(f"  {label:<{width}} {x:.3f}{rng}  {how}")
    lines += ["", "* the baseline cell (each cell is compared with the cell that has the "
              "baseline's coordinates and its own otherwise)"]
    return "\n".join(lines) + "\n"


def slowdown(rep: dict[str, Any]) -> list[tuple[str, str, float, float | None, float | None]]:
    """(cell, how, base/cell throughput, low, high) for cells with a
    baseline: paired, the inverse of the paired ratio and its interval;
    unpaired, the ratio of the means with the extremes of the runs."""
    out: list[tuple[str, str, float, float | None, float | None]] = []
    for c in rep["cells"]:
        f = c["figures"].get("throughput", {})
        pr = _paired(f)
        if pr is not None and pr.ratio:
            inv = pr.inverse()
            assert inv.ratio is not None
            out.append((c["label"], f"paired, {pr.n} repeats, 95 % t interval, p {_p(pr.p)}",
                        inv.ratio, inv.lo, inv.hi))
            continue
        cmp = f.get("vs_baseline")
        if cmp and cmp["ratio"] and cmp["ratio_lo"] and cmp["ratio_hi"]:
            out.append((c["label"], "unpaired: ratio of the means [extremes of the runs]",
                        1 / cmp["ratio"], 1 / cmp["ratio_hi"], 1 / cmp["ratio_lo"]))
    return out


CSV_COLUMNS = ["cell", "metric", "n", "mean", "stddev", "min", "max", "baseline",
               "change_pct", "ratio", "ratio_lo", "ratio_hi", "welch_p", "welch_significant",
               "ranges_disjoint", "test", "unpaired_why", "pairs", "paired_ratio", "paired_lo",
               "paired_hi", "boot_lo", "boot_hi", "p", "p_holm", "p_bh", "holm_significant",
               "bh_significant", "mde_pct"]


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
            pj = f.get("paired") or {}
            w.writerow([c["id"], *[c["coords"].get(a, "") for a in axes], m, s.get("n", 0),
                        s.get("mean", ""), s.get("stddev", ""), s.get("lo", ""),
                        s.get("hi", ""), c["baseline"] or "", cmp.get("change_pct", ""),
                        cmp.get("ratio", ""), cmp.get("ratio_lo", ""), cmp.get("ratio_hi", ""),
                        cmp.get("p", ""), cmp.get("welch_significant", ""),
                        cmp.get("ranges_disjoint", ""), f.get("test", ""),
                        f.get("unpaired_why") or "", pj.get("n", ""),
                        *["" if pj.get(k) is None else pj[k]
                          for k in ("ratio", "lo", "hi", "boot_lo", "boot_hi")],
                        *["" if f.get(k) is None else f[k]
                          for k in ("p", "p_holm", "p_bh", "holm_significant",
                                    "bh_significant", "mde_pct")]])
    return buf.getvalue()


def _write(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.replace(path)


def axis_label(m: str) -> str:
    """Metric M's axis label with its unit: LABELS', else its name and the
    unit its name or description gives (s, ns, bytes, pages; else a count)."""
    if m in LABELS:
        return LABELS[m]
    desc = _described(m)
    unit = ("ns per page" if "_ns_per_" in m else "s" if m.endswith("_s") else
            "bytes" if "bytes" in m else "pages" if "pages" in desc or "pages" in m else "count")
    return f"{m} ({unit})"


def plot(rep: dict[str, Any], out_dir: Path) -> list[Path]:
    """A figure per metric and one of the co-runner slowdown, in OUT_DIR
    (plot.plot_sweep: 95 % intervals, the engines' builds in the titles)."""
    return plot_mod.plot_sweep(rep, out_dir, {m: axis_label(m) for m in rep["metrics"]},
                               slowdown(rep))


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
