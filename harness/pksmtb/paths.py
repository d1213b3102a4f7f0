"""Where things live in a checkout of the testbed."""

from __future__ import annotations

import os
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
KSRC = TOP / "linux" / "src"
# PKSMTB_KBUILD points the harness at other kernel builds (tests use it).
KBUILD = Path(os.environ.get("PKSMTB_KBUILD", TOP / "build" / "kernel"))
# PKSMTB_ROOTFS points it at another guest root (a worktree testing its own).
ROOTFS = Path(os.environ.get("PKSMTB_ROOTFS", TOP / "build" / "rootfs"))
SCENARIOS = TOP / "harness" / "scenarios"
RUNS = TOP / "results" / "runs"
CONFIG_DIR = TOP / "linux" / "config"

VARIANTS = ("pksm", "ksm")
# Every build is SMP (boots with ncpus=N) unless its flavour ends in "up":
# a uniprocessor build with UML time travel, for deterministic mode.
FLAVOURS = ("", "g", "debug", "up", "g-up", "debug-up")
# vCPUs a guest may have (ncpus=); perf mode's default: two, so that
# pksmd, reclaim and the workload's processes run at once (deterministic
# mode boots the uniprocessor twin, one vCPU).
VCPUS_RANGE = (1, 8)
DEFAULT_VCPUS = 2


def kernel_name(variant: str, flavour: str = "") -> str:
    """Build directory name of a variant/flavour pair: ksm, ksm-g, pksm-debug-up."""
    return f"{variant}-{flavour}" if flavour else variant


def is_up(flavour: str) -> bool:
    """Is FLAVOUR a uniprocessor (time-travel) build?"""
    return flavour == "up" or flavour.endswith("-up")


def up_flavour(flavour: str) -> str:
    """The uniprocessor twin of FLAVOUR: "" -> up, debug -> debug-up."""
    if is_up(flavour):
        return flavour
    return f"{flavour}-up" if flavour else "up"
