#!/usr/bin/python3
"""PKSM's probation wait model (results/probation/README.md) against a sweep's runs.

    probation_model.py SWEEP_DIR        (a sweep of harness/sweeps/probation-model.toml)

The model: a new page waits N visits before it may merge, so merging is
late by Time = ListLength / ScanSpeed x N.  Measured here, per run of
synth-static (from its timeseries.csv, the fill window: the first sample
to the workload's 'filled' event):

  round_ms   the time one round (full_scans + 1) takes: a pass over the list
  list       the mean length of the new list (pages waiting their visits)
  model_ms   ListLength / ScanSpeed with the scan speed PKSM is given:
             list / pages_to_scan wake-ups of sleep_millisecs (10 ms) each
  wait_ms    how long a page waits on the new list, by Little's law: the
             mean list length over the birth rate (pages filled / fill time)
  t50_ms     from the first sample until saved pages reach 50 % of what the
             workload made achievable (dominated by the fill's own pace)

and per scan speed: the slopes of wait_ms and t50_ms against N (least
squares over every run), the delay one more probation visit costs, beside
the mean round time and the model's ListLength / ScanSpeed.  Prints a table; writes model.json beside the report.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import console, results, sampling  # noqa: E402

SLEEP_MS = 10


def run_figures(run: Path) -> dict[str, float] | None:
    meta = results.read_json(run / "meta.json")
    knobs = meta["knobs"]
    series = sampling.read_csv(run / "timeseries.csv")
    filled = console.load_events(run).events_named("filled")
    if not series.rows or not filled:
        return None
    t_fill = filled[0].num("t_ms")
    achievable = filled[0].num("achievable")
    rows = series.rows
    t0 = rows[0]["t_ms"]
    fill = [r for r in rows if r["t_ms"] <= t_fill] or rows[:2]
    d_scans = fill[-1]["ksm_full_scans"] - fill[0]["ksm_full_scans"]
    d_t = fill[-1]["t_ms"] - fill[0]["t_ms"]
    t50 = next((r["t_ms"] - t0 for r in rows if sampling.saved_pages(r) >= 0.5 * achievable),
               None)
    lst = statistics.fmean(r["pksm_new_list"] for r in fill)
    pts = int(knobs["ksm"]["pages_to_scan"])
    births_per_ms = filled[0].num("pages_total") / max(1.0, t_fill - t0)
    return {"wait_ms": lst / births_per_ms, "n": float(knobs["pksm"]["probation_scans"]), "pages_to_scan": float(pts),
            "round_ms": d_t / d_scans if d_scans else float("nan"), "list": lst,
            "model_ms": max(lst / pts, 1.0) * SLEEP_MS, "list_over_speed_ms": lst / pts * SLEEP_MS,
            "t50_ms": float(t50) if t50 is not None else float("nan"),
            "fill_ms": t_fill - t0}


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main() -> int:
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "runs").is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    sweep_dir = Path(sys.argv[1])
    figs = [f for f in (run_figures(s.parent) for s in
                        sorted(sweep_dir.glob("runs/synth-static.*/r*/*/*/*/summary.json"))
                        if results.verdict_of(s.parent) == "pass") if f]
    figs = [f for f in figs if all(v == v for v in f.values())]     # no NaN
    out: dict[str, Any] = {"runs": figs, "by_speed": {}}
    print(f"{'pages_to_scan':>13} {'N':>2} {'runs':>4} {'list':>7} {'round ms':>9} "
          f"{'L/S ms':>7} {'wait ms':>13} {'t50 ms':>14}")
    for pts in sorted({f["pages_to_scan"] for f in figs}):
        mine = [f for f in figs if f["pages_to_scan"] == pts]
        for n in sorted({f["n"] for f in mine}):
            at = [f for f in mine if f["n"] == n]
            t50 = [f["t50_ms"] for f in at]
            wait = [f["wait_ms"] for f in at]
            print(f"{pts:13.0f} {n:2.0f} {len(at):4d} "
                  f"{statistics.fmean(f['list'] for f in at):7.0f} "
                  f"{statistics.fmean(f['round_ms'] for f in at):9.1f} "
                  f"{statistics.fmean(f['list_over_speed_ms'] for f in at):7.2f} "
                  f"{statistics.fmean(wait):6.1f} ± {statistics.stdev(wait) if len(wait) > 1 else 0:4.1f} "
                  f"{statistics.fmean(t50):7.0f} ± {statistics.stdev(t50) if len(t50) > 1 else 0:4.0f}")
        s = slope([f["n"] for f in mine], [f["t50_ms"] for f in mine])
        sw = slope([f["n"] for f in mine], [f["wait_ms"] for f in mine])
        rnd = statistics.fmean(f["round_ms"] for f in mine)
        los = statistics.fmean(f["list_over_speed_ms"] for f in mine)
        out["by_speed"][str(int(pts))] = {"t50_slope_ms_per_visit": s,
                                          "wait_slope_ms_per_visit": sw, "round_ms": rnd,
                                          "list_over_speed_ms": los,
                                          "model_ms": statistics.fmean(f["model_ms"]
                                                                       for f in mine)}
        print(f"  pages_to_scan {pts:.0f}: the wait grows {sw:.1f} ms and t50 {s:.1f} ms per "
              f"probation visit; a round "
              f"takes {rnd:.1f} ms; ListLength/ScanSpeed = {los:.2f} ms "
              f"(at least one wake-up, {SLEEP_MS} ms: {max(los, SLEEP_MS):.1f} ms)")
    (sweep_dir / "model.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
