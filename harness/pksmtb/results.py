"""Run directories and what they hold.

results/runs/<scenario>/<variant>/<UTC time>/   (git-ignored)
    meta.json        what is needed to reproduce the run
    run.sh           the script the guest ran (the run directory is the
                     guest's hostfs share)
    timeseries.csv   the sampler's counters
    console.log      everything the guest console printed
    summary.json     figures, expectations, verdict
    savings.png      saved MiB over time
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import ksft, paths


class RunNotFound(Exception):
    pass


def new_run_dir(scenario: str, kname: str, root: Path | None = None) -> Path:
    root = root or paths.RUNS
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = root / scenario / kname
    d = base / stamp
    n = 1
    while d.exists():
        n += 1
        d = base / f"{stamp}-{n}"
    d.mkdir(parents=True)
    return d


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv)


def all_runs(root: Path | None = None) -> list[Path]:
    """Every run directory with a meta.json, oldest first."""
    root = root or paths.RUNS
    if not root.is_dir():
        return []
    runs = [p.parent for p in root.glob("*/*/*/meta.json")]
    return sorted(runs, key=lambda p: (p.name, str(p)))


def resolve_run(spec: str, root: Path | None = None) -> Path:
    """A run directory path, 'latest', or a unique substring of one."""
    p = Path(spec)
    if (p / "meta.json").is_file():
        return p
    runs = all_runs(root)
    if spec == "latest":
        if not runs:
            raise RunNotFound("no runs yet: try 'make run'")
        return runs[-1]
    exact = [r for r in runs if r.name == spec or str(r).endswith("/" + spec)]
    hits = exact or [r for r in runs if spec in str(r)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise RunNotFound(f"no run matches {spec!r} (see 'pksmtb.py list')")
    raise RunNotFound(f"{spec!r} matches {len(hits)} runs; be more specific:\n  "
                      + "\n  ".join(str(h) for h in hits[:10]))


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
    ("daemon_busy_s", "daemon busy (s)"),
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
