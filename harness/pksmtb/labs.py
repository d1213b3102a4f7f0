"""Classroom labs (labs/NN-slug/): skeletons from marked solutions, the
student's working copy with its own kernel build, and the autograder.

A lab's reference solution lives in the tree; the regions a student writes
are marked (C: ``/* LAB 3 BEGIN: hint */`` ... ``/* LAB 3 END */``; gdb,
TOML, shell: ``# LAB 1 BEGIN: hint`` ... ``# LAB 1 END``).  The skeleton
replaces each region by a TODO line and the stub that labs/NN-slug/lab.toml
gives for it: code that compiles and does the wrong thing.

Kernel labs get a lab tree under build/lab/N/ laid out like a checkout
(linux/src: a hard-link copy of the prepared tree; pksm/: links to PKSM's
files, the student's files among them; build/kernel/BASE: a copy of the
solution's build directory with its paths moved), so the student's kernel
is an incremental build of the solution's: only the student's files and
the link are redone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import boot, config, gdb, kernel, ktap, paths, runner, trace
from .verdict import ExitCode

LABS = paths.TOP / "labs"
WORK = LABS / "work"
LAB_BUILD = paths.TOP / "build" / "lab"
JOBS = os.cpu_count() or 1

_MARK = re.compile(r"^(?P<indent>[ \t]*)(?P<open>/\*|#|//) LAB (?P<n>\d+) (?P<what>BEGIN|END)"
                   r"(?:: (?P<hint>.*?))?(?: \*/)?\s*$")


class LabError(Exception):
    """Bad input: an unknown lab, missing work, a submission that does not
    build, marked regions that do not pair up."""


# ---- labs and their files ---------------------------------------------------

@dataclass
class LabFile:
    solution: Path          # the reference, repo-relative
    name: str               # the student's copy, in the work directory
    stubs: list[str]        # one a marked region, in order

    @property
    def kernel_path(self) -> str | None:
        """Its path in the kernel tree, for a file of PKSM's (pksm/...)."""
        parts = self.solution.parts
        return "/".join(parts[1:]) if parts[0] == "pksm" else None


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
    files = [LabFile(Path(f["solution"]), str(f["name"]), [str(s) for s in f["stubs"]])
             for f in raw["file"]]
    return Lab(n, d.name[3:], str(raw["title"]), int(raw["minutes"]), str(raw["base"]),
               any(f.kernel_path for f in files), files,
               {str(k): int(v) for k, v in raw["points"].items()})


# ---- skeletons ------------------------------------------------------------------

def skeleton(text: str, n: int, stubs: list[str], where: str) -> str:
    """TEXT with every LAB N region replaced by a TODO line and its stub."""
    out: list[str] = []
    begin: re.Match[str] | None = None
    done = 0
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        m = _MARK.match(line.rstrip("\n"))
        if m and int(m["n"]) == n:
            if m["what"] == "BEGIN":
                if begin:
                    raise LabError(f"{where}:{lineno}: LAB {n} BEGIN inside a region")
                if not m["hint"]:
                    raise LabError(f"{where}:{lineno}: LAB {n} BEGIN needs a hint after ':'")
                begin = m
                continue
            if not begin:
                raise LabError(f"{where}:{lineno}: LAB {n} END without BEGIN")
            if done >= len(stubs):
                raise LabError(f"{where}: more LAB {n} regions than stubs ({len(stubs)})")
            ind, op = begin["indent"], begin["open"]
            out.append(f"{ind}{op} TODO (lab {n}): {begin['hint']}{' */' if op == '/*' else ''}\n")
            out += [f"{ind}{s}\n" if s.strip() else "\n" for s in stubs[done].splitlines()]
            done += 1
            begin = None
            continue
        if not begin:
            out.append(line)
    if begin:
        raise LabError(f"{where}: LAB {n} region not ended")
    if done != len(stubs) or not done:
        raise LabError(f"{where}: {done} LAB {n} regions, {len(stubs)} stubs")
    return "".join(out)


def skeleton_files(lab: Lab) -> dict[str, str]:
    return {f.name: skeleton((paths.TOP / f.solution).read_text(), lab.number, f.stubs,
                             str(f.solution)) for f in lab.files}


def prepare(lab: Lab, work: Path, force: bool = False, kernel_tree: bool = True) -> Path:
    """The student's working copy WORK/N: skeletons of the lab's files (and,
    for a kernel lab, its kernel tree).  Existing work is kept unless FORCE."""
    dest = work / str(lab.number)
    if dest.exists() and not force:
        raise LabError(f"{dest} exists (your work on lab {lab.number}); "
                       "remove it, or FORCE=1 to start again from the skeleton")
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

def _base_stamp(base_dir: Path) -> str:
    parts = [base_dir / ".frags-sum", paths.KSRC / ".pksmtb-stamp"]
    return "".join(p.read_text() if p.is_file() else "-" for p in parts)


def lab_tree(lab: Lab, files: dict[str, Path], root: Path) -> Path:
    """ROOT laid out as a checkout whose PKSM files are the solution's but
    for FILES (the student's): returns the kernel build directory."""
    base_dir = paths.KBUILD / lab.base
    if not (base_dir / "linux").is_file():
        raise kernel.BuildMissing(f"lab {lab.number} builds on {lab.base}: "
                                  f"run 'make kernel-{lab.base}' first")
    src, pk = root / "linux" / "src", root / "pksm"
    out = root / "build" / "kernel" / lab.base
    stamp = root / ".base-stamp"
    if not (stamp.is_file() and stamp.read_text() == _base_stamp(base_dir)):
        shutil.rmtree(root, ignore_errors=True)
        src.parent.mkdir(parents=True)
        out.parent.mkdir(parents=True)
        subprocess.run(["cp", "-al", str(paths.KSRC), str(src)], check=True)
        subprocess.run(["cp", "-a", str(base_dir), str(out.parent)], check=True)
        old_src, old_out = str(paths.KSRC), str(base_dir)
        # Kbuild's saved commands and dependencies name the tree and the
        # build directory by absolute path: move them to the lab's.
        listed = subprocess.run(["grep", "-rlIF", "-e", old_src, "-e", old_out, str(out)],
                                capture_output=True, text=True).stdout.split()
        for name in listed:
            p = Path(name)
            if p.is_symlink():
                continue
            text = p.read_text(errors="surrogateescape")
            p.write_text(text.replace(old_out, str(out)).replace(old_src, str(src)),
                         errors="surrogateescape")
        for link in out.rglob("*"):
            if link.is_symlink():
                t = os.readlink(link)
                if t.startswith((old_src, old_out)):
                    link.unlink()
                    link.symlink_to(t.replace(old_out, str(out)).replace(old_src, str(src)))
        stamp.write_text(_base_stamp(base_dir))
    # PKSM's files: the solution's, but the student's own, copied into
    # ROOT/pksm (sync_file(): a changed file gets a fresh mtime, so the
    # incremental build recompiles it whatever the submission's own
    # timestamps); the kernel tree links to those copies.
    mine = {f.kernel_path: files[f.name] for f in lab.files if f.kernel_path}
    for f in (paths.TOP / "pksm").rglob("*"):
        rel = f.relative_to(paths.TOP / "pksm").as_posix()
        if not f.is_file() or rel.startswith("patches/") or f.suffix == ".md" \
                or f.name.startswith("."):
            continue
        sync_file(mine.get(rel, f), pk / rel)
        link = src / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and os.readlink(link) == str(pk / rel)):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(pk / rel)
    return out


def sync_file(source: Path, dest: Path) -> bool:
    """Make DEST a regular file with SOURCE's content; True if it changed.

    A changed DEST is written anew, so its mtime is now: make rebuilds
    what depends on it even when SOURCE is older than the objects built
    from the previous content (a submission unpacked from an archive, or
    the solution after a student's file).  Unchanged, DEST keeps its mtime
    and nothing is rebuilt."""
    data = source.read_bytes()
    if dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return True


def build_lab_kernel(lab: Lab, root: Path) -> Path:
    """Build ROOT's kernel (incremental); the builds' root for RunRequest.kbuild.
    LabError with the compiler's complaint if the student's code does not build."""
    out = root / "build" / "kernel" / lab.base
    binary = out / "linux"
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    env = dict(os.environ, CCACHE_BASEDIR=str(paths.TOP))
    log = root / "build.log"
    with open(log, "w") as f:
        rc = subprocess.run(["make", "-s", "-C", str(root / "linux" / "src"), "ARCH=um",
                             f"O={out}", f"CC={cc}", f"-j{JOBS}", "linux"],
                            stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        if binary.exists():
            binary.unlink()          # never grade what an older build left
        yours = ", ".join(f"{f.kernel_path} is your {f.name}" for f in lab.files if f.kernel_path)
        raise LabError(f"lab {lab.number}: the submission does not build (make exit {rc}; "
                       f"full log {log}; in the lab tree {yours}):\n" + "\n".join(errors[-15:]))
    return out.parent


# ---- grades --------------------------------------------------------------------

@dataclass
class Check:
    name: str
    points: int
    passed: bool
    detail: str


@dataclass
class Grade:
    lab: int
    submission: str
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    runs: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(c.points for c in self.checks if c.passed)

    @property
    def total(self) -> int:
        return sum(c.points for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "submission": self.submission, "score": self.score,
                "total": self.total, "error": self.error, "runs": self.runs,
                "checks": [{"name": c.name, "points": c.points, "passed": c.passed,
                            "detail": c.detail} for c in self.checks]}

    def report(self) -> str:
        lines = [f"lab {self.lab}: {self.submission}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for c in self.checks:
            lines.append(f"  [{'PASS' if c.passed else 'FAIL'}] {c.points if c.passed else 0:>2}/"
                         f"{c.points:<2} {c.name}: {c.detail}")
        lines.append(f"  total {self.score}/{self.total}")
        return "\n".join(lines)


@dataclass
class Submission:
    name: str
    files: dict[str, Path]
    kbuild: Path | None = None      # its kernel builds' root (kernel labs)


@dataclass
class Ctx:
    results: Path | None = None     # runs' root (default results/runs)
    verbose: bool = False

    def request(self, lab: Lab, sub: Submission | None = None,
                scenario: config.Scenario | None = None, **kw: Any) -> runner.RunRequest:
        variant, _, flavour = lab.base.partition("-")
        return runner.RunRequest(scenario or str(lab.scenario), variant=variant, flavour=flavour,
                                 results=self.results, progress=False, verbose=self.verbose,
                                 kbuild=sub.kbuild if sub else None, **kw)


def failed_all(lab: Lab, sub: str, error: str) -> Grade:
    """A submission that could not be graded: every check failed, the reason given."""
    return Grade(lab.number, sub, [Check(k, v, False, "not graded") for k, v in lab.points.items()],
                 error)


def check(lab: Lab, name: str, ok: bool, detail: str) -> Check:
    return Check(name, lab.points[name], ok, detail)


def read_answers(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"{path}: not valid TOML: {e}") from None


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
    """No kernel trouble (BUG, WARNING, KASAN, oops, panic) and no time-out."""
    bad = res.exit_code in (ExitCode.KERNEL, ExitCode.TIMEOUT)
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

def baseline_scenario(lab: Lab) -> config.Scenario:
    """The lab's scenario with every dupalloc page unique: the same
    processes, binaries and fork tree, so what merges there (their stacks,
    heaps, data pages) is what the lab's run merges besides the workload."""
    sc = config.load_scenario(str(lab.scenario))
    sc.name += "-baseline"
    for wl in sc.workloads:
        if wl.program == "dupalloc":
            wl.options.pop("dup_set", None)
            wl.options.update(dup=0, zero=0, near=0)
    return sc


def grade_predictions(lab: Lab, subs: list[Submission], ctx: Ctx, event: str,
                      keys: list[str]) -> list[Grade]:
    """Two runs serve every submission (they do not depend on it): the lab's
    and its baseline; the workload's figures are their difference.  Both
    deterministic (time travel), so the difference is exact."""
    answers: dict[str, dict[str, Any] | str] = {}
    for sub in subs:
        try:
            answers[sub.name] = read_answers(sub.files["answers.toml"])
        except LabError as e:
            answers[sub.name] = str(e)
    with ThreadPoolExecutor(2) as pool:     # independent: boot both at once
        runs = pool.map(run_checked, [ctx.request(lab),
                                     ctx.request(lab, scenario=baseline_scenario(lab))])
        res, base = list(runs)
    got_run, got_base = event_ints(res, event), event_ints(base, event)
    grades = []
    for sub in subs:
        a = answers[sub.name]
        if isinstance(a, str):
            grades.append(failed_all(lab, sub.name, a))
            continue
        g = Grade(lab.number, sub.name, runs=[str(res.run_dir), str(base.run_dir)])
        for r in (res, base):
            if r.exit_code != ExitCode.OK or event_ints(r, event) is None:
                g.error = (f"the measuring run {r.run_dir} failed (exit {int(r.exit_code)}): "
                           f"{r.problems[:2]}")
        for k in keys:
            total, noise = (got_run or {}).get(k), (got_base or {}).get(k)
            want = total - noise if total is not None and noise is not None else None
            got = a.get(k)
            ok = (want is not None and isinstance(got, int) and not isinstance(got, bool)
                  and abs(got - want) <= 1)
            g.checks.append(check(lab, k, ok, f"predicted {got!r}, measured {want} "
                                              f"({total} less {noise} of the baseline run)"))
        grades.append(g)
    return grades


def grade_lab2(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    return grade_predictions(lab, subs, ctx, "lab2",
                             ["pages_shared", "pages_sharing", "ksm_zero_pages"])


def grade_lab5(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    return grade_predictions(lab, subs, ctx, "lab5",
                             ["pages_shared", "pages_sharing", "stable_nodes", "mappings"])


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

LAB4_KEYS = {"mapping_holds": "node", "stale_after_free": "yes", "count_without_check": "more",
             "second_check_for": "reuse"}


def grade_lab4(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    grades = []
    for sub in subs:
        try:
            a = read_answers(sub.files["answers.toml"])
        except LabError as e:
            grades.append(failed_all(lab, sub.name, str(e)))
            continue
        g = Grade(lab.number, sub.name)
        res = run_checked(ctx.request(lab, sub))
        g.runs.append(str(res.run_dir))
        ev = event_ints(res, "lab4") or {}
        # the window was there: the nodes of the exited processes' KSM
        # pages were still in the tree when the counters were read
        window = ev.get("stale_nodes", 0) - ev.get("nodes", 0) >= 1000
        same = all(k in ev and ev[f"stale_{k}"] == ev[k] for k in ("shared", "sharing"))
        g.checks.append(check(lab, "stale-not-counted", window and same,
                              f"with {ev.get('stale_nodes', 0) - ev.get('nodes', 0)} stale nodes "
                              f"in the tree: census shared {ev.get('stale_shared')}, sharing "
                              f"{ev.get('stale_sharing')}; once released: {ev.get('shared')}, "
                              f"{ev.get('sharing')}"))
        ok, why = clean(res)
        g.checks.append(check(lab, "debug-silent", ok and bool(ev), why))
        right = [k for k, v in LAB4_KEYS.items() if str(a.get(k, "")).strip().lower() == v]
        g.checks.append(check(lab, "answers", len(right) == len(LAB4_KEYS),
                              f"{len(right)}/{len(LAB4_KEYS)} right"))
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


def grade_lab6(lab: Lab, subs: list[Submission], ctx: Ctx) -> list[Grade]:
    grades = []
    for sub in subs:
        binary = LAB_BUILD / "6" / safe_name(sub.name) / "timing"
        try:
            compile_guest(sub.files["timing.c"], binary)
            a = read_answers(sub.files["answers.toml"])
        except LabError as e:
            grades.append(failed_all(lab, sub.name, str(e)))
            continue
        g = Grade(lab.number, sub.name)
        res = run_checked(ctx.request(lab, sub), {"lab/timing": binary})
        g.runs.append(str(res.run_dir))
        ev = event_ints(res, "lab6") or {}
        n, right = ev.get("pages", 0), ev.get("right", 0)
        acc = right / n if n else 0.0
        g.checks.append(check(lab, "accuracy", n >= 100 and acc >= 0.8,
                              f"{right}/{n} pages classified right ({acc:.0%}; need 80 %)"))
        mt, mr = ev.get("merged", 0), ev.get("merged_right", 0)
        ut, ur = n - mt, ev.get("unmerged_right", 0)
        both = mt > 0 and ut > 0 and mr / mt >= 0.7 and ur / ut >= 0.7
        g.checks.append(check(lab, "both-classes", both,
                              f"merged {mr}/{mt}, unmerged {ur}/{ut} right (need 70 % each)"))
        want = {"optout_closes": "yes", "probation_closes": "no"}
        ok = [k for k, v in want.items() if str(a.get(k, "")).strip().lower() == v]
        g.checks.append(check(lab, "answers", len(ok) == len(want), f"{len(ok)}/{len(want)} right"))
        grades.append(g)
    return grades


GRADERS: dict[int, Callable[[Lab, list[Submission], Ctx], list[Grade]]] = {
    1: grade_lab1, 2: grade_lab2, 3: grade_lab3, 4: grade_lab4, 5: grade_lab5, 6: grade_lab6}


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
    root0 = build_root or LAB_BUILD / str(lab.number)

    def one(sub: Submission, worker: int) -> list[Grade]:
        c = ctx if jobs <= 1 else replace(
            ctx, results=(ctx.results or paths.RUNS) / safe_name(sub.name))
        if lab.kernel_lab and sub.kbuild is None:
            root = root0 if jobs <= 1 else root0.with_name(f"{root0.name}-w{worker}")
            try:
                lab_tree(lab, sub.files, root)
                sub.kbuild = build_lab_kernel(lab, root)
            except LabError as e:
                return [failed_all(lab, sub.name, str(e))]
        return GRADERS[lab.number](lab, [sub], c)

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


def write_results(grades: list[Grade], json_path: Path, csv_path: Path | None = None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_suffix(".tmp")
    tmp.write_text(json.dumps([g.to_json() for g in grades], indent=2) + "\n")
    tmp.rename(json_path)
    if csv_path:
        names = sorted({c.name for g in grades for c in g.checks})
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["lab", "submission", "score", "total", *names, "error"])
            for g in grades:
                got = {c.name: (c.points if c.passed else 0) for c in g.checks}
                w.writerow([g.lab, g.submission, g.score, g.total,
                            *[got.get(n, "") for n in names], g.error.splitlines()[0]
                            if g.error else ""])

