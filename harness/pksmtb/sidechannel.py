"""The side-channel scenario's figures (rootfs/src/sidechannel.c): per
merge_domain mode, the attacker's accuracy over every candidate of every
round with its Wilson 95 % interval, how many of its copies of the
victim's pages were merged with them (the signal it times), and how many
of its candidates mapped a KSM page at all (all of them under fake
merging, which leaves the signal nothing to tell apart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import report, results, stats
from .console import Console


class SideChannelError(Exception):
    """A run directory without the scenario's events."""


@dataclass(frozen=True)
class ModeFigures:
    mode: str
    rounds: int
    trials: int
    correct: int
    accuracy: stats.MeanInterval
    held: int
    merged: int
    ksm: int


def figures(run_dir: Path) -> list[ModeFigures]:
    """The figures of one run, modes in the order they ran."""
    console = run_dir / "console.log"
    if not console.is_file():
        raise SideChannelError(f"{run_dir}: no console.log (not a run directory?)")
    events = Console.parse(console.read_text(errors="replace")).events_named("sidechannel")
    if not events:
        raise SideChannelError(f"{run_dir}: no sidechannel events (not that scenario?)")
    order: list[str] = []
    acc: dict[str, list[dict[str, int]]] = {}
    for e in events:
        mode = e.fields["mode"]
        if mode not in acc:
            order.append(mode)
        acc.setdefault(mode, []).append(e.ints())
    out = []
    for mode in order:
        rows = acc[mode]
        trials = sum(r["pages"] for r in rows)
        correct = sum(r["correct"] for r in rows)
        out.append(ModeFigures(mode, len(rows), trials, correct,
                               stats.proportion_interval(correct, trials),
                               sum(r["held"] for r in rows), sum(r["merged"] for r in rows),
                               # runs before the ksm field counted only KSM pages as merged
                               sum(r.get("ksm", r["merged"]) for r in rows)))
    return out


def table(run_dir: Path) -> str:
    """A Markdown table of figures(run_dir), with the run's provenance."""
    meta = results.read_json(run_dir / "meta.json") if (run_dir / "meta.json").is_file() else {}
    # the scenario's own setting, else what the kernel read at the start
    knobs, at_start = meta.get("knobs", {}), meta.get("knobs_at_start", {})
    fake = (knobs.get("pksm", {}).get("fake_merge") if isinstance(knobs, dict) else None) \
        or (at_start.get("pksm/fake_merge") if isinstance(at_start, dict) else None) or "?"
    lines = [f"run {run_dir.name} on {meta.get('kernel_build', '?')} build "
             f"{meta.get('build_id', '?')} ({report.build_line(meta)}), "
             f"{meta.get('vcpus', '?')} vCPUs, host load (1/5/15 min) at start "
             f"{meta.get('host_load_start', '?')}, at end {meta.get('host_load_end', '?')}, "
             f"fake_merge {fake}",
             "",
             "| merge_domain | rounds | trials | correct | accuracy [95 % Wilson] "
             "| victim's pages merged with the attacker's | attacker's candidates on KSM pages |",
             "|---|---|---|---|---|---|---|"]
    for f in figures(run_dir):
        a = f.accuracy
        lines.append(f"| {f.mode} | {f.rounds} | {f.trials} | {f.correct} | "
                     f"{a.mean:.3f} [{a.lo:.3f}-{a.hi:.3f}] | {f.merged} of {f.held} | "
                     f"{f.ksm} of {f.trials} |")
    return "\n".join(lines) + "\n"
