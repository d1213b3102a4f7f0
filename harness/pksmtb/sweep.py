"""Sweeps: a grid of runs, repeated, run in parallel, resumable.

The spec, its cells and jobs: sweepspec.py.  The report: sweepreport.py.

A sweep directory (default results/sweeps/NAME) holds spec.toml (the spec
as given), sweep.json (command lines, the harness's revision, the builds
the sweep pinned, the jobs and how each ended, rewritten atomically after
each), runs/<cell>/r<k>/ (each job's
run directories, all kept) and the report (sweepreport.py).  Run again,
a sweep keeps every job that finished and runs the rest: a killed sweep
picks up where it stopped.  A job is one boot: runner.run(RunRequest), in
a local process pool (-j) or on a Dask cluster (--dask), whose workers
must see the project directory at the same path.

A sweep pins its kernels: as it first starts, sweep.json records each
build it boots ("builds": the build id and record, buildinfo.py).  A
boot whose kernel is another build (the tree was rebuilt under the
sweep, or between a stop and a resume) is marked in its job
("build_mismatch"), counted as failed, left out of the statistics and
named at the top of the report: a cell never mixes two kernels.  To go
on with the new build, start a new sweep (--out DIR).
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import multiprocessing
import os
import shlex
import signal
import site
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

from . import buildinfo, config, kernel, paths, results, runner, sampling
from .sweepspec import Job, Spec, baseline_of, cells, check, load_spec, settings
from .verdict import ExitCode

SWEEPS = paths.TOP / "results" / "sweeps"
SPEC_FILE = "spec.toml"
STATE_FILE = "sweep.json"
LOCK_FILE = ".lock"
SIGNAL_CODES = {int(ExitCode.HANGUP), int(ExitCode.INTERRUPTED), int(ExitCode.TERMINATED)}


@dataclass
class JobEnd:
    run_dir: str | None
    exit_code: int
    error: str = ""


# ---- running a job ------------------------------------------------------------------

def run_job(job: Job) -> JobEnd:
    """One boot, in whatever process runs it (pool worker, Dask worker)."""
    try:
        res = runner.run(job.request())
    except (config.ConfigError, kernel.BuildMissing) as e:
        return JobEnd(None, int(ExitCode.USAGE if isinstance(e, config.ConfigError)
                                else ExitCode.BUILD), str(e))
    return JobEnd(str(res.run_dir), int(res.exit_code))


def job_runs(job: Job) -> list[Path]:
    """The job's run directories (every attempt), oldest first."""
    root = Path(job.root)
    if not root.is_dir():
        return []
    return sorted((p.parent for p in root.glob("*/*/*/meta.json")), key=lambda p: p.name)


def finished_run(job: Job) -> Path | None:
    """The job's latest run that finished (summary.json), not stopped by a
    signal: such a job is done and kept; anything else runs again."""
    for run in reversed(job_runs(job)):
        s = run / "summary.json"
        if s.is_file():
            code = results.read_json(s).get("exit_code")
            if code not in SIGNAL_CODES:
                return run
    return None


def running_run(job: Job) -> Path | None:
    """The run directory of a job under way (no summary.json yet)."""
    runs = job_runs(job)
    if runs and not (runs[-1] / "summary.json").is_file():
        return runs[-1]
    return None


# ---- the builds a sweep pins --------------------------------------------------------

def kernel_names(jobs: list[Job]) -> list[str]:
    """The builds the jobs boot (pksm, ksm, pksm-up for deterministic mode...)."""
    names = set()
    for job in {j.cell: j for j in jobs}.values():
        sc, variant = runner.scenario_of(job.request())
        names.add(paths.kernel_name(variant, runner.flavour_of(sc, "")))
    return sorted(names)


def run_build(run: Path) -> tuple[str, str | None, str | None]:
    """The build a run booted: its name, the id its banner carried (else
    the id recorded as it started), the binary's hash."""
    return buildinfo.booted(results.read_json(run / "meta.json"))


def build_mismatch(state: dict[str, Any], run: Path) -> str | None:
    """Why RUN's kernel is not the build the sweep pinned; None if it is
    (or the sweep pinned none: a sweep from before pinning)."""
    try:
        name, bid, sha = run_build(run)
    except (OSError, ValueError):
        return None
    pin = state.get("builds", {}).get(name)
    if pin is None or buildinfo.same_build(pin, bid, sha):
        return None
    want = pin.get("id") or f"binary {str(pin.get('binary_sha256'))[:12]}"
    got = bid or f"binary {str(sha)[:12]}"
    return f"{name} was build {got}, the sweep pinned build {want}"


def pin_builds(sw: Sweep, stream: TextIO) -> None:
    """Pin each build the jobs boot the first time the sweep runs; on a
    resume, say loudly if a pinned build has changed since."""
    builds = sw.state.setdefault("builds", {})
    changed = []
    for name in kernel_names(sw.jobs):
        binary = paths.KBUILD / name / "linux"
        if not binary.is_file():
            continue
        now = buildinfo.pin(binary)
        if name not in builds:
            builds[name] = now
        elif not buildinfo.same_build(builds[name], now["id"], now["binary_sha256"]):
            changed.append(f"{name}: now build {now['id'] or now['binary_sha256'][:12]}, "
                           f"pinned {builds[name].get('id') or '?'}")
    if changed:
        sw.state["invocations"][-1]["build_changed"] = changed
        print("sweep: WARNING: the kernel was rebuilt since this sweep started; its new "
              "boots will be marked and left out of the statistics (start a new sweep "
              "with --out DIR to use the new build):\n  " + "\n  ".join(changed),
              file=stream, flush=True)
    sw.save()


# ---- the live lines ----------------------------------------------------------------

class Board:
    """A line per running boot, and one for the sweep, redrawn on a terminal;
    a plain line per finished job (and a status now and then) otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, every: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total
        self.start = time.monotonic()
        self.drawn = 0
        self.every = every
        self.last_plain = time.monotonic()
        self.followers: dict[Path, sampling.Follower] = {}

    def _running_line(self, job: Job, run: Path) -> str:
        f = self.followers.setdefault(run, sampling.Follower(run / "timeseries.csv"))
        f.poll()
        try:    # meta.json is written as the run starts (and again as it ends)
            since = time.time() - (run / "meta.json").stat().st_mtime
        except OSError:
            since = 0.0
        last = f.rows[-1] if f.rows else {}
        mib = sampling.saved_pages(last) * sampling.PAGE_SIZE / sampling.MIB
        return (f"  {job.cell.label} r{job.repeat}: {since:6.1f} s, "
                f"saved {mib:7.1f} MiB")

    def update(self, done: int, failed: int, pending: list[Job]) -> None:
        running = [(j, r) for j in pending if (r := running_run(j)) is not None]
        head = (f"sweep: {done}/{self.total} done ({failed} failed), {len(running)} running, "
                f"{time.monotonic() - self.start:.0f} s")
        if self.tty:
            lines = [head, *(self._running_line(j, r) for j, r in running)]
            out = (f"\x1b[{self.drawn}F" if self.drawn else "") + "\x1b[J"
            self.stream.write(out + "\n".join(lines) + "\n")
            self.drawn = len(lines)
        elif time.monotonic() - self.last_plain >= self.every:
            self.last_plain = time.monotonic()
            self.stream.write(head + "\n")
        self.stream.flush()

    def finished(self, job: Job, end: JobEnd) -> None:
        line = (f"sweep: {job.cell.label} r{job.repeat}: exit {end.exit_code}"
                + (f" ({end.error})" if end.error else "") + f" -> {end.run_dir}")
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        self.stream.write(line + "\n")
        self.stream.flush()


# ---- the sweep directory ---------------------------------------------------------------

@dataclass
class Sweep:
    spec: Spec
    dir: Path
    jobs: list[Job]
    state: dict[str, Any] = field(default_factory=dict)
    lock_fd: int | None = None

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def save(self) -> None:
        results.write_json(self.dir / STATE_FILE, self.state)


def _lock(d: Path) -> int:
    """An exclusive lock on the sweep directory while a sweep runs there
    (held by the open file, so it goes with the process however it ends)."""
    fd = os.open(d / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise config.ConfigError(f"{d}: another sweep is running there "
                                 f"(pid {(d / LOCK_FILE).read_text().strip() or '?'}); "
                                 "--report shows what it has done so far") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def open_sweep(spec: Spec, out: Path | None, running: bool = True) -> Sweep:
    """The sweep directory, new or to resume: a directory holding another
    spec is refused (ConfigError) rather than mixed, and so is one another
    sweep is running in.  running=False (--report) only reads it."""
    d = out or SWEEPS / spec.name
    text = spec.path.read_text()
    copy = d / SPEC_FILE
    if copy.is_file() and copy.read_text() != text:
        raise config.ConfigError(f"{d} holds a sweep of another spec ({copy} differs from "
                                 f"{spec.path}): give --out DIR, or remove it")
    if (d / STATE_FILE).is_file():
        had = results.read_json(d / STATE_FILE).get("overrides", {})
        if had != spec.overrides:
            raise config.ConfigError(f"{d} holds a sweep of the same spec with other "
                                     f"settings ({had or 'none'}, now "
                                     f"{spec.overrides or 'none'}): give another directory")
    if not running:
        if not (d / STATE_FILE).is_file():
            raise config.ConfigError(f"{d}: no sweep there yet")
        return Sweep(spec, d, check(spec, d, need_builds=False),
                     results.read_json(d / STATE_FILE))
    all_jobs = check(spec, d)
    d.mkdir(parents=True, exist_ok=True)
    fd = _lock(d)
    if not copy.is_file():
        tmp = copy.with_suffix(".toml.tmp")
        tmp.write_text(text)
        tmp.replace(copy)
    state: dict[str, Any] = {}
    if (d / STATE_FILE).is_file():
        state = results.read_json(d / STATE_FILE)
    invocations = list(state.get("invocations", []))
    invocations.append({"command_line": results.command_line(), "cwd": os.getcwd(),
                        "started_utc": results.utc_now(),
                        "harness_revision": kernel.git_revision(),
                        "host": os.uname().nodename})
    state.update({"name": spec.name, "description": spec.description,
                  "spec_file": SPEC_FILE, "spec_source": str(spec.path),
                  "invocations": invocations, "repeats": spec.repeats,
                  "axes": spec.axes, "baseline": spec.baseline,
                  "overrides": spec.overrides,
                  "configs": {k: c.to_json() for k, c in spec.configs.items()},
                  "cells": [c.to_json() | {"id": c.id} for c in cells(spec)]})
    state.setdefault("jobs", {})
    sw = Sweep(spec, d, all_jobs, state, fd)
    sw.save()
    return sw


def record(sw: Sweep, job: Job, end: JobEnd) -> str | None:
    """Keep how JOB ended in sweep.json; returns its build mismatch, if any."""
    run_dir = Path(end.run_dir) if end.run_dir else None
    mismatch = build_mismatch(sw.state, run_dir) if run_dir else None
    build_id = None
    if run_dir and (run_dir / "meta.json").is_file():
        try:
            build_id = run_build(run_dir)[1]
        except (OSError, ValueError):
            pass
    sw.state["jobs"][job.key] = {
        "cell": job.cell.id, "repeat": job.repeat, "exit_code": end.exit_code,
        "error": end.error, "build_id": build_id, "build_mismatch": mismatch,
        "run_dir": str(run_dir.relative_to(sw.dir)) if run_dir and run_dir.is_relative_to(sw.dir)
        else end.run_dir, "finished_utc": results.utc_now()}
    sw.save()
    return mismatch


# ---- executing ------------------------------------------------------------------------

def _worker_init() -> None:
    # A pool worker stops (SIGTERM: its boot ends cleanly) if the sweep dies.
    from .boot import set_parent_death_signal
    set_parent_death_signal(signal.SIGTERM)


def _stop_children(signum: int) -> None:
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid or 0, signum)
        except ProcessLookupError:
            pass


@dataclass
class Outcome:
    ran: int
    kept: int
    failed: list[str]
    interrupted: int = 0        # the signal, if the sweep was stopped


def dask_executor(address: str, sweep_dir: Path) -> tuple[Any, cf.Executor]:
    """A Dask client and its concurrent.futures executor; the workers get
    the harness on their path and must see the sweep directory."""
    try:
        import distributed
    except ImportError:
        raise config.ConfigError("--dask: python3-distributed is not installed "
                                 "(make deps)") from None
    try:
        client_class: Any = distributed.Client
        client: Any = client_class(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise config.ConfigError(f"--dask {address}: cannot reach the scheduler: {e}") from None
    harness = str(paths.TOP / "harness")
    client.run(site.addsitedir, harness)
    seen = client.run(os.path.isdir, str(sweep_dir.resolve()))
    blind = sorted(w for w, ok in seen.items() if not ok)
    if not seen:
        client.close()
        raise config.ConfigError(f"--dask {address}: the cluster has no workers")
    if blind:
        client.close()
        raise config.ConfigError(f"--dask: worker(s) {', '.join(blind)} do not see "
                                 f"{sweep_dir.resolve()}: workers need the project "
                                 "directory at the same path (a shared filesystem)")
    return client, client.get_executor(pure=False)


def execute(sw: Sweep, parallel: int, dask: str | None = None,
            stream: TextIO | None = None) -> Outcome:
    """Run every job not yet done; the finished ones are kept."""
    todo, kept, kept_failed = [], 0, []
    for job in sw.jobs:
        run = finished_run(job)
        if run is None:
            todo.append(job)
            continue
        kept += 1
        code = int(results.read_json(run / "summary.json").get("exit_code", 1))
        if code != 0 or build_mismatch(sw.state, run):  # kept as it ended: remove
            kept_failed.append(job.key)                   # its runs to run it again
        if job.key not in sw.state["jobs"]:
            record(sw, job, JobEnd(str(run), code))
    board = Board(len(sw.jobs), stream)
    out = Outcome(0, kept, kept_failed)
    if not todo:
        return out
    client: Any = None
    if dask:
        client, executor = dask_executor(dask, sw.dir)
    else:
        executor = cf.ProcessPoolExecutor(max_workers=max(1, min(parallel, len(todo))),
                                          mp_context=multiprocessing.get_context("fork"),
                                          initializer=_worker_init)
    futures: dict[cf.Future[JobEnd], Job] = {}
    try:
        futures = {executor.submit(run_job, job): job for job in todo}
        pending = set(futures)
        while pending:
            board.update(kept + out.ran, len(out.failed), [futures[f] for f in pending])
            done, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                job = futures[fut]
                try:
                    end = fut.result()
                except Exception as e:  # a worker lost, pickling trouble
                    end = JobEnd(None, int(ExitCode.KERNEL), f"{type(e).__name__}: {e}")
                board.finished(job, end)
                if end.exit_code in SIGNAL_CODES:
                    out.interrupted = end.exit_code - 128
                    continue
                out.ran += 1
                mismatch = record(sw, job, end)
                if mismatch:
                    board.stream.write(f"sweep: WARNING: {job.cell.label} r{job.repeat}: "
                                       f"{mismatch}; left out of the statistics\n")
                if end.exit_code != 0 or mismatch:
                    out.failed.append(job.key)
    except KeyboardInterrupt as e:
        signum = int(getattr(e, "signum", signal.SIGINT))
        out.interrupted = signum
        for fut in futures:
            fut.cancel()
        if not dask:
            _stop_children(signum)
    finally:
        if dask:
            executor.shutdown(wait=False)
            client.close()
        else:
            executor.shutdown(wait=True, cancel_futures=True)
    return out


def host_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) or 1


def max_vcpus(jobs: list[Job]) -> int:
    """The most vCPUs any of the jobs' guests has (each is a host thread)."""
    return max((runner.scenario_of(j.request())[0].vcpus
                for j in {j.cell: j for j in jobs}.values()), default=1)


def parallel_default(vcpus: int = 1) -> int:
    """As many boots at once as the host has cores for all their vCPUs."""
    return max(1, host_cores() // max(1, vcpus))


def oversubscribed(parallel: int, vcpus: int) -> str | None:
    """A warning when parallel boots of vcpus vCPUs each need more cores
    than the host has: their vCPUs then take turns on the host's cores and
    every time, throughput and daemon-CPU figure carries that contention."""
    cores = host_cores()
    if parallel * vcpus <= cores:
        return None
    return (f"sweep: warning: {parallel} boots at once x {vcpus} vCPUs = "
            f"{parallel * vcpus} vCPU threads on {cores} host cores: the boots slow "
            f"each other and timing figures carry it (use -j {parallel_default(vcpus)})")


def command(spec_path: Path, out: Path | None, parallel: int, dask: str | None) -> str:
    """The sweep as a pksmtb.py command line (what sweep.json records)."""
    parts = ["harness/pksmtb.py", "sweep", str(spec_path), "-j", str(parallel)]
    if out:
        parts += ["--out", str(out)]
    if dask:
        parts += ["--dask", dask]
    return " ".join(shlex.quote(p) for p in parts)


def iter_runs(sw: Sweep) -> Iterator[tuple[Job, Path]]:
    """Every job's finished run."""
    for job in sw.jobs:
        run = finished_run(job)
        if run is not None:
            yield job, run


def dry_run(spec: Spec, out: Path | None) -> str:
    """The cells, their settings and what is done already; nothing is made."""
    d = out or SWEEPS / spec.name
    all_jobs = check(spec, d, need_builds=False)
    lines = [f"sweep {spec.name}: {len(cells(spec))} cells x {spec.repeats} repeats "
             f"= {len(all_jobs)} boots -> {d}"]
    for c in cells(spec):
        sets, kargs = settings(c, spec.configs)
        done = sum(1 for j in all_jobs if j.cell == c and finished_run(j) is not None)
        base = baseline_of(c, spec)
        lines.append(f"  {c.label}: --set {' '.join(sets) or '-'}  kernel args "
                     f"{' '.join(kargs) or '-'}  done {done}/{spec.repeats}"
                     + ("  (baseline)" if base == c else ""))
    return "\n".join(lines)


def main(spec_path: Path, out: Path | None, parallel: int | None, dask: str | None,
         report_only: bool = False, stream: TextIO | None = None,
         dry: bool = False) -> int:
    """pksmtb.py sweep: check, run what is not done, report.  The exit
    status: 0 every job passed, 1 some failed, 130/143/129 stopped (run
    the same command again to go on); bad specs raise ConfigError."""
    spec = load_spec(spec_path)
    if dry:
        print(dry_run(spec, out))
        return int(ExitCode.OK)
    return run_spec(spec, out, parallel, dask, report_only, stream)


def run_spec(spec: Spec, out: Path | None, parallel: int | None, dask: str | None = None,
             report_only: bool = False, stream: TextIO | None = None,
             print_report: bool = True) -> int:
    """main() for a Spec already loaded (and perhaps override()n, as a
    bench does); print_report=False leaves report.txt unprinted."""
    sw = open_sweep(spec, out, running=not report_only)
    try:
        return _main(sw, out, parallel, dask, report_only, stream, print_report)
    finally:
        sw.close()


def _main(sw: Sweep, out: Path | None, parallel: int | None, dask: str | None,
          report_only: bool, stream: TextIO | None, print_report: bool) -> int:
    from . import sweepreport
    spec = sw.spec
    stream = stream or sys.stderr
    vcpus = max_vcpus(sw.jobs)
    if parallel is None:
        parallel = parallel_default(vcpus)
    elif not report_only and not dask and (warn := oversubscribed(parallel, vcpus)):
        print(warn, file=stream, flush=True)
    if not report_only:
        # (with overrides, the spec file alone does not say it all: sweep.json's
        # 'overrides' does, and the invocation's command line)
        sw.state["invocations"][-1]["sweep_command"] = command(spec.path, out, parallel, dask)
        sw.save()
    print(f"sweep {spec.name}: {len(cells(spec))} cells x {spec.repeats} repeats = "
          f"{len(sw.jobs)} boots -> {sw.dir}"
          + ("" if report_only else f" ({'dask ' + dask if dask else f'-j{parallel}'})"),
          file=stream, flush=True)
    res = Outcome(0, sum(1 for _ in iter_runs(sw)), [])
    if not report_only:
        pin_builds(sw, stream)
        t0 = time.monotonic()
        res = execute(sw, parallel, dask, stream)
        sw.state.setdefault("elapsed_s", []).append(round(time.monotonic() - t0, 1))
        sw.save()
    sweepreport.write(sw)
    if print_report:
        print((sw.dir / "report.txt").read_text(), end="")
    print(f"sweep: {res.ran} run, {res.kept} kept, {len(res.failed)} failed; report in "
          f"{sw.dir}/report.{{txt,csv,json}}, plots/", file=stream, flush=True)
    if res.interrupted:
        print("sweep: stopped; run the same command again to go on", file=stream)
        return int(ExitCode.for_signal(res.interrupted))
    return int(ExitCode.FAIL) if res.failed else int(ExitCode.OK)
