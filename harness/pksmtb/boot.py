"""Everything about booting the UML kernel: its command line and its process.

A boot gets its own umid= and uml_dir= (inside the run directory), its own
process group, and is always torn down: on time-out, on Ctrl-C, SIGTERM or
SIGHUP, and on any error the whole process group (the kernel and its user
processes, which are host processes too) gets SIGKILL, and a terminal that
was in use gets its settings back.  The kernel is started with a
parent-death signal (PR_SET_PDEATHSIG = SIGKILL), and UML gives its own
helper and user processes one too: even a SIGKILL of the harness (or of
pytest around it) leaves no kernel running.
"""

from __future__ import annotations

import ctypes
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable

from . import paths

# A fixed guest wall-clock start for deterministic mode: 2026-01-01T00:00Z.
TIME_TRAVEL_START_NS = 1767225600 * 10**9
# Kernel arguments the harness sets itself (see BootSpec.argv()).
RESERVED_KERNEL_ARGS = frozenset({
    "mem", "root", "rootfstype", "rootflags", "init", "con", "con0", "ssl", "umid",
    "uml_dir", "pksmtb.share", "time-travel", "time-travel-start", "ubd1",
    "ncpus", "seccomp"})
_KERNEL_ARG = re.compile(r"[A-Za-z0-9_.,:/+-]+(=[A-Za-z0-9_.,:/+-]*)?")
PR_SET_PDEATHSIG = 1


class BadKernelArg(ValueError):
    """An extra kernel argument the harness cannot pass on."""


def check_kernel_arg(arg: str) -> str:
    """ARG if it is one name[=value] token the harness does not set itself."""
    if not _KERNEL_ARG.fullmatch(arg) or arg.split("=")[0] in RESERVED_KERNEL_ARGS:
        raise BadKernelArg(f"--kernel-arg {arg!r}: one name[=value] token, "
                           f"not one the harness sets itself")
    return arg


@dataclass
class BootSpec:
    binary: Path
    mem_mib: int
    share: Path
    umid: str
    uml_dir: Path
    deterministic: bool = False
    swap_mib: int = 0
    vcpus: int = 0          # an SMP build's vCPUs (ncpus=); 0: a UP build
    extra: list[str] = field(default_factory=list)

    @property
    def swap_image(self) -> Path:
        """The sparse swap file (second ubd device), inside uml_dir."""
        return self.uml_dir / "swap.img"

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
        if self.vcpus:
            # An SMP build: one host thread per vCPU, which needs the
            # seccomp-based userspace (the ptrace one is uniprocessor).
            args += [f"ncpus={self.vcpus}", "seccomp=on"]
        if self.swap_mib:
            args.append(f"ubd1={self.swap_image}")
        args += self.extra
        return [a for a in args if a]

    def prepare(self) -> None:
        """uml_dir, and the swap file if any (deleted with uml_dir)."""
        self.uml_dir.mkdir(parents=True, exist_ok=True)
        if self.swap_mib:
            with open(self.swap_image, "wb") as f:
                f.truncate(self.swap_mib << 20)


@dataclass
class BootResult:
    returncode: int | None
    timed_out: bool
    interrupted: bool
    wall_s: float
    signal: int = 0          # the signal that interrupted the boot (SIGINT, SIGTERM, SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: stop as Ctrl-C stops."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted while inside.

    Only the main thread can take signals; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


class Terminal:
    """Saves the controlling terminal's settings and puts them back."""

    def __init__(self) -> None:
        self.saved: list[Any] | None = None
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


_libc = ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(sig: int) -> None:
    """SIG for this process when its parent dies (prctl(PR_SET_PDEATHSIG))."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the harness dies, however it dies."""
    set_parent_death_signal(signal.SIGKILL)


# Set (by the Makefile) when the harness or pytest runs under make: if make
# is killed, they get SIGTERM and stop as Ctrl-C stops them.  Not the
# default: 'nohup pksmtb.py run ... &' must outlive its shell.
STOP_WITH_PARENT_ENV = "PKSMTB_STOP_WITH_PARENT"


def stop_with_parent_if_asked() -> None:
    if os.environ.get(STOP_WITH_PARENT_ENV) == "1":
        set_parent_death_signal(signal.SIGTERM)


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


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    """A UML kernel (or gdb around one): own session, dies with the harness."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)


def boot(spec: BootSpec, on_line: Callable[[str], None], timeout: float,
         on_tick: Callable[[], None] | None = None, tick_s: float = 0.5,
         wrapper: list[str] | None = None) -> BootResult:
    """Boot, hand every console line to on_line, stop at exit or time-out.

    on_tick is called about every tick_s seconds (live progress); wrapper
    is a command put in front of the kernel's command line (gdb --args).
    SIGINT, SIGTERM and SIGHUP end the boot (interrupted, signal set).
    """
    spec.prepare()
    term = Terminal()
    start_t = time.monotonic()
    timed_out = interrupted = False
    signum = 0
    proc: subprocess.Popen[bytes] | None = None
    sel = selectors.DefaultSelector()
    with stop_signals_interrupt():
        try:
            proc = start([*(wrapper or []), *spec.argv()])
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
            _follow(proc, sel, on_line, on_tick, timeout, tick_s, start_t)
        except TimeoutError:
            timed_out = True
        except Interrupted as e:
            interrupted, signum = True, e.signum
        except KeyboardInterrupt:
            interrupted, signum = True, signal.SIGINT
        finally:
            sel.close()
            if proc is not None:
                # The kernel exited or is killed now; its user processes with it.
                kill_group(proc)
                if proc.stdout is not None:
                    proc.stdout.close()
            term.restore()
            shutil.rmtree(spec.uml_dir, ignore_errors=True)
    return BootResult(proc.returncode if proc else None, timed_out, interrupted,
                      time.monotonic() - start_t, signum)


def _follow(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector,
            on_line: Callable[[str], None], on_tick: Callable[[], None] | None,
            timeout: float, tick_s: float, start_t: float) -> None:
    """Read the console until the kernel exits; TimeoutError past timeout."""
    assert proc.stdout is not None
    buf = b""
    next_tick = start_t + tick_s
    while True:
        now = time.monotonic()
        if now - start_t > timeout:
            raise TimeoutError
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
            return
