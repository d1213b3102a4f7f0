"""Finding a built kernel, and what identifies it for reproducibility
(the build record beside the binary: buildinfo.py)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import buildinfo, paths


class BuildMissing(Exception):
    """The kernel or the guest root a run needs has not been built."""


@dataclass
class KernelBuild:
    variant: str
    flavour: str
    binary: Path

    @property
    def name(self) -> str:
        return paths.kernel_name(self.variant, self.flavour)

    @property
    def config(self) -> Path:
        return self.binary.parent / ".config"

    def identity(self) -> dict[str, Any]:
        """What meta.json records to reproduce a run on this kernel: the
        build record written beside the binary when it was built (build,
        build_id; buildinfo.py), the binary's own hash, and the checkout's
        HEAD as the run starts (harness_revision: the harness that ran it)."""
        rec = buildinfo.recorded(self.binary)
        return {
            "kernel_build": self.name,
            "kernel_binary": str(self.binary),
            "kernel_binary_sha256": rec.binary_sha256,
            "kernel_version": kernel_version(),
            "config_sha256": sha256_file(self.config),
            "build": rec.record,
            "build_id": rec.id,
            "build_problem": rec.problem or None,
            "harness_revision": git_revision(),
        }


def find_kernel(variant: str, flavour: str = "", root: Path | None = None) -> KernelBuild:
    """The build of VARIANT-FLAVOUR under ROOT (default paths.KBUILD)."""
    name = paths.kernel_name(variant, flavour)
    binary = (root or paths.KBUILD) / name / "linux"
    if not binary.is_file():
        flav = f" FLAVOUR={flavour}" if flavour else ""
        raise BuildMissing(f"kernel {name} is not built ({binary} missing): "
                           f"run 'make kernel VARIANT={variant}{flav}'")
    if not (paths.ROOTFS / "init").is_file():
        raise BuildMissing(f"guest root {paths.ROOTFS} is not built: run 'make rootfs'")
    return KernelBuild(variant, flavour, binary)


def sha256_file(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unknown"


def kernel_version() -> str:
    """'7.3.4 (Debian linux-source-7.3 7.3.4-1~bpo13+1)' or 'unknown'."""
    try:
        mk = (paths.KSRC / "Makefile").read_text()
    except OSError:
        return "unknown"
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"^{key}\s*=\s*(\d+)", mk, re.MULTILINE)
        fields[key] = m.group(1) if m else "?"
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"
    stamp = paths.KSRC / ".pksmtb-stamp"
    if stamp.is_file():
        first = stamp.read_text().splitlines()[:1]
        if first and first[0].startswith("tarball "):
            version += f" (Debian {first[0].split(' ', 1)[1]})"
    return version


def git_revision() -> str:
    """HEAD of the checkout, with '-dirty' when tracked files are modified:
    the harness that runs a boot, a sweep or a bench (harness_revision).
    Not what a kernel was built from: that is its build record's revision
    and dirty paths (buildinfo.py)."""
    try:
        rev = subprocess.run(["git", "-C", str(paths.TOP), "rev-parse", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(paths.TOP), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")
