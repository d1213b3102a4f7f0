"""Real programs as workloads: the host's Debian programs run in the guest.

A scenario's

    [[workload]]
    host = "pyserve"            # pyserve | sqliteload | pycompile
    [workload.options]
    workers = 4                 # N processes, started together
    seconds = 10                # and program options (PROGRAMS below)

runs N processes of a program from the host's own Debian root (installed
by make deps): run.sh mounts the host root read-only over hostfs at
/tmp/host and starts each worker with chroot /tmp/host /usr/bin/python3
harness/hostprogs/NAME.py --id I ...  (the checkout is on the host root,
so the script is at its host path).  The N workers import the same
modules and build the same data, independently: the memory a deduplicating
daemon is meant for, and real programs whose speed it costs.  Each worker
reports its throughput on the console:

    PKSMTB-EVENT throughput prog=NAME id=I unit=rps value=1234.5 build_s=0.9 ...

With domains = N the workers are spread over N trust domains: worker i
(1..workers) is of group g = i % N and runs as uid DOMAIN_UID + g (the
host's setpriv), in the memory cgroup CGROUP_PREFIX g and a session of its
own (setsid): each group is a domain of its own in merge_domain uid,
cgroup and session alike.

On the ksm variant the workers opt in (prctl(PR_SET_MEMORY_MERGE)), as
dupalloc opts in with madvise; on pksm they opt in when the kernel merges
only what opted in (booted with pksm.opted_in_only=1: /sys/kernel/mm/pksm/
opted_in_only reads 1), so that both modes cover the same memory (in
PKSM's default mode the opt-in changes nothing).  meta.json records the Debian package
versions of what ran (dpkg-query), under "host_packages".
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

from . import paths

HOST_MOUNT = "/tmp/host"    # tmpfs: nothing is made in the guest root
SCRIPTS = paths.TOP / "harness" / "hostprogs"
PYTHON = "/usr/bin/python3"
# Reads 1 on a pksm kernel booted with pksm.opted_in_only=1.
OPTED_IN_ONLY = "/sys/kernel/mm/pksm/opted_in_only"


@dataclass(frozen=True)
class Option:
    lo: float
    hi: float
    integer: bool = True
    what: str = ""


@dataclass(frozen=True)
class HostProgram:
    script: str
    unit: str
    what: str
    packages: tuple[str, ...]
    options: dict[str, Option] = field(default_factory=dict)


_COMMON = {
    "workers": Option(1, 64, what="processes"),
    "seconds": Option(1, 3600, integer=False, what="seconds of serving or work"),
    "domains": Option(0, 8, what="trust domains the workers are spread over (0: every "
                      "worker root, in one cgroup and session)"),
}
# A worker of domain g (option domains) runs as this uid + g, in the memory
# cgroup CGROUP_PREFIX + g and in a session of its own: its own domain in
# every isolating merge_domain mode (docs/security.md).
DOMAIN_UID = 1001
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PREFIX = "pksmtb-prog-"
SETPRIV = "/usr/bin/setpriv"
_PY_PACKAGES = ("python3", "python3.11", "python3.11-minimal", "libpython3.11-stdlib", "libc6")
PROGRAMS: dict[str, HostProgram] = {
    "pyserve": HostProgram(
        "pyserve.py", "rps",
        "prefork application-server workers: the same imports and records, "
        "an in-memory sqlite table, then requests (read, update, render JSON)",
        (*_PY_PACKAGES, "libsqlite3-0"),
        {**_COMMON, "records": Option(100, 1_000_000, what="records each worker builds")}),
    "sqliteload": HostProgram(
        "sqliteload.py", "ops",
        "processes loading the same dataset into their own sqlite database, "
        "then queries and updates against it",
        (*_PY_PACKAGES, "libsqlite3-0"),
        {**_COMMON, "rows": Option(100, 2_000_000, what="rows loaded")}),
    "pycompile": HostProgram(
        "pycompile.py", "compiles/s",
        "an interpreter farm: processes compiling the same standard-library "
        "sources to byte code, over and over",
        _PY_PACKAGES,
        {**_COMMON, "modules": Option(1, 400, what="standard-library modules read")}),
}


class BadHostWorkload(ValueError):
    """A host workload's name or options are wrong."""


def check(name: str, options: dict[str, Any]) -> None:
    prog = PROGRAMS.get(name)
    if prog is None:
        raise BadHostWorkload(f"{name!r} is not one of {', '.join(PROGRAMS)}")
    for key, value in options.items():
        opt = prog.options.get(key)
        if opt is None:
            raise BadHostWorkload(f"options.{key}: {name} has no such option "
                                  f"(known: {', '.join(prog.options)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                opt.integer and not isinstance(value, int)):
            raise BadHostWorkload(f"options.{key}: expected a "
                                  f"{'whole ' if opt.integer else ''}number, got {value!r}")
        if not opt.lo <= value <= opt.hi:
            raise BadHostWorkload(f"options.{key}: {value} is outside {opt.lo:g}..{opt.hi:g}"
                                  f" ({opt.what})")


def shell(name: str, options: dict[str, Any], variant: str) -> str:
    """The run.sh lines of the workload: a subshell starting the workers and
    waiting for them, its status the first failure's."""
    prog = PROGRAMS[name]
    q = shlex.quote
    opts = dict(options)
    workers = int(opts.pop("workers", 4))
    domains = int(opts.pop("domains", 0))
    args = [f"--{k} {q(str(v))}" for k, v in opts.items()]
    if variant == "ksm":
        args.append("--merge")
    else:
        args.append(f"$(grep -qx 1 {OPTED_IN_ONLY} 2>/dev/null && echo --merge)")
    script = q(str(SCRIPTS / prog.script))
    # COW breaks of KSM pages over the workers' life (/proc/vmstat cow_ksm,
    # both variants): the figure upstream KSM has no sysfs counter for.
    cow = "echo \"PKSMTB-EVENT cowksm when=%s n=$(awk '/^cow_ksm / {print $2}' /proc/vmstat)\""
    run = f"chroot {HOST_MOUNT} {PYTHON} -I {script} --id $i {' '.join(args)}"
    setup = ""
    if domains:
        # group g = i % domains: its cgroup (the shell moves itself in, then
        # becomes the worker), a session of its own, its uid
        cg = f"{CGROUP_ROOT}/{CGROUP_PREFIX}"
        dirs = " ".join(f"{cg}{g}" for g in range(domains))
        setup = (f"{{ grep -q ' {CGROUP_ROOT} cgroup2 ' /proc/mounts || "
                 f"mount -t cgroup2 none {CGROUP_ROOT}; }} && "
                 f"echo +memory > {CGROUP_ROOT}/cgroup.subtree_control && mkdir -p {dirs} || "
                 "{ echo \"PKSMTB-ERROR$nc cannot make the workers' memory cgroups\"; exit 3; }; ")
        run = (f"g=$((i % {domains})); sh -c \"echo \\$\\$ > {cg}$g/cgroup.procs && "
               f"exec setsid chroot {HOST_MOUNT} {SETPRIV} --reuid=$(({DOMAIN_UID} + g)) "
               f"--regid=$(({DOMAIN_UID} + g)) --clear-groups {PYTHON} -I {script} --id $i "
               f"{' '.join(args)}\"")
    return (f"( st=0; ps=; {setup}{cow % 0}; for i in $(seq 1 {workers}); do "
            f"{run} & "
            f"ps=\"$ps $!\"; done; for p in $ps; do wait $p || st=1; done; {cow % 1}; "
            "exit $st )")


# Before any workload starts: the host's root, read-only, for real programs.
PRELUDE = [
    f"if ! mkdir -p {HOST_MOUNT} || ! mount -t hostfs -o ro none {HOST_MOUNT} || "
    f"[ ! -x {HOST_MOUNT}{PYTHON} ]; then",
    f"\techo \"PKSMTB-ERROR$nc cannot mount the host root read-only at {HOST_MOUNT}, "
    f"or no {PYTHON} there\"; exit 3",
    "fi",
]


def packages(names: list[str]) -> dict[str, str]:
    """Debian package -> version, as dpkg-query has them (host root)."""
    pkgs = sorted({p for n in names for p in PROGRAMS[n].packages})
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *pkgs],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {p: found.get(p, "not installed") for p in pkgs}
