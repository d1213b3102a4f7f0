"""Booting a scenario under gdb: the gdbinit, interactive or batch."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from . import config, paths, results, runner
from .boot import Terminal, die_with_parent
from .verdict import ExitCode


PKSM_GDB = paths.TOP / "harness" / "gdb" / "pksm.py"


def gdbinit(build_dir: Path) -> str:
    """gdb settings for UML (its own SIGSEGV/SIGUSR1) and the kernel's lx- scripts."""
    lines = [
        "set pagination off",
        "set confirm off",
        # UML uses SIGSEGV for its own page faults and SIGUSR1 internally;
        # SMP builds send SIGRTMIN (glibc's is 34) between vCPU threads.
        "handle SIGSEGV pass nostop noprint",
        "handle SIGUSR1 pass nostop noprint",
        "handle SIG34 pass nostop noprint",
        "set follow-fork-mode parent",
        "set detach-on-fork on",
        f"add-auto-load-safe-path {build_dir}",
    ]
    gdbpy = build_dir / "vmlinux-gdb.py"
    if gdbpy.exists():
        lines.append(f"source {gdbpy}")
    # PKSM's own commands (pksm-stats, pksm-page, ...), after the lx- scripts
    # they use; on a kernel without PKSM they load but refuse to run.
    lines.append(f"source {PKSM_GDB}")
    return "\n".join(lines) + "\n"


def debug_flavour(req: runner.RunRequest) -> str:
    """The request's flavour, else '' if the plain build has gdb scripts, else 'g'."""
    if req.flavour:
        return req.flavour
    variant = req.variant or (req.scenario.variant if isinstance(req.scenario, config.Scenario)
                              else config.load_scenario(req.scenario).variant)
    plain = paths.KBUILD / paths.kernel_name(variant) / "vmlinux-gdb.py"
    return "" if plain.exists() else "g"


def run_gdb(req: runner.RunRequest, batch: Path | None) -> int | runner.RunResult:
    """Interactive: gdb's exit status.  Batch: a supervised run's result."""
    req.flavour = debug_flavour(req)
    p = runner.prepare(req)
    build_dir = p.build.binary.parent
    if not (build_dir / "vmlinux-gdb.py").exists():
        print(f"note: {p.build.name} has no gdb scripts (build with FLAVOUR=g for lx- "
              "commands)", file=sys.stderr)
    init = p.run_dir / "gdbinit"
    init.write_text(gdbinit(build_dir))
    argv = ["gdb", "-q", "-nx", "-x", str(init)]
    if batch:
        argv += ["-batch", "-x", str(batch.resolve())]
    argv += ["--args", *p.spec.argv()]
    p.meta["gdb_command_line"] = " ".join(shlex.quote(a) for a in argv)
    results.write_json(p.run_dir / "meta.json", p.meta)
    print(f"gdb: {p.scenario.name} on {p.build.name} -> {p.run_dir}", flush=True)
    if not batch:
        print("gdb: type 'run' to boot; try 'break ksm_do_scan' first", flush=True)
        term = Terminal()
        try:
            return subprocess.call(argv, preexec_fn=die_with_parent)
        except KeyboardInterrupt:
            return ExitCode.INTERRUPTED
        finally:
            term.restore()
    # Batch mode: same supervision as a run (console parsed, time-out).
    con, res = runner.supervise(p, req.verbose, wrapper=argv[:argv.index("--args") + 1])
    return runner.finish(p, con, res)
