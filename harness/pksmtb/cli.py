"""Command line of the testbed harness: argument parsing and dispatch only.

    pksmtb.py run SCENARIO [--variant pksm|ksm] [--flavour g|debug]
                  [--set knob=value]... [--mem SIZE] [--mode perf|deterministic]
                  [--timeout S] [--watchdog S] [--trace EVENTS] [--kernel-arg ARG]...
                  [--dry-run] [--results DIR] [-v] [-q]
    pksmtb.py gdb SCENARIO [run options] [--batch FILE]
    pksmtb.py list [--last N]
    pksmtb.py show RUN
    pksmtb.py compare RUN RUN [RUN...]
    pksmtb.py variant SCENARIO [--variant V]   the variant a run would boot
    pksmtb.py sweep SPEC.toml [-j N] [--out DIR] [--dask tcp://HOST:PORT] [--report]
                  [--dry-run]                  a grid of runs with statistics
    pksmtb.py sweep-report DIR [--plots]       a sweep's report analysed again from
                                               DIR/report.json alone (no run directory);
                                               --plots: DIR/plots drawn again too
    pksmtb.py build-info begin NAME OUT FRAGMENT... | end OUT
                                               the build record (the Makefile's kernel-NAME)
    pksmtb.py frontier SWEEP_DIR... --out DIR  saving against slowdown and CPU, per engine
    pksmtb.py mutants [--only NAME]... [--list] [--no-control] [--spec FILE]
                                               break the engine on purpose, run the killers
    pksmtb.py flakes [DIR]                     the rounds of make flake-hunt (default: the
                                               latest): every test that did not pass in every
                                               round; exit 1 if one varied or failed

Exit status (verdict.py): 0 ok; 1 the run failed its checks (workload
verification, exit status, KUnit, kselftests, expectations); 2 bad input;
3 missing build (or not the build the run recorded); 4 kernel panic, oops, OOM or kernel error report; 5
time-out; 6 hung (no console output for the watchdog's limit; hang-backtrace.txt); 130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP (the kernel with it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from . import (buildinfo, config, flakes, frontier, gdb, kernel, mutants, paths, report,
               results, runner, sidechannel, sweep, sweepreport)
from .boot import Interrupted, stop_signals_interrupt, stop_with_parent_if_asked
from .verdict import ExitCode


def request(args: argparse.Namespace) -> runner.RunRequest:
    """The typed request of a 'run' or 'gdb' command line."""
    return runner.RunRequest(
        scenario=args.scenario, variant=args.variant, flavour=args.flavour or "",
        sets=args.set or [], mem=args.mem, mode=args.mode, trace=args.trace,
        timeout=args.timeout, watchdog=args.watchdog, kernel_args=args.kernel_arg or [],
        results=Path(args.results) if args.results else None,
        verbose=args.verbose, progress=not args.quiet)


def results_root(args: argparse.Namespace) -> Path | None:
    return Path(args.results) if args.results else None


def print_result(res: runner.RunResult) -> int:
    print(report.summary_table(res.summary, res.run_dir))
    for p in res.problems:
        print(f"error: {p}", file=sys.stderr)
    return int(res.exit_code)


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        print(runner.dry_run(request(args)), end="")
        return ExitCode.OK
    return print_result(runner.run(request(args), announce=lambda s: print(s, flush=True)))


def cmd_gdb(args: argparse.Namespace) -> int:
    out = gdb.run_gdb(request(args), Path(args.batch) if args.batch else None)
    return out if isinstance(out, int) else print_result(out)


def cmd_variant(args: argparse.Namespace) -> int:
    print(runner.scenario_of(runner.RunRequest(args.scenario, variant=args.variant))[1])
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    print(report.scenario_list(paths.SCENARIOS))
    print(report.run_list(results.all_runs(results_root(args)), args.last))
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    print(report.show_run(results.resolve_run(args.run, results_root(args))))
    return ExitCode.OK


def cmd_compare(args: argparse.Namespace) -> int:
    print(report.compare_table([results.resolve_run(r, results_root(args))
                                for r in args.runs]))
    return ExitCode.OK


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise config.ConfigError(f"-j: at least 1, got {args.jobs}")
    return sweep.main(Path(args.spec), Path(args.out) if args.out else None,
                      args.jobs, args.dask, args.report,
                      dry=args.dry_run)


def cmd_sweep_report(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    sweepreport.reanalyze_dir(d, plots=args.plots)
    print((d / "report.txt").read_text(), end="")
    return ExitCode.OK


def cmd_build_info(args: argparse.Namespace) -> int:
    """begin: print the build id and leave the pending record; end: the
    record beside the binary, once the build succeeded."""
    rest: list[str] = args.args
    if args.step == "begin":
        if len(rest) < 3:
            raise config.ConfigError("usage: build-info begin NAME OUT FRAGMENT...")
        try:
            rec = buildinfo.begin(rest[0], Path(rest[1]), rest[2:])
        except (buildinfo.BuildInfoError, OSError) as e:
            raise config.ConfigError(f"build-info: {e}") from None
        print(rec["id"])
    else:
        if len(rest) != 1:
            raise config.ConfigError("usage: build-info end OUT")
        out = Path(rest[0])
        try:
            rec = buildinfo.end(out)
        except (OSError, ValueError) as e:
            raise config.ConfigError(f"build-info end: {e}") from None
        dirty = " (sources differ from it: " + ", ".join(rec["dirty_paths"][:5]) + \
            (" ..." if len(rec["dirty_paths"]) > 5 else "") + ")" if rec.get("dirty") else ""
        print(f"kernel: build {rec['id']} of revision {rec['revision'][:12]}{dirty}, "
              f"{out / buildinfo.RECORD}")
    return ExitCode.OK


def cmd_frontier(args: argparse.Namespace) -> int:
    """The frontier of some sweeps' reports (frontier.py)."""
    try:
        md = frontier.write([Path(d) for d in args.sweeps], Path(args.out))
    except frontier.FrontierError as e:
        raise config.ConfigError(str(e)) from None
    print(md)
    return ExitCode.OK


def cmd_sidechannel(args: argparse.Namespace) -> int:
    """The side-channel scenario's accuracy per merge_domain (sidechannel.py)."""
    try:
        print(sidechannel.table(results.resolve_run(args.run)), end="")
    except sidechannel.SideChannelError as e:
        raise config.ConfigError(str(e)) from None
    return ExitCode.OK


def cmd_mutants(args: argparse.Namespace) -> int:
    """Each mutant of the list built and run against its killers; exit 0
    only if every one was killed (and the control passed)."""
    try:
        ms = mutants.load(Path(args.spec) if args.spec else mutants.SPEC)
    except mutants.MutantError as e:
        raise config.ConfigError(str(e)) from None
    if args.only:
        names = {m.name for m in ms}
        unknown = sorted(set(args.only) - names)
        if unknown:
            raise config.ConfigError(f"mutants: no mutant named {', '.join(unknown)} "
                                     f"(there are: {', '.join(sorted(names))})")
        ms = [m for m in ms if m.name in args.only]
    if args.list:
        for m in ms:
            print(f"{m.name:<22} {m.file:<22} {m.what}")
        return ExitCode.OK
    out = mutants.OUT / results.utc_now().replace(":", "").replace("-", "")
    rec = mutants.run(ms, out, control=not args.no_control)
    print(mutants.report(rec))
    print(f"mutants: results in {out}")
    return ExitCode.OK if mutants.all_killed(rec) else ExitCode.FAIL


def cmd_flakes(args: argparse.Namespace) -> int:
    """The table of a flake hunt's rounds (flakes.py); exit 1 if a test
    varied or failed."""
    try:
        text, failed = flakes.report(Path(args.dir) if args.dir else flakes.latest())
    except flakes.FlakeError as e:
        raise config.ConfigError(str(e)) from None
    print(text)
    return ExitCode.FAIL if failed else ExitCode.OK


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario name (harness/scenarios) or .toml path")
    p.add_argument("--variant", choices=paths.VARIANTS,
                   help="kernel variant (default: the scenario's own)")
    p.add_argument("--flavour", choices=[f for f in paths.FLAVOURS if f],
                   help="build flavour: g (debug info) or debug (KASAN, lockdep, ...)")
    p.add_argument("--set", action="append", metavar="KNOB=VALUE",
                   help="set a knob: [ksm.|pksm.]name=value, vcpus=N, or an option of "
                        "the scenario's real programs: workload.name=value (repeatable)")
    p.add_argument("--mem", help="guest memory, e.g. 256M")
    p.add_argument("--mode", choices=config.MODES, help="perf or deterministic")
    p.add_argument("--timeout", type=float,
                   help="wall-clock limit in seconds (times the host's scale)")
    lo, hi = config.WATCHDOG_RANGE
    p.add_argument("--watchdog", type=float, metavar="S",
                   help=f"no console output for S seconds: the guest is hung, its backtrace "
                        f"taken and the run stopped (exit 6); {lo}..{hi}, 0 off, default "
                        f"{config.WATCHDOG_DEFAULT_S}")
    p.add_argument("--trace", metavar="EVENTS",
                   help="record PKSM tracepoints: 'pksm' (all) or e.g. merge,cow_break")
    p.add_argument("--kernel-arg", action="append", metavar="ARG",
                   help="extra kernel command-line argument, e.g. pksm.enabled=0 (repeatable)")
    p.add_argument("--results", help="root directory of run directories "
                   "(default results/runs)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the guest console")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pksmtb.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="boot a kernel and run a scenario")
    add_run_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the kernel command line and run.sh, run nothing")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("gdb", help="boot a scenario under gdb")
    add_run_options(p)
    p.add_argument("--batch", metavar="FILE", help="run gdb in batch mode with FILE")
    p.set_defaults(func=cmd_gdb)
    p = sub.add_parser("list", help="list scenarios and runs")
    p.add_argument("--results")
    p.add_argument("--last", type=int, default=20)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="show one run ('latest' or part of its path)")
    p.add_argument("run")
    p.add_argument("--results")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("compare", help="compare runs side by side")
    p.add_argument("runs", nargs="+")
    p.add_argument("--results")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("variant", help="print the variant a run of SCENARIO boots")
    p.add_argument("scenario")
    p.add_argument("--variant", choices=paths.VARIANTS)
    p.set_defaults(func=cmd_variant)
    p = sub.add_parser("sweep", help="a grid of runs, repeated, in parallel, with statistics")
    p.add_argument("spec", help="sweep spec (TOML; see docs/research.md)")
    p.add_argument("-j", "--jobs", type=int, help="boots at once (default: as many as the host has cores for their vCPUs)")
    p.add_argument("--out", help="sweep directory (default results/sweeps/NAME)")
    p.add_argument("--dask", metavar="tcp://HOST:PORT",
                   help="run the boots on this Dask scheduler's workers")
    p.add_argument("--report", action="store_true",
                   help="only write the report of what is done; boot nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="check the spec, print the cells and what is done; make nothing")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("sweep-report",
                       help="analyse a sweep's report.json again (the statistics only: "
                            "no run directory is read, nothing boots)")
    p.add_argument("dir", help="the sweep directory (holding report.json)")
    p.add_argument("--plots", action="store_true",
                   help="draw DIR/plots again from report.json too")
    p.set_defaults(func=cmd_sweep_report)
    p = sub.add_parser("build-info", help="a kernel build's record (the Makefile calls it)")
    p.add_argument("step", choices=("begin", "end"))
    p.add_argument("args", nargs="+", metavar="NAME OUT FRAGMENT... | OUT")
    p.set_defaults(func=cmd_build_info)
    p = sub.add_parser("frontier", help="saving against slowdown and CPU from knob sweeps")
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="a sweep directory per engine")
    p.add_argument("--out", required=True, help="where frontier.md, .json and .png go")
    p.set_defaults(func=cmd_frontier)
    p = sub.add_parser("sidechannel", help="accuracy per merge_domain of a domains-sidechannel run")
    p.add_argument("run", help="a run directory, 'latest' or part of its path")
    p.set_defaults(func=cmd_sidechannel)
    p = sub.add_parser("mutants", help="break the engine on purpose: do the tests catch it?")
    p.add_argument("--only", action="append", metavar="NAME", help="only this mutant (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutants, build nothing")
    p.add_argument("--no-control", action="store_true",
                   help="skip the killers' run on the unmutated engine")
    p.add_argument("--spec", metavar="FILE", help="the mutant list (default harness/mutants.toml)")
    p.set_defaults(func=cmd_mutants)
    p = sub.add_parser("flakes", help="a flake hunt's rounds: the tests that did not pass "
                                      "in every round")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="the hunt's directory, holding round1.xml ... (default: the latest "
                        "under results/flake)")
    p.set_defaults(func=cmd_flakes)
    return ap


ERRORS: dict[type[Exception], ExitCode] = {
    config.ConfigError: ExitCode.USAGE,
    results.RunNotFound: ExitCode.USAGE,
    kernel.BuildMissing: ExitCode.BUILD,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    stop_with_parent_if_asked()
    with stop_signals_interrupt():
        try:
            return int(func(args))
        except tuple(ERRORS) as e:
            print(f"error: {e}", file=sys.stderr)
            return int(ERRORS[type(e)])
        except Interrupted as e:
            print(f"interrupted ({e})", file=sys.stderr)
            return int(ExitCode.for_signal(e.signum))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return int(ExitCode.INTERRUPTED)
