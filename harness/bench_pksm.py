#!/usr/bin/python3
"""make bench-pksm: PKSM against upstream KSM, side by side.  Figures only.

Runs the same workloads on the pksm and ksm builds in one go (KSM opted in
for the whole process with PR_SET_MEMORY_MERGE, both daemons at the same
pages_to_scan / sleep_millisecs unless a figure is about defaults) and
prints, with PKSM/KSM ratios:

  * unique pages processed per daemon CPU-second (all-unique workload);
  * merged pages per daemon CPU-second (all-duplicate workload);
  * passes until 90 % of zero pages / duplicates were merged, counted as
    page reads per workload page (pages_scanned / pages), a unit that means
    the same for both daemons;
  * metadata bytes per tracked page (PKSM: every allocation it makes,
    items, tree nodes, records and its pfn table, over tracked pages;
    KSM: its rmap items and nodes, from general_profit, over the pages it
    scanned);
  * the cost of an anonymous fault with PKSM on versus pksm.enabled=0 at boot;
  * time to 90 % of the achievable saving of 128 MiB of duplicates, from
    the moment the workload filled its memory, with the daemon CPU it took,
    at PKSM's defaults and at upstream's defaults (100 pages / 20 ms).

Daemon CPU is the daemons' own CPU-time accounting (pksm/cpu_ns,
ksm/ksmd_cpu_ns: host thread CPU time while the daemon ran its batches);
UML's tick-based CPU time moves in 10 ms steps.

The bench pins the pksm and ksm builds as it starts (build id, revision,
dirty flag, variant: pksmtb/benchbuilds.py) and holds every run to them: a
run that booted another build (the kernel was rebuilt under the bench) is
marked in figures.json and stops the bench with the reason.
Everything lands in results/bench/pksm-<UTC>/ (figures.json, whose _meta
holds the pinned builds and the harness's revision, + every run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import (benchbuilds, config, console, kernel, paths, results,  # noqa: E402
                    runner, sampling)

PKSM_DEFAULTS = {"pages_to_scan": 4000, "sleep_millisecs": 10}
UPSTREAM_DEFAULTS = {"pages_to_scan": 100, "sleep_millisecs": 20}


def scenario(name: str, variant: str, knobs: dict[str, Any], options: dict[str, Any],
             mem: str = "512M", timeout: int = 600, program: str = "dupalloc",
             extra_pksm: dict[str, Any] | None = None) -> config.Scenario:
    data: dict[str, Any] = {
        "scenario": {"name": name, "variant": variant, "mem": mem, "timeout": timeout,
                     "sample_interval_ms": 100},
        "knobs": {"ksm": dict(knobs)},
        "workload": [{"program": program, "options": dict(options)}],
    }
    if extra_pksm and variant == "pksm":
        data["knobs"]["pksm"] = dict(extra_pksm)
    return config.parse_scenario(data, name, None)


class Bench:
    def __init__(self, out: Path, verbose: bool, pins: benchbuilds.Pins, quick: bool) -> None:
        self.out = out
        self.verbose = verbose
        self.pins = pins
        self.quick = quick
        self.runs: dict[str, Path] = {}
        self.fig: dict[str, dict[str, Any]] = {}

    def save(self) -> None:
        """figures.json: the figures so far, the pinned builds, the runs."""
        self.fig["_meta"] = {**self.pins.to_json(),
                             "command_line": results.command_line(),
                             "quick": self.quick,
                             "runs": {k: str(p) for k, p in self.runs.items()}}
        results.write_json(self.out / "figures.json", self.fig)

    def run(self, key: str, variant: str, knobs: dict[str, Any], options: dict[str, Any],
            kernel_args: list[str] | None = None, mem: str = "512M",
            program: str = "dupalloc") -> tuple[sampling.Series, console.Console]:
        opts = dict(options)
        if variant == "ksm" and program == "dupalloc":
            opts.setdefault("merge", "prctl")
        sc = scenario(key, variant, knobs, opts, mem=mem, program=program)
        print(f"bench: {key} ...", flush=True)
        res = runner.run(runner.RunRequest(sc, variant=variant, kernel_args=kernel_args or [],
                                           results=self.out / "runs", verbose=self.verbose,
                                           progress=False))
        try:
            self.pins.check_run(key, res.meta)  # the pinned build, or the bench stops
        except benchbuilds.BuildChanged:
            self.save()
            raise
        if res.exit_code != 0:
            raise SystemExit(f"bench: run {key} failed (exit {int(res.exit_code)}, "
                             f"{res.run_dir}):\n" + "\n".join(res.problems))
        self.runs[key] = res.run_dir
        return res.series(), res.console


def event(con: console.Console, name: str) -> dict[str, float]:
    try:
        return con.event(name).floats()
    except console.EventMissing as e:
        raise SystemExit(f"bench: {e}") from None


def window(series: sampling.Series, t0: float, t1: float) -> list[dict[str, int]]:
    rows = [r for r in series.rows if t0 <= r["t_ms"] <= t1]
    if len(rows) < 2:
        raise SystemExit("bench: too few samples in the measuring window")
    return rows


def daemon_cpu(row: dict[str, int]) -> int:
    """The daemon's CPU time (ns): pksm/cpu_ns or ksm/ksmd_cpu_ns, the host
    CPU time of the vCPU threads while the daemon ran its batches."""
    c = sampling.cpu_ns(row)
    if c is None:
        raise SystemExit("bench: the kernel has no daemon CPU-time counter")
    return c


def rate(rows: list[dict[str, int]], column: str) -> float | None:
    """column's growth per daemon CPU second over rows."""
    d_busy = (daemon_cpu(rows[-1]) - daemon_cpu(rows[0])) / 1e9
    d = rows[-1][column] - rows[0][column]
    return d / d_busy if d_busy > 0 else None


def reads_per_page_to(series: sampling.Series, pages: float, target: float) -> float | None:
    """Page reads by the daemon (pages_scanned) per workload page, from the
    first sample until saved pages reach target: the number of passes, in
    a unit that means the same for both daemons (PKSM's rounds are not
    upstream's full scans over all pages)."""
    base = series.rows[0]["ksm_pages_scanned"]
    for r in series.rows:
        if sampling.saved_pages(r) >= target:
            return (r["ksm_pages_scanned"] - base) / pages
    return None


def work_window(series: sampling.Series, filled_ms: float, hold_ms: float,
                variant: str) -> list[dict[str, int]]:
    """Samples while the daemon had work: KSM rescans everything all the
    time (the whole hold); PKSM until its new and rescan lists ran dry."""
    if variant == "ksm":
        return window(series, filled_ms, filled_ms + hold_ms)
    for r in series.rows:
        if r["t_ms"] > filled_ms and r["pksm_new_list"] + r["pksm_rescan_list"] == 0:
            return window(series, 0, r["t_ms"])
    return window(series, 0, filled_ms + hold_ms)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    pins = benchbuilds.Pins.of(kernel.find_kernel(b) for b in ("pksm", "ksm"))
    print("\n".join(pins.header()), flush=True)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = paths.TOP / "results" / "bench" / f"pksm-{stamp}"
    out.mkdir(parents=True)
    bench = Bench(out, args.verbose, pins, args.quick)
    scale = 4 if args.quick else 1
    fig = bench.fig
    same = PKSM_DEFAULTS

    # 1. Unique pages: how many pages a daemon CPU-second processes.
    hold = 8
    for v in ("pksm", "ksm"):
        s, con = bench.run(f"unique-{v}", v, {**same, "run": 1},
                           {"procs": 4, "mib": 32 // scale, "dup": 0, "hold": hold})
        f = event(con, "filled")
        rows = work_window(s, f["t_ms"], hold * 1000, v)
        fig.setdefault("unique pages per daemon CPU-second", {})[v] = \
            rate(rows, "ksm_pages_scanned")
        held = window(s, f["t_ms"], f["t_ms"] + hold * 1000)
        if v == "pksm":
            # when the most pages were tracked (before processes exit)
            top = max(held, key=lambda r: r["pksm_tracked_pages"])
            fig.setdefault("metadata bytes per tracked page", {})[v] = \
                top["pksm_metadata_bytes"] / max(1, top["pksm_tracked_pages"])
        else:
            # KSM's rmap items and nodes: saved bytes minus general_profit,
            # at its largest, over the workload's pages
            meta_bytes = max(sampling.saved_pages(r) * sampling.PAGE_SIZE
                             - r["ksm_general_profit"] for r in held)
            fig.setdefault("metadata bytes per tracked page", {})[v] = \
                meta_bytes / f["pages_total"]

    # 2. Duplicates and zero pages, same knobs: merge rate and passes.
    for v in ("pksm", "ksm"):
        s, con = bench.run(f"dup-{v}", v, {**same, "use_zero_pages": 1, "run": 1},
                           {"procs": 2, "mib": 64 // scale, "dup": 100, "hold": 10})
        f = event(con, "filled")
        rows = window(s, 0, f["t_ms"] + 10000)
        d_busy = (daemon_cpu(rows[-1]) - daemon_cpu(rows[0])) / 1e9
        saved = max(sampling.saved_pages(r) for r in rows)
        fig.setdefault("merged pages per daemon CPU-second", {})[v] = \
            saved / d_busy if d_busy > 0 else None
        fig.setdefault("page reads per page until 90 % of duplicates merged", {})[v] = \
            reads_per_page_to(s, f["pages_total"], 0.9 * f["achievable"])
        s, con = bench.run(f"zero-{v}", v, {**same, "use_zero_pages": 1, "run": 1},
                           {"procs": 2, "mib": 16 // scale, "dup": 0, "zero": 100, "hold": 5})
        f = event(con, "filled")
        fig.setdefault("page reads per page until 90 % of zero pages merged", {})[v] = \
            reads_per_page_to(s, f["pages_total"], 0.9 * f["zero"])

    # 3. 128 MiB of duplicates at PKSM's and at upstream's defaults.
    for label, knobs in (("PKSM defaults", PKSM_DEFAULTS),
                         ("upstream defaults", UPSTREAM_DEFAULTS)):
        for v in ("pksm", "ksm"):
            key = f"dup128-{label.split()[0].lower()}-{v}"
            s, con = bench.run(key, v, {**knobs, "use_zero_pages": 1, "run": 1},
                               {"procs": 2, "mib": 64 // scale, "dup": 100,
                                "hold": 40 if label.startswith("upstream") else 10})
            f = event(con, "filled")
            summary = sampling.summarize(s, int(f["t_ms"]), int(f["achievable"]))
            fig.setdefault(f"time to 90 % of 128 MiB, {label} (s)", {})[v] = summary.get("t90_s")
            t90 = summary.get("t90_s")
            if t90 is not None:
                rows = [r for r in s.rows if r["t_ms"] <= f["t_ms"] + t90 * 1000]
                fig.setdefault(f"daemon CPU to 90 %, {label} (s)", {})[v] = \
                    (daemon_cpu(rows[-1]) - daemon_cpu(s.rows[0])) / 1e9

    # 4. Fault cost: PKSM's hooks on versus pksm.enabled=0 (run=0: no daemon work).
    fault_runs: list[tuple[str, list[str]]] = [("on", []), ("off", ["pksm.enabled=0"])]
    for label, kargs in fault_runs:
        _, con = bench.run(f"faults-pksm-{label}", "pksm", {"run": 0},
                           {"mib": 32 // scale, "rounds": 9}, kernel_args=kargs,
                           program="faultbench")
        fig.setdefault("anonymous fault, PKSM on vs pksm.enabled=0 (ns)", {})[label] = \
            event(con, "faults")["ns_median"]

    bench.save()
    print("\n".join(pins.header()))
    print_table(fig)
    print(f"bench: {out}")
    return 0


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
    return str(v)


def print_table(fig: dict[str, dict[str, Any]]) -> None:
    rows = [("figure", "pksm / on", "ksm / off", "ratio")]
    for name, vals in fig.items():
        if name.startswith("_"):
            continue
        a = vals.get("pksm", vals.get("on"))
        b = vals.get("ksm", vals.get("off"))
        ratio = f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and b else ""
        rows.append((name, fmt(a), fmt(b), ratio))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in w))


if __name__ == "__main__":
    sys.exit(main())
