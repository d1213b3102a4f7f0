#!/usr/bin/python3
"""make bench-engine: the engine figures, PKSM against upstream KSM.

Every figure is measured --repeat times (default 3) on the pksm and the ksm
build in one go, and reported as the median with the min-max spread and the
PKSM/KSM ratio paired by repeat (the two builds' boots of a repeat run one
after the other: the geometric mean of the per-repeat ratios with its 95 %
t interval, pksmtb/benchstats.py).  A target is judged on an interval:
"met" only when the whole interval lies inside it, "not met" when it lies
wholly outside, else "not shown"; the interval is the paired ratio's for a
target on the ratio or on a slowdown (PKSM's on and off boots of a repeat,
paired), the t interval of PKSM's mean otherwise (one sample, not paired).
--report DIR prints the table again from a bench's figures.json, booting
nothing.  KSM opts in for the whole process
(PR_SET_MEMORY_MERGE=1); both daemons run at PKSM's 4000 pages / 10 ms with
zero pages merged into the zero page unless a figure says otherwise.

 1. Structured content: daemon CPU per page.  PKSM: cpu_ns from
    boot until its new and rescan lists ran dry after the fill, over the
    workload's pages (the CPU it took to settle each page once).  KSM:
    ksmd_cpu_ns over pages_scanned from boot until 3 full scans after the
    fill (checksum, unstable tree, merge: all its work on the content; the
    whole hold's figure, diluted by cheap rescans of merged pages, is kept in
    figures.json).  Content: (a) 2 processes x N pages, each zero but for
    one word, all different (engload --kind sparse); (b) pages equal but for
    one byte, all different (dupalloc --near 100 --dup-set 1); (c) 4
    processes x 4096 copies of one page, far beyond max_page_sharing
    (dupalloc --dup 100 --dup-set 1).  Target <= 2x.  For (c), where KSM's
    per-scan figure mostly counts cheap rescans of pages already merged, also
    like for like: daemon CPU from boot until 99 % of the peak saving, per
    workload page, for both.
 2. At rest: one dupalloc process with ~3,000 unique, ~2,000
    duplicate and ~1,000 zero pages; once pages_sharing + ksm_zero_pages
    stopped rising, the daemon's CPU fraction (cpu_ns delta / wall delta)
    over up to 20 s.  Target <= 0.1x.  Then a second process (engload) that
    held 8 unique pages since the start rewrites one word in each at a known
    time: PKSM's re-verify latency is the time until reverify_changed +
    changed_in_tree grew by 8 (first and all); for KSM the time one full
    scan takes (wall / full_scans delta), its equivalent.
 3. Co-runner slowdown: 4 workers of the host's /usr/bin/python3
    (host root mounted read-only over hostfs, chroot) build 60,000 records and
    an in-memory sqlite table, then serve requests for 20 s.  Requests/s and
    build time with merging on against off (pksm at its defaults against
    pksm.enabled=0; ksm opted in at 4000/10 against run=0), the slowdown
    (off/on), COW breaks per merged page (PKSM: cow_breaks delta; KSM:
    /proc/vmstat cow_ksm delta; over the peak pages_sharing + ksm_zero_pages)
    and the saving (that peak, MiB).
 4. Metadata: bytes per tracked page on an all-unique workload (PKSM:
    metadata_bytes / tracked_pages at the peak; KSM: its rmap items and nodes,
    saved bytes - general_profit at the largest, over the workload's pages).

Daemon CPU is the daemons' own CPU-time accounting (pksm/cpu_ns,
ksm/ksmd_cpu_ns: the host CPU time of the vCPU threads while the daemon ran
its batches; docs/pksm.md).  --vcpus N[,M...] runs every figure on each
vCPU count (default 2), alternating, reported apart.

The bench pins the pksm and ksm builds as it starts (build id, revision,
dirty flag, variant: pksmtb/benchbuilds.py) and holds every run to them: a
run that booted another build (the kernel was rebuilt under the bench) is
marked in figures.json and stops the bench with the reason.

Everything lands in results/bench/engine-<UTC>/: figures.json (the pinned
builds and the harness's revision; every repeat's values, each with its
repeat index, the medians, the paired ratios and the verdicts, the
bench's command line and knobs, the run directories, whose meta.json hold
each run's build record and banner check) and every run.  Figures only: a
missed target never fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import (benchbuilds, benchstats, config, console, kernel, paths,  # noqa: E402
                    results, runner, sampling, stats)
from bench_pksm import PKSM_DEFAULTS, daemon_cpu, event, window, work_window  # noqa: E402

SAME = {**PKSM_DEFAULTS, "use_zero_pages": 1, "run": 1}

PYWORKER = r'''
"""A small real program for the engine benchmark: build, then serve."""
import collections, datetime, decimal, hashlib, json, os, random, re, sqlite3, sys, time
if os.environ.get("BENCH_MERGE") == "1":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(67, 1, 0, 0, 0) != 0:  # PR_SET_MEMORY_MERGE
        print("pyworker: prctl(PR_SET_MEMORY_MERGE) failed, errno", ctypes.get_errno())
        sys.exit(3)
wid, n, serve = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
TAGS = ["red", "green", "blue", "admin", "guest", "staff", "ops", "dev"]
rnd = random.Random(wid)
t0 = time.monotonic()
records = []
for i in range(n):
    records.append({
        "id": i, "name": "user%06d" % i, "email": "user%d@example.org" % i,
        "balance": decimal.Decimal(rnd.randint(0, 10 ** 6)) / 100,
        "tags": [rnd.choice(TAGS) for _ in range(3)],
        "created": datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 1000),
        "meta": json.dumps({"k": i, "v": [i, i * 2], "h": hashlib.md5(b"%d" % i).hexdigest()}),
    })
db = sqlite3.connect(":memory:")
db.execute("create table rec (id integer primary key, name text, email text,"
           " balance text, tag text, created text)")
db.executemany("insert into rec values (?, ?, ?, ?, ?, ?)",
               ((r["id"], r["name"], r["email"], str(r["balance"]), r["tags"][0],
                 r["created"].isoformat()) for r in records))
db.execute("create index rec_tag on rec(tag)")
db.commit()
counts = collections.Counter(t for r in records for t in r["tags"])
pat = re.compile(r"user(\d+)@")
build = time.monotonic() - t0
reqs, t1 = 0, time.monotonic()
end = t1 + serve
while time.monotonic() < end:
    for _ in range(20):
        i = rnd.randrange(n)
        r = records[i]
        r["balance"] += decimal.Decimal("0.01")
        r["meta"] = json.dumps({"k": i, "n": reqs, "id": int(pat.match(r["email"]).group(1))})
        db.execute("update rec set balance = ? where id = ?", (str(r["balance"]), i))
        db.execute("select name, balance from rec where id = ?", (rnd.randrange(n),)).fetchone()
        db.execute("select count(*) from rec where tag = ?", (rnd.choice(TAGS),)).fetchone()
        reqs += 1
el = time.monotonic() - t1
print("PKSMTB-EVENT pyworker id=%d build_s=%.3f rps=%.1f requests=%d" % (wid, build, reqs / el, reqs),
      flush=True)
'''


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


# The vCPUs of the guests booted now (main() sets it for each count asked).
VCPUS = paths.DEFAULT_VCPUS


def scenario(name: str, variant: str, knobs: dict[str, Any],
             workloads: Sequence[tuple[str, dict[str, Any]] | str],
             mem: str = "512M", timeout: int = 600) -> str:
    """Scenario TOML; a workload is (program, options) or a shell snippet."""
    lines = ["[scenario]", f'name = "{name}"', f'variant = "{variant}"', f'mem = "{mem}"',
             f"timeout = {timeout}", f"vcpus = {VCPUS}", "sample_interval_ms = 100", "",
             "[knobs.ksm]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in knobs.items()]
    for wl in workloads:
        lines += ["", "[[workload]]"]
        if isinstance(wl, str):
            assert "'''" not in wl
            lines.append(f"shell = '''\n{wl}'''")
        else:
            prog, opts = wl
            lines += [f'program = "{prog}"', "[workload.options]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


class Runner:
    def __init__(self, out: Path, verbose: bool, pins: benchbuilds.Pins) -> None:
        self.out = out
        self.verbose = verbose
        self.pins = pins
        self.runs: dict[str, str] = {}
        self.load: dict[str, list[float]] = {}

    def run(self, key: str, variant: str, text: str,
            kernel_args: list[str] | None = None) -> tuple[sampling.Series, console.Console]:
        sc = self.out / f"{key}.toml"
        sc.write_text(text)
        t0 = time.monotonic()
        load0 = os.getloadavg()[0]
        print(f"bench: {key} ...", end="", flush=True)
        res = runner.run(runner.RunRequest(str(sc), variant=variant,
                                           kernel_args=kernel_args or [],
                                           results=self.out / "runs", verbose=self.verbose,
                                           progress=False))
        print(f" {time.monotonic() - t0:.0f} s", flush=True)
        # Other guests on the host skew wall-clock figures: keep the load.
        self.load[key] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        self.pins.check_run(key, res.meta)      # the pinned build, or the bench stops
        if res.exit_code != 0:
            raise SystemExit(f"bench: run {key} failed (exit {int(res.exit_code)}, "
                             f"{res.run_dir}):\n" + "\n".join(res.problems))
        self.runs[key] = str(res.run_dir.relative_to(self.out))
        return res.series(), res.console


def events(con: console.Console, name: str) -> list[dict[str, float]]:
    return [e.floats() for e in con.events_named(name)]


def opt_in(variant: str, opts: dict[str, Any]) -> dict[str, Any]:
    return {**opts, "merge": "prctl"} if variant == "ksm" else dict(opts)


# ---- figure 1: structured content ------------------------------------------

def structured(r: Runner, rep: int, v: str, q: bool) -> dict[str, Any]:
    hold = 8 if q else 12
    shapes: dict[str, tuple[str, dict[str, Any]]] = {
        "sparse": ("engload", {"kind": "sparse", "procs": 2,
                               "pages": 2048 if q else 8192, "hold": hold}),
        "oneword": ("dupalloc", {"procs": 2, "mib": 8 if q else 32, "dup": 0, "near": 100,
                                 "dup_set": 1, "hold": hold}),
        "copies": ("dupalloc", {"procs": 4, "mib": 4 if q else 16, "dup": 100, "dup_set": 1,
                                "hold": hold}),
    }
    out: dict[str, Any] = {}
    for shape, (prog, opts) in shapes.items():
        key = f"structured-{shape}-{v}-c{VCPUS}-r{rep}"
        s, con = r.run(key, v, scenario(key, v, SAME, [(prog, opt_in(v, opts))]))
        f = event(con, "filled")
        rows = work_window(s, f["t_ms"], hold * 1000, v)
        d_busy = daemon_cpu(rows[-1]) - daemon_cpu(rows[0])
        d_scanned = rows[-1]["ksm_pages_scanned"] - rows[0]["ksm_pages_scanned"]
        if v == "pksm":
            settled = rows[-1]["pksm_new_list"] + rows[-1]["pksm_rescan_list"] == 0
            out[shape] = d_busy / f["pages_total"]
            out[f"{shape}_settled"] = settled
            out[f"{shape}_ns_per_scan"] = d_busy / d_scanned if d_scanned else None
        else:
            # From boot until 3 full scans after the fill: the pass that
            # checksums every page, the one that files it in the unstable
            # tree and the one that merges it, all of its work on this content.
            # (Over the whole hold, rescans of merged pages dilute it.)
            base = max((x for x in s.rows if x["t_ms"] <= f["t_ms"]),
                       key=lambda x: x["t_ms"])["ksm_full_scans"]
            end = next((x for x in s.rows if x["t_ms"] > f["t_ms"]
                        and x["ksm_full_scans"] >= base + 3), rows[-1])
            w = [x for x in s.rows if x["t_ms"] <= end["t_ms"]]
            d_b = daemon_cpu(w[-1]) - daemon_cpu(w[0])
            d_s = w[-1]["ksm_pages_scanned"] - w[0]["ksm_pages_scanned"]
            out[shape] = d_b / d_s if d_s else None
            out[f"{shape}_window_s"] = (w[-1]["t_ms"] - w[0]["t_ms"]) / 1000
            out[f"{shape}_ns_per_scan_hold"] = d_busy / d_scanned if d_scanned else None
        out[f"{shape}_pages"] = f["pages_total"]
        peak = max(sampling.saved_pages(x) for x in s.rows)
        out[f"{shape}_saved_peak"] = peak
        if peak >= f["pages_total"] / 2:
            # like for like where content merges: daemon CPU from boot until
            # 99 % of the peak saving, per workload page
            hit = next(x for x in s.rows if sampling.saved_pages(x) >= 0.99 * peak)
            out[f"{shape}_to_merged"] = (daemon_cpu(hit) - daemon_cpu(s.rows[0])) / f["pages_total"]
    return out


# ---- figure 2: at rest --------------------------------------------------------

def at_rest(r: Runner, rep: int, v: str, q: bool) -> dict[str, Any]:
    hold, change_at, changed = (32, 15, 8) if q else (56, 32, 8)
    key = f"rest-{v}-c{VCPUS}-r{rep}"
    wls = [("dupalloc", opt_in(v, {"procs": 1, "mib": 24, "dup": 33, "zero": 17,
                                   "dup_set": 64, "seed": 7, "hold": hold})),
           ("engload", opt_in(v, {"kind": "unique", "pages": changed, "hold": hold,
                                  "change_at": change_at, "change": changed}))]
    s, con = r.run(key, v, scenario(key, v, SAME, wls, timeout=hold + 300))
    fills = events(con, "filled")
    t_fill = max(e["t_ms"] for e in fills)
    t_change = event(con, "changed")["t_ms"]
    pre = [x for x in s.rows if t_fill <= x["t_ms"] < t_change]
    peak = max(sampling.saved_pages(x) for x in pre)
    t_settle = next(x["t_ms"] for x in pre if sampling.saved_pages(x) >= 0.99 * peak)
    t0 = t_settle + 1000
    t1 = min(t0 + 20000, t_change - 300)
    rows = window(s, t0, t1)
    wall_ns = (rows[-1]["t_ms"] - rows[0]["t_ms"]) * 1e6
    out: dict[str, Any] = {
        "cpu_fraction": (daemon_cpu(rows[-1]) - daemon_cpu(rows[0])) / wall_ns,
        "window_s": wall_ns / 1e9, "settled_after_fill_s": (t_settle - t_fill) / 1000,
        "saved_pages": peak, "filled": fills,
    }
    d_t = wall_ns / 1e9
    if v == "pksm":
        col = ("pksm_reverify_changed", "pksm_changed_in_tree")

        def seen(x: dict[str, int]) -> int:
            return sum(x.get(c, 0) for c in col)
        after = [x for x in s.rows if x["t_ms"] >= t_change]
        base = seen(max((x for x in s.rows if x["t_ms"] <= t_change), key=lambda x: x["t_ms"]))
        first = next((x["t_ms"] for x in after if seen(x) > base), None)
        every = next((x["t_ms"] for x in after if seen(x) - base >= changed), None)
        out["reverify_first_s"] = (first - t_change) / 1000 if first else None
        out["reverify_all_s"] = (every - t_change) / 1000 if every else None
        d_rev = rows[-1]["pksm_reverified"] - rows[0]["pksm_reverified"]
        out["reverified_per_s"] = d_rev / d_t
        unstable = rows[-1]["pksm_unstable_pages"]
        out["unstable_pages"] = unstable
        out["implied_period_s"] = unstable / (d_rev / d_t) if d_rev else None
        out["reverify_s"] = out["reverify_all_s"]
    else:
        d_full = rows[-1]["ksm_full_scans"] - rows[0]["ksm_full_scans"]
        out["full_scan_s"] = d_t / d_full if d_full else None
        out["reverify_s"] = out["full_scan_s"]
    return out


# ---- figure 3: co-runner slowdown on a real program ----------------------------

def python_shell(script: Path, workers: int, records: int, serve: float, merge: bool) -> str:
    env = "BENCH_MERGE=1 " if merge else ""
    return f"""mkdir -p /tmp/host
mount -t hostfs -o ro none /tmp/host || {{ echo "bench: cannot mount the host root"; exit 3; }}
[ -x /tmp/host/usr/bin/python3 ] || {{ echo "bench: no /usr/bin/python3 on the host"; exit 3; }}
cow() {{ v=$(grep '^cow_ksm ' /proc/vmstat | cut -d' ' -f2); echo "${{v:-0}}"; }}
echo "PKSMTB-EVENT cowksm when=0 n=$(cow)"
pids=
for i in $(seq 1 {workers}); do
	{env}chroot /tmp/host /usr/bin/python3 {script} $i {records} {serve} &
	pids="$pids $!"
done
st=0
for p in $pids; do wait $p || st=1; done
echo "PKSMTB-EVENT cowksm when=1 n=$(cow)"
umount /tmp/host
exit $st
"""


def corunner(r: Runner, rep: int, v: str, q: bool, script: Path) -> dict[str, Any]:
    workers, records, serve = (4, 20000, 8) if q else (4, 60000, 20)
    out: dict[str, Any] = {}
    cases: tuple[tuple[str, dict[str, Any], list[str]], ...]
    if v == "pksm":
        cases = (("on", {}, []), ("off", {}, ["pksm.enabled=0"]))
    else:
        cases = (("on", SAME, []), ("off", {**SAME, "run": 0}, []))
    for label, knobs, kargs in cases:
        key = f"python-{v}-{label}-c{VCPUS}-r{rep}"
        sh = python_shell(script, workers, records, serve, merge=v == "ksm")
        s, con = r.run(key, v, scenario(key, v, knobs, [sh], mem="1536M", timeout=900),
                       kernel_args=kargs)
        ws = events(con, "pyworker")
        if len(ws) != workers:
            raise SystemExit(f"bench: {key}: {len(ws)} of {workers} workers reported")
        cow = {int(e["when"]): e["n"] for e in events(con, "cowksm")}
        peak = max(sampling.saved_pages(x) for x in s.rows)
        breaks: float
        if v == "pksm":
            breaks = s.rows[-1]["pksm_cow_breaks"] - s.rows[0]["pksm_cow_breaks"]
        else:
            breaks = cow[1] - cow[0]
        out[label] = {"rps": [e["rps"] for e in ws], "build_s": [e["build_s"] for e in ws],
                      "rps_median": statistics.median(e["rps"] for e in ws),
                      "build_median_s": statistics.median(e["build_s"] for e in ws),
                      "cow_breaks": breaks, "vmstat_cow_ksm": cow[1] - cow[0],
                      "saved_peak_pages": peak,
                      "cow_per_merged": breaks / peak if peak else None}
    on, off = out["on"], out["off"]
    out["slowdown_rps"] = off["rps_median"] / on["rps_median"]
    out["slowdown_build"] = on["build_median_s"] / off["build_median_s"]
    return out


# ---- figure 4: metadata --------------------------------------------------------

def metadata(r: Runner, rep: int, v: str, q: bool) -> dict[str, Any]:
    hold = 6
    key = f"meta-{v}-c{VCPUS}-r{rep}"
    opts = opt_in(v, {"procs": 2 if q else 4, "mib": 16 if q else 32, "dup": 0, "hold": hold})
    s, con = r.run(key, v, scenario(key, v, SAME, [("dupalloc", opts)]))
    f = event(con, "filled")
    held = window(s, f["t_ms"], f["t_ms"] + hold * 1000)
    if v == "pksm":
        # total (with fixed costs such as the pfn table) over tracked pages at
        # the peak, and the marginal cost: growth from the first sample
        top = max(held, key=lambda x: x["pksm_tracked_pages"])
        first = s.rows[0]
        d_pages = top["pksm_tracked_pages"] - first["pksm_tracked_pages"]
        return {"bytes_per_page": top["pksm_metadata_bytes"] / max(1, top["pksm_tracked_pages"]),
                "marginal_bytes_per_page": (top["pksm_metadata_bytes"]
                                            - first["pksm_metadata_bytes"]) / d_pages
                if d_pages > 0 else None,
                "tracked_pages": top["pksm_tracked_pages"],
                "metadata_bytes_at_start": first["pksm_metadata_bytes"]}
    meta = max(sampling.saved_pages(x) * sampling.PAGE_SIZE - x["ksm_general_profit"]
               for x in held)
    return {"bytes_per_page": meta / f["pages_total"], "marginal_bytes_per_page":
            meta / f["pages_total"], "pages": f["pages_total"]}


# ---- the table -------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """A row of the table: which per-run result, how to pick its value
    from one run's dict, its number format, and its target.

    The target bounds the pksm/ksm ratio (on="ratio": the ratio paired by
    repeat, judged on its 95 % interval) or pksm's own value (on="pksm"):
    a slowdown is itself a paired ratio of two boots of one repeat (OWN
    picks the pair, numerator first: judged on that ratio's interval),
    anything else is judged on the t interval of pksm's mean (one sample,
    nothing paired)."""

    name: str
    group: str
    pick: benchstats.Pick
    fmt: str
    target: stats.Target | None = None
    on: Literal["ratio", "pksm"] = "ratio"
    own: Callable[[dict[str, Any]], tuple[float, float]] | None = None
    note: str = ""                  # a target stated but not judged

    def target_text(self) -> str:
        if self.target is None:
            return self.note
        return f"{'pksm/ksm' if self.on == 'ratio' else 'pksm'} {self.target.text()}"


FIGURES: list[Figure] = [
    Figure("1a daemon ns/page, sparse (zero but 1 word)", "structured", lambda d: d["sparse"],
           "{:,.0f}", stats.Target(2)),
    Figure("1b daemon ns/page, equal but 1 word", "structured", lambda d: d["oneword"],
           "{:,.0f}", stats.Target(2)),
    Figure("1c daemon ns/page, 4x4096 copies of 1 page", "structured", lambda d: d["copies"],
           "{:,.0f}", stats.Target(2)),
    Figure("1c daemon ns/page to 99 % merged (both)", "structured",
           lambda d: d["copies_to_merged"], "{:,.0f}", stats.Target(2)),
    Figure("2  daemon CPU at rest (%)", "rest", lambda d: 100 * d["cpu_fraction"], "{:.3f}",
           stats.Target(0.1)),
    Figure("2  re-verify latency (s; ksm: full scan)", "rest", lambda d: d["reverify_s"],
           "{:.2f}", stats.Target(10), on="pksm"),
    Figure("2  pksm implied re-verify period (s)", "rest", lambda d: d.get("implied_period_s"),
           "{:.1f}", note="~ period 10 s"),
    Figure("3  python requests/s, merging on", "python", lambda d: d["on"]["rps_median"],
           "{:,.0f}"),
    Figure("3  python requests/s, merging off", "python", lambda d: d["off"]["rps_median"],
           "{:,.0f}"),
    Figure("3  slowdown, requests/s off/on", "python", lambda d: d["slowdown_rps"], "{:.3f}",
           stats.Target(1.05), on="pksm",
           own=lambda d: (d["off"]["rps_median"], d["on"]["rps_median"])),
    Figure("3  slowdown, build time on/off", "python", lambda d: d["slowdown_build"], "{:.3f}",
           stats.Target(1.05), on="pksm",
           own=lambda d: (d["on"]["build_median_s"], d["off"]["build_median_s"])),
    Figure("3  COW breaks per merged page", "python", lambda d: d["on"]["cow_per_merged"],
           "{:.3f}", stats.Target(1)),
    Figure("3  saving, peak merged pages (MiB)", "python",
           lambda d: d["on"]["saved_peak_pages"] * sampling.PAGE_SIZE / 2**20, "{:.1f}",
           stats.Target(1, at_most=False)),
    Figure("4  metadata bytes per tracked page", "meta", lambda d: d["bytes_per_page"],
           "{:.1f}", stats.Target(32), on="pksm"),
    Figure("4  metadata bytes per page, marginal", "meta", lambda d: d["marginal_bytes_per_page"],
           "{:.1f}", stats.Target(32), on="pksm"),
]


def spread(vals: list[float]) -> dict[str, Any]:
    """The values with their median and range (the table's columns)."""
    return {"values": vals, "median": statistics.median(vals) if vals else None,
            "min": min(vals) if vals else None, "max": max(vals) if vals else None}


def summarize(raw: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per figure: each variant's values, median and range; the pksm/ksm
    ratio paired by repeat with its interval ('paired'); the value its
    target is judged on with that interval ('judged') and the verdict
    ('met': met, not met, not shown; None without a target)."""
    out: dict[str, Any] = {}
    for fig in FIGURES:
        runs = {v: raw.get(fig.group, {}).get(v, []) for v in ("pksm", "ksm")}
        keyed = {v: benchstats.by_repeat(runs[v], fig.pick) for v in runs}
        pr = benchstats.paired(keyed["pksm"][0], keyed["ksm"][0])
        how = {h for vals, h in keyed.values() if vals}
        judged: benchstats.Judged | None = None
        if fig.target is not None and fig.on == "ratio":
            judged = benchstats.judge_ratio(pr, fig.target, "pksm/ksm, paired")
        elif fig.target is not None and fig.own is not None:
            own = fig.own
            num, h1 = benchstats.by_repeat(runs["pksm"], lambda d: own(d)[0])
            den, h2 = benchstats.by_repeat(runs["pksm"], lambda d: own(d)[1])
            how |= {h for vals, h in ((num, h1), (den, h2)) if vals}
            judged = benchstats.judge_ratio(benchstats.paired(num, den), fig.target,
                                            "pksm's two boots of a repeat, paired")
        elif fig.target is not None:
            judged = benchstats.judge_mean(list(keyed["pksm"][0].values()), fig.target)
        out[fig.name] = {
            "target": fig.target_text(),
            "pksm": spread(list(keyed["pksm"][0].values())),
            "ksm": spread(list(keyed["ksm"][0].values())),
            "ratio": pr.ratio, "ratio_interval": [pr.lo, pr.hi], "paired": pr.to_json(),
            "pairing": sorted(how),
            "judged": judged.to_json() if judged else None,
            "met": judged.verdict if judged else None}
    return out


def table(summary: dict[str, Any]) -> str:
    """The summary as a table: medians [min-max] per variant, the paired
    pksm/ksm ratio [95 % interval], the target, the value it is judged on
    with its interval and how, the verdict."""
    fmts = {f.name: f.fmt for f in FIGURES}

    def cell(d: dict[str, Any], f: str) -> str:
        if d["median"] is None:
            return "-"
        m = f.format(d["median"])
        if len(d["values"]) < 2:
            return m
        return f"{m} [{f.format(d['min'])}-{f.format(d['max'])}]"

    def ratio(row: dict[str, Any]) -> str:
        pj = row["paired"]
        return benchstats.Judged(pj["ratio"], pj["lo"], pj["hi"], "", None).text("{:.2f}")

    rows = [("figure", "pksm median [min-max]", "ksm median [min-max]",
             "pksm/ksm [95 % CI]", "target", "judged on [95 % CI]", "how", "met?")]
    how: set[str] = set()
    for name, row in summary.items():
        f = fmts.get(name, "{:.3f}")
        j = row.get("judged")
        jt = jh = ""
        if j:
            jf = "{:.3f}" if "paired" in j["how"] else f
            jt = benchstats.Judged(j["value"], j["lo"], j["hi"], "", None).text(jf)
            jh = j["how"]
        how |= set(row.get("pairing", []))
        rows.append((name, cell(row["pksm"], f), cell(row["ksm"], f), ratio(row),
                     row["target"], jt, jh, benchstats.verdict_text(row["met"])))
    lines = benchstats.format_table(rows, left=(0, 4, 5, 6))
    lines.append(f"({benchstats.pairing_note(how)}; pksm/ksm: geometric mean of the "
                 "per-repeat ratios; met only when the whole 95 % interval lies inside the "
                 "target, not met when wholly outside, else not shown)")
    return "\n".join(lines) + "\n"


def report(d: Path) -> int:
    """--report DIR: the table again from DIR/figures.json, nothing booted."""
    path = d / "figures.json" if d.is_dir() else d
    try:
        data = results.read_json(path)
        raw, meta = data["raw"], data.get("_meta", {})
        known = {f.group for f in FIGURES}
        tables = {label: table(summarize(g))
                  for label, g in benchstats.groups(raw, known).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"bench: {path}: not a bench-engine figures.json ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    pins = benchbuilds.Pins(meta.get("builds") or {}, meta.get("build_changed") or [],
                            meta.get("harness_revision") or meta.get("git_revision") or "?")
    print(f"{path}: {meta.get('command_line', '?')}, {meta.get('repeat', '?')} repeat(s)")
    print("\n".join(pins.header()))
    for label, t in tables.items():
        print(f"\n{label}")
        print(t, end="")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller workloads, one repeat unless --repeat (a smoke run)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per figure (default 3)")
    ap.add_argument("--only", action="append", choices=("structured", "rest", "python", "meta"),
                    help="only these figures (repeatable)")
    ap.add_argument("--vcpus", default=str(paths.DEFAULT_VCPUS),
                    help="vCPU counts to measure each figure on, e.g. 1,2 "
                         f"(each {paths.VCPUS_RANGE[0]}..{paths.VCPUS_RANGE[1]}; "
                         f"default {paths.DEFAULT_VCPUS})")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--report", metavar="DIR", type=Path,
                    help="print the table again from DIR/figures.json (results/bench/"
                         "engine-<UTC>), with today's statistics; boot nothing")
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
    pins = benchbuilds.Pins.of(kernel.find_kernel(b) for b in ("pksm", "ksm"))
    print("\n".join(pins.header()), flush=True)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = paths.TOP / "results" / "bench" / f"engine-{stamp}"
    out.mkdir(parents=True)
    # The worker the guest runs, beside the run directories (not committed:
    # it is PYWORKER of the harness revision the results name; its hash is
    # kept in _meta).
    script = out / "runs" / "pyworker.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(PYWORKER)
    r = Runner(out, args.verbose, pins)
    q = args.quick
    figs: dict[str, Callable[..., dict[str, Any]]] = {
        "structured": structured, "rest": at_rest,
        "python": lambda r_, rep, v, q_: corunner(r_, rep, v, q_, script),
        "meta": metadata}
    only = args.only or list(figs)
    # vcpus -> figure group -> variant -> one dict per repeat
    raw: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    t0 = time.monotonic()
    meta = {"command_line": results.command_line(), "quick": q, "repeat": repeat,
            "figures_run": only, "knobs_same": SAME, "vcpus": counts,
            "python_worker": {"path": str(script.relative_to(out)),
                              "sha256": hashlib.sha256(PYWORKER.encode()).hexdigest()},
            "runs": r.runs,
            "host_load_1min_before_after": r.load}

    def save() -> None:
        results.write_json(out / "figures.json",
                           {"_meta": {**pins.to_json(), **meta,
                                      "elapsed_s": round(time.monotonic() - t0)},
                            "summary": {k: summarize(g) for k, g in raw.items()},
                            "raw": raw})

    global VCPUS
    # Repeats outermost, vCPU counts and variants alternating: drift on the
    # host hits them all alike.
    try:
        for rep in range(repeat):
            for n in counts:
                VCPUS = n
                for name in only:
                    for v in ("pksm", "ksm"):
                        fig = figs[name](r, rep, v, q)
                        fig["repeat"] = rep     # pairs it with the other variant's
                        raw.setdefault(f"vcpus={n}", {}).setdefault(name, {}).setdefault(
                            v, []).append(fig)
                        save()
    except benchbuilds.BuildChanged:
        save()                  # figures.json says which boot, and stops there
        raise
    save()
    print("\n" + "\n".join(pins.header()))
    for label, g in raw.items():
        print(f"\n{label}")
        print(table(summarize(g)), end="")
    print(f"bench: {out} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
