"""Command line of the testbed harness (a thin layer over the modules).

    pksmtb.py run SCENARIO [--variant pksm|ksm] [--flavour g|debug]
                  [--set knob=value]... [--mem SIZE] [--mode perf|deterministic]
                  [--timeout S] [--dry-run] [--results DIR]
    pksmtb.py list
    pksmtb.py show RUN
    pksmtb.py compare RUN RUN [RUN...]
    pksmtb.py gdb SCENARIO [--variant ...] [--batch FILE]

Exit status: 0 ok; 1 the run failed its checks (workload verification,
exit status, expectations); 2 bad input; 3 missing build; 4 kernel panic,
oops, OOM or kernel error report; 5 time-out; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import config, guest, kernel, ksft, ktap, paths, plot, results, sampling, trace
from .boot import BootSpec, Terminal, boot

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_BUILD, EXIT_KERNEL, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
# Kernel arguments the harness owns (see boot.BootSpec.argv()).
RESERVED_KERNEL_ARGS = {"mem", "root", "rootfstype", "rootflags", "init", "con", "con0",
                        "ssl", "umid", "uml_dir", "pksmtb.share", "time-travel",
                        "time-travel-start", "ubd1"}


class Progress:
    """One live line on a terminal; plain lines every few seconds otherwise."""

    def __init__(self, csv_path: Path, stream: Any = None, plain_every: float = 5.0) -> None:
        self.csv_path = csv_path
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.plain_every = plain_every
        self.last_plain = 0.0
        self.saved_mib = 0.0
        self.samples = 0
        self._offset = 0
        self._header: list[str] = []
        self._partial = ""

    def _read(self) -> None:
        try:
            with open(self.csv_path) as f:
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except OSError:
            return
        data = self._partial + data
        *lines, self._partial = data.split("\n")
        for line in lines:
            cells = line.split(",")
            if not self._header:
                self._header = cells
                continue
            if len(cells) != len(self._header):
                continue
            try:
                row = {k: int(v) for k, v in zip(self._header, cells)}
            except ValueError:
                continue
            self.samples += 1
            self.saved_mib = sampling.saved_pages(row) * sampling.PAGE_SIZE / sampling.MIB

    def tick(self) -> None:
        self._read()
        elapsed = time.monotonic() - self.start
        text = f"[{elapsed:7.1f}s] saved {self.saved_mib:8.1f} MiB  samples {self.samples}"
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
        elif elapsed - self.last_plain >= self.plain_every:
            self.last_plain = elapsed
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def build_scenario(args: argparse.Namespace) -> tuple[config.Scenario, str, str]:
    sc = config.load_scenario(args.scenario)
    config.apply_overrides(sc, args.set or [])
    if args.mem:
        sc.mem_mib = config.parse_size_mib(args.mem, "--mem")
    if args.mode:
        sc.mode = args.mode
    if args.trace:
        config.set_trace(sc, args.trace, "--trace")
    if args.timeout is not None:
        if not 5 <= args.timeout <= 7200:
            raise config.ConfigError("--timeout: must be 5..7200 seconds")
        sc.timeout = args.timeout
    variant = args.variant or sc.variant
    for arg in args.kernel_arg or []:
        if not re.fullmatch(r"[A-Za-z0-9_.,:/+-]+(=[A-Za-z0-9_.,:/+-]*)?", arg) or \
                arg.split("=")[0] in RESERVED_KERNEL_ARGS:
            raise config.ConfigError(f"--kernel-arg {arg!r}: one name[=value] token, "
                                     f"not one the harness sets itself")
    return sc, variant, args.flavour or ""


def prepare_run(args: argparse.Namespace) -> tuple[config.Scenario, kernel.KernelBuild,
                                                     Path, BootSpec, dict[str, Any]]:
    sc, variant, flavour = build_scenario(args)
    kb = kernel.find_kernel(variant, flavour)
    root = Path(args.results) if getattr(args, "results", None) else None
    run_dir = results.new_run_dir(sc.name, kb.name, root)
    (run_dir / "run.sh").write_text(guest.render_run_script(sc, variant))
    spec = BootSpec(binary=kb.binary, mem_mib=sc.mem_mib, share=run_dir.resolve(),
                    umid=f"pksmtb-{os.getpid()}-{run_dir.name}",
                    uml_dir=(run_dir / "uml").resolve(),
                    deterministic=sc.mode == "deterministic",
                    extra=list(args.kernel_arg or []))
    if sc.swap_mib:
        # A sparse file, deleted with uml_dir when the boot ends.
        spec.uml_dir.mkdir(parents=True, exist_ok=True)
        swap = spec.uml_dir / "swap.img"
        with open(swap, "wb") as f:
            f.truncate(sc.swap_mib << 20)
        spec.extra.append(f"ubd1={swap}")
    meta: dict[str, Any] = {
        "scenario": sc.to_json(),
        "variant": variant,
        "flavour": flavour,
        "mode": sc.mode,
        "knobs": sc.knobs,
        "command_line": results.command_line(),
        "kernel_command_line": " ".join(shlex.quote(a) for a in spec.argv()),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": os.uname().nodename,
        **kb.identity(),
    }
    results.write_json(run_dir / "meta.json", meta)
    return sc, kb, run_dir, spec, meta


def judge(sc: config.Scenario, con: guest.Console, boot_res: Any,
          summary: dict[str, Any], flavour: str) -> tuple[int, list[str]]:
    """Exit code and the reasons, most serious first."""
    problems: list[str] = []
    code = EXIT_OK
    if boot_res.interrupted:
        return EXIT_INTERRUPTED, ["interrupted"]
    if boot_res.timed_out:
        problems.append(f"time-out after {sc.timeout:g} s (guest killed)")
        code = EXIT_TIMEOUT
    if con.panic or con.oops:
        problems.append("kernel panic/oops:\n    " + "\n    ".join((con.panic + con.oops)[:10]))
        code = code or EXIT_KERNEL
    if con.oom:
        problems.append("guest OOM:\n    " + "\n    ".join(con.oom[:5]))
        code = code or EXIT_KERNEL
    if con.reports:
        problems.append("kernel error reports:\n    " + "\n    ".join(con.reports[:10]))
        code = code or EXIT_KERNEL
    if con.errors:
        problems.append("guest script errors:\n    " + "\n    ".join(con.errors[:10]))
        code = code or EXIT_FAIL
    if con.exit_status is None and not boot_res.timed_out:
        problems.append("the guest stopped without reporting an exit status (see console.log)")
        code = code or EXIT_KERNEL
    want_exit = sc.expect.get("exit", 0)
    if con.exit_status is not None and con.exit_status != want_exit:
        problems.append(f"run script exited {con.exit_status}, expected {want_exit}")
        code = code or EXIT_FAIL
    verify = con.verify_result()
    want_verify = sc.expect.get("verify", "ok" if verify is not None else None)
    if want_verify is not None and verify != want_verify:
        what = "workload verification failed" if verify == "fail" else \
            f"workload verification: got {verify}, expected {want_verify}"
        if con.mismatches:
            what += ":\n    " + "\n    ".join(con.mismatches[:10])
        problems.append(what)
        code = code or EXIT_FAIL
    kunit = summary.get("kunit") or {}
    if kunit.get("failed"):
        problems.append("KUnit failures: " + ", ".join(kunit["failed"]))
        code = code or EXIT_FAIL
    kst = summary.get("ksft") or {}
    if kst.get("problems"):
        problems.append("kselftest failures:\n    " + "\n    ".join(kst["problems"][:30]))
        code = code or EXIT_FAIL
    need = sc.expect.get("saved_fraction_min")
    if need is not None:
        got = summary.get("saved_fraction")
        if got is None or got < need:
            problems.append(f"saved/achievable {got} below the expected {need}")
            code = code or EXIT_FAIL
    return code, problems


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        sc, variant, flavour = build_scenario(args)
        binary = paths.KBUILD / paths.kernel_name(variant, flavour) / "linux"
        spec = BootSpec(binary=binary, mem_mib=sc.mem_mib,
                        share=Path("<run-dir>"), umid="pksmtb-<pid>-<run>",
                        uml_dir=Path("<run-dir>/uml"),
                        deterministic=sc.mode == "deterministic",
                        extra=list(args.kernel_arg or []))
        print(" ".join(shlex.quote(a) for a in spec.argv()))
        print("# run.sh:")
        print(guest.render_run_script(sc, variant), end="")
        return EXIT_OK

    sc, kb, run_dir, spec, meta = prepare_run(args)
    print(f"run: {sc.name} on {kb.name} ({sc.mode} mode, {sc.mem_mib} MiB) -> {run_dir}",
          flush=True)
    prog = Progress(run_dir / "timeseries.csv")
    con, res = supervise(spec, run_dir, sc.timeout, args.verbose,
                         on_tick=None if args.quiet else prog.tick)
    if not args.quiet:
        prog.done()
    return finish_run(sc, kb, run_dir, meta, con, res)


def supervise(spec: BootSpec, run_dir: Path, timeout: float, verbose: bool,
              on_tick: Any = None, wrapper: list[str] | None = None
              ) -> tuple[guest.Console, Any]:
    """Boot, logging the console to console.log and following its protocol."""
    con = guest.Console()
    with open(run_dir / "console.log", "w") as log:
        def on_line(line: str) -> None:
            log.write(line + "\n")
            con.feed(line)
            if verbose:
                sys.stderr.write(line + "\n")
        res = boot(spec, on_line, timeout, on_tick=on_tick, wrapper=wrapper)
    return con, res


def finish_run(sc: config.Scenario, kb: kernel.KernelBuild, run_dir: Path,
               meta: dict[str, Any], con: guest.Console, res: Any) -> int:
    csv_path = run_dir / "timeseries.csv"
    series = sampling.read_csv(csv_path) if csv_path.is_file() else sampling.Series([], [])
    filled = con.events_named("filled")
    filled_t = max(int(e.num("t_ms")) for e in filled) if filled else None
    achievable = sum(int(e.num("achievable")) for e in filled) if filled else None
    summary = sampling.summarize(series, filled_t, achievable)
    summary["wall_s"] = round(res.wall_s, 3)
    summary["exit_status"] = con.exit_status
    summary["verify"] = con.verify_result()
    summary["kernel_returncode"] = res.returncode
    summary["kunit"] = kunit_summary(run_dir / "console.log")
    summary["ksft"] = ksft.summarize(run_dir, sc.expect)
    summary["trace"] = trace.process_run(run_dir, f"{sc.name} on {kb.name}")
    code, problems = judge(sc, con, res, summary, kb.flavour)
    summary["verdict"] = "pass" if code == EXIT_OK else "FAIL"
    summary["problems"] = problems
    summary["exit_code"] = code
    try:
        plot.plot_savings(series, run_dir / "savings.png",
                          f"{sc.name} on {kb.name}", filled_t, achievable)
    except Exception as e:  # a plot is a convenience, never a reason to lose a run
        summary["plot_error"] = str(e)
    results.write_json(run_dir / "summary.json", summary)
    meta["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results.write_json(run_dir / "meta.json", meta)
    print(results.summary_table(summary, run_dir))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return code


def kunit_summary(console: Path) -> dict[str, Any] | None:
    """KUnit results the kernel printed at boot (KTAP), if any ran."""
    try:
        rep = ktap.parse(console.read_text(errors="replace").splitlines())
    except OSError:
        return None
    if not rep.results:
        return None
    # Test cases are the innermost results; a suite's own line sums them up.
    depth = max(r.depth for r in rep.results)
    cases = [r for r in rep.results if r.depth == depth]
    return {"passed": sum(1 for r in cases if r.ok and not r.skipped),
            "failed": [r.name for r in rep.failed],
            "skipped": sum(1 for r in cases if r.skipped)}


def gdb_script(kb: kernel.KernelBuild) -> str:
    build = kb.binary.parent
    lines = [
        "set pagination off",
        "set confirm off",
        # UML uses SIGSEGV for its own page faults and SIGUSR1 internally.
        "handle SIGSEGV pass nostop noprint",
        "handle SIGUSR1 pass nostop noprint",
        "set follow-fork-mode parent",
        "set detach-on-fork on",
        f"add-auto-load-safe-path {build}",
    ]
    gdbpy = build / "vmlinux-gdb.py"
    if gdbpy.exists():
        lines.append(f"source {gdbpy}")
    return "\n".join(lines) + "\n"


def cmd_gdb(args: argparse.Namespace) -> int:
    if not args.flavour:
        # The pksm build carries debug info itself; ksm needs its -g flavour.
        variant = args.variant or config.load_scenario(args.scenario).variant
        plain = paths.KBUILD / paths.kernel_name(variant) / "vmlinux-gdb.py"
        args.flavour = "" if plain.exists() else "g"
    sc, kb, run_dir, spec, meta = prepare_run(args)
    if not (kb.binary.parent / "vmlinux-gdb.py").exists():
        print(f"note: {kb.name} has no gdb scripts (build with FLAVOUR=g for lx- commands)",
              file=sys.stderr)
    init = run_dir / "gdbinit"
    init.write_text(gdb_script(kb))
    argv = ["gdb", "-q", "-nx", "-x", str(init)]
    if args.batch:
        argv += ["-batch", "-x", str(Path(args.batch).resolve())]
    argv += ["--args", *spec.argv()]
    meta["gdb_command_line"] = " ".join(shlex.quote(a) for a in argv)
    results.write_json(run_dir / "meta.json", meta)
    print(f"gdb: {sc.name} on {kb.name} -> {run_dir}", flush=True)
    if not args.batch:
        print("gdb: type 'run' to boot; try 'break ksm_do_scan' first", flush=True)
        term = Terminal()
        try:
            rc = subprocess.call(argv)
        finally:
            term.restore()
        return rc
    # Batch mode: same supervision as a run (console parsed, time-out).
    con, res = supervise(spec, run_dir, sc.timeout, args.verbose,
                         wrapper=argv[:argv.index("--args") + 1])
    return finish_run(sc, kb, run_dir, meta, con, res)


def cmd_list(args: argparse.Namespace) -> int:
    print("scenarios (harness/scenarios):")
    for p in sorted(paths.SCENARIOS.glob("*.toml")):
        try:
            sc = config.load_scenario(str(p))
            print(f"  {p.stem:<22} {sc.variant:<5} {sc.description}")
        except config.ConfigError as e:
            print(f"  {p.stem:<22} INVALID: {e}")
    runs = results.all_runs(Path(args.results) if args.results else None)
    print(f"runs ({len(runs)}, newest last):")
    for r in runs[-args.last:]:
        s = r / "summary.json"
        verdict = results.read_json(s).get("verdict", "?") if s.is_file() else "unfinished"
        print(f"  {verdict:<10} {r}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    run = results.resolve_run(args.run, Path(args.results) if args.results else None)
    meta = results.read_json(run / "meta.json")
    print(f"run {run}")
    for key in ("variant", "flavour", "mode", "kernel_version", "git_revision",
                "patch_series_sha256", "config_sha256", "command_line", "started_utc"):
        print(f"  {key:<20} {meta.get(key, '-')}")
    print(f"  {'knobs':<20} {meta.get('knobs')}")
    if (run / "summary.json").is_file():
        summary = results.read_json(run / "summary.json")
        print(results.summary_table(summary))
        for p in summary.get("problems", []):
            print(f"  problem: {p}")
    else:
        print("  (no summary: the run did not finish)")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    root = Path(args.results) if args.results else None
    runs = [results.resolve_run(r, root) for r in args.runs]
    print(results.compare_table(runs))
    return EXIT_OK


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario name (harness/scenarios) or .toml path")
    p.add_argument("--variant", choices=paths.VARIANTS, help="kernel variant")
    p.add_argument("--flavour", choices=[f for f in paths.FLAVOURS if f],
                   help="build flavour: g (debug info) or debug (KASAN, lockdep, ...)")
    p.add_argument("--set", action="append", metavar="KNOB=VALUE",
                   help="set a knob: [ksm.|pksm.]name=value (repeatable)")
    p.add_argument("--mem", help="guest memory, e.g. 256M")
    p.add_argument("--mode", choices=config.MODES, help="perf or deterministic")
    p.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
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
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except config.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except kernel.BuildMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BUILD
    except results.RunNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
