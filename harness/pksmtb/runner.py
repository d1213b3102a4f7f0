"""A run, callable in process: run(RunRequest) -> RunResult.

The command line (cli.py), the tests (tests/conftest.py's run_scenario
fixture) and the benchmarks all come through here:

    from pksmtb.runner import RunRequest, run
    result = run(RunRequest("pksm-merge", variant="pksm"))
    result.exit_code, result.summary["saved_fraction"], result.console.event("filled")

A run: the scenario is loaded and the request's overrides applied
(prepare), a run directory made with run.sh and meta.json, the kernel
booted with its console followed (supervise: console.log, events.json),
and the run finished (finish: figures, verdict, summary.json, plots).
"""

from __future__ import annotations

import copy
import itertools
import os
import secrets
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import (buildinfo, config, console, guest, hostprog, junit, kernel, ksft, ktap, paths, plot,
               results, sampling, trace)
from .boot import HANG_BACKTRACE, BootResult, BootSpec, boot, check_kernel_arg
from .progress import Progress
from .sandbox import Sandbox
from .verdict import ExitCode, Outcome, Verdict, judge


@dataclass
class RunRequest:
    """Everything a run is asked to do; the command line's options, typed."""

    scenario: str | config.Scenario          # name, .toml path or a parsed Scenario
    variant: str | None = None               # None: the scenario's own
    flavour: str = ""
    sets: list[str] = field(default_factory=list)       # knob=value overrides
    mem: str | None = None
    mode: str | None = None
    trace: str | None = None
    timeout: float | None = None             # before the host's scale (config.host_time_scale)
    watchdog: float | None = None            # no console output for N s: hung (0: off)
    kernel_args: list[str] = field(default_factory=list)
    results: Path | None = None              # root of run directories (results/runs)
    verbose: bool = False                    # echo the console to stderr
    progress: bool = True                    # the live progress line on stderr
    kbuild: Path | None = None               # kernel builds' root (a lab's own; default paths.KBUILD)
    # boot (and gdb) in this sandbox, the run directory writable (sandbox.py)
    sandbox: Sandbox | None = None


@dataclass
class RunResult:
    """What a finished run left: its directory, verdict, figures and console."""

    run_dir: Path
    scenario: config.Scenario
    build: kernel.KernelBuild
    verdict: Verdict
    summary: dict[str, Any]
    meta: dict[str, Any]
    console: console.Console
    boot: BootResult

    @property
    def exit_code(self) -> ExitCode:
        return self.verdict.code

    @property
    def problems(self) -> list[str]:
        return self.verdict.problems

    @property
    def console_text(self) -> str:
        return "\n".join(self.console.lines) + "\n"

    def series(self) -> sampling.Series:
        csv = self.run_dir / "timeseries.csv"
        return sampling.read_csv(csv) if csv.is_file() else sampling.Series([], [])


def scenario_of(req: RunRequest) -> tuple[config.Scenario, str]:
    """The scenario with the request's overrides, and the variant to boot.

    ConfigError for any bad setting."""
    if isinstance(req.scenario, config.Scenario):
        sc = copy.deepcopy(req.scenario)
    else:
        sc = config.load_scenario(req.scenario)
    vcpus_set = any(item.partition("=")[0].strip() == "vcpus" for item in req.sets)
    config.apply_overrides(sc, req.sets)
    if req.mem:
        sc.mem_mib = config.parse_size_mib(req.mem, "--mem")
    if req.mode:
        if req.mode not in config.MODES:
            raise config.ConfigError(f"--mode: {req.mode!r} is not one of "
                                     f"{', '.join(config.MODES)}")
        sc.mode = req.mode
        if sc.mode == "deterministic" and not vcpus_set:
            sc.vcpus = 1
    config.check_vcpus_mode(sc, "--mode/--set vcpus")
    if req.trace:
        config.set_trace(sc, req.trace, "--trace")
    if req.timeout is not None:
        if not 5 <= req.timeout <= 7200:
            raise config.ConfigError("--timeout: must be 5..7200 seconds")
        sc.timeout = req.timeout
    if req.watchdog is not None:
        sc.watchdog = config.check_watchdog(req.watchdog, "--watchdog")
    for arg in sc.kernel_args + req.kernel_args:
        try:
            check_kernel_arg(arg)
        except ValueError as e:
            raise config.ConfigError(str(e)) from None
    variant = req.variant or sc.variant
    if variant not in paths.VARIANTS:
        raise config.ConfigError(f"--variant: {variant!r} is not one of "
                                 f"{', '.join(paths.VARIANTS)}")
    return sc, variant


def flavour_of(sc: config.Scenario, flavour: str) -> str:
    """The build flavour a run boots: deterministic mode boots FLAVOUR's
    uniprocessor (time-travel) twin, perf mode the SMP build asked for."""
    if sc.mode == "deterministic":
        return paths.up_flavour(flavour)
    if paths.is_up(flavour) and sc.vcpus != 1:
        raise config.ConfigError(f"--flavour {flavour}: a uniprocessor build boots "
                                 f"1 vCPU, the scenario asks for {sc.vcpus}")
    return flavour


def boot_spec(sc: config.Scenario, binary: Path, run_dir: Path, umid: str,
              kernel_args: list[str], smp: bool = True) -> BootSpec:
    return BootSpec(binary=binary, mem_mib=sc.mem_mib, share=run_dir.resolve(),
                    umid=umid, uml_dir=(run_dir / "uml").resolve(),
                    deterministic=sc.mode == "deterministic", swap_mib=sc.swap_mib,
                    vcpus=sc.vcpus if smp else 0, extra=list(kernel_args))


def dry_run(req: RunRequest) -> str:
    """The kernel command line and run.sh a run would use; nothing runs."""
    sc, variant = scenario_of(req)
    binary = paths.KBUILD / paths.kernel_name(variant, flavour_of(sc, req.flavour)) / "linux"
    spec = boot_spec(sc, binary, Path("<run-dir>"), "pksmtb-<pid>-<n>-<run>",
                     sc.kernel_args + req.kernel_args,
                     smp=not paths.is_up(flavour_of(sc, req.flavour)))
    spec.share, spec.uml_dir = Path("<run-dir>"), Path("<run-dir>/uml")
    return (" ".join(shlex.quote(a) for a in spec.argv()) + "\n# run.sh:\n"
            + guest.render_run_script(sc, variant))


@dataclass
class Prepared:
    scenario: config.Scenario
    variant: str
    build: kernel.KernelBuild
    run_dir: Path
    spec: BootSpec
    meta: dict[str, Any]
    scale: config.HostScale | None = None
    nonce: str | None = None        # the boot's (console.py); never written but for init
    sandbox: Sandbox | None = None      # RunRequest.sandbox

    @property
    def timeout_s(self) -> float:
        """The boot's host time-out: the scenario's, times the host's scale."""
        return round(self.scenario.timeout * (self.scale.scale if self.scale else 1.0), 1)


# Boots this process prepared: each boot's umid (and so its short /tmp
# link, BootSpec.uml_link) unique even when two start within one second
# in one process (a lab grader's two runs in threads, a sweep's -j).
_BOOTS = itertools.count(1)


def umid_for(run_dir: Path) -> str:
    """A umid no other boot of this host has now: pid, sequence, run."""
    return f"pksmtb-{os.getpid()}-{next(_BOOTS)}-{run_dir.name}"


def prepare(req: RunRequest) -> Prepared:
    """Scenario, kernel, run directory with run.sh and meta.json, boot spec."""
    sc, variant = scenario_of(req)
    flavour = flavour_of(sc, req.flavour)
    kb = kernel.find_kernel(variant, flavour, req.kbuild)
    run_dir = results.new_run_dir(sc.name, kb.name, req.results)
    (run_dir / "run.sh").write_text(guest.render_run_script(sc, variant))
    spec = boot_spec(sc, kb.binary, run_dir, umid_for(run_dir),
                     sc.kernel_args + req.kernel_args, smp=not paths.is_up(flavour))
    meta: dict[str, Any] = {
        "scenario": sc.to_json(),
        "variant": variant,
        "flavour": flavour,
        "mode": sc.mode,
        "vcpus": sc.vcpus,
        "knobs": sc.knobs,
        "command_line": results.command_line(),
        "kernel_command_line": " ".join(shlex.quote(a) for a in spec.argv()),
        "started_utc": results.utc_now(),
        "mem_mib": sc.mem_mib,
        **results.host_identity(),
        "host_load_start": host_load(),
        **kb.identity(),
    }
    # the load and cores just recorded, not measured again
    load = meta["host_load_start"]
    scale = config.host_time_scale(sc.vcpus, load[0] if load else None,
                                   meta["host_cpus_usable"] or None)
    meta["timeout_scale"] = scale.to_json()
    meta["timeout_s"] = round(sc.timeout * scale.scale, 1)
    meta["watchdog_s"] = sc.watchdog
    host = [w.program for w in sc.workloads if w.host]
    if host:
        meta["host_packages"] = hostprog.packages(host)
    results.write_json(run_dir / "meta.json", meta)
    return Prepared(sc, variant, kb, run_dir, spec, meta, scale, give_nonce(run_dir),
                    req.sandbox)


def give_nonce(run_dir: Path) -> str:
    """A fresh nonce for a boot, in RUN_DIR's NONCE_FILE (mode 0600) for
    the guest's init, which reads and deletes it (console.py)."""
    nonce = secrets.token_hex(8)
    fd = os.open(run_dir / guest.NONCE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(nonce + "\n")
    return nonce


def host_load() -> list[float]:
    """The host's load averages (1, 5, 15 minutes): other work beside the boot."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def build_check(meta: dict[str, Any], con: console.Console) -> dict[str, Any]:
    """The banner of the kernel that booted against the build meta.json
    recorded as the run started (buildinfo.check_banner)."""
    problem = meta.get("build_problem") or ""
    rec = buildinfo.Recorded(meta.get("build"), str(meta.get("kernel_binary_sha256", "")),
                             str(problem))
    return buildinfo.check_banner(rec, con.uts_version())


def supervise(p: Prepared, verbose: bool, on_tick: Callable[[], None] | None = None,
              wrapper: list[str] | None = None) -> tuple[console.Console, BootResult]:
    """Boot, logging the console to console.log (line by line, so it can be
    followed while the run goes on) and following its protocol.  In a
    sandbox (p.sandbox) the kernel, and the WRAPPER around it, may write
    to the run directory only."""
    con = console.Console(nonce=p.nonce)
    if p.sandbox is not None:
        sb = replace(p.sandbox, writable=(*p.sandbox.writable, p.run_dir))
        wrapper = [*sb.prefix(), *(wrapper or [])]
    with open(p.run_dir / "console.log", "w", buffering=1) as log:
        def on_line(line: str) -> None:
            log.write(console.redact(line, p.nonce) + "\n")    # the guest reads the share
            con.feed(line)
            if verbose:
                sys.stderr.write(line + "\n")
        res = boot(p.spec, on_line, p.timeout_s, on_tick=on_tick, wrapper=wrapper,
                   watchdog_s=p.scenario.watchdog, backtrace=p.run_dir / HANG_BACKTRACE)
    (p.run_dir / guest.NONCE_FILE).unlink(missing_ok=True)    # init never got to it
    console.write_events(con, p.run_dir)
    return con, res


def vcpus_online(con: console.Console) -> int | None:
    """The vCPUs the guest reported online (event cpus), None if it did not."""
    try:
        return guest.cpu_count(con.event("cpus").fields["online"])
    except (console.EventMissing, KeyError, ValueError):
        return None


def finish(p: Prepared, con: console.Console, res: BootResult) -> RunResult:
    """Figures, verdict, summary.json, plots: the run as it is left on disk."""
    sc, run_dir, title = p.scenario, p.run_dir, f"{p.scenario.name} on {p.build.name}"
    csv_path = run_dir / "timeseries.csv"
    series = sampling.read_csv(csv_path) if csv_path.is_file() else sampling.Series([], [])
    filled_t, achievable = con.filled()
    summary = sampling.summarize(series, filled_t, achievable)
    summary["wall_s"] = round(res.wall_s, 3)
    summary["exit_status"] = con.exit_status
    summary["verify"] = con.verify_result()
    summary["kernel_returncode"] = res.returncode
    summary["timeout_s"] = p.timeout_s
    summary["watchdog_s"] = res.watchdog_s
    summary["max_silence_s"] = res.max_silence_s
    summary["hung"] = res.hung
    if res.hung:
        summary["hang_backtrace"] = res.backtrace or None
    summary["kunit"] = ktap.kunit_summary(con.lines)
    summary["ksft"] = ksft.summarize(run_dir, sc.expect)
    # figures: titled with the build the run booted, its id and revision
    plot_title = plot.run_title(sc.name, p.meta)
    summary["trace"] = trace.process_run(run_dir, plot_title)
    summary["vcpus"] = p.spec.vcpus or 1
    summary["vcpus_online"] = vcpus_online(con)
    check = build_check(p.meta, con)
    summary["build_check"] = {k: check[k] for k in ("status", "detail")}
    v = judge(con, Outcome(res.timed_out, p.timeout_s, res.signal, res.hung, res.watchdog_s,
                           res.backtrace), sc.expect, summary)
    summary["verdict"] = "pass" if v.passed else "FAIL"
    summary["problems"] = v.problems
    summary["exit_code"] = int(v.code)
    try:
        plot.plot_savings(series, run_dir / "savings.png", plot_title, filled_t, achievable)
    except Exception as e:  # a plot is a convenience, never a reason to lose a run
        summary["plot_error"] = str(e)
    try:
        write_junit(run_dir, title, con, v, summary)
    except Exception as e:  # nor is JUnit XML
        summary["junit_error"] = str(e)
    results.write_json(run_dir / "summary.json", summary)
    p.meta["finished_utc"] = results.utc_now()
    p.meta["host_load_end"] = host_load()
    p.meta["build_check"] = check
    p.meta["knobs_at_start"] = con.knobs_at_start
    results.write_json(run_dir / "meta.json", p.meta)
    return RunResult(run_dir, sc, p.build, v, summary, p.meta, con, res)


JUNIT = "junit.xml"


def junit_suites(title: str, con: console.Console, v: Verdict,
                 summary: dict[str, Any], run_dir: Path) -> list[junit.Suite]:
    """The run as JUnit: a suite "run" whose case "verdict" fails with the
    run's problems, then the KUnit suites the guest printed at boot
    (ktap.junit_suites) and the kselftests (ksft.junit_suites)."""
    verdict = junit.Case("verdict", "run")
    if not v.passed:
        verdict.outcome = "fail"
        verdict.message = f"exit {int(v.code)} ({v.code.name}): " + junit.one_line(
            v.problems[0] if v.problems else "")
        verdict.text = "\n".join(v.problems)
    run = junit.Suite("run", [verdict], {"title": title, "run_dir": str(run_dir),
                                         "exit_code": str(int(v.code))})
    return [run, *ktap.junit_suites(ktap.parse(con.lines), "kunit"),
            *ksft.junit_suites(ksft.load(run_dir / ksft.DIRNAME), summary.get("ksft"))]


def write_junit(run_dir: Path, title: str, con: console.Console, v: Verdict,
                summary: dict[str, Any]) -> None:
    """junit.xml in the run directory (junit_suites)."""
    junit.write(run_dir / JUNIT, junit_suites(title, con, v, summary, run_dir), title)


def run(req: RunRequest, announce: Callable[[str], None] | None = None) -> RunResult:
    """Run a scenario to its verdict.

    ConfigError (bad request) and kernel.BuildMissing are raised; every
    other way a run can end, time-out and SIGINT/SIGTERM/SIGHUP included,
    is in the result's exit code.  announce, if given, hears where the run
    goes before it boots.
    """
    p = prepare(req)
    if announce:
        vcpus = p.spec.vcpus or 1
        announce(f"run: {p.scenario.name} on {p.build.name} ({p.scenario.mode} mode, "
                 f"{p.scenario.mem_mib} MiB, {vcpus} vCPU{'s' if vcpus > 1 else ''}) "
                 f"-> {p.run_dir}")
    prog = Progress(p.run_dir / "timeseries.csv") if req.progress else None
    con, res = supervise(p, req.verbose, on_tick=prog.tick if prog else None)
    if prog:
        prog.done()
    return finish(p, con, res)
