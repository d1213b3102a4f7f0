"""The guest console: the PKSMTB-* protocol and the kernel's own trouble.

This module is the only one that knows the protocol.  The guest's /init
(rootfs/init), the generated run.sh (guest.py) and the workloads
(rootfs/src/util.h) print it; everything the harness needs to follow a
run comes back on the console as lines starting with PKSMTB-:

    PKSMTB-READY                       init is up, share mounted
    PKSMTB-KNOB ksm/run=1              a knob was set (value read back)
    PKSMTB-KNOBVAL ksm/run=1           a ksm/ or pksm/ file as the workloads start
                                       (every knob, defaults included; counters)
    PKSMTB-ERROR <text>                run.sh could not do something
    PKSMTB-EVENT <name> k=v k=v ...    workload and scenario events (dupalloc:
                                       region, filled, verified, merged, ...)
    PKSMTB-WORKLOAD <i> status=<n>     workload i ended with status n
    PKSMTB-EXIT <status>               run.sh finished; init powers off
    PKSMTB-ALIVE t=<uptime>            run.sh's heartbeat (the watchdog's, boot.py)

The boot's nonce.  A guest program could print these lines too, and
claim an exit status, a workload's success or a heartbeat it never had.
So the harness draws a nonce for each boot (Console.nonce) and hands it
to the guest's init only (guest.NONCE_FILE in the run share, which init
reads and deletes before run.sh or any workload starts; init passes it
to run.sh on a file descriptor run.sh closes at once).  init and run.sh
stamp their lines, ``PKSMTB-EXIT@<nonce> 0``; the control words
(CONTROL) count only stamped, and any other PKSMTB- line stamped with
another nonce, or a control word unstamped, is kept in ``forged`` (the
run fails: verdict.py).  Workloads do not know the nonce: their
PKSMTB-EVENT lines are taken as their own claims, as before, and
PKSMTB-ERROR lines from anyone (an error can only fail a run).  The
console log the harness writes into the share has the nonce replaced
(redact()).  Limits: a root program in the guest (workloads run as
root) could read init's or run.sh's memory; a student's kernel code
(labs 3 and 4) can do anything.  A console parsed without a nonce (a
captured log) takes every line, stamped or not.

Kernel trouble is recognised from the kernel's own messages (panic, oops,
OOM, and BUG/WARNING/KASAN/lockdep reports), and so is its boot banner,
whose UTS version carries the build id (buildinfo.py).  write_events() leaves what
was parsed in the run directory as events.json; load_events() reads it
back, so nothing else re-parses console.log.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.json"

PANIC_RE = re.compile(r"Kernel panic - not syncing|Attempted to kill init")
OOPS_RE = re.compile(r"\bOops\b|BUG: unable to handle|general protection fault|"
                     r"kernel BUG at|Segfault with no mm")
OOM_RE = re.compile(r"invoked oom-killer|Out of memory: Killed process")
REPORT_RE = re.compile(r"\bBUG:|WARNING:|KASAN:|possible circular locking|"
                       r"inconsistent lock state|possible recursive locking|"
                       r"suspicious RCU usage|DEBUG_LOCKS_WARN_ON|list_(add|del) corruption")
# The words only init and run.sh may say: stamped with the boot's nonce.
CONTROL = frozenset({"PKSMTB-READY", "PKSMTB-ALIVE", "PKSMTB-EXIT", "PKSMTB-KNOB",
                     "PKSMTB-KNOBVAL", "PKSMTB-WORKLOAD"})
REDACTED = "nonce"
_KV_RE = re.compile(r"(\w+)=(\S+)")
_PRINTK_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s?")
# The boot banner: "Linux version 7.3.4 (user@host) (gcc ...) #<build id> SMP <date>"
BANNER_RE = re.compile(r"^Linux version (\S+) \(.*\) (#\S+.*)$")


@dataclass
class Event:
    """PKSMTB-EVENT <name> k=v ...: a name and its fields, as printed."""

    name: str
    fields: dict[str, str]

    def num(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.fields[key])
        except (KeyError, ValueError):
            return default

    def ints(self) -> dict[str, int]:
        """The fields that are integers, as integers."""
        out = {}
        for k, v in self.fields.items():
            try:
                out[k] = int(v)
            except ValueError:
                continue
        return out

    def floats(self) -> dict[str, float]:
        """The fields that are numbers, as floats."""
        out = {}
        for k, v in self.fields.items():
            try:
                out[k] = float(v)
            except ValueError:
                continue
        return out


class EventMissing(LookupError):
    """A run did not print an event a caller needs."""


@dataclass
class Console:
    """Follows the guest console line by line and keeps what matters."""

    ready: bool = False
    exit_status: int | None = None
    events: list[Event] = field(default_factory=list)
    knobs: dict[str, str] = field(default_factory=dict)
    knobs_at_start: dict[str, str] = field(default_factory=dict)
    banner: str | None = None          # the kernel's "Linux version ..." line
    errors: list[str] = field(default_factory=list)
    workload_status: dict[int, int] = field(default_factory=dict)
    panic: list[str] = field(default_factory=list)
    oops: list[str] = field(default_factory=list)
    oom: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    heartbeats: int = 0                # PKSMTB-ALIVE lines
    forged: list[str] = field(default_factory=list)   # without this boot's nonce
    lines: list[str] = field(default_factory=list)
    nonce: str | None = None           # the boot's; None: every line is taken

    @classmethod
    def parse(cls, text: str) -> Console:
        """A whole console at once (a captured console.log)."""
        con = cls()
        for line in text.splitlines():
            con.feed(line)
        return con

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        self.lines.append(line)
        body = _PRINTK_TIME.sub("", line)
        if body.startswith("PKSMTB-"):
            self._protocol(body)
        elif self.banner is None and body.startswith("Linux version "):
            self.banner = body
        if "MISMATCH" in body:
            self.mismatches.append(body)
        if PANIC_RE.search(line):
            self.panic.append(line)
        if OOPS_RE.search(line):
            self.oops.append(line)
        if OOM_RE.search(line):
            self.oom.append(line)
        if REPORT_RE.search(line):
            self.reports.append(line)

    def _protocol(self, body: str) -> None:
        stamped, _, rest = body.partition(" ")
        word, at, stamp = stamped.partition("@")
        if self.nonce is not None and (
                (at and stamp != self.nonce) or (word in CONTROL and not at)):
            self.forged.append(redact(body, self.nonce))
            return
        if word == "PKSMTB-READY":
            self.ready = True
        elif word == "PKSMTB-ALIVE":
            self.heartbeats += 1
        elif word == "PKSMTB-EXIT":
            try:
                self.exit_status = int(rest.strip())
            except ValueError:
                self.errors.append(f"bad exit line: {body}")
        elif word == "PKSMTB-EVENT":
            name, _, kv = rest.partition(" ")
            self.events.append(Event(name, dict(_KV_RE.findall(kv))))
        elif word == "PKSMTB-KNOB":
            k, _, v = rest.partition("=")
            self.knobs[k] = v
        elif word == "PKSMTB-KNOBVAL":
            k, _, v = rest.partition("=")
            self.knobs_at_start[k] = v
        elif word == "PKSMTB-ERROR":
            self.errors.append(rest)
        elif word == "PKSMTB-WORKLOAD":
            idx, _, kv = rest.partition(" ")
            fields = dict(_KV_RE.findall(kv))
            try:
                self.workload_status[int(idx)] = int(fields.get("status", "-1"))
            except ValueError:
                self.errors.append(f"bad workload line: {body}")

    def uts_version(self) -> str | None:
        """The banner's UTS version ("#<build id> SMP <date>"), None without a banner."""
        m = BANNER_RE.match(self.banner or "")
        return m.group(2) if m else None

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def event(self, name: str) -> Event:
        """The first event called NAME; EventMissing if there is none."""
        for e in self.events:
            if e.name == name:
                return e
        raise EventMissing(f"no PKSMTB-EVENT {name} on the console "
                           f"(events seen: {sorted({e.name for e in self.events})})")

    def verify_result(self) -> str | None:
        """'ok' if every verifying workload said ok, 'fail' if any failed."""
        results = [e.fields.get("result") for e in self.events_named("verified")]
        if not results:
            return None
        return "ok" if all(r == "ok" for r in results) else "fail"

    def filled(self) -> tuple[int | None, int | None]:
        """When the workloads had filled their memory (latest t_ms), and the
        saving they made achievable (summed), from their 'filled' events."""
        filled = self.events_named("filled")
        if not filled:
            return None, None
        return (max(int(e.num("t_ms")) for e in filled),
                sum(int(e.num("achievable")) for e in filled))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["lines"], d["nonce"]
        return d


def redact(line: str, nonce: str | None) -> str:
    """LINE with NONCE replaced: what may be written where the guest can read."""
    return line.replace(nonce, REDACTED) if nonce else line


def write_events(con: Console, run_dir: Path) -> Path:
    """events.json: the parsed protocol and the kernel trouble seen."""
    path = run_dir / EVENTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(con.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_events(run_dir: Path) -> Console:
    """A run's Console back from its events.json (no console lines)."""
    d = json.loads((run_dir / EVENTS_FILE).read_text())
    d["events"] = [Event(e["name"], e["fields"]) for e in d.get("events", [])]
    d["workload_status"] = {int(k): v for k, v in d.get("workload_status", {}).items()}
    return Console(**d)
