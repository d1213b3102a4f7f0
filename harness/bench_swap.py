#!/usr/bin/python3
"""make bench-swap: PKSM in front of zswap against zswap alone.

The same workloads boot on the pksm build (128 MiB guest, 384 MiB ubd swap,
zswap with lzo and zsmalloc, max_pool_percent 90 so that the pool is never
full and its size is what the stores made of it) in three configurations:

  zswap   zswap alone: pksm.enabled=0 (no PKSM hook, no pksmd)
  pksm    zswap + PKSM at its defaults, swap_dedup=0 (pksmd merges as
          always; reclaim does not ask PKSM, no pressure mode)
  full    zswap + PKSM with swap_dedup=1: pressure mode and the check
          before the store (docs/swap.md)

Workloads (dupalloc, content compressible: --fill-bytes 2; every process
verifies all its pages at the end, reading back what was swapped):

  dup20   4 processes x 48 MiB, 20 % of the pages duplicates of 64
          contents (so ~20 % of the pages are redundant copies), the rest
          unique
  dup20x4 the same, but each duplicate content has its own page index, so
          it exists 4 times, once in each process (15 % of the pages are
          redundant copies): pksmd must pair pages up in its unstable tree
          before the stable tree (and the store-time check) knows them
  nodup   the same with no duplicates: the overhead case

Figures, each the median of --repeat runs (default 3) with [min-max] and
the ratio to zswap alone paired by repeat (the three configurations' boots
of a repeat run one after the other on the same content seed: the
geometric mean of the per-repeat ratios with its 95 % t interval,
pksmtb/benchstats.py): pool (peak /sys/kernel/debug/zswap/
pool_total_size, sampled every 0.2 s in the guest), stored pages (peak),
compress calls (zswpout + reject_compress_poor + reject_compress_fail +
reject_alloc_fail), pages written to the device (pswpout), pages swapped in
(pswpin + zswpin), direct reclaim stalls (allocstall_*), the workload's own
time (fill and final verification, /proc/uptime), daemon CPU (pksmd's
busy_ns), and for full the hook's ns per page offered (swap_ns /
swap_offered) and its merges.  Targets: on dup20 >= 15 % less
pool and >= 15 % fewer compress calls than zswap alone; on nodup <= 2 %
slower; <= 9 us added per store, judged on intervals: "met" only when the
whole 95 % interval (the paired ratio's; for the hook's ns, the t interval
of its mean) lies inside the target, "not met" when it lies wholly
outside, else "not shown".  Figures only: a missed target never fails.
--report DIR prints the tables again from a bench's figures.json, booting
nothing.

--vcpus N[,M...] runs every cell on each vCPU count (default: the
testbed's), alternating, and reports each count apart.

The bench pins the pksm build as it starts (build id, revision, dirty
flag, variant: pksmtb/benchbuilds.py) and holds every run to it: a run that
booted another build (the kernel was rebuilt under the bench) is marked in
figures.json and stops the bench with the reason.

Everything lands in results/bench/swap-<UTC>/: figures.json (the pinned
build and the harness's revision; every repeat's values, each with its
repeat index, the medians, the paired ratios and the verdicts, the
command line, the run directories, whose meta.json hold each run's build
record and banner check), table.txt (the pinned build, then the table
printed) and every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import benchbuilds, benchstats, config, kernel, paths, results, stats  # noqa: E402
from bench_engine import Runner  # noqa: E402

CONFIGS: dict[str, tuple[list[str], dict[str, int]]] = {
    "zswap": (["pksm.enabled=0"], {}),
    "pksm": ([], {"swap_dedup": 0}),
    "full": ([], {"swap_dedup": 1}),
}
ZSWAP_ARGS = ["zswap.enabled=1", "zswap.compressor=lzo",
              "zswap.max_pool_percent=90"]

# The guest side: a background loop keeps the pool's and the store's peaks
# while dupalloc fills and verifies; then every counter as one event.
SHELL = r'''
z=/sys/kernel/debug/zswap
peak=/tmp/zswap-peak
( pool=0; stored=0
  while [ ! -e /tmp/stop-peak ]; do
	p=$(cat $z/pool_total_size); s=$(cat $z/stored_pages)
	[ "$p" -gt "$pool" ] && pool=$p
	[ "$s" -gt "$stored" ] && stored=$s
	echo "$pool $stored" > $peak.new && mv $peak.new $peak
	sleep 0.2
  done ) &
W=$!
t0=$(cut -d' ' -f1 /proc/uptime)
dupalloc --procs 4 --mib {mib} --dup {dup} --dup-set {dupset} --fill-bytes 2 --hold 0 --seed {seed}
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
touch /tmp/stop-peak; wait $W
read pool stored < $peak
vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
stall=0
for f in $(awk '$1 ~ /^allocstall_/ { print $2 }' /proc/vmstat); do stall=$((stall + f)); done
echo "PKSMTB-EVENT swapbench rc=$rc t0=$t0 t1=$t1 pool_peak=$pool stored_peak=$stored" \
	"written_back=$(cat $z/written_back_pages) poor=$(cat $z/reject_compress_poor)" \
	"cfail=$(cat $z/reject_compress_fail) afail=$(cat $z/reject_alloc_fail)" \
	"zswpout=$(vm zswpout) zswpin=$(vm zswpin) pswpout=$(vm pswpout) pswpin=$(vm pswpin)" \
	"allocstall=$stall"
'''

# workload: (--dup, --dup-set)
WORKLOADS = {"dup20": (20, 64), "dup20x4": (20, 0), "nodup": (0, 0)}


def scenario(name: str, knobs: dict[str, int], mib: int, wl: str, seed: int,
             vcpus: int) -> str:
    lines = ["[scenario]", f'name = "{name}"', 'variant = "pksm"', 'mem = "128M"',
             'swap = "384M"', "timeout = 900", "sample_interval_ms = 250", f"vcpus = {vcpus}",
             "kernel_args = [" + ", ".join(f'"{a}"' for a in ZSWAP_ARGS) + "]"]
    if knobs:
        lines += ["", "[knobs.pksm]"] + [f"{k} = {v}" for k, v in knobs.items()]
    dup, dupset = WORKLOADS[wl]
    shell = SHELL.replace("{mib}", str(mib)).replace("{dup}", str(dup)) \
        .replace("{dupset}", str(dupset)).replace("{seed}", str(seed))
    lines += ["", "[[workload]]", f"shell = '''{shell}'''"]
    return "\n".join(lines) + "\n"


def one(r: Runner, rep: int, wl: str, cfg: str, mib: int, vcpus: int) -> dict[str, Any]:
    args, knobs = CONFIGS[cfg]
    key = f"{wl}-{cfg}-v{vcpus}-{rep}"
    series, con = r.run(key, "pksm", scenario(key, knobs, mib, wl, 7 + rep, vcpus),
                        kernel_args=ZSWAP_ARGS + args)
    e = con.event("swapbench").floats()
    if e["rc"] != 0:
        raise SystemExit(f"bench: {key}: dupalloc exited {e['rc']:.0f}")
    rows = series.rows
    first, last = rows[0], rows[-1]
    d: dict[str, Any] = {
        "pool_peak_bytes": e["pool_peak"],
        "stored_peak_pages": e["stored_peak"],
        "compress_calls": e["zswpout"] + e["poor"] + e["cfail"] + e["afail"],
        "zswpout": e["zswpout"],
        "pswpout": e["pswpout"],
        "written_back": e["written_back"],
        "swapped_in": e["pswpin"] + e["zswpin"],
        "allocstall": e["allocstall"],
        "workload_s": round(e["t1"] - e["t0"], 2),
        "daemon_busy_s": round((last.get("pksm_busy_ns", 0) - first.get("pksm_busy_ns", 0))
                               / 1e9, 4),
        "daemon_cpu_s": round((last.get("pksm_cpu_ns", 0) - first.get("pksm_cpu_ns", 0))
                              / 1e9, 4),
    }
    offered = last.get("pksm_swap_offered", 0)
    if cfg == "full" and offered:
        d["ns_per_offered"] = round(last["pksm_swap_ns"] / offered, 1)
        d["swap_offered"] = offered
        d["swap_stable_merges"] = last["pksm_swap_stable_merges"]
        d["swap_zero_merges"] = last["pksm_swap_zero_merges"]
        d["swap_deferred"] = last["pksm_swap_deferred"]
        d["swap_busy"] = last["pksm_swap_busy"]
        d["pressure_batches"] = last["pksm_pressure_batches"]
    d["pages_sharing_peak"] = max((x.get("ksm_pages_sharing", 0) for x in rows), default=0)
    d["repeat"] = rep       # pairs it with the other configurations' runs of the repeat
    return d


@dataclass(frozen=True)
class Figure:
    """A row: the workload, the key in a run's figures, and the target:
    on the full/zswap ratio paired by repeat (on="ratio"), or on full's
    own value, the t interval of its mean (on="full": one sample)."""

    name: str
    workload: str
    key: str
    target: stats.Target | None = None
    on: Literal["ratio", "full"] = "ratio"

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'full/zswap' if self.on == 'ratio' else 'full'} {self.target.text()}"


FIGURES: list[Figure] = [
    Figure("pool peak, bytes", "dup20", "pool_peak_bytes", stats.Target(0.85)),
    Figure("compress calls", "dup20", "compress_calls", stats.Target(0.85)),
    Figure("stored pages, peak", "dup20", "stored_peak_pages"),
    Figure("pages written to the device", "dup20", "pswpout"),
    Figure("pages swapped in", "dup20", "swapped_in"),
    Figure("direct reclaim stalls", "dup20", "allocstall"),
    Figure("workload time, s", "dup20", "workload_s"),
    Figure("daemon CPU, s", "dup20", "daemon_cpu_s"),
    Figure("pool peak, bytes", "nodup", "pool_peak_bytes"),
    Figure("compress calls", "nodup", "compress_calls"),
    Figure("direct reclaim stalls", "nodup", "allocstall"),
    Figure("workload time, s", "nodup", "workload_s", stats.Target(1.02)),
    Figure("daemon CPU, s", "nodup", "daemon_cpu_s"),
    Figure("pool peak, bytes", "dup20x4", "pool_peak_bytes"),
    Figure("compress calls", "dup20x4", "compress_calls"),
    Figure("workload time, s", "dup20x4", "workload_s"),
    Figure("daemon CPU, s", "dup20x4", "daemon_cpu_s"),
    Figure("hook ns per page offered", "dup20", "ns_per_offered", stats.Target(9000), "full"),
    Figure("hook ns per page offered", "dup20x4", "ns_per_offered", stats.Target(9000), "full"),
    Figure("hook ns per page offered", "nodup", "ns_per_offered", stats.Target(9000), "full"),
    Figure("merged at store time", "dup20", "swap_stable_merges"),
    Figure("merged at store time", "dup20x4", "swap_stable_merges"),
    Figure("kept for pksmd (unstable match)", "dup20x4", "swap_deferred"),
]


def stat(vals: list[float]) -> dict[str, Any]:
    return {"values": vals, "median": statistics.median(vals) if vals else None,
            "min": min(vals) if vals else None, "max": max(vals) if vals else None}


def summarize(raw: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Per figure: each configuration's values, median and range; pksm and
    full against zswap alone, paired by repeat (the three boots of a
    repeat ran one after the other on the same content seed), with the
    interval ('pksm_paired', 'full_paired'); the value the target is
    judged on ('judged') and the verdict ('met': met, not met, not shown;
    None without a target)."""
    out = []
    for fig in FIGURES:
        row: dict[str, Any] = {"figure": fig.name, "workload": fig.workload,
                               "target": fig.target_text()}
        key = fig.key

        def pick(d: dict[str, Any]) -> Any:
            return d[key]
        keyed = {cfg: benchstats.by_repeat(raw.get(fig.workload, {}).get(cfg, []), pick)
                 for cfg in CONFIGS}
        for cfg in CONFIGS:
            row[cfg] = stat(list(keyed[cfg][0].values()))
        for cfg in ("pksm", "full"):
            pr = benchstats.paired(keyed[cfg][0], keyed["zswap"][0])
            row[f"{cfg}_ratio"] = pr.ratio
            row[f"{cfg}_paired"] = pr.to_json()
        row["pairing"] = sorted({h for vals, h in keyed.values() if vals})
        judged: benchstats.Judged | None = None
        if fig.target is not None and fig.on == "ratio":
            full = benchstats.paired(keyed["full"][0], keyed["zswap"][0])
            judged = benchstats.judge_ratio(full, fig.target, "full/zswap, paired")
        elif fig.target is not None:
            judged = benchstats.judge_mean(list(keyed["full"][0].values()), fig.target)
        row["judged"] = judged.to_json() if judged else None
        row["met"] = judged.verdict if judged else None
        out.append(row)
    return out


def cell(d: dict[str, Any]) -> str:
    if d["median"] is None:
        return "-"

    def f(x: float) -> str:
        return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
    m = f(d["median"])
    return m if len(d["values"]) < 2 else f"{m} [{f(d['min'])}-{f(d['max'])}]"


def _ratio(pj: dict[str, Any]) -> str:
    return benchstats.Judged(pj["ratio"], pj["lo"], pj["hi"], "", None).text("{:.3f}")


def table(summary: list[dict[str, Any]]) -> str:
    rows = [("workload", "figure", "zswap", "pksm", "full", "pksm/z [95 % CI]",
             "full/z [95 % CI]", "target", "judged on [95 % CI]", "met?")]
    how: set[str] = set()
    for s in summary:
        j = s.get("judged")
        jt = ""
        if j:
            jt = benchstats.Judged(j["value"], j["lo"], j["hi"], "", None).text(
                "{:.3f}" if "paired" in j["how"] else "{:,.0f}") + f" ({j['how']})"
        how |= set(s.get("pairing", []))
        rows.append((s["workload"], s["figure"], cell(s["zswap"]), cell(s["pksm"]),
                     cell(s["full"]), _ratio(s["pksm_paired"]), _ratio(s["full_paired"]),
                     s["target"], jt, benchstats.verdict_text(s["met"])))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[j]) if j in (0, 1, 7, 8) else c.rjust(w[j])
                               for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w))
    lines.append(f"({benchstats.pairing_note(how)}; x/z: geometric mean of the per-repeat "
                 "ratios to zswap alone; met only when the whole 95 % interval lies inside "
                 "the target, not met when wholly outside, else not shown)")
    return "\n".join(lines) + "\n"


def report(d: Path) -> int:
    """--report DIR: the tables again from DIR/figures.json, nothing booted."""
    path = d / "figures.json" if d.is_dir() else d
    try:
        data = results.read_json(path)
        raw, meta = data["raw"], data.get("_meta", {})
        tables = {label: table(summarize(g))
                  for label, g in benchstats.groups(raw, set(WORKLOADS)).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"bench: {path}: not a bench-swap figures.json ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    pins = benchbuilds.Pins(meta.get("builds") or {}, meta.get("build_changed") or [],
                            meta.get("harness_revision") or meta.get("git_revision") or "?")
    print(f"{path}: {meta.get('command_line', '?')}, {meta.get('repeat', '?')} repeat(s)")
    print("\n".join(pins.header()))
    for label, t in tables.items():
        print(f"\n{label}\n{t}", end="")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="4 x 40 MiB instead of 4 x 48, one repeat unless --repeat")
    ap.add_argument("--repeat", type=int, default=None, help="runs per cell (default 3)")
    ap.add_argument("--vcpus", default=str(paths.DEFAULT_VCPUS),
                    help="vCPU counts to measure every cell on, e.g. 1,2 "
                         f"(each {paths.VCPUS_RANGE[0]}..{paths.VCPUS_RANGE[1]}; "
                         f"default {paths.DEFAULT_VCPUS})")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--report", metavar="DIR", type=Path,
                    help="print the tables again from DIR/figures.json (results/bench/"
                         "swap-<UTC>), with today's statistics; boot nothing")
    args = ap.parse_args()
    if args.report is not None:
        return report(args.report)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        ap.error("--repeat must be >= 1")
    try:
        counts = config.parse_vcpus_list(args.vcpus, "--vcpus")
    except config.ConfigError as e:
        ap.error(str(e))
    pins = benchbuilds.Pins.of([kernel.find_kernel("pksm")])
    print("\n".join(pins.header()), flush=True)
    mib = 40 if args.quick else 48

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = paths.TOP / "results" / "bench" / f"swap-{stamp}"
    out.mkdir(parents=True)
    r = Runner(out, args.verbose, pins)
    # "vcpus=N" -> workload -> configuration -> one dict per repeat
    raw: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    t0 = time.monotonic()
    meta = {"command_line": results.command_line(), "repeat": repeat, "mib_per_process": mib,
            "vcpus": counts,
            "configs": {k: {"kernel_args": ZSWAP_ARGS + a, "knobs.pksm": kn}
                        for k, (a, kn) in CONFIGS.items()},
            "runs": r.runs, "host_load_1min_before_after": r.load,
            "host_cpus": os.cpu_count()}

    def save() -> None:
        results.write_json(out / "figures.json",
                           {"_meta": {**pins.to_json(), **meta,
                                      "elapsed_s": round(time.monotonic() - t0)},
                            "summary": {k: summarize(g) for k, g in raw.items()},
                            "raw": raw})

    # Repeats outermost, vCPU counts and configurations alternating: host
    # drift hits all alike.
    try:
        for rep in range(repeat):
            for n in counts:
                for wl in WORKLOADS:
                    for cfg in CONFIGS:
                        raw.setdefault(f"vcpus={n}", {}).setdefault(wl, {}).setdefault(
                            cfg, []).append(one(r, rep, wl, cfg, mib, n))
                        save()
    except benchbuilds.BuildChanged:
        save()                  # figures.json says which boot, and stops there
        raise
    save()
    text = "\n".join(pins.header()) + "\n\n"
    text += "".join(f"{label}\n{table(summarize(g))}\n" for label, g in raw.items())
    (out / "table.txt").write_text(text)
    print()
    print(text, end="")
    print(f"bench: {out} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
