"""Run directories and what they hold.

results/runs/<scenario>/<variant>/<UTC time>/   (git-ignored)
    meta.json        what is needed to reproduce the run
    run.sh           the script the guest ran (the run directory is the
                     guest's hostfs share)
    timeseries.csv   the sampler's counters
    console.log      everything the guest console printed
    events.json      the console protocol, parsed (console.py)
    summary.json     figures, expectations, verdict
    savings.png      saved MiB over time
    trace.txt, timeline.csv, merge_to_cow.png   when tracepoints were recorded

This module stores and finds runs; report.py renders them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import paths


class RunNotFound(Exception):
    """No run, or more than one, matches what was asked for."""


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
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


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


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def verdict_of(run: Path) -> str:
    """'pass', 'FAIL' or 'unfinished' (no summary.json)."""
    s = run / "summary.json"
    return str(read_json(s).get("verdict", "?")) if s.is_file() else "unfinished"


def host_identity() -> dict[str, Any]:
    """The host a run booted on: name, CPU model, CPUs it may use."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Processor", "cpu model"):
                model = value.strip()
                break
    except OSError:
        pass
    return {"host": os.uname().nodename, "host_cpu_model": model,
            "host_cpus": os.cpu_count(), "host_cpus_usable": len(os.sched_getaffinity(0))}


def boot_provenance(metas: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What ran a set of boots, from their meta.json: how many boots each
    harness revision (short, with -dirty) and each host CPU model ran."""
    def rev(m: dict[str, Any]) -> str:
        full = str(m.get("harness_revision") or "?")
        return full[:10] + ("-dirty" if full.endswith("-dirty") else "")
    return {"harness_revisions": dict(sorted(Counter(rev(m) for m in metas).items())),
            "host_cpu_models": dict(sorted(Counter(str(m.get("host_cpu_model") or "unknown")
                                                   for m in metas).items()))}


def provenance_text(prov: dict[str, dict[str, int]]) -> str:
    """boot_provenance() in a line: 'N boots; harness R (n), ...; host CPU M (n), ...'."""
    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} ({n})" for k, n in d.items())
    n = sum(prov["host_cpu_models"].values())
    return (f"{n} boots; harness {counts(prov['harness_revisions'])}; "
            f"host CPU {counts(prov['host_cpu_models'])}")


def known_cpus(prov: dict[str, dict[str, int]]) -> set[str]:
    """The host CPU models boot_provenance() found recorded ('unknown', a
    boot from before the field, is none of them)."""
    return {m for m in prov.get("host_cpu_models", {}) if m != "unknown"}
