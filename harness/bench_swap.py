#!/usr/bin/python3
"""make bench-swap: PKSM in front of zswap against zswap alone.

The bench is a sweep: harness/sweeps/bench-swap.toml names its workloads
(harness/sweeps/bench-swap/*.toml: dupalloc under zswap through the guest's
swapbench script, 20 % duplicates of 64 contents, 20 % duplicates each
once in every process, none, and memory in steady use: 20 % copies of 16
contents swept six times, its pages going out to swap and back) and its configurations (zswap alone; PKSM
with swap_dedup=0; PKSM with swap_dedup=1, "full"), and the sweep engine
runs it (pksmtb/sweep.py: repeats outermost, every configuration of a
repeat one after the other, the builds pinned, a stopped bench resumed
with --out DIR).  Each run's figures are the metrics of
pksmtb/metrics/swap.py; the table of targets is pksmtb/benchswap.py's.

Everything lands in results/bench/swap-<UTC>/: figures.json (_meta: the
pinned build, the command line, the spec and its overrides, every run
directory with the host's load as it started and ended, the runs left
out; raw: every run's figures with its repeat; summary: the medians,
paired ratios and verdicts), table.txt (the pinned build, then the
tables), the sweep's own report.{txt,csv,json} and plots/, sweep.json,
and every run under runs/.  --report DIR prints the tables again from a
figures.json (any bench-swap's, old or new), booting nothing.

Exit status: 0, or 1 when a run failed or booted another build than the
one pinned (left out of the figures and named), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import (benchsweep, benchswap, config, kernel, paths, results,  # noqa: E402
                    sweep, sweepspec)

SPEC = paths.TOP / "harness" / "sweeps" / "bench-swap.toml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="one repeat unless --repeat (a smoke run)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per cell (default: the spec's, 3)")
    ap.add_argument("--vcpus", default=None,
                    help="vCPU counts to measure every cell on, e.g. 1,2 "
                         f"(each {paths.VCPUS_RANGE[0]}..{paths.VCPUS_RANGE[1]}; "
                         "default: the spec's)")
    ap.add_argument("--only", action="append", metavar="WORKLOAD",
                    help="only this workload (repeatable; default all: "
                         f"{', '.join(benchswap.WORKLOADS)})")
    ap.add_argument("-j", "--jobs", type=int, default=1,
                    help="boots at once (default 1: boots side by side skew the "
                         "wall-clock figures)")
    ap.add_argument("--out", metavar="DIR", type=Path,
                    help="the bench directory (default results/bench/swap-<UTC>); "
                         "an existing one is resumed: its finished runs are kept")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the cells, their settings and what is done; boot nothing")
    ap.add_argument("--report", metavar="DIR", type=Path,
                    help="print the tables again from DIR/figures.json (results/bench/"
                         "swap-<UTC>), with today's statistics; boot nothing")
    args = ap.parse_args()
    if args.report is not None:
        return benchswap.report(args.report)
    if args.jobs < 1:
        ap.error("-j must be >= 1")
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else None)
    try:
        counts = (config.parse_vcpus_list(args.vcpus, "--vcpus")
                  if args.vcpus is not None else None)
        spec = sweepspec.override(sweepspec.load_spec(SPEC), repeat, counts, args.only)
        if tuple(spec.configs) != benchswap.CONFIGS:
            raise config.ConfigError(f"{SPEC}: [configs] must be "
                                     f"{', '.join(benchswap.CONFIGS)} in that order")
        if args.dry_run:
            print(sweep.dry_run(spec, args.out or benchsweep.out_dir("swap")))
            return 0
        pins = benchsweep.pin(spec)
    except (config.ConfigError, kernel.BuildMissing) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    print("\n".join(pins.header()), flush=True)
    out = args.out or benchsweep.out_dir("swap")
    t0 = time.monotonic()
    try:
        code = sweep.run_spec(spec, out, args.jobs, print_report=False)
        sw = sweep.open_sweep(spec, out, running=False)
    except config.ConfigError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    g = benchsweep.gather(sw, benchswap.KEYS)
    benchsweep.changed(pins, g.failed, sw)
    results.write_json(out / "figures.json", {
        "_meta": benchsweep.meta(spec, pins, g, time.monotonic() - t0, {}),
        "summary": {k: benchswap.summarize(w) for k, w in g.raw.items()},
        "raw": g.raw})
    text = "\n".join(pins.header()) + "\n\n"
    text += "".join(f"{label}\n{t}\n" for label, t in benchswap.tables(g.raw).items()) \
        if g.raw else "no run finished\n"
    (out / "table.txt").write_text(text)
    print()
    print(text, end="")
    for f in g.failed:
        print(f"bench: left out: {f['job']} ({f['why']}, {f['run']})", file=sys.stderr)
    print(f"bench: {out} ({time.monotonic() - t0:.0f} s)")
    return code if code else (1 if g.failed else 0)


if __name__ == "__main__":
    sys.exit(main())
