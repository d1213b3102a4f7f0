"""Tables of runs for people: one run's summary, runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import config, ksft
from .results import read_json, verdict_of


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


# The figures a person compares, in order, with their labels.
FIGURES = [
    ("verdict", "verdict"),
    ("peak_saved_mib", "saved MiB (peak)"),
    ("achievable_pages", "achievable pages"),
    ("saved_fraction", "saved / achievable"),
    ("t50_s", "time to 50 % (s)"),
    ("t90_s", "time to 90 % (s)"),
    ("daemon_cpu_s", "daemon CPU (s)"),
    ("daemon_busy_s", "daemon busy, wall (s)"),
    ("daemon_cpu_ticks_s", "daemon CPU, ticks (s)"),
    ("full_scans_delta", "full scans"),
    ("pages_scanned_delta", "pages scanned"),
    ("wall_s", "wall time (s)"),
]


def summary_table(summary: dict[str, Any], run_dir: Path | None = None) -> str:
    rows = [(label, fmt(summary.get(key))) for key, label in FIGURES]
    kst = ksft.describe(summary.get("ksft"))
    if kst:
        rows.append(("kselftests", kst))
    if run_dir is not None:
        rows.append(("results", str(run_dir)))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def ratio(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and b not in (0, None):
        return f"{a / b:.2f}x"
    return ""


def compare_table(runs: list[Path]) -> str:
    metas = [read_json(r / "meta.json") for r in runs]
    sums = [read_json(r / "summary.json") if (r / "summary.json").is_file() else {}
            for r in runs]
    head = ["", *[f"{m.get('scenario', {}).get('name', '?')}/{m.get('kernel_build', '?')}"
                  for m in metas]]
    if len(runs) == 2:
        head.append("A/B")
    table = [head]
    for key, label in FIGURES:
        vals = [s.get(key) for s in sums]
        row = [label, *[fmt(v) for v in vals]]
        if len(runs) == 2:
            row.append(ratio(vals[0], vals[1]))
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for i, r in enumerate(runs):
        lines.append(f"[{i + 1}] {r}")
    return "\n".join(lines)


def scenario_list(directory: Path) -> str:
    """The shipped scenarios: name, variant, description (or why invalid)."""
    lines = [f"scenarios ({directory.relative_to(directory.parents[1])}):"]
    for p in sorted(directory.glob("*.toml")):
        try:
            sc = config.load_scenario(str(p))
            lines.append(f"  {p.stem:<22} {sc.variant:<5} {sc.description}")
        except config.ConfigError as e:
            lines.append(f"  {p.stem:<22} INVALID: {e}")
    return "\n".join(lines)


def run_list(runs: list[Path], last: int) -> str:
    lines = [f"runs ({len(runs)}, newest last):"]
    lines += [f"  {verdict_of(r):<10} {r}" for r in runs[-last:]]
    return "\n".join(lines)


SHOWN_META = ("variant", "flavour", "mode", "vcpus", "mem_mib", "kernel_version", "build_id",
              "config_sha256", "harness_revision", "host_cpu_model", "command_line",
              "started_utc")


def build_line(meta: dict[str, Any]) -> str:
    """The kernel's build record in a line: revision, dirty, built when,
    and whether the kernel that booted was that build."""
    rec = meta.get("build") or {}
    check = meta.get("build_check") or {}
    if not rec:
        what = meta.get("build_problem") or "no build record (a run from before build records)"
    else:
        what = (f"revision {str(rec.get('revision'))[:12]}"
                + (" + changes to " + ", ".join(rec.get("dirty_paths") or []) if rec.get("dirty")
                   else "") + f", built {rec.get('built_utc', '?')}")
        if meta.get("build_problem"):
            what += f" ({meta['build_problem']})"
    if check:
        what += f"; booted: {check.get('status')}"
    return what


def show_run(run: Path) -> str:
    """One run: what identifies it, its figures and its problems."""
    meta = read_json(run / "meta.json")
    lines = [f"run {run}"]
    lines += [f"  {key:<20} {meta.get(key, '-')}" for key in SHOWN_META]
    lines.append(f"  {'build':<20} {build_line(meta)}")
    lines.append(f"  {'knobs':<20} {meta.get('knobs')}")
    if (run / "summary.json").is_file():
        summary = read_json(run / "summary.json")
        lines.append(summary_table(summary))
        lines += [f"  problem: {p}" for p in summary.get("problems", [])]
    else:
        lines.append("  (no summary: the run did not finish)")
    return "\n".join(lines)
