#!/usr/bin/python3
"""The classroom labs (labs/): prepare a student's copy, grade it, grade a class.

    lab.py list                           the labs
    lab.py prepare N [--force | --refresh] [--work DIR]
                                          labs/work/N: the skeleton (make lab LAB=N);
                                          --refresh: the current files, your regions kept
    lab.py check N [--solution] [--instructor] [--work DIR] [--json FILE]
                                          grade it (make lab-check LAB=N)
    lab.py batch N DIR [-j JOBS] [--json FILE] [--csv FILE]   grade every DIR/*/
          [--sandbox [--cpu-limit S] [--time-limit S]]   each submission sandboxed
    lab.py run N [--work DIR]             lab N's measuring run, nothing graded (lab 7, on
                                          your kernel; make lab-run LAB=7): its figures printed
    lab.py base N                         the kernel build lab N boots (for make)
    lab.py handin N [--student ID] [--work DIR] [--out DIR]
                                          labN-ID.tar.gz of your work (make handin LAB=N)
    lab.py dist-student [--out DIR]       the student edition (make dist-student)

batch takes DIR's subdirectories (the lab's files by name) and hand-in
archives (labN-ID.tar.gz, checked against their manifest).  With
--sandbox each submission's kernel build, boots and gdb run under
bubblewrap: the host read-only, its own lab tree and run directories
writable, no network, CPU and wall time limited (harness/pksmtb/sandbox.py).

check grades in student mode unless --instructor (or PKSMTB_LAB_INSTRUCTOR=1;
make lab-check INSTRUCTOR=1): the checks graded from answers.toml are sealed,
their form checked and the answers recorded, neither points nor measured
values nor keys shown (labs/README.md); a lab of answers only (2, 5) boots
nothing then, and lab 7 boots only your kernel (no reference run for the
answers' key).  batch always grades in instructor mode.

Exit status: 0 graded with full marks (student mode: every check shown
passed and every answer recorded; batch: every submission graded); 1 a
check failed; 2 bad input (unknown lab, no work, a submission that does
not compile or could not be graded); 3 a build the lab needs is missing;
130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP (the boot with it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pksmtb import boot, edition, handin, kernel, labdraw, labreport, labs, sandbox  # noqa: E402
from pksmtb.config import ConfigError  # noqa: E402
from pksmtb.verdict import ExitCode  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    p = sub.add_parser("prepare")
    p.add_argument("lab")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--force", action="store_true",
                     help="start again from the skeleton (your work lost)")
    how.add_argument("--refresh", action="store_true",
                     help="bring your copy up to date: the current files, your regions kept")
    p.add_argument("--work", type=Path, default=labs.WORK)
    c = sub.add_parser("check")
    c.add_argument("lab")
    c.add_argument("--solution", action="store_true")
    c.add_argument("--instructor", action="store_true",
                   help="show every check, measured values and answers "
                        f"(also {labreport.INSTRUCTOR_ENV}=1)")
    c.add_argument("--work", type=Path, default=labs.WORK)
    c.add_argument("--json", type=Path)
    c.add_argument("-v", "--verbose", action="store_true")
    b = sub.add_parser("batch")
    b.add_argument("lab")
    b.add_argument("dir", type=Path)
    b.add_argument("--json", type=Path)
    b.add_argument("--csv", type=Path)
    b.add_argument("--sizes", metavar="TEXT",
                   help="labs 2 and 5: grade with these sizes, a grade's 'drawn' record "
                        "(\"a_procs=4 ...; a_procs=2 ...\"), not sizes drawn afresh")
    b.add_argument("-j", "--jobs", type=int, default=1,
                   help="grade this many submissions at once (default 1)")
    b.add_argument("--sandbox", action="store_true",
                   help="build and boot each submission in a bubblewrap sandbox")
    b.add_argument("--cpu-limit", type=int, default=sandbox.CPU_S, metavar="S",
                   help=f"sandbox: CPU seconds a process may use (default {sandbox.CPU_S})")
    b.add_argument("--time-limit", type=int, default=sandbox.WALL_S, metavar="S",
                   help=f"sandbox: seconds a build or boot may take (default {sandbox.WALL_S})")
    m = sub.add_parser("run")
    m.add_argument("lab")
    m.add_argument("--work", type=Path, default=labs.WORK)
    m.add_argument("-v", "--verbose", action="store_true")
    s = sub.add_parser("base")
    s.add_argument("lab")
    h = sub.add_parser("handin")
    h.add_argument("lab")
    h.add_argument("--student", help=f"your student id (else ${handin.STUDENT_ENV})")
    h.add_argument("--work", type=Path, default=labs.WORK)
    h.add_argument("--out", type=Path, default=labs.LAB_BUILD.parent / "handin")
    d = sub.add_parser("dist-student")
    d.add_argument("--out", type=Path, default=labs.LAB_BUILD.parent / "dist-student")
    args = ap.parse_args(argv)
    boot.stop_with_parent_if_asked()
    try:
        with boot.stop_signals_interrupt():
            return run(args)
    except (labs.LabError, ConfigError, sandbox.SandboxError) as e:
        print(f"lab: {e}", file=sys.stderr)
        return 2
    except kernel.BuildMissing as e:
        print(f"lab: {e}", file=sys.stderr)
        return 3
    except boot.Interrupted as e:
        print(f"lab: interrupted ({e})", file=sys.stderr)
        return int(ExitCode.for_signal(e.signum))
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


def run(args: argparse.Namespace) -> int:
    """One command; LabError, ConfigError, BuildMissing for main() to report."""
    if args.cmd == "list":
        for n in sorted(labs.lab_dirs()):
            lab = labs.load_lab(n)
            kind = f"own kernel from {lab.base}" if lab.kernel_lab else f"boots {lab.base}"
            print(f"{n}  {lab.dir.name:<22} {lab.minutes:>3} min  {kind:<28} {lab.title}")
        return 0
    if args.cmd == "dist-student":
        if labs.is_student_edition():
            raise labs.LabError("this is the student edition already")
        root = edition.build(args.out)
        print(f"student edition: {root} and {root}.tar.gz (labs/INSTRUCTOR.md says "
              "what it leaves out)")
        return 0
    lab = labs.load_lab(args.lab)
    if args.cmd == "base":
        print(lab.base)
        return 0
    if args.cmd == "handin":
        sid = handin.student_id(args.student)
        d = args.work / str(lab.number)
        if not d.is_dir():
            raise labs.LabError(f"no {d}: run 'make lab LAB={lab.number}' first")
        out = handin.pack(lab, d, sid, args.out)
        print(f"lab {lab.number}: {out} ({', '.join(f.name for f in lab.files)} and "
              f"{handin.MANIFEST}); hand in this file")
        return 0
    if args.cmd == "prepare" and args.refresh:
        said = labs.refresh(lab, args.work)
        print(f"lab {lab.number}: {args.work / str(lab.number)} refreshed")
        for line in said:
            print(f"  {line}")
        return 0
    if args.cmd == "prepare":
        dest = labs.prepare(lab, args.work, args.force)
        print(f"lab {lab.number}: your copy is {dest} "
              f"({', '.join(f.name for f in lab.files)}); handout {lab.dir}/README.md")
        return 0
    ctx = labs.Ctx(verbose=getattr(args, "verbose", False))
    if args.cmd == "run":
        res, drawn, notes = labs.measure(lab, ctx, args.work)
        print(f"lab {lab.number}: measuring run on your kernel ({labs.lab7_options(drawn)})")
        for note in notes:
            print(f"  note: {note}")
        for e in res.console.events:
            if e.name.startswith(f"lab{lab.number}"):
                print("  " + e.name + " " + " ".join(f"{k}={v}" for k, v in e.fields.items()))
        print(f"  run directory: {res.run_dir}")
        return 0 if res.exit_code == ExitCode.OK else 1
    instructor = args.cmd == "batch" or args.instructor or labreport.instructor_from_env()
    ctx.instructor = instructor
    if getattr(args, "sizes", None) is not None:
        if not lab.sizes:
            raise labs.LabError(f"--sizes: lab {lab.number} draws no sizes (labs 2 and 5 do)")
        try:
            ctx.sizes = labdraw.parse_text(lab.sizes, args.sizes)
        except labdraw.DrawError as e:
            raise labs.LabError(str(e)) from None
    if labs.is_student_edition():
        edition_refuses(args, instructor)
    if args.cmd == "check":
        if args.solution:
            subs = [labs.solution(lab)]
        else:
            d = args.work / str(lab.number)
            if not d.is_dir():
                raise labs.LabError(f"no {d}: run 'make lab LAB={lab.number}' first")
            subs = [labs.Submission(str(d), labs.submission_files(lab, d))]
        if lab.answers_only and not instructor:
            grades = labs.record(lab, subs)     # nothing to show before the deadline
        else:
            grades = labs.grade(lab, subs, ctx)
        out = args.json or (labs.LAB_BUILD / "results" /
                            f"lab{lab.number}-{'solution' if args.solution else 'work'}.json")
    else:
        if not args.dir.is_dir():
            raise labs.LabError(f"{args.dir}: not a directory of submissions")
        if args.jobs < 1:
            raise labs.LabError(f"--jobs {args.jobs}: must be at least 1")
        if args.sandbox:
            ctx.sandbox = sandbox.Sandbox((), args.cpu_limit, args.time_limit)
            ctx.sandbox.prefix()        # the limits checked
            sandbox.check()
        subs, grades = handin.collect(lab, args.dir,
                                      labs.LAB_BUILD / "handin" / str(lab.number))
        grades += labs.grade(lab, subs, ctx, jobs=args.jobs)
        out = args.json or args.dir / f"lab{lab.number}-grades.json"
    for g in grades:
        print(g.report(instructor))
    labs.write_results(grades, out, getattr(args, "csv", None), instructor)
    print(f"results: {out}")
    if args.cmd == "batch":
        return 0
    return labreport.status(grades, instructor)


def edition_refuses(args: argparse.Namespace, instructor: bool) -> None:
    """The student edition has no reference solutions and no answer keys:
    what needs them is the instructor's (LabError, exit 2)."""
    if args.cmd == "check" and args.solution:
        raise labs.LabError("the student edition has no reference solutions: "
                            "SOLUTION=1 is the instructor's")
    if instructor:
        how = "batch grading" if args.cmd == "batch" else "instructor mode"
        raise labs.LabError(f"{how} needs the answer keys, which the student edition does "
                            "not have: answers are graded by the instructor (unset "
                            f"{labreport.INSTRUCTOR_ENV}, drop INSTRUCTOR=1 / --instructor)")


if __name__ == "__main__":
    sys.exit(main())
