"""Scenario files: TOML in, validated Scenario objects out.

A scenario says which kernel variant to boot, with how much memory, which
knobs to set, which workloads to run with which options, how often to
sample, when to stop and what to expect.  Every mistake in a file or on the
command line is a ConfigError with a message naming the file and the key.

    [scenario]
    name = "default"                 # defaults to the file name
    description = "..."
    variant = "ksm"                  # pksm | ksm (the CLI may override)
    mem = "256M"                     # guest memory (K/M/G suffix)
    mode = "perf"                    # perf (real time) | deterministic
    vcpus = 1                        # guest CPUs, 1..8 (ncpus=); deterministic
                                     # mode boots the UP build: 1 only
    timeout = 180                    # wall-clock seconds for the whole boot, before
                                     # the host scale (host_time_scale())
    watchdog = 60                    # no console output for N s: hung (10..3600;
                                     # 0: off); the guest prints a heartbeat
    sample_interval_ms = 200
    duration = 0                     # >0: stop the workloads after N s
    swap = "256M"                    # optional: swap on a ubd device of this size
    trace = "pksm"                   # optional: record PKSM tracepoints (all, or
                                     # a comma list: "merge,cow_break")

    [knobs.ksm]                      # /sys/kernel/mm/ksm/<name>
    pages_to_scan = 100
    [knobs.pksm]                     # /sys/kernel/mm/pksm/<name>

    [[workload]]
    program = "dupalloc"
    [workload.options]               # become --procs 4 --mib 8 ...
    procs = 4

    [[workload]]                     # a real program of the host's Debian
    host = "pyserve"                 # root (hostprog.py): pyserve |
    [workload.options]               # sqliteload | pycompile
    workers = 4

    [expect]
    exit = 0                         # the run script's exit status
    saved_fraction_min = 0.9         # peak saved / achievable
    [expect.ksft_skip]               # kselftests (ksft.py): allowed skips,
    "ksm_tests -N -m 1" = "NUMA"     # with the text their message must hold
    [expect.ksft_left_out]           # tests not judged here, with the reason
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import boot, hostprog, paths

# The variant a scenario boots when it names none: the one default, used
# by the harness and (through 'pksmtb.py variant') by the Makefile.
DEFAULT_VARIANT = "ksm"
# The no-output watchdog (scenario key watchdog, --watchdog): a guest whose
# console prints nothing for this long is taken to be hung, its backtrace
# taken and the boot stopped (boot.py).  run.sh prints a heartbeat every
# heartbeat_s(limit) seconds, so a quiet workload is not a silent guest.
WATCHDOG_DEFAULT_S = 60
WATCHDOG_RANGE = (10, 3600)          # seconds; 0 turns the watchdog off
# Host time-outs (timeout, and the benches' own) are multiplied by the
# host's scale, at most this much (host_time_scale()).
TIMEOUT_SCALE_MAX = 4.0
# PKSM's tracepoints (events/pksm/ in tracefs), for --trace and trace = "...".
TRACE_EVENTS = ("pksm_page_registered", "pksm_probation_passed", "pksm_merge",
                "pksm_hash_false_positive", "pksm_cow_break", "pksm_reverify_changed",
                "pksm_item_released", "pksm_unmerge")
WORKLOADS = ("dupalloc", "fpregs", "sampler", "pokemem", "faultbench", "shapes", "torture",
             "engload", "swapbench", "domains", "sidechannel")
MODES = ("perf", "deterministic")
KNOB_DIRS = ("ksm", "pksm")
_KNOB_NAME = re.compile(r"^[a-z0-9_]+$")
_OPTION_NAME = re.compile(r"^[a-z0-9][a-z0-9-_]*$")


class ConfigError(Exception):
    """A scenario file or command-line setting is malformed."""


@dataclass
class Workload:
    program: str
    options: dict[str, Any] = field(default_factory=dict)
    shell: str | None = None
    host: bool = False            # a real program from the host root (hostprog.py)

    def argv(self) -> list[str]:
        """The guest command line: options become --name value (True: --name)."""
        if self.shell is not None:
            return ["sh", "-c", self.shell]
        out = [self.program]
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                out.append(flag)
            elif value is False:
                continue
            else:
                out += [flag, str(value)]
        return out


@dataclass
class Scenario:
    name: str
    path: Path | None
    description: str = ""
    variant: str = DEFAULT_VARIANT
    mem_mib: int = 256
    mode: str = "perf"
    vcpus: int = paths.DEFAULT_VCPUS
    timeout: float = 180.0
    watchdog: float = float(WATCHDOG_DEFAULT_S)
    sample_interval_ms: int = 200
    duration: float = 0.0
    swap_mib: int = 0
    trace: list[str] = field(default_factory=list)
    kernel_args: list[str] = field(default_factory=list)
    knobs: dict[str, dict[str, str]] = field(default_factory=dict)
    workloads: list[Workload] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "description": self.description,
            "variant": self.variant,
            "mem_mib": self.mem_mib,
            "mode": self.mode,
            "vcpus": self.vcpus,
            "timeout": self.timeout,
            "watchdog": self.watchdog,
            "sample_interval_ms": self.sample_interval_ms,
            "duration": self.duration,
            "swap_mib": self.swap_mib,
            "trace": self.trace,
            "kernel_args": self.kernel_args,
            "knobs": self.knobs,
            "workloads": [{"program": w.program, "options": w.options, "shell": w.shell,
                           **({"host": True} if w.host else {})}
                          for w in self.workloads],
            "expect": self.expect,
        }


def parse_size_mib(text: str | int, where: str, lo: int = 32, hi: int = 16384,
                   what: str = "guest memory") -> int:
    """'256M', '1G', '262144K' or a bare number of MiB -> MiB."""
    if isinstance(text, bool):
        raise ConfigError(f"{where}: expected a size like 256M, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(text), re.IGNORECASE)
        if not m:
            raise ConfigError(f"{where}: expected a size like 256M or 1G, got {text!r}")
        n, unit = int(m.group(1)), m.group(2).upper()
        value = {"K": n // 1024, "": n, "M": n, "G": n * 1024}[unit]
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {what} must be {lo}M..{hi // 1024}G, got {text!r}")
    return value


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...],
          where: str, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) and kind is not bool and bool not in (
            kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where}.{key}: expected {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _reject_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def knob_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, str)):
        text = str(value)
        if "\n" in text or "'" in text:
            raise ConfigError(f"{where}: knob values cannot contain newlines or quotes")
        return text
    raise ConfigError(f"{where}: a knob value is an integer, boolean or string, got {value!r}")


def parse_scenario(data: dict[str, Any], name: str, path: Path | None) -> Scenario:
    where = str(path) if path else name
    _reject_unknown(data, {"scenario", "knobs", "workload", "expect"}, where)
    head = data.get("scenario", {})
    if not isinstance(head, dict):
        raise ConfigError(f"{where}: [scenario] must be a table")
    _reject_unknown(head, {"name", "description", "variant", "mem", "mode", "vcpus", "timeout",
                           "watchdog",
                           "sample_interval_ms", "duration", "swap", "trace",
                           "kernel_args"},
                   f"{where} [scenario]")
    w = f"{where} [scenario]"
    sc = Scenario(name=_take(head, "name", str, w, name), path=path)
    sc.description = _take(head, "description", str, w, "")
    sc.variant = _take(head, "variant", str, w, DEFAULT_VARIANT)
    if sc.variant not in paths.VARIANTS:
        raise ConfigError(f"{w}.variant: {sc.variant!r} is not one of {', '.join(paths.VARIANTS)}")
    sc.mem_mib = parse_size_mib(_take(head, "mem", (str, int), w, "256M"), f"{w}.mem")
    sc.mode = _take(head, "mode", str, w, "perf")
    if sc.mode not in MODES:
        raise ConfigError(f"{w}.mode: {sc.mode!r} is not one of {', '.join(MODES)}")
    sc.vcpus = parse_vcpus(_take(head, "vcpus", int, w, 1 if sc.mode == "deterministic"
                                 else paths.DEFAULT_VCPUS), f"{w}.vcpus")
    check_vcpus_mode(sc, w)
    sc.timeout = float(_take(head, "timeout", (int, float), w, 180))
    if not 5 <= sc.timeout <= 7200:
        raise ConfigError(f"{w}.timeout: must be 5..7200 seconds, got {sc.timeout}")
    sc.watchdog = check_watchdog(_take(head, "watchdog", (int, float), w, WATCHDOG_DEFAULT_S),
                                 f"{w}.watchdog")
    sc.sample_interval_ms = _take(head, "sample_interval_ms", int, w, 200)
    if not 10 <= sc.sample_interval_ms <= 60000:
        raise ConfigError(f"{w}.sample_interval_ms: must be 10..60000, got {sc.sample_interval_ms}")
    sc.duration = float(_take(head, "duration", (int, float), w, 0))
    if "trace" in head:
        set_trace(sc, _take(head, "trace", str, w), f"{w}.trace")
    if "swap" in head:
        sc.swap_mib = parse_size_mib(_take(head, "swap", (str, int), w), f"{w}.swap",
                                     lo=16, hi=8192, what="swap")
    if sc.duration < 0:
        raise ConfigError(f"{w}.duration: must be >= 0, got {sc.duration}")
    # extra kernel arguments, as --kernel-arg takes them (which come after)
    args = head.get("kernel_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{w}.kernel_args: must be a list of strings")
    for arg in args:
        try:
            boot.check_kernel_arg(arg)
        except ValueError:
            raise ConfigError(f"{w}.kernel_args: {arg!r} is not one name[=value] token, "
                              f"or is one the harness sets itself") from None
    sc.kernel_args = list(args)

    knobs = data.get("knobs", {})
    if not isinstance(knobs, dict):
        raise ConfigError(f"{where}: [knobs] must be a table of [knobs.ksm]/[knobs.pksm]")
    _reject_unknown(knobs, set(KNOB_DIRS), f"{where} [knobs]")
    for kdir, table in knobs.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where} [knobs.{kdir}]: must be a table")
        for kname, kval in table.items():
            set_knob(sc, f"{kdir}.{kname}", kval, f"{where} [knobs.{kdir}].{kname}")

    wls = data.get("workload", [])
    if not isinstance(wls, list):
        raise ConfigError(f"{where}: workloads are [[workload]] tables")
    for i, table in enumerate(wls):
        ww = f"{where} [[workload]] #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{ww}: must be a table")
        _reject_unknown(table, {"program", "options", "shell", "host"}, ww)
        if "host" in table:
            # A real program from the host's Debian root (hostprog.py).
            if "program" in table or "shell" in table:
                raise ConfigError(f"{ww}: 'host' stands alone, without program/shell")
            hname = _take(table, "host", str, ww)
            hopts = _take(table, "options", dict, ww, {})
            try:
                hostprog.check(hname, hopts)
            except hostprog.BadHostWorkload as e:
                raise ConfigError(f"{ww}.host: {e}") from None
            sc.workloads.append(Workload(hname, dict(hopts), None, host=True))
            continue
        if "shell" in table:
            # A guest shell snippet (busybox sh), e.g. to inject a fault.
            if "program" in table or "options" in table:
                raise ConfigError(f"{ww}: 'shell' stands alone, without program/options")
            sh = _take(table, "shell", str, ww)
            if not sh.strip():
                raise ConfigError(f"{ww}.shell: empty")
            sc.workloads.append(Workload("sh", {}, sh))
            continue
        prog = _take(table, "program", str, ww)
        if prog is None:
            raise ConfigError(f"{ww}: needs program = \"...\" (one of {', '.join(WORKLOADS)})"
                              " or shell = \"...\"")
        if prog not in WORKLOADS:
            raise ConfigError(f"{ww}.program: {prog!r} is not one of {', '.join(WORKLOADS)}")
        opts = _take(table, "options", dict, ww, {})
        for oname, oval in opts.items():
            if not _OPTION_NAME.match(oname):
                raise ConfigError(f"{ww}.options: bad option name {oname!r}")
            if not isinstance(oval, (bool, int, float, str)) or (
                    isinstance(oval, str) and (not oval or any(c in oval for c in " '\"\n;$`\\"))):
                raise ConfigError(f"{ww}.options.{oname}: bad value {oval!r}")
        sc.workloads.append(Workload(prog, dict(opts)))
    if not sc.workloads:
        raise ConfigError(f"{where}: no [[workload]]: a scenario runs at least one workload")

    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise ConfigError(f"{where}: [expect] must be a table")
    _reject_unknown(expect, {"exit", "saved_fraction_min", "verify", "ksft_skip",
                             "ksft_left_out"}, f"{where} [expect]")
    ex = f"{where} [expect]"
    # kselftests (ksft.py): test or command -> the text its skip message
    # must hold / why it is left out
    for key, what in (("ksft_skip", "the text its skip message holds"),
                      ("ksft_left_out", "why it is left out")):
        for test, text in _take(expect, key, dict, ex, {}).items():
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{ex}.{key}.{test!r}: expected a non-empty string "
                                  f"({what}), got {text!r}")
    if "exit" in expect:
        _take(expect, "exit", int, ex)
    if "saved_fraction_min" in expect:
        v = _take(expect, "saved_fraction_min", (int, float), ex)
        if not 0 <= v <= 1:
            raise ConfigError(f"{ex}.saved_fraction_min: must be 0..1, got {v}")
    if "verify" in expect and _take(expect, "verify", str, ex) not in ("ok", "fail"):
        raise ConfigError(f"{ex}.verify: must be \"ok\" or \"fail\"")
    sc.expect = dict(expect)
    return sc


def check_watchdog(value: Any, where: str) -> float:
    """A watchdog limit: 0 (off) or WATCHDOG_RANGE seconds."""
    lo, hi = WATCHDOG_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not (value == 0 or lo <= value <= hi):
        raise ConfigError(f"{where}: the watchdog is 0 (off) or {lo}..{hi} seconds, "
                          f"got {value!r}")
    return float(value)


def heartbeat_s(watchdog: float) -> int:
    """How often run.sh prints its heartbeat for a watchdog of WATCHDOG
    seconds: a quarter of it, 2..15 s (0: no heartbeat, the watchdog is off)."""
    if watchdog <= 0:
        return 0
    return max(2, min(15, int(watchdog // 4)))


@dataclass
class HostScale:
    """How much slower than an idle host a boot may run here, and why."""

    scale: float
    load1: float          # the host's 1-minute load average as the run started
    vcpus: int            # the vCPUs the run asks for
    cores: int            # the host cores this process may use

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "load1": self.load1, "vcpus": self.vcpus,
                "cores": self.cores}


def host_time_scale(vcpus: int, load1: float | None = None,
                    cores: int | None = None) -> HostScale:
    """The factor every host time-out of a run is multiplied by.

    The one place host time-outs scale with the host; nothing is measured
    twice: the 1-minute load average (other work on the host) plus the
    vCPUs the run asks for, against the cores this process may use.  A
    boot that has the cores to itself gets 1; one that shares them gets
    proportionally longer, at most TIMEOUT_SCALE_MAX.  The watchdog is not
    scaled: it waits for a heartbeat, which costs the guest nothing.
    """
    if load1 is None:
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            load1 = 0.0
    if cores is None:
        cores = len(os.sched_getaffinity(0)) or 1
    demand = max(0.0, load1) + max(1, vcpus)
    scale = min(TIMEOUT_SCALE_MAX, max(1.0, demand / max(1, cores)))
    return HostScale(round(scale, 2), round(load1, 2), vcpus, cores)


def set_trace(sc: Scenario, spec: str, where: str) -> None:
    """Tracepoints to record: 'pksm' for all, or a comma list of names."""
    sc.trace = parse_events(spec, where)


def parse_events(spec: str, where: str = "trace") -> list[str]:
    """'pksm' (all), or a comma list of event names with or without 'pksm_'."""
    if spec.strip() in ("pksm", "all"):
        return list(TRACE_EVENTS)
    out = []
    for name in (n.strip() for n in spec.split(",")):
        full = name if name.startswith("pksm_") else f"pksm_{name}"
        if full not in TRACE_EVENTS:
            raise ConfigError(f"{where}: unknown trace event {name!r} (known: pksm, "
                              f"{', '.join(e.removeprefix('pksm_') for e in TRACE_EVENTS)})")
        out.append(full)
    return out


def set_knob(sc: Scenario, spec: str, value: Any, where: str) -> None:
    """Set knob 'ksm.name' / 'pksm.name' / bare 'name' (= ksm.name)."""
    kdir, _, kname = spec.rpartition(".")
    kdir = kdir or "ksm"
    if kdir not in KNOB_DIRS:
        raise ConfigError(f"{where}: knob directory {kdir!r} is not one of {', '.join(KNOB_DIRS)}")
    if not _KNOB_NAME.match(kname):
        raise ConfigError(f"{where}: bad knob name {kname!r}")
    sc.knobs.setdefault(kdir, {})[kname] = knob_value(value, where)


def parse_vcpus(value: Any, where: str) -> int:
    """A guest CPU count: an integer in paths.VCPUS_RANGE."""
    lo, hi = paths.VCPUS_RANGE
    if isinstance(value, str):
        try:
            value = int(value, 10)
        except ValueError:
            raise ConfigError(f"{where}: vcpus is a whole number {lo}..{hi}, "
                              f"got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}: vcpus must be {lo}..{hi}, got {value!r}")
    return value


def parse_vcpus_list(text: str, where: str) -> list[int]:
    """Comma-separated guest CPU counts (a bench's --vcpus 1,2), each once."""
    counts = [parse_vcpus(x.strip(), where) for x in text.split(",")]
    if len(set(counts)) != len(counts):
        raise ConfigError(f"{where}: a count given twice in {text!r}")
    return counts


def check_vcpus_mode(sc: Scenario, where: str) -> None:
    """Deterministic mode needs UML time travel, which only a UP build has."""
    if sc.mode == "deterministic" and sc.vcpus != 1:
        raise ConfigError(f"{where}: deterministic mode boots the uniprocessor "
                          f"(time-travel) build: vcpus must be 1, got {sc.vcpus}")


WORKLOAD_PREFIX = "workload."


def set_workload_option(sc: Scenario, name: str, value: str, where: str) -> None:
    """workload.NAME=VALUE: option NAME of every real program (host
    workload) of SC, checked as the scenario file's would be."""
    hosts = [w for w in sc.workloads if w.host]
    if not hosts:
        raise ConfigError(f"{where}: the scenario has no real program (host workload) "
                          "whose option could be set")
    try:
        num: int | float = int(value, 10)
    except ValueError:
        try:
            num = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a number") from None
    for w in hosts:
        opts = {**w.options, name: num}
        try:
            hostprog.check(w.program, opts)
        except hostprog.BadHostWorkload as e:
            raise ConfigError(f"{where}: {e}") from None
        w.options = opts


def apply_overrides(sc: Scenario, sets: list[str]) -> None:
    """--set knob=value from the command line (knob as in set_knob),
    --set vcpus=N (the guest's CPU count, as the scenario key), or
    --set workload.NAME=V (an option of the scenario's real programs)."""
    for item in sets:
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise ConfigError(f"--set {item!r}: expected knob=value, e.g. ksm.pages_to_scan=1000")
        if name.strip() == "vcpus":
            sc.vcpus = parse_vcpus(value.strip(), f"--set {item}")
            continue
        if name.strip().startswith(WORKLOAD_PREFIX):
            set_workload_option(sc, name.strip()[len(WORKLOAD_PREFIX):], value.strip(),
                                f"--set {item}")
            continue
        set_knob(sc, name.strip(), value.strip(), f"--set {item}")


def find_scenario(spec: str) -> Path:
    """A path, or a bare name found in harness/scenarios/NAME.toml."""
    p = Path(spec)
    if p.suffix == ".toml" or "/" in spec:
        if not p.is_file():
            raise ConfigError(f"scenario file {spec} not found")
        return p
    cand = paths.SCENARIOS / f"{spec}.toml"
    if not cand.is_file():
        names = ", ".join(sorted(q.stem for q in paths.SCENARIOS.glob("*.toml")))
        raise ConfigError(f"no scenario named {spec!r} (known: {names})")
    return cand


def load_scenario(spec: str) -> Scenario:
    path = find_scenario(spec)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_scenario(data, path.stem, path)
