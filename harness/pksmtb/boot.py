"""Everything about booting the UML kernel: its command line and its process.

A boot gets its own umid= and uml_dir= (inside the run directory), its own
process group, and is always torn down: on time-out, on Ctrl-C, SIGTERM or
SIGHUP, and on any error the whole process group (the kernel and its user
processes, which are host processes too) gets SIGKILL, and a terminal that
was in use gets its settings back.  The kernel is started with a
parent-death signal (PR_SET_PDEATHSIG = SIGKILL), and UML gives its own
helper and user processes one too: even a SIGKILL of the harness (or of
pytest around it) leaves no kernel running.

A guest whose console prints nothing for the watchdog's limit is taken to
be hung (run.sh prints a heartbeat, so only a stuck guest is silent that
long): before it is killed, its management console (mconsole) is asked
for SysRq l (every vCPU's backtrace) and SysRq t (every task's), or,
if the guest does not answer, gdb attaches to the kernel's host threads;
what came back is kept (hang-backtrace.txt) and the boot ends hung.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import selectors
import shutil
import signal
import socket
import struct
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
# Where a hung guest's backtrace is kept (in the run directory, the share).
HANG_BACKTRACE = "hang-backtrace.txt"
# A Unix socket's path holds at most 107 bytes: a uml_dir whose mconsole
# socket would be longer is reached through a short link in /tmp.
SOCKET_PATH_MAX = 107


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
    def uml_link(self) -> Path | None:
        """A short link to uml_dir, given to the kernel instead when the
        mconsole socket's path under uml_dir would be too long to bind."""
        if len(str(self.uml_dir / self.umid / "mconsole")) <= SOCKET_PATH_MAX:
            return None
        return Path("/tmp") / f"{self.umid}.uml"

    @property
    def mconsole(self) -> Path:
        """The management console's socket, as the kernel binds it."""
        return (self.uml_link or self.uml_dir) / self.umid / "mconsole"

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
            f"umid={self.umid}", f"uml_dir={self.uml_link or self.uml_dir}",
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
        link = self.uml_link
        if link is not None:
            remove_stale_links(link.parent)
            link.unlink(missing_ok=True)
            link.symlink_to(self.uml_dir.resolve(), target_is_directory=True)
        if self.swap_mib:
            with open(self.swap_image, "wb") as f:
                f.truncate(self.swap_mib << 20)

    def clean_up(self) -> None:
        """uml_dir (and the swap file in it) and the short link, gone."""
        link = self.uml_link
        if link is not None and link.is_symlink():
            link.unlink(missing_ok=True)
        shutil.rmtree(self.uml_dir, ignore_errors=True)


def remove_stale_links(where: Path) -> None:
    """Short uml_dir links (BootSpec.uml_link) in WHERE whose run directory
    is gone: left by a harness killed with SIGKILL, which cleans up nothing.
    A live boot's link always has its target (made after it, removed before)."""
    for link in where.glob("*.uml"):
        try:
            if link.is_symlink() and os.readlink(link).endswith("/uml") and not link.exists():
                link.unlink()
        except OSError:
            continue


@dataclass
class BootResult:
    returncode: int | None
    timed_out: bool
    interrupted: bool
    wall_s: float
    signal: int = 0          # the signal that interrupted the boot (SIGINT, SIGTERM, SIGHUP)
    hung: bool = False       # the watchdog stopped it: no console output for watchdog_s
    watchdog_s: float = 0.0  # the watchdog's limit (0: off)
    max_silence_s: float = 0.0   # the longest the console was silent
    backtrace: str = ""      # how the hung guest's backtrace was taken ('' if none)


class Hung(Exception):
    """The watchdog fired: the console printed nothing for its limit."""


@dataclass
class Watchdog:
    """No console output for limit_s seconds (0: never) means a hung guest.

    Pure bookkeeping on the clock it is handed: output(now) when the console
    printed anything, expired(now) when the limit has passed since.
    """

    limit_s: float
    start: float
    last: float = field(init=False)
    max_silence_s: float = 0.0

    def __post_init__(self) -> None:
        self.last = self.start

    def output(self, now: float) -> None:
        self.max_silence_s = max(self.max_silence_s, now - self.last)
        self.last = now

    def silent_s(self, now: float) -> float:
        return now - self.last

    def expired(self, now: float) -> bool:
        return self.limit_s > 0 and self.silent_s(now) >= self.limit_s

    def wait_s(self, now: float) -> float:
        """How long until it would expire (a long time if it is off)."""
        return self.limit_s - self.silent_s(now) if self.limit_s > 0 else 3600.0

    def settle(self, now: float) -> None:
        """The silence up to NOW counts too (the boot ended)."""
        self.max_silence_s = max(self.max_silence_s, now - self.last)


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
         wrapper: list[str] | None = None, watchdog_s: float = 0.0,
         backtrace: Path | None = None) -> BootResult:
    """Boot, hand every console line to on_line, stop at exit or time-out.

    on_tick is called about every tick_s seconds (live progress); wrapper
    is a command put in front of the kernel's command line (gdb --args).
    SIGINT, SIGTERM and SIGHUP end the boot (interrupted, signal set).
    watchdog_s > 0: a console silent that long is a hung guest, whose
    backtrace goes to BACKTRACE (default: HANG_BACKTRACE in the share)
    before it is killed (hung set).
    """
    spec.prepare()
    term = Terminal()
    start_t = time.monotonic()
    timed_out = interrupted = hung = False
    how = ""
    signum = 0
    proc: subprocess.Popen[bytes] | None = None
    sel = selectors.DefaultSelector()
    wd = Watchdog(watchdog_s, start_t)
    reader: ConsoleReader | None = None
    with stop_signals_interrupt():
        try:
            proc = start([*(wrapper or []), *spec.argv()])
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
            reader = ConsoleReader(proc, sel, on_line, wd)
            _follow(reader, on_tick, timeout, tick_s, start_t)
        except TimeoutError:
            timed_out = True
        except Hung:
            hung = True
            wd.settle(time.monotonic())
            assert proc is not None and reader is not None
            try:
                how = capture_hang(proc, spec, reader, backtrace or spec.share / HANG_BACKTRACE,
                                   watchdog_s, traced=bool(wrapper))
            except Interrupted as e:
                interrupted, signum = True, e.signum
            except KeyboardInterrupt:
                interrupted, signum = True, signal.SIGINT
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
            spec.clean_up()
    if not hung:
        wd.settle(time.monotonic())
    return BootResult(proc.returncode if proc else None, timed_out, interrupted,
                      time.monotonic() - start_t, signum, hung, watchdog_s,
                      round(wd.max_silence_s, 3), how)


class ConsoleReader:
    """The kernel's console pipe, line by line to on_line; feeds the watchdog."""

    def __init__(self, proc: subprocess.Popen[bytes], sel: selectors.BaseSelector,
                 on_line: Callable[[str], None], wd: Watchdog) -> None:
        assert proc.stdout is not None
        self.proc, self.sel, self.on_line, self.wd = proc, sel, on_line, wd
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.eof = False

    def read(self, wait_s: float) -> None:
        """Whatever the console printed within WAIT_S seconds."""
        if self.eof:
            time.sleep(max(0.0, wait_s))
            return
        for _key, _ev in self.sel.select(timeout=max(0.0, wait_s)):
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                break
            self.wd.output(time.monotonic())
            self.buf += chunk
            *lines, self.buf = self.buf.split(b"\n")
            for raw in lines:
                self.on_line(raw.decode("utf-8", "replace"))

    def finish(self) -> None:
        """The kernel exited: the rest of the pipe, the last partial line too."""
        assert self.proc.stdout is not None
        rest = b"" if self.eof else (self.proc.stdout.read() or b"")
        if rest:
            self.wd.output(time.monotonic())
        for raw in (self.buf + rest).split(b"\n"):
            if raw:
                self.on_line(raw.decode("utf-8", "replace"))
        self.buf = b""


def _follow(reader: ConsoleReader, on_tick: Callable[[], None] | None,
            timeout: float, tick_s: float, start_t: float) -> None:
    """Read the console until the kernel exits; TimeoutError past timeout,
    Hung once the console has been silent for the watchdog's limit."""
    next_tick = start_t + tick_s
    while True:
        now = time.monotonic()
        if now - start_t > timeout:
            raise TimeoutError
        if reader.wd.expired(now):
            raise Hung
        reader.read(min(tick_s, max(0.05, next_tick - now), max(0.05, reader.wd.wait_s(now))))
        if on_tick and time.monotonic() >= next_tick:
            on_tick()
            next_tick = time.monotonic() + tick_s
        if reader.proc.poll() is not None:
            reader.finish()
            return


# ---- a hung guest's backtrace -------------------------------------------------

MCONSOLE_MAGIC = 0xCAFEBABE
MCONSOLE_VERSION = 2
MCONSOLE_MAX_DATA = 512
_MC_REQUEST = struct.Struct(f"=III{MCONSOLE_MAX_DATA}s")
_MC_REPLY_HEAD = struct.Struct("=III")
# What a kernel stack trace looks like: "Call Trace:", and frames printed
# as symbol+offset/size (the kernel's %pS) or gdb's "#N ... in symbol".
STACK_LINE_RE = re.compile(r"Call Trace:|\b[A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+|"
                           r"^#\d+\s+(0x[0-9a-f]+ in )?[A-Za-z_]\w*", re.M)


class MconsoleError(OSError):
    """The management console refused a request or did not answer."""


class Mconsole:
    """A client of a UML kernel's management console (mconsole).

    The protocol (arch/um/drivers/mconsole.h): a datagram of magic,
    version, length and up to 512 bytes of command; replies of error,
    more, length and data until one has more = 0, sent back to the
    sender's address: here an abstract one the kernel picks (autobind).
    A SysRq's output comes in replies as it is printed, and on the console
    too: send() does not wait, replies() takes what has arrived, so the
    caller can read the console meanwhile (a kernel blocked on a full
    console pipe answers nothing).
    """

    def __init__(self, sock_path: Path) -> None:
        self.path = sock_path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind("")
        self.sock.setblocking(False)

    def __enter__(self) -> Mconsole:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def send(self, command: str) -> None:
        """COMMAND (e.g. "sysrq t"); MconsoleError if it cannot be sent."""
        data = command.encode()
        if len(data) >= MCONSOLE_MAX_DATA:
            raise ValueError(f"mconsole command too long: {command!r}")
        try:
            self.sock.sendto(_MC_REQUEST.pack(MCONSOLE_MAGIC, MCONSOLE_VERSION, len(data), data),
                             str(self.path))
        except OSError as e:
            raise MconsoleError(f"mconsole {command!r} at {self.path}: {e}") from None

    def replies(self, wait_s: float = 0.0) -> list[tuple[int, int, str]]:
        """(err, more, text) of each reply that arrived (waiting up to WAIT_S
        for the first)."""
        out: list[tuple[int, int, str]] = []
        if wait_s > 0:
            select.select([self.sock], [], [], wait_s)
        while True:
            try:
                reply = self.sock.recv(_MC_REPLY_HEAD.size + MCONSOLE_MAX_DATA)
            except (BlockingIOError, InterruptedError):
                return out
            err, more, length = _MC_REPLY_HEAD.unpack_from(reply)
            text = reply[_MC_REPLY_HEAD.size:_MC_REPLY_HEAD.size + length]
            out.append((err, more, text.rstrip(b"\0").decode("utf-8", "replace")))


def mconsole(sock_path: Path, command: str, timeout: float = 10.0) -> str:
    """COMMAND to a UML kernel's management console and the text of its
    whole reply; MconsoleError if it refuses or does not answer in TIMEOUT."""
    with Mconsole(sock_path) as mc:
        mc.send(command)
        deadline = time.monotonic() + timeout
        text: list[str] = []
        while time.monotonic() < deadline:
            for err, more, part in mc.replies(deadline - time.monotonic()):
                text.append(part)
                if err:
                    raise MconsoleError(f"mconsole {command!r}: {''.join(text)}")
                if not more:
                    return "".join(text)
        raise MconsoleError(f"mconsole {command!r} at {sock_path}: no answer in {timeout:g} s")


def gdb_backtrace(pid: int, timeout: float = 30.0) -> str:
    """Every host thread's backtrace of the kernel process PID (gdb -p,
    batch): where each vCPU thread is, in kernel symbols."""
    argv = ["gdb", "-q", "-nx", "-batch", "-p", str(pid),
            "-ex", "set pagination off",
            "-ex", "handle SIGSEGV nostop noprint pass",
            "-ex", "handle SIGUSR1 nostop noprint pass",
            "-ex", "info threads", "-ex", "thread apply all bt 40"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, errors="replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"gdb -p {pid}: {e}\n"
    return done.stdout + done.stderr


def capture_hang(proc: subprocess.Popen[bytes], spec: BootSpec, reader: ConsoleReader,
                 out: Path, limit_s: float, traced: bool = False,
                 sysrq: tuple[str, ...] = ("l", "t"), settle_s: float = 2.0,
                 answer_s: float = 5.0, deadline_s: float = 30.0) -> str:
    """A hung guest's backtrace into OUT, before it is killed; how it was
    taken ("mconsole sysrq", "gdb", or "" if neither gave stack lines).

    The guest's management console is asked for SysRq l (every vCPU) and
    t (every task); their output comes on the console, which is read on
    meanwhile (the kernel must not block on a full pipe) until it has been
    quiet for SETTLE_S seconds (at most DEADLINE_S).  If that gave no stack
    lines and the kernel is not already under gdb (TRACED), gdb attaches
    to its host threads.
    """
    t0 = time.monotonic()
    seen: list[str] = []
    on_line = reader.on_line

    def tee(line: str) -> None:
        seen.append(line)
        on_line(line)
    reader.on_line = tee
    notes = [f"hung: no console output for {limit_s:g} s; the backtrace was taken "
             f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"]
    answered = []
    try:
        mc = Mconsole(spec.mconsole)
    except OSError as e:
        notes.append(f"mconsole: {e}")
        sysrq = ()
    for key in sysrq:
        try:
            mc.send(f"sysrq {key}")
        except MconsoleError as e:
            notes.append(str(e))
            break
        # Read the console on while the output comes (on the console and in
        # replies) until it has been quiet for settle_s; a guest that gives
        # neither a reply nor a line for answer_s does not answer.
        sent = quiet_since = time.monotonic()
        replied, before = False, len(seen)
        while time.monotonic() - t0 < deadline_s and not reader.eof:
            n = len(seen)
            reader.read(0.1)
            got = mc.replies()
            replied = replied or bool(got)
            errors = [text for err, _more, text in got if err]
            if errors:
                notes.append(f"mconsole 'sysrq {key}': {' '.join(errors)}")
            if len(seen) != n or got:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle_s and \
                    (replied or time.monotonic() - sent >= answer_s):
                break
        if not replied and len(seen) == before:
            notes.append(f"mconsole 'sysrq {key}' at {spec.mconsole}: no answer in "
                         f"{answer_s:g} s")
            break
        answered.append(key)
    if sysrq:
        mc.sock.close()
    reader.on_line = on_line
    text = "\n".join(seen) + "\n" if seen else ""
    how = ""
    if answered and STACK_LINE_RE.search(text):
        how = "mconsole sysrq " + " ".join(answered)
        notes.append(f"{how}: the console's lines after the request follow")
    elif traced:
        notes.append("no stack lines from the mconsole, and the kernel is under gdb "
                     "already: no gdb backtrace")
    else:
        notes.append(f"no stack lines from the mconsole: gdb -p {proc.pid}")
        text += "\n---- gdb -p " + str(proc.pid) + " ----\n" + gdb_backtrace(proc.pid)
        if STACK_LINE_RE.search(text):
            how = "gdb"
    out.write_text("".join(f"# {n}\n" for n in notes) + "\n" + text)
    return how
