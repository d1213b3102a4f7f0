"""A sandbox for what a submission runs on the host: its kernel build and
its boots (the UML kernel, and gdb around it in lab 1).

A UML kernel is a host process: kernel code a student wrote (labs 3 and
4) runs with the grader's user and can make host system calls; a gdb
script (lab 1) has ``shell``.  Batch grading with ``--sandbox`` runs each
such command under Debian's bubblewrap (``bwrap``), with:

* the host read-only (``--ro-bind / /``), the submission's own scratch
  directories (its lab tree's build directory, its run directories)
  bound writable over themselves, and nothing else;
* a private ``/dev/shm`` (tmpfs), which is also ``TMPDIR``: UML's memory
  file goes there (it must not be ``noexec``), and the compiler's
  temporary files; the host's ``/tmp`` is read-only like the rest (the
  submission and the checkout may live there); a private ``/proc`` and
  a minimal ``/dev``;
* no network, and its own user, PID, IPC, UTS and cgroup namespaces
  (``--unshare-all``), every capability dropped, a session of its own
  (no terminal to inject into), killed with the grader
  (``--die-with-parent``);
* CPU time limited (``prlimit --cpu``, each process: UML's vCPU threads
  share one limit) and wall time (``timeout``), no core files.

What it does not do: hide what the host lets its user read (the host is
readable, only not writable), limit memory (the guest's is its
``mem=``), nor keep a kernel the student wrote from printing a forged
console (labs/INSTRUCTOR.md).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"
PACKAGE = "bubblewrap"
CPU_S = 1800            # CPU seconds a process in the sandbox may use
WALL_S = 3600           # seconds one sandboxed command may take


class SandboxError(Exception):
    """The sandbox cannot be used here: what is missing."""


@dataclass(frozen=True)
class Sandbox:
    """WRITABLE: the only host paths a command may change (each must exist)."""

    writable: tuple[Path, ...]
    cpu_s: int = CPU_S
    wall_s: int = WALL_S

    def prefix(self) -> list[str]:
        """The command line to put in front of a command: it runs sandboxed."""
        if self.cpu_s < 1 or self.wall_s < 1:
            raise SandboxError(f"CPU limit {self.cpu_s} s, time limit {self.wall_s} s: "
                               "each must be at least 1")
        argv = ["timeout", "--signal=KILL", str(self.wall_s),
                "prlimit", f"--cpu={self.cpu_s}", "--core=0", "--",
                BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--tmpfs", "/dev/shm", "--setenv", "TMPDIR", "/dev/shm",
                "--unshare-all", "--cap-drop", "ALL", "--new-session", "--die-with-parent"]
        for p in self.writable:
            if not p.is_dir():
                raise SandboxError(f"{p}: the sandbox's scratch must be a directory")
            argv += ["--bind", str(p.resolve()), str(p.resolve())]
        return argv


def check() -> None:
    """SandboxError unless a sandbox can start here: bwrap installed and
    able to make its namespaces and mounts."""
    for tool, pkg in ((BWRAP, PACKAGE), ("prlimit", "util-linux"), ("timeout", "coreutils")):
        if not shutil.which(tool):
            raise SandboxError(f"no {tool} on PATH: install Debian's {pkg} (make deps)")
    probe = Sandbox((), 10, 30).prefix() + ["true"]
    r = subprocess.run(probe, capture_output=True, text=True)
    if r.returncode:
        raise SandboxError(f"bwrap cannot make its sandbox here (exit {r.returncode}): "
                           f"{r.stderr.strip()[-300:]} (it needs user namespaces, or root)")
