"""The zswap bench's figures: PKSM in front of zswap against zswap alone.

The bench is the sweep spec harness/sweeps/bench-swap.toml (its workloads
and configurations) run by harness/bench_swap.py; its runs' figures are the
metrics of pksmtb/metrics/swap.py, kept in figures.json under the keys
below (KEYS: the keys every bench-swap figures.json has used).  This
module turns figures.json's raw runs into the table: per figure each
configuration's median [min-max], pksm and full against zswap alone
paired by repeat (the geometric mean of the per-repeat ratios with its
95 % t interval, benchstats.py), the target and its verdict judged on an
interval ("met" only when the whole interval lies inside the target,
"not met" when wholly outside, else "not shown").  Targets: on dup20
>= 15 % less pool and >= 15 % fewer compress calls than zswap alone; on
nodup <= 2 % slower; <= 9 us added per store (the t interval of full's
mean hook ns per page).  Figures only: a missed target never fails.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import benchbuilds, benchstats, results, stats

# The configurations, as the spec's [configs] names them; zswap is the baseline.
CONFIGS = ("zswap", "pksm", "full")
WORKLOADS = ("dup20", "dup20x4", "nodup", "steady")
# figures.json's key for each run figure -> the metric (pksmtb/metrics/swap.py)
KEYS = {
    "pool_peak_bytes": "swap_pool_peak_bytes",
    "stored_peak_pages": "swap_stored_peak_pages",
    "compress_calls": "swap_compress_calls",
    "zswpout": "swap_zswpout",
    "pswpout": "swap_pswpout",
    "written_back": "swap_written_back",
    "swapped_in": "swap_swapped_in",
    "allocstall": "swap_allocstall",
    "workload_s": "swap_workload_s",
    "daemon_busy_s": "swap_pksm_busy_s",
    "daemon_cpu_s": "swap_pksm_cpu_s",
    "ns_per_offered": "swap_hook_ns_per_offered",
    "swap_offered": "swap_offered",
    "swap_cached": "swap_cached",
    "swap_stable_merges": "swap_stable_merges",
    "swap_zero_merges": "swap_zero_merges",
    "swap_deferred": "swap_deferred",
    "swap_busy": "swap_busy",
    "pressure_batches": "swap_pressure_batches",
    "pages_sharing_peak": "swap_pages_sharing_peak",
}


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
    Figure("pool peak, bytes", "steady", "pool_peak_bytes", stats.Target(0.85)),
    Figure("compress calls", "steady", "compress_calls", stats.Target(0.85)),
    Figure("pages swapped in", "steady", "swapped_in"),
    Figure("workload time, s", "steady", "workload_s", stats.Target(1.02)),
    Figure("daemon CPU, s", "steady", "daemon_cpu_s"),
    Figure("offered from the swap cache", "steady", "swap_cached"),
    Figure("merged at store time", "steady", "swap_stable_merges"),
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
    lines = benchstats.format_table(rows, left=(0, 1, 7, 8))
    lines.append(f"({benchstats.pairing_note(how)}; x/z: geometric mean of the per-repeat "
                 "ratios to zswap alone; met only when the whole 95 % interval lies inside "
                 "the target, not met when wholly outside, else not shown)")
    return "\n".join(lines) + "\n"


def tables(raw: Any) -> dict[str, str]:
    """A table per vCPU count of figures.json's raw (ValueError, KeyError,
    TypeError or AttributeError for what is not a bench-swap raw)."""
    return {label: table(summarize(g))
            for label, g in benchstats.groups(raw, set(WORKLOADS)).items()}


def report(d: Path) -> int:
    """--report DIR: the tables again from DIR/figures.json, nothing booted."""
    path = d / "figures.json" if d.is_dir() else d
    try:
        data = results.read_json(path)
        raw, meta = data["raw"], data.get("_meta", {})
        texts = tables(raw)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"bench: {path}: not a bench-swap figures.json ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    pins = benchbuilds.Pins(meta.get("builds") or {}, meta.get("build_changed") or [],
                            meta.get("harness_revision") or meta.get("git_revision") or "?")
    print(f"{path}: {meta.get('command_line', '?')}, {meta.get('repeat', '?')} repeat(s)")
    print("\n".join(pins.header()))
    for label, t in texts.items():
        print(f"\n{label}\n{t}", end="")
    return 0
