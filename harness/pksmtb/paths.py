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
PATCH_DIRS = (TOP / "linux" / "patches", TOP / "pksm" / "patches")
CONFIG_DIR = TOP / "linux" / "config"

VARIANTS = ("pksm", "ksm")
FLAVOURS = ("", "g", "debug")


def kernel_name(variant: str, flavour: str = "") -> str:
    """Build directory name of a variant/flavour pair: ksm, ksm-g, pksm-debug."""
    return f"{variant}-{flavour}" if flavour else variant
