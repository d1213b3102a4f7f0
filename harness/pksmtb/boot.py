"""The UML command line and the UML process.

Each boot gets its own umid= and uml_dir= (inside the run directory), its
own process group, and is always torn down: on time-out, on Ctrl-C or on
any error the whole process group (the kernel and its user processes, which
are host processes too) gets SIGKILL, and a terminal that was in use gets its
settings back.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import paths

# A fixed guest wall-clock start for deterministic mode: 2026-01-01T00:00Z.
TIME_TRAVEL_START_NS = 1767225600 * 10**9


@dataclass
class BootSpec:
    binary: Path
    mem_mib: int
    share: Path
    umid: str
    uml_dir: Path
    deterministic: bool = False
    extra: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The exact host command line of the boot."""
        args = [
            str(self.binary),
            f"mem={self.mem_mib}M",
            "root=/dev/root", "rootfstype=hostfs", f"rootflags={paths.ROOTFS}", "rw",
            "init=/init",
            # Console 0 writes to our stdout and reads nothing; no other
            # console or serial line is attached to anything.
            "con=null", "con0=null,fd:1", "ssl=null",
            f"umid={self.umid}", f"uml_dir={self.uml_dir}",
            f"pksmtb.share={self.share}",
        ]
        if self.deterministic:
            # Infinite-CPU time travel: guest time only moves when the guest
            # sleeps, so timings repeat run after run, even under gdb.
            args += ["time-travel=inf-cpu", f"time-travel-start={TIME_TRAVEL_START_NS}"]
        args += self.extra
        return [a for a in args if a]


@dataclass
class BootResult:
    returncode: int | None
    timed_out: bool
    interrupted: bool
    wall_s: float


class Terminal:
    """Saves the controlling terminal's settings and puts them back."""

    def __init__(self) -> None:
        self.saved = None
        try:
            import termios
            if sys.stdin.isatty():
                self.saved = termios.tcgetattr(sys.stdin.fileno())
        except (ImportError, OSError):
            self.saved = None

    def restore(self) -> None:
        if self.saved is None:
            return
        try:
            import termios
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)
        except OSError:
            pass


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the boot's whole process group and reap the kernel."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def boot(spec: BootSpec, on_line: Callable[[str], None], timeout: float,
         on_tick: Callable[[], None] | None = None, tick_s: float = 0.5,
         wrapper: list[str] | None = None) -> BootResult:
    """Boot, hand every console line to on_line, stop at exit or time-out.

    on_tick is called about every tick_s seconds (live progress); wrapper
    is a command put in front of the kernel's command line (gdb --args).
    """
    spec.uml_dir.mkdir(parents=True, exist_ok=True)
    term = Terminal()
    start = time.monotonic()
    proc = subprocess.Popen([*(wrapper or []), *spec.argv()], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    timed_out = interrupted = False
    next_tick = start + tick_s
    try:
        while True:
            now = time.monotonic()
            if now - start > timeout:
                timed_out = True
                break
            for _key, _ev in sel.select(timeout=min(tick_s, max(0.05, next_tick - now))):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    on_line(raw.decode("utf-8", "replace"))
            if on_tick and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
            if proc.poll() is not None:
                rest = proc.stdout.read() or b""
                for raw in (buf + rest).split(b"\n"):
                    if raw:
                        on_line(raw.decode("utf-8", "replace"))
                buf = b""
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sel.close()
        if proc.poll() is None or timed_out or interrupted:
            kill_group(proc)
        else:
            # The kernel exited; make sure none of its user processes linger.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.stdout.close()
        term.restore()
        shutil.rmtree(spec.uml_dir, ignore_errors=True)
    return BootResult(proc.returncode, timed_out, interrupted, time.monotonic() - start)
