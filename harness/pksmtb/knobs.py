"""The writable knobs each variant's kernel has, and the values it takes.

A sweep checks every knob and value against this before anything boots:
a knob the variant does not have, or a value its kernel refuses (the
ranges below are the kernels' own checks, the ones the pksm-knobs scenario
exercises), is a ConfigError.  A knob set in a scenario file is still
checked by the kernel itself at boot (PKSMTB-ERROR knob ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigError

UINT_MAX = 2**32 - 1


@dataclass(frozen=True)
class Knob:
    """An integer range, or a set of words (then lo/hi are unused)."""

    lo: int = 0
    hi: int = UINT_MAX
    words: tuple[str, ...] = ()
    what: str = ""

    def check(self, value: str, where: str) -> None:
        if self.words:
            if value not in self.words:
                raise ConfigError(f"{where}: {value!r} is not one of {', '.join(self.words)}")
            return
        try:
            n = int(value, 10)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a whole number") from None
        if not self.lo <= n <= self.hi:
            raise ConfigError(f"{where}: {n} is outside {self.lo}..{self.hi}"
                              + (f" ({self.what})" if self.what else ""))


_BOOL = Knob(0, 1, what="0 or 1")
# /sys/kernel/mm/ksm/: upstream's files and checks, kept by both variants.
KSM_DIR: dict[str, Knob] = {
    "run": Knob(0, 2, what="0 stop, 1 merge, 2 unmerge"),
    "pages_to_scan": Knob(0, 16777216),
    "sleep_millisecs": Knob(0, 600000),
    "max_page_sharing": Knob(2, 2**31 - 1),
    "use_zero_pages": _BOOL,
    "merge_across_nodes": _BOOL,
    "stable_node_chains_prune_millisecs": Knob(0, UINT_MAX),
    "smart_scan": _BOOL,
    "advisor_mode": Knob(words=("none", "scan-time")),
    "advisor_max_cpu": Knob(1, 100),
    "advisor_min_pages_to_scan": Knob(1, 2**63 - 1),
    "advisor_max_pages_to_scan": Knob(1, 2**63 - 1),
    "advisor_target_scan_time": Knob(1, 2**63 - 1),
}
# /sys/kernel/mm/pksm/: PKSM's own (docs/pksm.md).
PKSM_DIR: dict[str, Knob] = {
    "probation_scans": Knob(0, 254),
    "period_seconds": Knob(1, 3600),
    "probation_millisecs": Knob(1, 60000),
    "swap_dedup": Knob(0, 1, what="0 off, 1 dedup before the swap store (docs/swap.md)"),
    "merge_domain": Knob(words=("all", "uid", "cgroup", "session")),
    "fake_merge": Knob(0, 1, what="0 off, 1 every candidate a KSM page (docs/security.md)"),
}
KNOBS: dict[str, dict[str, dict[str, Knob]]] = {
    "ksm": {"ksm": KSM_DIR},
    "pksm": {"ksm": KSM_DIR, "pksm": PKSM_DIR},
}


def split(spec: str) -> tuple[str, str]:
    """'pksm.probation_scans' -> ('pksm', 'probation_scans'); bare = ksm."""
    kdir, _, name = spec.rpartition(".")
    return kdir or "ksm", name


def known(variant: str) -> list[str]:
    return [f"{d}.{n}" for d, table in KNOBS[variant].items() for n in table]


def check(variant: str, spec: str, value: str, where: str) -> None:
    """ConfigError unless VARIANT's kernel has knob SPEC and takes VALUE."""
    kdir, name = split(spec)
    table = KNOBS.get(variant, {}).get(kdir)
    if table is None or name not in table:
        raise ConfigError(f"{where}: {variant} has no knob {kdir}.{name} "
                          f"(known: {', '.join(known(variant))})")
    table[name].check(value, f"{where}: {kdir}.{name} on {variant}")
