"""Classroom labs (labs/NN-slug/): skeletons from marked solutions, the
student's working copy with its own kernel build, and the autograder.

A lab's reference solution lives in the tree; the regions a student writes
are marked (C: ``/* LAB 3 BEGIN: hint */`` ... ``/* LAB 3 END */``; gdb,
TOML, shell: ``# LAB 1 BEGIN: hint`` ... ``# LAB 1 END``; labregion).  The
skeleton fills each region with a TODO line and the stub that
labs/NN-slug/lab.toml gives for it (code that compiles and does the wrong
thing), the markers kept.  Of an engine file or a framed one only the
regions are the student's: the grader takes the copy's regions into the
current file (graded_text()), and ``make lab REFRESH=1`` does so to the
copy (refresh()).

Kernel labs get a lab tree under build/lab/N/ laid out like a checkout
(linux/src: a hard-link copy of the prepared tree; pksm/: copies of PKSM's
files, the student's regions in theirs; build/kernel/BASE: a copy of the
solution's build directory with its paths moved), so the student's kernel
is an incremental build of the solution's: only the student's files and
the link are redone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

from . import (boot, config, gdb, junit, kernel, ktap, labanswers, labdraw, labregion,
               labreport, overlay, paths, runner, trace)
from .sandbox import Sandbox
from .verdict import ExitCode

LABS = paths.TOP / "labs"
WORK = LABS / "work"
LAB_BUILD = paths.TOP / "build" / "lab"
JOBS = os.cpu_count() or 1


# The student edition (make dist-student) carries this file; its labs have
# no reference solutions and no answer keys (labs/INSTRUCTOR.md).
EDITION_FILE = LABS / "EDITION"
STUDENT_EDITION = "student"


def is_student_edition() -> bool:
    try:
        return EDITION_FILE.read_text().strip() == STUDENT_EDITION
    except OSError:
        return False


class LabError(Exception):
    """Bad input: an unknown lab, missing work, a submission that does not
    build, marked regions that do not pair up."""


@contextmanager
def region_errors() -> Iterator[None]:
    """labregion's RegionError as a LabError."""
    try:
        yield
    except labregion.RegionError as e:
        raise LabError(str(e)) from None


# ---- labs and their files ---------------------------------------------------

@dataclass
class LabFile:
    solution: Path          # the reference, repo-relative
    name: str               # the student's copy, in the work directory
    stubs: list[str]        # one a marked region, in order
    frame: bool = False     # only the regions are the student's: the rest must stay
    # What the student edition puts in each region instead of the reference
    # (default: the stub); a kernel file's must keep the other labs' kernels working.
    standins: list[str] = field(default_factory=list)

    @property
    def kernel_path(self) -> str | None:
        """Its path in the kernel tree, for a file of PKSM's (pksm/...)."""
        parts = self.solution.parts
        return "/".join(parts[1:]) if parts[0] == "pksm" else None

    @property
    def regions_only(self) -> bool:
        """Only its marked regions are the student's: a file of PKSM's (the
        current one is built with the copy's regions in it) or a framed one
        (the rest must be the current file's)."""
        return self.frame or self.kernel_path is not None


@dataclass
class Lab:
    number: int
    slug: str
    title: str
    minutes: int
    base: str               # kernel build the lab boots (pksm, pksm-debug)
    kernel_lab: bool        # the student edits kernel files: a build of their own
    files: list[LabFile]
    points: dict[str, int]
    answer_checks: frozenset[str] = frozenset()   # graded from answers.toml: sealed for students
    sizes: list[labdraw.Size] = field(default_factory=list)  # drawn at grading (labs 2, 5)
    # a prediction's tolerance in pages where it is not TOLERANCE (lab.toml)
    tolerance: dict[str, int] = field(default_factory=dict)

    @property
    def answers_only(self) -> bool:
        """Every check is graded from the answers file (labs 2 and 5)."""
        return set(self.points) <= self.answer_checks

    @property
    def dir(self) -> Path:
        return LABS / f"{self.number:02d}-{self.slug}"

    @property
    def scenario(self) -> Path:
        return self.dir / f"lab{self.number}-run.toml"


def lab_dirs() -> dict[int, Path]:
    out = {}
    for d in sorted(LABS.glob("[0-9][0-9]-*")):
        if (d / "lab.toml").is_file():
            out[int(d.name[:2])] = d
    return out


def load_lab(which: str | int) -> Lab:
    """The lab numbered WHICH; LabError naming the labs there are."""
    dirs = lab_dirs()
    try:
        n = int(which)
    except ValueError:
        n = -1
    if n not in dirs:
        raise LabError(f"unknown lab {which!r}: labs are {', '.join(map(str, sorted(dirs)))}")
    d = dirs[n]
    raw = tomllib.loads((d / "lab.toml").read_text())
    files = [LabFile(Path(f["solution"]), str(f["name"]), [str(s) for s in f["stubs"]],
                     bool(f.get("frame", False)), [str(s) for s in f.get("standins", [])])
             for f in raw["file"]]
    for f in files:
        if f.standins and len(f.standins) != len(f.stubs):
            raise LabError(f"{d / 'lab.toml'}: {f.name}: {len(f.standins)} standins "
                           f"for {len(f.stubs)} stubs")
    points = {str(k): int(v) for k, v in raw["points"].items()}
    sealed = frozenset(str(k) for k in raw.get("answer_checks", []))
    if not sealed <= set(points):
        raise LabError(f"{d / 'lab.toml'}: answer_checks {sorted(sealed - set(points))} "
                       "have no points")
    try:
        sizes = labdraw.parse(raw.get("draw"), d / "lab.toml")
    except labdraw.DrawError as e:
        raise LabError(str(e)) from None
    tol = raw.get("tolerance", {})
    if not isinstance(tol, dict) or not all(
            k in points and type(v) is int and 0 < v <= 64 for k, v in tol.items()):
        raise LabError(f"{d / 'lab.toml'}: tolerance: a check's name and a whole "
                       "number of pages from 1 to 64")
    return Lab(n, d.name[3:], str(raw["title"]), int(raw["minutes"]), str(raw["base"]),
               any(f.kernel_path for f in files), files, points, sealed, sizes, dict(tol))


# ---- skeletons ------------------------------------------------------------------

# The first line of a skeleton's region: the student writes between the markers.
TODO = "TODO (lab {n}): yours to write, here between the two LAB {n} lines (keep those)"


def skeleton(text: str, n: int, stubs: list[str], where: str) -> str:
    """TEXT with the body of every LAB N region a TODO line and its stub,
    the markers kept."""
    with region_errors():
        m = labregion.split(text, n, where)
    for r in m.regions:
        if not r.hint:
            raise LabError(f"{where}:{r.line}: LAB {n} BEGIN needs a hint after ':'")
    if len(m.regions) != len(stubs) or not stubs:
        raise LabError(f"{where}: {len(m.regions)} LAB {n} regions, {len(stubs)} stubs")
    return labregion.fill(m, [labregion.comment(r, TODO.format(n=n))
                              + labregion.indented(stub, r.indent)
                              for r, stub in zip(m.regions, stubs)])


def skeleton_files(lab: Lab) -> dict[str, str]:
    return {f.name: skeleton((paths.TOP / f.solution).read_text(), lab.number, f.stubs,
                             str(f.solution)) for f in lab.files}


def graded_text(lab: Lab, f: LabFile, copy: Path) -> tuple[str, str]:
    """What is built and graded of COPY, a student's F whose regions alone
    are theirs: the current file (F's solution in this checkout) with the
    copy's LAB n regions in it; and where the copy differs from that
    outside them ("" nowhere: a copy made from an older file does).
    LabError if the copy's marker lines do not pair up as the current
    file's do."""
    n = lab.number
    text = copy.read_text(errors="surrogateescape")
    try:
        graded = labregion.splice(text, (paths.TOP / f.solution).read_text(), n, f.name,
                                  str(f.solution))
    except labregion.RegionError as e:
        raise LabError(f"{e}: only the lines between a LAB {n} BEGIN line and its LAB {n} "
                       f"END line are yours, and those lines must stay as make lab wrote "
                       f"them (put them back as {f.solution} has them, or keep your code "
                       f"aside and start again with make lab LAB={n} FORCE=1)") from None
    return graded, labregion.differs(text, graded, f.name, str(f.solution))


def frame_problem(lab: Lab, sub: "Submission") -> str:
    """"" if every framed file of SUB is the current file outside its LAB n
    regions, else why not (graded_text())."""
    for f in lab.files:
        if f.frame:
            try:
                _, note = graded_text(lab, f, sub.files[f.name])
            except LabError as e:
                return str(e)
            if note:
                return (f"{note}: only its LAB {lab.number} region is yours, the rest must "
                        f"stay the lab's (make lab LAB={lab.number} REFRESH=1 puts your "
                        "region back in the current file)")
    return ""


def prepare(lab: Lab, work: Path, force: bool = False, kernel_tree: bool = True) -> Path:
    """The student's working copy WORK/N: skeletons of the lab's files (and,
    for a kernel lab, its kernel tree).  Existing work is kept unless FORCE."""
    dest = work / str(lab.number)
    if dest.exists() and not force:
        raise LabError(f"{dest} exists (your work on lab {lab.number}); REFRESH=1 brings "
                       "it up to date with the current files, your regions kept; FORCE=1 "
                       "starts again from the skeleton (your work lost)")
    files = skeleton_files(lab)          # every error before anything is written
    if lab.kernel_lab and kernel_tree and not (paths.KBUILD / lab.base /
                                               "linux").is_file():
        raise kernel.BuildMissing(f"lab {lab.number} builds on {lab.base}: "
                                  f"run 'make kernel-{lab.base}' first")
    tmp = work / f".{lab.number}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, text in files.items():
        (tmp / name).write_text(text)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    if lab.kernel_lab and kernel_tree:
        try:
            lab_tree(lab, submission_files(lab, dest), LAB_BUILD / str(lab.number))
        except BaseException:
            shutil.rmtree(dest)      # nothing half-written
            shutil.rmtree(LAB_BUILD / str(lab.number), ignore_errors=True)
            raise
    return dest


def refresh(lab: Lab, work: Path) -> list[str]:
    """WORK/N brought up to date, the student's work kept: each file whose
    regions alone are theirs becomes the current file with the copy's
    regions in it (graded_text()), a lab file the copy lacks its skeleton;
    the rest (all the student's) stays.  The files replaced are kept in
    WORK/.N.before-refresh/.  What was done, a line a file; LabError, and
    nothing written, if the copy's markers do not pair up."""
    n = lab.number
    dest = work / str(n)
    if not dest.is_dir():
        raise LabError(f"no {dest} to refresh: make lab LAB={n} makes it")
    new: dict[str, str] = {}
    said = []
    for f in lab.files:
        p = dest / f.name
        if not p.is_file():
            new[f.name] = skeleton_files(lab)[f.name]
            said.append(f"{f.name}: was missing, the skeleton written")
        elif not f.regions_only:
            said.append(f"{f.name}: kept (all of it is yours)")
        else:
            text, note = graded_text(lab, f, p)
            if text == p.read_text(errors="surrogateescape"):
                said.append(f"{f.name}: already the current {f.solution}, your regions in it")
            else:
                new[f.name] = text
                said.append(f"{f.name}: now the current {f.solution} with your LAB {n} "
                            f"regions in it" + (f" (before: {note})" if note else ""))
    keep = work / f".{n}.before-refresh"
    replaced = [name for name in new if (dest / name).is_file()]
    if replaced:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for name in replaced:
            shutil.copy2(dest / name, keep / name)
        said.append(f"your files as they were: {keep}")
    for name, text in new.items():
        tmp = dest / f".{name}.tmp"
        tmp.write_text(text, errors="surrogateescape")
        tmp.replace(dest / name)
    return said


def submission_files(lab: Lab, d: Path) -> dict[str, Path]:
    """The lab's files in submission directory D; LabError if one is missing."""
    out = {}
    for f in lab.files:
        p = d / f.name
        if not p.is_file():
            raise LabError(f"{d}: no {f.name} (a lab {lab.number} submission has "
                           f"{', '.join(x.name for x in lab.files)})")
        out[f.name] = p.resolve()
    return out


def solution_files(lab: Lab) -> dict[str, Path]:
    return {f.name: paths.TOP / f.solution for f in lab.files}


# ---- a kernel lab's own kernel -------------------------------------------------

def tree_files(lab: Lab, files: dict[str, Path]) -> tuple[dict[str, bytes], list[str]]:
    """The student's PKSM files of FILES as built (path under pksm/: the
    current file with the copy's regions in it, graded_text()), and a note
    for each copy that differs from that outside its regions."""
    mine: dict[str, bytes] = {}
    notes = []
    for f in lab.files:
        if f.kernel_path:
            text, note = graded_text(lab, f, files[f.name])
            mine[f.kernel_path] = text.encode(errors="surrogateescape")
            if note:
                notes.append(f"{note}: built with your LAB {lab.number} regions in the "
                             f"current file, not with your copy's text around them (make lab "
                             f"LAB={lab.number} REFRESH=1 brings your copy up to date)")
    return mine, notes


def lab_tree(lab: Lab, files: dict[str, Path], root: Path) -> list[str]:
    """ROOT laid out as a checkout whose PKSM files are the current ones,
    the student's regions of FILES in theirs (tree_files(),
    overlay.overlay_tree()); the notes of tree_files()."""
    mine, notes = tree_files(lab, files)
    try:
        overlay.overlay_tree(lab.base, mine, root)
    except kernel.BuildMissing:
        raise kernel.BuildMissing(f"lab {lab.number} builds on {lab.base}: "
                                  f"run 'make kernel-{lab.base}' first") from None
    return notes


sync_file = overlay.sync_file


def build_lab_kernel(lab: Lab, root: Path, box: Sandbox | None = None) -> Path:
    """Build ROOT's kernel (incremental); the builds' root for RunRequest.kbuild.
    LabError with the compiler's complaint if the student's code does not build.
    In BOX (a sandbox's limits) only the build directory may be written."""
    log = root / "build.log"
    out = root / "build" / "kernel" / lab.base
    prefix = replace(box, writable=(out,)).prefix() if box else None
    rc = overlay.build(root, lab.base, log, prefix)
    if rc != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        yours = ", ".join(f"{f.kernel_path} is the current {f.name} with your LAB "
                          f"{lab.number} regions" for f in lab.files if f.kernel_path)
        raise LabError(f"lab {lab.number}: the submission does not build (make exit {rc}; "
                       f"full log {log}; in the lab tree {yours}):\n" + "\n".join(errors[-15:]))
    return root / "build" / "kernel"


# ---- grades --------------------------------------------------------------------

@dataclass
class Check:
    name: str
    points: int
    earned: int             # partial credit: 0 < earned < points
    detail: str             # what the instructor sees (measured values, keys)
    answers: bool = False   # graded from the answers file: sealed in student mode
    shown: str = ""         # what a student sees of an answers check: its form

    @property
    def passed(self) -> bool:
        return self.earned == self.points


@dataclass
class Grade:
    lab: int
    submission: str
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    runs: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)    # e.g. lab 6's seed
    # what the student should know of how it was graded (a stale copy: tree_files())
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(c.earned for c in self.checks)

    @property
    def total(self) -> int:
        return sum(c.points for c in self.checks)

    def to_json(self, instructor: bool = True) -> dict[str, Any]:
        return labreport.to_json(self, instructor)

    def report(self, instructor: bool = True) -> str:
        return labreport.report(self, instructor)


@dataclass
class Submission:
    name: str
    files: dict[str, Path]
    kbuild: Path | None = None      # its kernel builds' root (kernel labs)


@dataclass
class Ctx:
    results: Path | None = None     # runs' root (default results/runs)
    verbose: bool = False
    # a sandbox's limits: each submission's build and boots run in one,
    # with a lab tree of its own (sandbox.py); its writable paths are set here
    sandbox: Sandbox | None = None
    # Student mode (lab.py check without --instructor): the sealed checks
    # are not graded, so nothing is booted for them (lab 7's reference run).
    instructor: bool = True
    # Lab 7: the counts drawn and the reference's run, one for every
    # submission of a grading (grade() makes it once).
    lab7: Lab7Key | None = None
    # Labs 2 and 5: the sets of sizes to grade with (None: drawn at grading;
    # lab.py batch --sizes: a grade's record, to grade again with it).
    sizes: list[dict[str, int]] | None = None

    def request(self, lab: Lab, sub: Submission | None = None,
                scenario: config.Scenario | None = None, **kw: Any) -> runner.RunRequest:
        variant, _, flavour = lab.base.partition("-")
        kw.setdefault("watchdog", LAB_WATCHDOG_S)
        return runner.RunRequest(scenario or str(lab.scenario), variant=variant, flavour=flavour,
                                 results=self.results, progress=False, verbose=self.verbose,
                                 kbuild=sub.kbuild if sub else None,
                                 sandbox=self.sandbox if sub else None, **kw)


# A lab's guest silent this long is hung (a submission's kernel code that
# never returns, on a guest whose run.sh prints a heartbeat meanwhile): it
# is stopped, its tasks' stacks kept in its run directory's
# hang-backtrace.txt (boot.py), and the checks of that run fail saying so.
# With the backtrace's few seconds, a hang costs a grading under a minute.
LAB_WATCHDOG_S = 45


def failed_all(lab: Lab, sub: str, error: str) -> Grade:
    """A submission that could not be graded: every check failed, the reason given."""
    return Grade(lab.number, sub, [Check(k, v, 0, "not graded", k in lab.answer_checks,
                                         "not graded") for k, v in lab.points.items()], error)


def check(lab: Lab, name: str, ok: bool, detail: str, shown: str = "recorded") -> Check:
    """Check NAME passed or failed; SHOWN is what a student sees of an answers check."""
    return scored(lab, name, lab.points[name] if ok else 0, detail, shown)


def scored(lab: Lab, name: str, earned: int, detail: str, shown: str = "recorded") -> Check:
    """Check NAME with EARNED of its points (partial credit)."""
    return Check(name, lab.points[name], earned, detail, name in lab.answer_checks,
                 shown if name in lab.answer_checks else detail)


def form(problems: list[str]) -> str:
    """What a student sees of an answers check: "recorded", or what is malformed."""
    return "; ".join(problems) if problems else "recorded"


def run_checked(req: runner.RunRequest, files: dict[str, Path] | None = None) -> runner.RunResult:
    """runner.run, with FILES copied into the run's share (the guest's
    working directory) before the boot.  A run stopped by SIGINT, SIGTERM
    or SIGHUP stops the grading (KeyboardInterrupt), not only that check."""
    p = runner.prepare(req)
    for rel, src in (files or {}).items():
        dst = p.run_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    con, res = runner.supervise(p, req.verbose)
    return stopped(runner.finish(p, con, res))


def stopped(res: runner.RunResult) -> runner.RunResult:
    """RES, or boot.Interrupted if a signal stopped it (its summary written)."""
    if res.boot.interrupted:
        raise boot.Interrupted(res.boot.signal or signal.SIGINT)
    return res


def run_gdb(req: runner.RunRequest, script: Path) -> runner.RunResult | int:
    res = gdb.run_gdb(req, script)
    return stopped(res) if isinstance(res, runner.RunResult) else res


def event_ints(res: runner.RunResult, name: str) -> dict[str, int] | None:
    evs = res.console.events_named(name)
    return evs[-1].ints() if evs else None


def clean(res: runner.RunResult) -> tuple[bool, str]:
    """No kernel trouble (BUG, WARNING, KASAN, oops, panic), no time-out, no hang."""
    bad = res.exit_code in (ExitCode.KERNEL, ExitCode.TIMEOUT, ExitCode.HUNG)
    return (not bad, "; ".join(res.problems[:3]) if bad else "no kernel report")


# ---- lab 1: watch a page live, merge and break --------------------------------

LAB1_MERGED = re.compile(r"^LAB1 merged pfn=(\d+) kpfn=(\d+)\s*$", re.M)
LAB1_COW = re.compile(r"^LAB1 cow kpfn=(\d+)\s*$", re.M)
LAB1_BORN = re.compile(r"^LAB1 born pfn=(\d+)\s*$", re.M)


def grade_lab1(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    grades = []
    for sub in subs:
        g = Grade(lab.number, sub.name)
        res = run_gdb(ctx.request(lab, sub, trace="pksm"), sub.files["watch.gdb"])
        if not isinstance(res, runner.RunResult):
            grades.append(failed_all(lab, sub.name, f"gdb exited {res}"))
            continue
        g.runs.append(str(res.run_dir))
        out = res.console_text
        recs = trace.read_trace(res.run_dir / "trace.txt") \
            if (res.run_dir / "trace.txt").is_file() else []
        merges = {(r.pfn(), r.pfn("kpfn")) for r in recs if r.event == "pksm_merge"}
        cows = {r.pfn() for r in recs if r.event == "pksm_cow_break"}
        said = [(int(a), int(b)) for a, b in LAB1_MERGED.findall(out)]
        good = [m for m in said if m in merges]
        g.checks.append(check(lab, "merge-in-gdb", bool(good),
                              f"gdb said {said[:3]}, of which {len(good)} in the trace "
                              f"({len(merges)} merges traced)"))
        kpfns = {k for _, k in good}
        shown = [k for k in kpfns
                 if re.search(rf"pfn {k}\b[^\n]*\n(?:.*\n){{0,3}}?\s*KSM page", out)]
        g.checks.append(check(lab, "pksm-page", bool(shown),
                              f"pksm-page showed KSM page(s) {sorted(shown)[:3]}"
                              if shown else "no pksm-page report of the merged KSM page"))
        cow_said = {int(k) for k in LAB1_COW.findall(out)}
        hit = cow_said & kpfns & cows
        g.checks.append(check(lab, "cow-in-gdb", bool(hit),
                              f"gdb saw COW of {sorted(cow_said)[:3]}; traced COW of the "
                              f"merged page: {sorted(hit)}"))
        # the copy: registered in the trace right after that COW break
        born = [int(p) for p in LAB1_BORN.findall(out)]
        at = next((i for i, r in enumerate(recs)
                   if r.event == "pksm_cow_break" and r.pfn() in hit), len(recs))
        copy = next((r.pfn() for r in recs[at:] if r.event == "pksm_page_registered"), None)
        g.checks.append(check(lab, "copy-born", bool(born) and copy in born,
                              f"gdb saw the birth of {born[:3]}; the first page registered "
                              f"after the COW break in the trace: {copy}"))
        grades.append(g)
    return grades


# ---- labs 2 and 5: predict the counters, then measure -------------------------

def handout_sizes(lab: Lab) -> dict[str, int]:
    """The sizes of the lab's scenario as written (the handout's): what a
    student's formulas are checked with before the deadline."""
    try:
        return labdraw.handout(lab.sizes, config.load_scenario(str(lab.scenario)))
    except labdraw.DrawError as e:
        raise LabError(str(e)) from None


def drawn_scenario(lab: Lab, drawn: dict[str, int]) -> config.Scenario:
    """The lab's scenario with the sizes DRAWN put in."""
    try:
        return labdraw.apply(lab.sizes, config.load_scenario(str(lab.scenario)), drawn)
    except labdraw.DrawError as e:
        raise LabError(str(e)) from None


def baseline_scenario(lab: Lab, drawn: dict[str, int]) -> config.Scenario:
    """The lab's scenario, with the sizes DRAWN, and every dupalloc page
    unique: the same processes, binaries and fork tree, so what merges
    there (their stacks, heaps, data pages) is what the lab's run merges
    besides the workload."""
    sc = drawn_scenario(lab, drawn)
    sc.name += "-baseline"
    for wl in sc.workloads:
        if wl.program == "dupalloc":
            wl.options.pop("dup_set", None)
            wl.options.update(dup=0, zero=0, near=0)
    return sc


# The counters each prediction lab measures (its event's fields): one check each.
PREDICTIONS = {2: ("lab2", ["pages_shared", "pages_sharing", "ksm_zero_pages"]),
               5: ("lab5", ["pages_shared", "pages_sharing", "stable_nodes", "mappings"])}
TOLERANCE = 1           # pages a prediction may be off


def answer_forms(lab: Lab) -> list[tuple[str, list[str], dict[str, tuple[str, ...]]]]:
    """Each answers check of a lab graded from answers alone (labs 2 and
    5), or of lab 7's: its name, the predictions (formulas in the lab's
    sizes) and the choices (question: words offered) it is graded from."""
    none: list[str] = []
    if lab.number == 7:
        return [(name, none, {k: tuple(LAB7_OUTCOMES) for k in asked})
                for name, asked in LAB7_CHECKS.items()] + [("answers", none, LAB7_OFFERED)]
    return [(k, [k], {}) for k in PREDICTIONS[lab.number][1]]


def record(lab: Lab, subs: list[Submission]) -> list[Grade]:
    """Student mode for an answers-only lab: nothing booted, nothing
    scored; each answer's form is checked and the answers are recorded for
    grading after the deadline."""
    grades = []
    names = handout_sizes(lab)
    for sub in subs:
        a = labanswers.read(sub.files["answers.toml"])
        g = Grade(lab.number, sub.name)
        for k, numbers, choices in answer_forms(lab):
            bad = labanswers.form_problems(a, numbers, choices, names)
            shown = form(bad) + ("" if bad or not numbers else
                                 "; with the handout's sizes it gives " +
                                 value_text(labanswers.predicted(a, numbers[0], names)))
            g.checks.append(check(lab, k, False, "not graded (student mode)", shown))
        grades.append(g)
    return grades


def value_text(v: Fraction | None) -> str:
    """A prediction's value as shown: a whole number, or a fraction and its decimal."""
    if v is None:
        return "nothing"
    return str(v.numerator) if v.denominator == 1 else f"{v} (= {float(v):.2f})"


def grade_predictions(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    """labdraw.DRAWS sets of sizes are drawn (or ctx.sizes taken), once
    for every submission, and recorded in each grade; with each set, two
    runs serve every submission (they do not depend on it): the lab's and
    its baseline; the workload's figures are their difference.  All
    deterministic (time travel); the processes' own pages still differ a
    little from boot to boot, which lab.toml's per-check tolerances allow
    for.  Each prediction, a formula in the sizes, is right if its value
    with each set is what that set's runs measured.  A broken answers file fails its
    predictions, with the file and line."""
    event, keys = PREDICTIONS[lab.number]
    handout_sizes(lab)                      # the scenario and its [draw] agree
    sets = ctx.sizes or labdraw.draws(lab.sizes)
    answers = [labanswers.read(sub.files["answers.toml"]) for sub in subs]
    reqs = []
    for i, drawn in enumerate(sets, 1):
        for sc in (drawn_scenario(lab, drawn), baseline_scenario(lab, drawn)):
            sc.name += f"-sizes{i}"
            reqs.append(ctx.request(lab, scenario=sc))
    with ThreadPoolExecutor(2) as pool:     # independent: boot two at once
        runs = list(pool.map(run_checked, reqs))
    pairs = list(zip(runs[::2], runs[1::2]))
    grades = []
    for sub, a in zip(subs, answers):
        g = Grade(lab.number, sub.name, runs=[str(r.run_dir) for r in runs],
                  record={"drawn": labdraw.text(sets)})
        for r in runs:
            if r.exit_code != ExitCode.OK or event_ints(r, event) is None:
                g.error = (f"the measuring run {r.run_dir} failed (exit {int(r.exit_code)}): "
                           f"{r.problems[:2]}")
        for k in keys:
            oks, said = [], []
            for i, (drawn, (res, base)) in enumerate(zip(sets, pairs), 1):
                total = (event_ints(res, event) or {}).get(k)
                noise = (event_ints(base, event) or {}).get(k)
                want = total - noise if total is not None and noise is not None else None
                oks.append(labanswers.prediction_right(
                    a, k, want, lab.tolerance.get(k, TOLERANCE), drawn))
                got = value_text(labanswers.predicted(a, k, drawn))
                said.append(f"sizes {i}: {got}, measured {want} ({total} less {noise} "
                            "of the baseline run)")
            head = a.error or f"predicted {a.values.get(k)!r}"
            g.checks.append(check(lab, k, all(oks), f"{head}; " + "; ".join(said),
                                  form(labanswers.form_problems(a, [k], names=sets[0]))))
        grades.append(g)
    return grades


def grade_lab2(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    return grade_predictions(lab, subs, ctx)


def grade_lab5(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    return grade_predictions(lab, subs, ctx)


def choice_check(lab: Lab, name: str, a: labanswers.Answers,
                 offered: dict[str, tuple[str, ...]]) -> Check:
    """A multiple-choice check: its points shared among the questions of
    OFFERED, graded against the key (answer_key()).  The student edition
    has no key: the check is earned 0 and only its form is shown (it is
    sealed there anyway: graded by the instructor)."""
    key = answer_key(lab, offered)
    shown = form(labanswers.form_problems(a, choices=offered))
    if key is None:
        return scored(lab, name, 0, "graded by the instructor (no key in the student edition)",
                      shown)
    right = labanswers.right_choices(a, key)
    wrong = [k for k in key if k not in right]
    detail = a.error or (f"{len(right)}/{len(key)} right"
                         + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    return scored(lab, name, labanswers.share(lab.points[name], len(right), len(key)),
                  detail, shown)


def answer_key(lab: Lab, offered: dict[str, tuple[str, ...]]) -> dict[str, str] | None:
    """The key of LAB's choice questions: the reference answers file's
    answers (the lab file named answers.toml), so the key lives in one
    place, which the student edition leaves out (None there).  LabError if
    the reference does not answer each question with a word offered."""
    if is_student_edition():
        return None
    ref = next((paths.TOP / f.solution for f in lab.files if f.name == "answers.toml"), None)
    if ref is None:
        raise LabError(f"lab {lab.number}: no reference answers.toml to grade choices from")
    a = labanswers.read(ref)
    bad = labanswers.form_problems(a, choices=offered)
    if bad:
        raise LabError(f"lab {lab.number}: the reference {ref} is no key: {'; '.join(bad)}")
    return {k: labanswers.word(a.values[k]) for k in offered}


# ---- lab 3: the sampled hash and probation -------------------------------------

KUNIT_CASES = 8


def grade_lab3(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    grades = []
    for sub in subs:
        g = Grade(lab.number, sub.name)
        res = run_checked(ctx.request(lab, sub))
        g.runs.append(str(res.run_dir))
        rep = ktap.parse(res.console.lines)
        passed = {r.name for r in rep.passed if r.name.startswith("pksm_test_")}
        failed = [r.name for r in rep.failed]
        for name, case in (("kunit-hash", "pksm_test_hash"),
                           ("kunit-probation", "pksm_test_probation")):
            ok = case in passed
            g.checks.append(check(lab, name, ok, f"{case}: " + (
                "passed" if ok else "FAILED" if case in failed else "not reported")))
        g.checks.append(check(lab, "kunit-all", len(passed) == KUNIT_CASES and not failed,
                              f"{len(passed)}/{KUNIT_CASES} cases passed, failed: {failed}"))
        frac = res.summary.get("saved_fraction")
        ok = (res.summary.get("verify") == "ok" and isinstance(frac, (int, float))
              and frac >= 0.9 and clean(res)[0])
        g.checks.append(check(lab, "merge", ok, f"saved/achievable {frac}, memory verified: "
                              f"{res.summary.get('verify')}, {clean(res)[1]}"))
        grades.append(g)
    return grades


# ---- lab 4: the keyhole reference -------------------------------------------------

LAB4_OFFERED = {"mapping_holds": ("anon_vma", "node", "address_space"),
                "stale_after_free": ("yes", "no"), "count_without_check": ("less", "same", "more"),
                "second_check_for": ("speed", "reuse", "locking")}
LAB4_TRUTH = paths.TOP / "labs" / "04-keyhole" / "kpages.c"
LAB4_LIVE = 256         # the live set's KSM pages: a recount of nothing cannot pass
LAB4_SLACK = 16         # pages the shells' own merged pages may map or break between reads
# Stale nodes whose frame holds another node's KSM page (lab4reuse): each
# adds one to a census that checks only folio_test_ksm(), so more than
# the slack tells that check from the ->mapping one.
LAB4_REUSED = 2 * LAB4_SLACK


def census_agrees(census: dict[str, int], truth: dict[str, int] | None,
                  prefix: str = "") -> bool:
    """The census recount (shared, sharing; PREFIX stale_) is what the frames say."""
    return truth is not None and all(
        f"{prefix}{k}" in census and k in truth
        and abs(census[f"{prefix}{k}"] - truth[k]) <= LAB4_SLACK for k in ("shared", "sharing"))


def lab4_stale_check(ev: dict[str, int], stale: dict[str, int] | None,
                     released: dict[str, int] | None,
                     reuse: dict[str, int] | None) -> tuple[bool, str]:
    """stale-not-counted: with the stale nodes in the tree (of which at
    least LAB4_REUSED name a frame that holds another node's KSM page:
    REUSE, lab/kpages --migrate) and once they are released, the census
    recount through pksm_node_folio() equals the KSM pages counted from the
    frames (lab/kpages), and the live set is there."""
    window = ev.get("stale_nodes", 0) - ev.get("nodes", 0)
    live = min((stale or {}).get("shared", 0), (released or {}).get("shared", 0))
    reused = (reuse or {}).get("reused", 0)
    ok = (window >= 1000 and live >= LAB4_LIVE and reused >= LAB4_REUSED
          and census_agrees(ev, stale, "stale_") and census_agrees(ev, released))

    def pair(d: dict[str, int] | None, p: str = "") -> str:
        return f"{(d or {}).get(p + 'shared')}/{(d or {}).get(p + 'sharing')}"
    return ok, (f"with {window} stale nodes in the tree, {reused} of them naming a frame "
                f"that holds another node's KSM page: census shared/sharing "
                f"{pair(ev, 'stale_')}, frames {pair(stale)}; once released: census "
                f"{pair(ev)}, frames {pair(released)} (need equal within {LAB4_SLACK}, "
                f"at least {LAB4_LIVE} KSM pages and {LAB4_REUSED} such nodes)")


def grade_lab4(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    grades = []
    for sub in subs:
        a = labanswers.read(sub.files["answers.toml"])
        g = Grade(lab.number, sub.name)
        truth = LAB_BUILD / "tools" / "4" / safe_name(sub.name) / "kpages"
        compile_guest(LAB4_TRUTH, truth)
        res = run_checked(ctx.request(lab, sub), {"lab/kpages": truth})
        g.runs.append(str(res.run_dir))
        ev = event_ints(res, "lab4") or {}
        ok, why = lab4_stale_check(ev, event_ints(res, "lab4truth_stale"),
                                   event_ints(res, "lab4truth"), event_ints(res, "lab4reuse"))
        g.checks.append(check(lab, "stale-not-counted", ok, why))
        ok, why = clean(res)
        g.checks.append(check(lab, "debug-silent", ok and bool(ev), why))
        g.checks.append(choice_check(lab, "answers", a, LAB4_OFFERED))
        grades.append(g)
    return grades


# ---- lab 6: the timing side channel --------------------------------------------------

def compile_guest(src: Path, out: Path) -> None:
    """A static guest program, as rootfs/Makefile builds them; LabError if it does not build."""
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-static",
                        "-I", str(paths.TOP / "rootfs" / "src"), "-o", str(out), str(src), "-lm"],
                       capture_output=True, text=True)
    if r.returncode:
        raise LabError(f"{src} does not compile (gcc -Wall -Wextra -Werror):\n"
                       + r.stderr[-2000:])


LAB6_OFFERED: dict[str, tuple[str, ...]] = {k: ("yes", "no")
                                            for k in ("optout_closes", "probation_closes")}
LAB6_PAGES = 256
LAB6_GRADER = paths.TOP / "labs" / "06-timing" / "timing.c"     # the grader's program
LAB6_SECRET = "lab/secret"      # in the run's share: "SEED TOKEN", root's alone


def hex_bits(s: str, n: int) -> list[int] | None:
    """timing.c's bit string: digit k holds pages 4k..4k+3, page 4k lowest."""
    if len(s) != (n + 3) // 4 or not all(c in "0123456789abcdef" for c in s):
        return None
    return [(int(s[i // 4], 16) >> (i % 4)) & 1 for i in range(n)]


def splitmix(z: int) -> int:
    """timing.c's mix()."""
    m = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & m
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & m
    return z ^ (z >> 31)


def victim_holds(seed: int, n: int) -> list[int]:
    """The victim's secret: 1 for each candidate page it holds a copy of."""
    return [splitmix(seed ^ i) & 1 for i in range(n)]


def lab6_why_not(events: list[dict[str, str]], seed: int, token: str) -> str:
    """Why the run's PKSMTB-EVENT lab6 lines cannot be graded ("" if they
    can): exactly one, printed by the grader's program (its TOKEN, drawn
    with the seed and readable by root alone in the guest), with the
    SEED drawn and the classifier's guesses."""
    forged = [e for e in events if e.get("token") != token]
    if forged:
        return (f"{len(forged)} PKSMTB-EVENT lab6 line(s) not printed by the grader's program "
                "(without its token): nothing is graded from this run")
    if len(events) != 1:
        return f"{len(events)} PKSMTB-EVENT lab6 lines from the grader's program, not one"
    fields = events[0]
    if fields.get("seed") != str(seed):
        return f"the program ran with seed {fields.get('seed')}, not the {seed} drawn"
    if fields.get("classifier") != "ok":
        return (f"the classifier gave no guesses ({fields.get('classifier')}; what it wrote "
                "to its standard error is in the console, after 'timing: classify said:')")
    return ""


def lab6_checks(lab: Lab, events: list[dict[str, str]], seed: int, token: str) -> list[Check]:
    """accuracy and both-classes, counted here from the guesses and the
    truth that the grader's program printed (lab6_why_not()).  The truth
    must be a subset of the victim's secret for the seed drawn: a page the
    victim does not hold cannot have merged."""
    why = lab6_why_not(events, seed, token)
    fields = events[0] if len(events) == 1 else {}
    n = int(fields["pages"]) if fields.get("pages", "").isdigit() else 0
    guess, truth = hex_bits(fields.get("guess", ""), n), hex_bits(fields.get("truth", ""), n)
    if why:
        pass
    elif guess is None or truth is None or n < 100:
        why = f"no usable PKSMTB-EVENT lab6 (pages={n}, guess and truth one bit a page)"
    elif any(t > h for t, h in zip(truth, victim_holds(seed, n))):
        why = "the program's truth is not the victim's: pages merged that it does not hold"
    if why or guess is None or truth is None:
        return [check(lab, "accuracy", False, why), check(lab, "both-classes", False, why)]
    right = sum(g == t for g, t in zip(guess, truth))
    mt = sum(truth)
    mr = sum(g == t == 1 for g, t in zip(guess, truth))
    ut, ur = n - mt, right - mr
    both = mt > 0 and ut > 0 and mr / mt >= 0.7 and ur / ut >= 0.7
    return [check(lab, "accuracy", right / n >= 0.8,
                  f"{right}/{n} pages classified right ({right / n:.0%}; need 80 %)"),
            check(lab, "both-classes", both,
                  f"merged {mr}/{mt}, unmerged {ur}/{ut} right (need 70 % each)")]


def grade_lab6(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    """The seed (the victim's secret) and a token are drawn here, for each
    submission, and the seed recorded in its grade.  The grader's program
    (LAB6_GRADER, never the student's) measures, runs the student's
    classifier unprivileged and prints the one line graded, with the
    token; the classifier must be the skeleton's but for classify()
    (frame_problem())."""
    grades = []
    for sub in subs:
        out = LAB_BUILD / "6" / safe_name(sub.name)
        classifier, grader = out / "classify", out / "timing"
        try:
            compile_guest(sub.files["classify.c"], classifier)
        except LabError as e:
            grades.append(failed_all(lab, sub.name, str(e)))
            continue
        compile_guest(LAB6_GRADER, grader)
        a = labanswers.read(sub.files["answers.toml"])
        seed, token = secrets.randbelow(1 << 40), secrets.token_hex(16)
        g = Grade(lab.number, sub.name, record={"seed": seed})
        why = frame_problem(lab, sub)
        if why:
            g.checks += [check(lab, name, False, why) for name in ("accuracy", "both-classes")]
        else:
            secret = out / "secret"
            secret.unlink(missing_ok=True)
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{seed} {token}\n")
            try:
                res = run_checked(ctx.request(lab, sub), {"lab/timing": grader,
                                                          "lab/classify": classifier,
                                                          LAB6_SECRET: secret})
            finally:
                secret.unlink(missing_ok=True)
            g.runs.append(str(res.run_dir))
            g.checks += lab6_checks(lab, [e.fields for e in res.console.events_named("lab6")],
                                    seed, token)
        g.checks.append(choice_check(lab, "answers", a, LAB6_OFFERED))
        grades.append(g)
    return grades


# ---- lab 7: dedup before zswap ---------------------------------------------------

LAB7_PROGRAM = paths.TOP / "labs" / "07-zswap" / "pageout.c"     # the grader's program
LAB7_PARAMS = "lab/params"      # in the run's share: the program's options, drawn
LAB7_KINDS = ("zero", "library", "twin", "unique", "seen", "cycled")
LAB7_DRAW = (48, 160)           # pages of each kind, drawn at grading time
# What reclaim did with a page of a kind, as the run's figures for that
# kind show it, a page each: (offered to PKSM, merged with the zero page,
# merged into a KSM page, compressed and stored by zswap, marked
# zero-filled in the swap's zero map).
LAB7_FIGURES = ("offered", "zero", "stable", "stored", "zerofilled")
LAB7_OUTCOMES: dict[str, tuple[int, ...]] = {
    "zero": (1, 1, 0, 0, 0), "merged": (1, 0, 1, 0, 0), "kept": (1, 0, 0, 0, 0),
    "stored": (1, 0, 0, 1, 0), "unasked": (0, 0, 0, 1, 0), "zeromap": (0, 0, 0, 0, 1)}
# Each answer names a page-out of the run (round, kind); each check its answers.
LAB7_ASKED = {"on_zero": ("on", "zero"), "on_library": ("on", "library"),
              "on_twin": ("on", "twin"), "on_unique": ("on", "unique"),
              "on_seen": ("on", "seen"), "cycled": ("on", "cycled"),
              "off_zero": ("off", "zero"), "off_library": ("off", "library")}
LAB7_CHECKS = {"hook-on": ("on_zero", "on_library", "on_twin", "on_unique"),
               "limits": ("on_seen", "cycled"), "hook-off": ("off_zero", "off_library")}
# The reasoning questions, graded from the reference answers file (answer_key()).
LAB7_OFFERED: dict[str, tuple[str, ...]] = {"zero_saves": ("compression", "slot", "nothing"),
                                            "under_pressure": ("hook", "pksmd")}
# The kinds both rounds page out: their compress calls, hook on against off.
LAB7_BOTH = ("zero", "library", "twin", "unique")


def lab7_draw() -> dict[str, int]:
    """The page counts of each kind and the contents' seed, drawn afresh
    (twins come in pairs)."""
    lo, hi = LAB7_DRAW
    d = {k: lo + secrets.randbelow(hi - lo + 1) for k in LAB7_KINDS}
    d["twin"] -= d["twin"] % 2
    d["seed"] = secrets.randbelow(1 << 40)
    return d


def lab7_options(drawn: dict[str, int]) -> str:
    return " ".join(f"--{k} {v}" for k, v in drawn.items())


def lab7_tol(pages: int) -> int:
    """Pages a figure may be off: 5 %, at least 1."""
    return max(1, pages // 20)


def lab7_outcome(ev: dict[str, int], pages: int) -> str | None:
    """The outcome word whose figures ev shows for its PAGES pages (each
    within 5 %, at least 1), or None if none does."""
    tol = lab7_tol(pages)
    got = [w for w, vec in LAB7_OUTCOMES.items()
           if all(abs(ev.get(f, -1) - pages * v) <= tol for f, v in zip(LAB7_FIGURES, vec))]
    return got[0] if len(got) == 1 else None


def lab7_events(res: runner.RunResult, name: str = "lab7") -> dict[tuple[str, str], dict[str, int]]:
    """The program's events NAME by (round, kind), their figures."""
    return {(e.fields.get("round", ""), e.fields.get("kind", "")): e.ints()
            for e in res.console.events_named(name)}


def lab7_truth(res: runner.RunResult, drawn: dict[str, int]
               ) -> tuple[dict[str, str], dict[str, str], str]:
    """What the reference's run measured: the outcome of each asked
    page-out (answer: word), each page-out's figures as text (answer:
    text), and why the run cannot be graded ("" if it can).  The program
    must have run with the counts drawn, verified every page, and each
    page-out must show one outcome."""
    evs = lab7_events(res)
    done = res.console.events_named("lab7done")
    if res.exit_code != ExitCode.OK or not done or done[-1].fields.get("verified") != "ok":
        return {}, {}, (f"the measuring run {res.run_dir} failed (exit {int(res.exit_code)}, "
                        f"lab7done {done[-1].fields if done else None}): {res.problems[:2]}")
    truth, shown = {}, {}
    for name, (rnd, kind) in LAB7_ASKED.items():
        ev = evs.get((rnd, kind))
        if ev is None:
            return {}, {}, f"the measuring run {res.run_dir} has no page-out {rnd}/{kind}"
        if ev.get("pages") != drawn[kind]:
            return {}, {}, (f"the page-out {rnd}/{kind} had {ev.get('pages')} pages, "
                            f"not the {drawn[kind]} drawn")
        word = lab7_outcome(ev, drawn[kind])
        shown[name] = (f"{drawn[kind]} pages: " + ", ".join(f"{f} {ev.get(f)}"
                                                            for f in LAB7_FIGURES))
        if word is None:
            return {}, {}, (f"the page-out {rnd}/{kind} shows no one outcome "
                            f"({shown[name]}): the run or the lab needs a look")
        truth[name] = word
    return truth, shown, ""


def lab7_checks(lab: Lab, a: labanswers.Answers, truth: dict[str, str],
                shown: dict[str, str]) -> list[Check]:
    """A check a group of answers (LAB7_CHECKS), a point shared per answer:
    right if it names the outcome the reference's run measured for its
    page-out."""
    out = []
    offered = tuple(LAB7_OUTCOMES)
    for name, asked in LAB7_CHECKS.items():
        form_ = form(labanswers.form_problems(a, choices={k: offered for k in asked}))
        right = [k for k in asked
                 if truth and not a.error and labanswers.word(a.values.get(k)) == truth[k]]
        detail = a.error or "; ".join(
            f"{k}: said {a.values.get(k)!r}, measured {truth.get(k)!r} ({shown.get(k)})"
            for k in asked)
        out.append(scored(lab, name, labanswers.share(lab.points[name], len(right), len(asked)),
                          detail, form_))
    return out


def lab7_code_checks(lab: Lab, res: runner.RunResult, drawn: dict[str, int]) -> list[Check]:
    """The code checks, from the run of the submission's own kernel: what
    each kind's page-out did, read from the frames (where its pages are
    afterwards), zswap's and the kernel's counters (compress calls,
    zero-filled pages, slots) and pksmd's rescan list, never from the
    counters the decision itself keeps; and its pages' contents, checked
    after the seen pages' partners were written.

    merged: the zero pages map the zero page and the library pages a KSM
    page, none stored, none given a slot (half the points a kind); kept:
    the seen pages stay on frames of their own, first in pksmd's line, not
    stored; saving: the twins and unique pages are stored (every page
    compressed, as zswap alone would), and against swap_dedup = 0 in the
    same run the round saved the library's compress calls (the pool's
    bytes are shown)."""
    evs, bad = lab7_events(res), lab7_events(res, "lab7verify")
    healthy, why = clean(res)
    names = ("merged", "kept", "saving")
    absent = 1 << 40         # a figure missing: more than any page count

    def ev(kind: str, rnd: str = "on") -> dict[str, int] | None:
        e = evs.get((rnd, kind))
        return e if e is not None and e.get("pages") == drawn[kind] else None

    missing = [f"{r}/{k}" for r in ("on", "off") for k in (LAB7_KINDS[:5] if r == "on"
                                                          else LAB7_BOTH) if ev(k, r) is None]
    if missing or not healthy:
        because = (f"the run {res.run_dir} (exit {int(res.exit_code)}) has no page-out "
                   f"{', '.join(missing)} of the counts drawn: {'; '.join(res.problems[:2])}"
                   if missing else why)
        return [check(lab, n, False, because) for n in names]

    def verified(kind: str) -> int:
        return bad.get(("on", kind), {}).get("bad", -1)

    def onto(kind: str, where: str, what: str) -> tuple[bool, str]:
        e, n = ev(kind) or {}, drawn[kind]
        tol = lab7_tol(n)
        ok = (e.get(where, 0) >= n - tol and e.get("compress", absent) <= tol
              and e.get("zerofilled", absent) <= tol and e.get("slots", absent) <= tol
              and verified(kind) == 0)
        return ok, (f"{kind} pages: {e.get(where)}/{n} on {what}, {e.get('compress')} "
                    f"compressed, {e.get('zerofilled')} zero-filled, {e.get('slots')} slots, "
                    f"{verified(kind)} changed")

    zero_ok, zero_said = onto("zero", "mapzero", "the zero page")
    lib_ok, lib_said = onto("library", "mapksm", "KSM pages")
    half = lab.points["merged"] // 2
    out = [scored(lab, "merged", half * zero_ok + (lab.points["merged"] - half) * lib_ok,
                  f"{zero_said}; {lib_said} (need every page, within 5 %, nothing stored)")]

    s, n = ev("seen") or {}, drawn["seen"]
    tol = lab7_tol(n)
    own = s.get("resident", 0) - s.get("foreign", 0)
    ok = (own >= n - tol and s.get("foreign", -1) == 0 and s.get("rescan", 0) >= n - tol
          and s.get("compress", absent) <= tol and s.get("slots", absent) <= tol
          and verified("seen") == 0)
    out.append(check(lab, "kept", ok,
                     f"seen pages: {own}/{n} resident on frames of their own "
                     f"({s.get('foreign')} on a partner's frame), {s.get('rescan')} put first "
                     f"in pksmd's line, {s.get('compress')} compressed, {s.get('slots')} slots, "
                     f"{verified('seen')} changed once their partners were written "
                     "(need every page, within 5 %)"))

    stored = []
    ok = True
    for kind in ("twin", "unique"):
        e, n = ev(kind) or {}, drawn[kind]
        tol = lab7_tol(n)
        ok = ok and (e.get("swapped", 0) >= n - tol and abs(e.get("compress", -1) - n) <= tol
                     and verified(kind) == 0)
        stored.append(f"{e.get('swapped')}/{n} {kind} pages stored "
                      f"({e.get('compress')} compressed)")
    on = sum((ev(k) or {}).get("compress", 0) for k in LAB7_BOTH)
    off = sum((ev(k, "off") or {}).get("compress", 0) for k in LAB7_BOTH)
    pool_on = sum((ev(k) or {}).get("pool", 0) for k in LAB7_BOTH)
    pool_off = sum((ev(k, "off") or {}).get("pool", 0) for k in LAB7_BOTH)
    lib = drawn["library"]
    ok = ok and abs((off - on) - lib) <= lab7_tol(lib)
    ratio = f" ({pool_on / pool_off:.2f}x)" if pool_off > 0 else ""
    out.append(check(lab, "saving", ok,
                     f"{', '.join(stored)}; compress calls {on} with swap_dedup = 1 against "
                     f"{off} with 0 (zswap alone) for the same kinds and counts: {off - on} "
                     f"saved (need the {lib} library pages', within 5 %); pool "
                     f"{pool_on / 1024:.0f} KiB against {pool_off / 1024:.0f} KiB{ratio}"))
    return out


def lab7_files(drawn: dict[str, int], where: Path) -> dict[str, Path]:
    """The run's share: the grader's program, built from this tree, and its
    options with the counts DRAWN (files under WHERE)."""
    prog, params = where / "pageout", where / "params"
    compile_guest(LAB7_PROGRAM, prog)
    params.write_text(lab7_options(drawn) + "\n")
    return {"lab/pageout": prog, LAB7_PARAMS: params}


def lab7_run(req: runner.RunRequest, drawn: dict[str, int]) -> runner.RunResult:
    """Lab 7's measuring run with the counts DRAWN: the grader's program on
    REQ's kernel."""
    where = LAB_BUILD / "tools" / "7"       # not build/lab/7: lab 7's lab tree
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        return run_checked(req, lab7_files(drawn, Path(tmp)))


@dataclass
class Lab7Key:
    """One grading's counts DRAWN and, in instructor mode, the run of the
    reference (this checkout's own build) with them: the key of the
    page-out answers (TRUTH, SHOWN), or WHY it cannot be one."""
    drawn: dict[str, int]
    run: runner.RunResult | None = None
    truth: dict[str, str] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    why: str = ""


def lab7_key(lab: Lab, ctx: Ctx) -> Lab7Key:
    """The counts drawn; the reference's run only where answers are graded
    (instructor mode; the student edition has no reference to boot)."""
    key = Lab7Key(lab7_draw())
    if ctx.instructor and not is_student_edition():
        key.run = lab7_run(ctx.request(lab), key.drawn)    # this checkout's build
        key.truth, key.shown, key.why = lab7_truth(key.run, key.drawn)
    return key


def grade_lab7(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    """One run a submission, on its own kernel, grades its code; the
    answers are graded against the reference's run (ctx.lab7, made once
    for every submission: grade()), with the same counts, drawn at grading
    time and recorded in each grade.  The reference itself is graded from
    that one run."""
    key = ctx.lab7 or lab7_key(lab, ctx)
    grades = []
    for sub in subs:
        own = key.run is not None and sub.kbuild is not None and \
            sub.kbuild.resolve() == paths.KBUILD.resolve()
        res = key.run if own and key.run else lab7_run(ctx.request(lab, sub), key.drawn)
        runs = [str(res.run_dir)] + ([str(key.run.run_dir)] if key.run and not own else [])
        g = Grade(lab.number, sub.name, runs=runs, error=key.why,
                  record={"drawn": lab7_options(key.drawn)})
        g.checks += lab7_code_checks(lab, res, key.drawn)
        a = labanswers.read(sub.files["answers.toml"])
        if key.run is None:
            # student mode: the answers' form, nothing graded
            g.checks += [check(lab, k, False, "not graded (student mode)",
                               form(labanswers.form_problems(a, numbers, choices)))
                         for k, numbers, choices in answer_forms(lab)]
        else:
            g.checks += lab7_checks(lab, a, key.truth, key.shown)
            g.checks.append(choice_check(lab, "answers", a, LAB7_OFFERED))
        grades.append(g)
    return grades


# ---- lab 8: merge domains -------------------------------------------------------

# The grader's programs, built from this tree (never from a submission).
LAB8_PROGRAMS = {"lab/domains": paths.TOP / "rootfs" / "src" / "domains.c",
                 "lab/sidechannel": paths.TOP / "rootfs" / "src" / "sidechannel.c"}
# lab8-run.toml's options: groups of processes, each holding PAGES pages
# of one content and ZERO zero pages; the attacker's calibration pairs.
LAB8_GROUPS, LAB8_PROCS, LAB8_PAGES, LAB8_ZERO, LAB8_CAL = 3, 2, 256, 32, 32
LAB8_ISOLATING = ("uid", "cgroup", "session")
# The domains the groups fall into in each mode: groups 0 and 2 share a uid.
LAB8_DOMAINS = {"all": 1, "uid": 2, "cgroup": 3, "session": 3}
LAB8_OFFERED: dict[str, tuple[str, ...]] = {
    "zero_across": ("public", "unwritable", "rare"),
    "setuid_keeps": ("unmerged", "kept", "copied"),
    "mode_change": ("unmerged", "kept", "refiled")}


def lab8_modes(res: runner.RunResult) -> dict[str, dict[str, int]]:
    """The domains program's figures, mode by mode (its last event a mode)."""
    return {e.fields.get("mode", ""): e.ints() for e in res.console.events_named("domains")}


def lab8_isolated(modes: dict[str, dict[str, int]]) -> tuple[bool, str]:
    """isolated: in each isolating mode no KSM frame is mapped by workers of
    two of its domains, judged over pages that merged (a mode where nothing
    merged shows nothing to judge)."""
    ok, said = True, []
    for m in LAB8_ISOLATING:
        d = modes.get(m)
        if d is None:
            ok = False
            said.append(f"{m}: no report")
            continue
        good = d.get("ksm", 0) > 0 and d.get(f"cross_{m}", -1) == 0 and d.get("cross", -1) == 0
        ok = ok and good
        said.append(f"{m}: {d.get(f'cross_{m}')} of {d.get('frames')} KSM frames mapped "
                    f"across {m}s" + ("" if d.get("ksm", 0) > 0 else
                                      " (nothing merged: nothing to judge)"))
    return ok, "; ".join(said) + " (need 0, with pages merged)"


def lab8_merging(modes: dict[str, dict[str, int]], verify: Any) -> tuple[bool, str]:
    """merging-kept: in every mode every content page maps a KSM page and
    every zero page the zero page (in every group), and a domain's copies of
    a content share one frame: at most as many frames as domains times
    pages; the pages verified."""
    want_ksm = LAB8_GROUPS * LAB8_PROCS * LAB8_PAGES
    want_zero = LAB8_GROUPS * LAB8_PROCS * LAB8_ZERO
    ok, said = verify == "ok", []
    for m, n in LAB8_DOMAINS.items():
        d = modes.get(m)
        if d is None:
            ok = False
            said.append(f"{m}: no report")
            continue
        good = (d.get("ksm") == want_ksm and d.get("zero") == want_zero
                and d.get("zero_groups") == LAB8_GROUPS
                and 0 < d.get("frames", 0) <= n * LAB8_PAGES)
        ok = ok and good
        said.append(f"{m}: {d.get('ksm')}/{want_ksm} pages merged on {d.get('frames')} frames "
                    f"(at most {n * LAB8_PAGES}), zero {d.get('zero')}/{want_zero}")
    return ok, "; ".join(said) + f"; memory verified: {verify}"


def lab8_side_channel(res: runner.RunResult) -> tuple[bool, str]:
    """side-channel: in each isolating mode, every round, none of the
    attacker's candidate copies maps a KSM page (merged=0) while its own
    calibration pairs all merged (inside its domain); in all the channel is
    there (some merged).  The attacker's accuracy is shown, not graded: it
    is timed, and the host's load moves it."""
    rounds: dict[str, list[dict[str, int]]] = {}
    for e in res.console.events_named("sidechannel"):
        rounds.setdefault(e.fields.get("mode", ""), []).append(e.ints())
    ok, said = True, []
    for m in ("all", *LAB8_ISOLATING):
        rs = rounds.get(m, [])
        if not rs:
            ok = False
            said.append(f"{m}: no report")
            continue
        merged = [r.get("merged", -1) for r in rs]
        pairs = [r.get("cal_pairs", -1) for r in rs]
        trials = sum(r.get("pages", 0) for r in rs)
        acc = sum(r.get("correct", 0) for r in rs) / trials if trials else 0.0
        if m == "all":
            good = all(x > 0 for x in merged)
        else:
            good = all(x == 0 for x in merged) and all(p == 2 * LAB8_CAL for p in pairs)
        ok = ok and good
        said.append(f"{m}: accuracy {acc:.2f} over {trials}, candidates merged {merged}, "
                    f"own pairs merged {pairs}/{2 * LAB8_CAL}")
    return ok, "; ".join(said) + " (a coin scores 0.5)"


def grade_lab8(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    """One run a submission, on its own kernel: the domains program's
    frame counts grade isolated and merging-kept, the side channel's
    rounds side-channel."""
    grades = []
    for sub in subs:
        out = LAB_BUILD / "tools" / "8" / safe_name(sub.name)
        files = {rel: out / Path(rel).name for rel in LAB8_PROGRAMS}
        for rel, src in LAB8_PROGRAMS.items():
            compile_guest(src, files[rel])
        a = labanswers.read(sub.files["answers.toml"])
        g = Grade(lab.number, sub.name)
        res = run_checked(ctx.request(lab, sub), files)
        g.runs.append(str(res.run_dir))
        modes = lab8_modes(res)
        healthy, why = clean(res)
        for name, (ok, detail) in (("isolated", lab8_isolated(modes)),
                                   ("merging-kept", lab8_merging(modes,
                                                                 res.summary.get("verify")))):
            g.checks.append(check(lab, name, ok and healthy,
                                  detail + ("" if healthy else f"; {why}")))
        ok, detail = lab8_side_channel(res)
        g.checks.append(check(lab, "side-channel", ok and healthy,
                              detail + ("" if healthy else f"; {why}")))
        g.checks.append(choice_check(lab, "answers", a, LAB8_OFFERED))
        grades.append(g)
    return grades


def measure(lab: Lab, ctx: Ctx, work: Path = WORK
            ) -> tuple[runner.RunResult, dict[str, int], list[str]]:
    """A lab's measuring run booted for the student to read, nothing
    graded (lab 7: on the student's own kernel, WORK/7's swap.c built in
    its lab tree, the counts drawn afresh, as at grading), the counts and
    the notes of tree_files().  LabError for a lab that has none (its
    lab-check boots what it needs), for missing work or a swap.c that does
    not build."""
    if lab.number != 7:
        raise LabError(f"lab {lab.number} has no measuring run of its own: "
                       f"make lab-check LAB={lab.number} boots what it needs")
    d = work / str(lab.number)
    if not d.is_dir():
        raise LabError(f"no {d}: run 'make lab LAB={lab.number}' first")
    sub = Submission(str(d), submission_files(lab, d))
    root = LAB_BUILD / str(lab.number)
    notes = lab_tree(lab, sub.files, root)
    sub.kbuild = build_lab_kernel(lab, root)
    drawn = lab7_draw()
    return lab7_run(ctx.request(lab, sub), drawn), drawn, notes


GRADERS: dict[int, Callable[[Lab, list[Submission], Ctx], list[Grade]]] = {
    1: grade_lab1, 2: grade_lab2, 3: grade_lab3, 4: grade_lab4, 5: grade_lab5, 6: grade_lab6,
    7: grade_lab7, 8: grade_lab8}


# Labs whose runs do not depend on the submission: one set of runs grades all.
SHARED_RUNS = frozenset({2, 5})


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name.strip("/")) or "_"


def grade(lab: Lab, subs: list[Submission], ctx: Ctx,
          build_root: Path | None = None, jobs: int = 1) -> list[Grade]:
    """Grade submissions, in their order; a submission that does not build
    gets every check failed and its reason.  Kernel labs build each in turn
    in BUILD_ROOT's lab tree (default build/lab/N).  JOBS > 1 grades that
    many submissions at once, each worker with its own lab tree
    (BUILD_ROOT-wK) and run directories (RESULTS/<submission>/)."""
    if lab.number in SHARED_RUNS:
        return GRADERS[lab.number](lab, subs, ctx)
    if lab.number == 7 and ctx.lab7 is None:
        # one draw and one run of the reference for every submission
        ctx = replace(ctx, lab7=lab7_key(lab, ctx))
    root0 = build_root or LAB_BUILD / str(lab.number)

    def one(sub: Submission, worker: int) -> list[Grade]:
        c = ctx if jobs <= 1 and not ctx.sandbox else replace(
            ctx, results=(ctx.results or paths.RUNS) / safe_name(sub.name))
        if ctx.sandbox:
            (c.results or paths.RUNS).mkdir(parents=True, exist_ok=True)
        if not (lab.kernel_lab and sub.kbuild is None):
            return GRADERS[lab.number](lab, [sub], c)
        # A sandboxed submission gets a lab tree of its own, removed after:
        # its kernel could have written anything into its build directory.
        root = (root0.with_name(f"{root0.name}-sandbox") / safe_name(sub.name)
                if ctx.sandbox else root0 if jobs <= 1
                else root0.with_name(f"{root0.name}-w{worker}"))
        try:
            if ctx.sandbox:
                shutil.rmtree(root, ignore_errors=True)
            notes: list[str] = []
            try:
                notes = lab_tree(lab, sub.files, root)
                sub.kbuild = build_lab_kernel(lab, root, ctx.sandbox)
            except LabError as e:
                grades = [failed_all(lab, sub.name, str(e))]
            else:
                grades = GRADERS[lab.number](lab, [sub], c)
            for g in grades:
                g.notes += notes
            return grades
        finally:
            if ctx.sandbox:
                shutil.rmtree(root, ignore_errors=True)

    if jobs <= 1 or len(subs) <= 1:
        return [g for sub in subs for g in one(sub, 0)]
    n = min(jobs, len(subs))

    def worker(k: int) -> list[tuple[int, list[Grade]]]:
        # a worker grades its share one after the other (one lab tree each)
        return [(i, one(subs[i], k)) for i in range(k, len(subs), n)]

    with ThreadPoolExecutor(n) as pool:
        done = [r for part in pool.map(worker, range(n)) for r in part]
    return [g for _, gs in sorted(done, key=lambda r: r[0]) for g in gs]


def solution(lab: Lab) -> Submission:
    """The reference, graded the same way: a kernel lab's is the solution's own build."""
    return Submission("solution", solution_files(lab),
                      paths.KBUILD if lab.kernel_lab else None)


def junit_path(json_path: Path) -> Path:
    """Where the grades' JUnit XML goes: beside the JSON, NAME.junit.xml."""
    return json_path.with_name(json_path.stem + ".junit.xml")


def write_results(grades: list[Grade], json_path: Path, csv_path: Path | None = None,
                  instructor: bool = True) -> None:
    """The grades as JSON (a student's: sealed checks left out), JUnit XML
    beside it (junit_path(); only what a student may see, in either mode)
    and CSV."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_suffix(".tmp")
    tmp.write_text(json.dumps([g.to_json(instructor) for g in grades], indent=2) + "\n")
    tmp.rename(json_path)
    lab = f"lab {grades[0].lab}" if grades else "lab"
    junit.write(junit_path(json_path), labreport.junit_suites(grades, instructor), lab)
    if csv_path:
        names = sorted({c.name for g in grades for c in g.checks})
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["lab", "submission", "score", "total", *names, "error", "notes",
                        "record"])
            for g in grades:
                got = {c.name: c.earned for c in g.checks}
                w.writerow([g.lab, g.submission, g.score, g.total,
                            *[got.get(n, "") for n in names], g.error.splitlines()[0]
                            if g.error else "", " | ".join(g.notes),
                            " | ".join(f"{k} {v}" for k, v in g.record.items())])

