"""The classroom labs (labs/, harness/pksmtb/labs.py, harness/lab.py).

Without a boot: skeletons come from the marked solutions (regions replaced,
stubs in, nothing of the solution left), preparing a student's copy never
overwrites work, bad input is refused with exit 2, lab 6's program builds
with -Werror as solution and as skeleton.

With boots: every lab's reference solution gets full marks and every
untouched skeleton fails exactly the checks that need the student's work
(here: all of them).  Answer labs (2, 5) grade both from one measuring
run and its baseline for each of two sets of sizes (here the smallest
and the largest, not a random draw); kernel labs (3, 4, 7, 8) build the
skeleton's own kernel incrementally from the solution's build in
build/lab-test/N (lab 7's answers are graded against one run of the
reference, with page counts drawn at grading).  Plausible wrong code loses the checks that show it
(labs 4, 7, 8), and lab 6's cheating classifiers earn nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import built
from pksmtb import labs, paths

LAB_PY = [str(Path("/usr/bin/python3")), str(paths.TOP / "harness" / "lab.py")]
ALL = sorted(labs.lab_dirs())


def test_eight_labs_each_with_handout_scenario_and_points() -> None:
    assert ALL == [1, 2, 3, 4, 5, 6, 7, 8]
    for n in ALL:
        lab = labs.load_lab(n)
        handout = (lab.dir / "README.md").read_text()
        for part in ("**Goal.**", "## Steps", "## Questions", "## Grading"):
            assert part in handout, (n, part)
        assert lab.scenario.is_file()
        # lab 7 grades its code (3 checks) and its answers (4)
        assert 2 <= len(lab.points) <= (7 if n == 7 else 4)
        for name in lab.points:          # every check is in the handout's table
            assert f"`{name}`" in handout, (n, name)


@pytest.mark.parametrize("n", ALL)
def test_skeleton_replaces_every_region(n: int) -> None:
    lab = labs.load_lab(n)
    files = labs.skeleton_files(lab)
    for f in lab.files:
        sol = (paths.TOP / f.solution).read_text()
        sk = files[f.name]
        assert f"LAB {n} BEGIN" in sol and f"LAB {n} END" in sol
        # the markers kept, one pair a stub: the student writes between them
        assert sk.count(f"LAB {n} BEGIN") == sk.count(f"LAB {n} END") == len(f.stubs)
        assert sk.count(f"TODO (lab {n})") == len(f.stubs)
        # the solution's code between the markers is gone
        for body in re.findall(rf"LAB {n} BEGIN[^\n]*\n(.*?)\n[^\n]*LAB {n} END", sol, re.S):
            lines = [ln.strip() for ln in body.splitlines()
                     if ln.strip() and not ln.strip().startswith(("#", "/*", "*"))]
            assert any(ln not in sk for ln in lines), (n, f.name)


def test_skeleton_marker_errors() -> None:
    good = "a\n/* LAB 9 BEGIN: do it */\nx = 1;\n/* LAB 9 END */\nb\n"
    assert labs.skeleton(good, 9, ["x = 0;"], "t") == \
        f"a\n/* LAB 9 BEGIN: do it */\n/* {labs.TODO.format(n=9)} */\nx = 0;\n/* LAB 9 END */\nb\n"
    cases: list[tuple[str, list[str]]] = [
        ("/* LAB 9 BEGIN: x */\n", ["s"]),                  # not ended
        ("/* LAB 9 END */\n", ["s"]),                       # END alone
        ("/* LAB 9 BEGIN */\n/* LAB 9 END */\n", ["s"]),     # no hint
        (good, []), (good, ["s", "t"]),                     # stubs != regions
        ("no regions\n", [])]
    for bad, stubs in cases:
        with pytest.raises(labs.LabError):
            labs.skeleton(bad, 9, stubs, "t")


def test_prepare_keeps_work_and_refuses_bad_input(tmp_path: Path) -> None:
    lab = labs.load_lab(2)
    dest = labs.prepare(lab, tmp_path)
    assert (dest / "answers.toml").read_text() == labs.skeleton_files(lab)["answers.toml"]
    (dest / "answers.toml").write_text("pages_shared = 1\n")
    with pytest.raises(labs.LabError, match="exists"):
        labs.prepare(lab, tmp_path)
    assert (dest / "answers.toml").read_text() == "pages_shared = 1\n"
    labs.prepare(lab, tmp_path, force=True)
    assert "TODO (lab 2)" in (dest / "answers.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2"]     # no leftovers
    with pytest.raises(labs.LabError, match="unknown lab"):
        labs.load_lab("9")
    with pytest.raises(labs.LabError, match="no answers.toml"):
        labs.submission_files(lab, tmp_path)


def test_cli_bad_input(tmp_path: Path) -> None:
    for argv, msg in ((["check", "9"], "unknown lab '9'"), (["prepare", "x"], "unknown lab"),
                      (["check", "2", "--work", str(tmp_path)], "make lab LAB=2"),
                      (["batch", "2", str(tmp_path / "none")], "not a directory"),
                      (["run", "2"], "no measuring run of its own")):
        r = subprocess.run(LAB_PY + argv, capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr, (argv, r.returncode, r.stderr)
    r = subprocess.run(LAB_PY + ["list"], capture_output=True, text=True, check=True)
    assert len(r.stdout.splitlines()) == len(ALL)


def test_lab6_programs_build_as_solution_and_skeleton(tmp_path: Path) -> None:
    lab = labs.load_lab(6)
    sk = tmp_path / "classify.c"
    sk.write_text(labs.skeleton_files(lab)["classify.c"])
    labs.compile_guest(labs.LAB6_GRADER, tmp_path / "timing")
    labs.compile_guest(paths.TOP / "labs" / "06-timing" / "classify.c", tmp_path / "sol")
    labs.compile_guest(sk, tmp_path / "sk")
    sk.write_text(sk.read_text().replace("guess[i] = 0;", "guess[i] = 0"))
    with pytest.raises(labs.LabError, match="does not compile"):
        labs.compile_guest(sk, tmp_path / "bad")


# ---- grading on the real kernel ---------------------------------------------------

def skeleton_sub(n: int, tmp_path: Path) -> labs.Submission:
    lab = labs.load_lab(n)
    d = labs.prepare(lab, tmp_path, kernel_tree=False)
    return labs.Submission(f"skeleton-{n}", labs.submission_files(lab, d))


def extreme_sizes(lab: labs.Lab) -> list[dict[str, int]] | None:
    """A prediction lab's two sets of sizes with every size at its smallest
    and then at its largest (the pair measured when the tolerances were
    set), not a random draw: the suite does not depend on luck."""
    if not lab.sizes:
        return None
    return [{s.name: pick(s.values) * s.scale for s in lab.sizes} for pick in (min, max)]


def grade_both(n: int, runs_root: Path, tmp_path: Path) -> tuple[labs.Grade, labs.Grade]:
    """The solution's grade and the untouched skeleton's."""
    lab = labs.load_lab(n)
    built(lab.base)
    ctx = labs.Ctx(results=runs_root, sizes=extreme_sizes(lab))
    subs = [labs.solution(lab), skeleton_sub(n, tmp_path)]
    if lab.kernel_lab:
        sol = labs.grade(lab, subs[:1], ctx)
        sk = labs.grade(lab, subs[1:], ctx, paths.TOP / "build" / "lab-test" / str(n))
        grades = sol + sk
    else:
        grades = labs.grade(lab, subs, ctx)
    by = {g.submission: g for g in grades}
    return by["solution"], by[f"skeleton-{n}"]


def assert_grades(sol: labs.Grade, sk: labs.Grade, failing: set[str]) -> None:
    assert not sol.error and sol.score == sol.total > 0, sol.report()
    assert not sk.error, sk.report()
    assert {c.name for c in sk.checks if not c.passed} == failing, sk.report()


@pytest.mark.boot
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8])
def test_lab_solution_full_marks_skeleton_fails(n: int, runs_root: Path, tmp_path: Path) -> None:
    sol, sk = grade_both(n, runs_root, tmp_path)
    # Every check needs the student's work: an untouched skeleton fails them all.
    assert_grades(sol, sk, set(labs.load_lab(n).points))


@pytest.mark.boot
def test_lab_batch_grades_each_submissions_own_kernel(runs_root: Path, tmp_path: Path) -> None:
    """A batch builds its submissions in turn, at -j 2 two at a time, each
    worker in its own lab tree.  With the timestamps of an unpacked archive
    (older than the objects the previous submission left), each must still
    be graded on its own kernel: in each worker the reference, then the
    untouched skeleton, which fails the skeleton's checks."""
    lab = labs.load_lab(3)
    built(lab.base)
    old = 1_000_000_000
    subs = []
    # worker k grades submissions k, k + 2: a reference, then a skeleton
    for name, files in (("reference-0", labs.solution_files(lab)),
                        ("reference-1", labs.solution_files(lab)),
                        ("skeleton-0", skeleton_sub(3, tmp_path / "sk0").files),
                        ("skeleton-1", skeleton_sub(3, tmp_path / "sk1").files)):
        d = tmp_path / name
        d.mkdir()
        for fname, src in files.items():
            (d / fname).write_bytes(src.read_bytes())
            os.utime(d / fname, (old, old))
        subs.append(labs.Submission(name, labs.submission_files(lab, d)))
    grades = {g.submission: g for g in labs.grade(lab, subs, labs.Ctx(results=runs_root),
                                                     tmp_path / "batch", jobs=2)}
    assert sorted(grades) == sorted(s.name for s in subs)
    for k in (0, 1):
        ref, sk = grades[f"reference-{k}"], grades[f"skeleton-{k}"]
        assert not ref.error and ref.score == ref.total > 0, ref.report()
        assert not sk.error, sk.report()
        assert {c.name for c in sk.checks if not c.passed} == set(lab.points), sk.report()
        # each in its worker's own lab tree and run directories
        assert all(f"/reference-{k}/" in r for r in ref.runs), ref.runs
    assert (tmp_path / "batch-w0").is_dir() and (tmp_path / "batch-w1").is_dir()


@pytest.mark.boot
def test_lab_submission_that_hangs_is_stopped_with_a_backtrace(runs_root: Path,
                                                               tmp_path: Path) -> None:
    """Lab 3's reference with a probation step that never returns: the
    boot's KUnit suite spins in it on the one vCPU, the console falls
    silent, and the grading stops the guest within a minute of it, keeps
    every task's stack and fails the run's checks saying where."""
    lab = labs.load_lab(3)
    built(lab.base)
    src = labs.solution_files(lab)["policy.c"].read_text()
    mark = "/* LAB 3 BEGIN: count unchanged visits (restart on a change), remember sum */\n"
    assert src.count(mark) == 1
    d = tmp_path / "hang"
    d.mkdir()
    (d / "policy.c").write_text(src.replace(mark, mark + "\tfor (;;)\n\t\tcpu_relax();\n"))
    sub = labs.Submission("hang", labs.submission_files(lab, d))
    (g,) = labs.grade(lab, [sub], labs.Ctx(results=runs_root),
                      paths.TOP / "build" / "lab-test" / "3-hang")
    # the hash, the lab's other function, is the reference's: its case passes
    assert not g.error, g.report()
    assert {c.name for c in g.checks if not c.passed} == \
        {"kunit-probation", "kunit-all", "merge"}, g.report()
    merge = next(c for c in g.checks if c.name == "merge")
    assert f"hung: no output for {labs.LAB_WATCHDOG_S} s" in merge.detail, g.report()
    (run,) = g.runs
    summary = json.loads((Path(run) / "summary.json").read_text())
    assert summary["hung"] and summary["exit_code"] == 6, summary
    meta = json.loads((Path(run) / "meta.json").read_text())
    assert meta["watchdog_s"] == labs.LAB_WATCHDOG_S
    # stopped within a minute of the console's last line, not at the
    # time-out (300 s, scaled by the host's load): the spin starts with the
    # boot's KUnit suite, seconds after the boot itself
    assert labs.LAB_WATCHDOG_S <= summary["max_silence_s"] < 60, summary
    assert summary["wall_s"] < 60 + 30, summary
    # every task's state and stack: the KUnit case that spins is running
    # (its own frames are there only when the unwinder's scan of the
    # interrupted stack finds them: 1 run of 2 named pksm_probation_step)
    text = (Path(run) / "hang-backtrace.txt").read_text()
    assert re.search(r"task:kunit_try_catch\s+state:R", text), text[:3000]
    assert "Call Trace:" in text, text[:3000]


@pytest.mark.boot
def test_lab2_forgetting_max_page_sharing_or_copying_numbers_fails(runs_root: Path,
                                                                   tmp_path: Path) -> None:
    """The tolerances are tight: ignoring max_page_sharing (one KSM page
    for each of workload C's contents) costs those two checks.  The counts
    of the handout's run, answered as numbers, earn nothing: no size is as
    the handout has it (here the smallest and the largest sizes)."""
    lab = labs.load_lab(2)
    built(lab.base)
    subs = []
    for name, text in (
            ("forgot", 'pages_shared = "a_pages + c_contents"\n'
                       'pages_sharing = "a_pages * (a_procs - 1) + c_pages - c_contents"\n'
                       'ksm_zero_pages = "b_procs * b_pages"\n'),
            ("copied", "pages_shared = 260\npages_sharing = 1532\nksm_zero_pages = 512\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "answers.toml").write_text(text)
        subs.append(labs.Submission(name, labs.submission_files(lab, tmp_path / name)))
    forgot, copied = labs.grade(lab, subs, labs.Ctx(results=runs_root,
                                                    sizes=extreme_sizes(lab)))
    for g in (forgot, copied):
        assert not g.error and g.record["drawn"], g.report()
    assert {c.name for c in forgot.checks if not c.passed} == {"pages_shared", "pages_sharing"}, \
        forgot.report()
    assert copied.score == 0, copied.report()


def test_handouts_name_functions_that_exist() -> None:
    """Every `function()` a handout names is defined in PKSM, the kernel's
    mm/ and include/, or the lab's own files (the engine keeps changing)."""
    where = [paths.TOP / "pksm", paths.KSRC / "mm", paths.KSRC / "include"]
    libc = {"clock_gettime", "fork"}
    for n in ALL:
        lab = labs.load_lab(n)
        for name in set(re.findall(r"`(\w+)\(\)`", (lab.dir / "README.md").read_text())):
            if name in libc:
                continue
            own = any(re.search(rf"\b{name}\(", (paths.TOP / f.solution).read_text())
                      for f in lab.files)
            found = own or subprocess.run(
                ["grep", "-rqE", rf"\b{name}\(", *map(str, where)]).returncode == 0
            assert found, (n, name)


@pytest.mark.boot
def test_kernel_lab_submission_that_does_not_build(tmp_path: Path) -> None:
    """The compiler's complaint, every check failed, no kernel left to boot."""
    built("pksm")
    lab = labs.load_lab(3)
    d = labs.prepare(lab, tmp_path, kernel_tree=False)
    (d / "policy.c").write_text((d / "policy.c").read_text().replace("return 0;", "return 0"))
    root = paths.TOP / "build" / "lab-test" / "3"
    [g] = labs.grade(lab, [labs.Submission("broken", labs.submission_files(lab, d))],
                     labs.Ctx(results=tmp_path / "runs"), root)
    assert "does not build" in g.error and "policy.c" in g.error and "error:" in g.error, g.error
    assert g.score == 0 and {c.detail for c in g.checks} == {"not graded"}
    assert not (root / "build" / "kernel" / "pksm" / "linux").exists()
    assert not (tmp_path / "runs").exists()       # nothing booted


@pytest.mark.boot
def test_lab_stale_copy_is_graded_in_the_current_engine(runs_root: Path, tmp_path: Path) -> None:
    """A copy of policy.c made before the engine changed around its regions
    (as if from a term ago: pksm_reverify_budget(), which pksmd and the
    KUnit suite call, not yet in it, and a line more at its top) would not
    link as it is; its regions (the reference's) are built in the current
    policy.c: full marks, and a note saying where the copy differs."""
    lab = labs.load_lab(3)
    built(lab.base)
    ref = (paths.TOP / "pksm" / "mm" / "pksm" / "policy.c").read_text()
    fn = re.search(r"\nunsigned long pksm_reverify_budget\(.*?\n}\n", ref, re.S)
    assert fn
    d = tmp_path / "stale"
    d.mkdir()
    (d / "policy.c").write_text("/* the engine of last term */\n" + ref.replace(fn[0], "\n"))
    [g] = labs.grade(lab, [labs.Submission("stale", labs.submission_files(lab, d))],
                     labs.Ctx(results=runs_root), paths.TOP / "build" / "lab-test" / "3")
    assert not g.error and g.score == g.total > 0, g.report()
    [note] = g.notes
    assert note.startswith("policy.c differs from pksm/mm/pksm/policy.c outside its regions "
                           "in 14 lines, the first at line 1"), note


def test_lab_tree_files_get_fresh_mtimes(tmp_path: Path) -> None:
    """Batch grading reuses one build tree: a submission older than the
    objects of the one graded before it must still be recompiled, so the
    tree's copy of a changed file is written anew (a fresh mtime), and an
    unchanged one keeps its mtime (nothing rebuilt)."""
    old = 1_000_000_000                       # 2001: an archive's timestamps
    a, b = tmp_path / "a.c", tmp_path / "b.c"
    a.write_text("int policy(void) { return 1; }\n")
    b.write_text("int policy(void) { return 0; }\n")
    for f in (a, b):
        os.utime(f, (old, old))
    dest = tmp_path / "tree" / "mm" / "pksm" / "policy.c"
    assert labs.sync_file(a, dest) and dest.read_text() == a.read_text()
    first = dest.stat().st_mtime_ns
    assert first > old * 10**9 and not dest.is_symlink()
    os.utime(dest, ns=(first - 10**9, first - 10**9))   # as if built a second ago
    built_at = dest.stat().st_mtime_ns
    assert not labs.sync_file(a, dest) and dest.stat().st_mtime_ns == built_at
    assert labs.sync_file(b, dest) and dest.read_text() == b.read_text()
    assert dest.stat().st_mtime_ns > built_at            # newer than any object
    # a symlink left by an older layout becomes a regular file
    dest.unlink()
    dest.symlink_to(b)
    assert labs.sync_file(b, dest) and not dest.is_symlink()


def lab4_variant(tmp_path: Path, runs_root: Path, name: str, body: str) -> labs.Grade:
    """Lab 4 graded with pksm_node_folio()'s region replaced by BODY (the
    reference answers)."""
    lab = labs.load_lab(4)
    built(lab.base)
    tree = (paths.TOP / "pksm" / "mm" / "pksm" / "tree.c").read_text()
    region = re.search(r"/\* LAB 4 BEGIN[^\n]*\n(.*?)\t/\* LAB 4 END \*/", tree, re.S)
    assert region
    d = tmp_path / name
    d.mkdir()
    (d / "tree.c").write_text(tree.replace(region[1], body))
    (d / "answers.toml").write_text((lab.dir / "answers.toml").read_text())
    [g] = labs.grade(lab, [labs.Submission(name, labs.submission_files(lab, d))],
                     labs.Ctx(results=runs_root), paths.TOP / "build" / "lab-test" / "4")
    assert not g.error, g.report()
    return g


@pytest.mark.boot
def test_lab4_return_null_fails_the_census_check(runs_root: Path, tmp_path: Path) -> None:
    """pksm_node_folio() reduced to `return NULL;` recounts no KSM page at all,
    before the release and after it alike: the census is compared with the
    KSM pages the frames show (lab/kpages), so stale-not-counted fails."""
    g = lab4_variant(tmp_path, runs_root, "null", "\treturn NULL;\n")
    assert {c.name for c in g.checks if not c.passed} == {"stale-not-counted"}, g.report()


# pksm_node_folio() that asks only whether the frame is a KSM page, before
# and after the reference: a stale node whose frame now holds another
# node's KSM page passes it.
LAB4_KSM_ONLY = """\
	struct folio *folio = page_folio(pfn_to_page(READ_ONCE(node->kpfn)));

	if (!folio_test_ksm(folio))
		return NULL;
	if (!folio_try_get(folio))
		return NULL;
	if (!folio_test_ksm(folio)) {
		folio_put(folio);
		return NULL;
	}
	return folio;
"""


@pytest.mark.boot
def test_lab4_ksm_flag_alone_is_not_the_keyhole(runs_root: Path, tmp_path: Path) -> None:
    """The weak check: the run moves the live KSM pages onto frames of
    freed KSM pages whose stale nodes are still in the tree, so the census
    through it counts those nodes too: stale-not-counted fails, and the
    submission does not get full marks."""
    g = lab4_variant(tmp_path, runs_root, "ksm-only", LAB4_KSM_ONLY)
    failed = {c.name: c.detail for c in g.checks if not c.passed}
    assert "stale-not-counted" in failed and g.score < g.total, g.report()
    assert "naming a frame that holds another node's KSM page" in failed["stale-not-counted"]


# A classify() that reads the grader's secret (the victim's seed: the seed
# file as the lab has named it, lab/secret or the older lab/seed) and
# guesses the victim's pages from it, without timing anything; and says
# who it runs as and whether it could read the frames' flags (the truth's
# source) and its parent's memory.
LAB6_READER = r"""
	unsigned long long s = 0;
	char mem[64];
	FILE *f = fopen("/proc/kpageflags", "r");
	FILE *m;

	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)getppid());
	m = fopen(mem, "r");
	fprintf(stderr, "reader: uid %d, kpageflags %s, the parent's memory %s\n",
		(int)getuid(), f ? "read" : "not read", m ? "read" : "not read");
	if (f)
		fclose(f);
	if (m)
		fclose(m);
	f = fopen("lab/secret", "r");

	(void)ns;
	(void)cal_merged;
	(void)cal_unique;
	(void)ncal;
	if (!f)
		f = fopen("lab/seed", "r");
	if (f) {
		if (fscanf(f, "%llu", &s) != 1)
			s = 0;
		fclose(f);
	}
	fprintf(stderr, "reader: the secret %s\n", f ? "read" : "not read");
	for (int i = 0; i < n; i++) {
		uint64_t z = s ^ (uint64_t)i;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		guess[i] = f ? (int)((z ^ (z >> 31)) & 1) : 0;
	}"""

# A classify() that prints the graded line itself, claiming every page of
# the victim's (from the secret if it can read it) guessed right, and
# exits before anyone else prints one.
LAB6_FORGER = r"""
	unsigned long long s = 1;
	FILE *f = fopen("lab/secret", "r");
	char hex[16385];

	(void)ns;
	(void)cal_merged;
	(void)cal_unique;
	(void)ncal;
	(void)guess;
	if (!f)
		f = fopen("lab/seed", "r");
	if (f) {
		if (fscanf(f, "%llu", &s) != 1)
			s = 1;
		fclose(f);
	}
	for (int k = 0; k < (n + 3) / 4 && k < 16384; k++) {
		int v = 0;

		for (int j = 0; j < 4; j++) {
			uint64_t z = s ^ (uint64_t)(4 * k + j);

			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
			v |= (int)((z ^ (z >> 31)) & 1) << j;
		}
		hex[k] = "0123456789abcdef"[v];
		hex[k + 1] = '\0';
	}
	printf("PKSMTB-EVENT lab6 pages=%d seed=%llu classifier=ok guess=%s truth=%s\n",
	       n, s, hex, hex);
	fflush(stdout);
	exit(0);"""


@pytest.mark.boot
def test_lab6_cheating_classifier_gets_no_credit(runs_root: Path, tmp_path: Path) -> None:
    """classify() is the student's code: run as root in the measuring
    process it could read the victim's seed and guess from it, or print
    the graded line itself and exit.  Run unprivileged after the
    measurement, with the seed root's alone and the line printed and
    token-stamped by the grader's program, neither earns a code point;
    the reader's own stderr line says what it found."""
    lab = labs.load_lab(6)
    built(lab.base)
    framed = next(f for f in lab.files if f.frame)
    stub = "\n".join("\t" + ln for ln in framed.stubs[0].splitlines())
    subs = []
    for name, body in (("reader", LAB6_READER), ("forger", LAB6_FORGER)):
        d = labs.prepare(lab, tmp_path / name, kernel_tree=False)
        text = (d / framed.name).read_text()
        assert stub in text
        (d / framed.name).write_text(text.replace(stub, body.strip("\n")))
        subs.append(labs.Submission(name, labs.submission_files(lab, d)))
    grades = {g.submission: g for g in labs.grade(lab, subs, labs.Ctx(results=runs_root))}
    for name, g in grades.items():
        assert not g.error, g.report()
        code = [c for c in g.checks if c.name in ("accuracy", "both-classes")]
        assert len(code) == 2 and not any(c.earned for c in code), (name, g.report())
    console = (Path(grades["reader"].runs[0]) / "console.log").read_text()
    assert "reader: the secret not read" in console, console[-3000:]
    assert "reader: uid 65534, kpageflags not read, the parent's memory not read" in console, \
        console[-3000:]


@pytest.mark.boot
def test_lab8_one_domain_for_everyone_fails_isolation(runs_root: Path, tmp_path: Path) -> None:
    """The other way to be wrong: pksm_owner_domain() that gives every
    process one domain (id 0) in every mode.  Everything merges as under
    all: merging-kept passes, but frames are mapped across uids, cgroups
    and sessions and the attacker's copies merge with the victim's, so
    isolated and side-channel fail."""
    lab = labs.load_lab(8)
    built(lab.base)
    src = (paths.TOP / "pksm" / "mm" / "pksm" / "domain.c").read_text()
    region = re.search(r"/\* LAB 8 BEGIN[^\n]*\n(.*?)\t/\* LAB 8 END \*/", src, re.S)
    assert region
    d = tmp_path / "one-domain"
    d.mkdir()
    (d / "domain.c").write_text(src.replace(region[1], "\t*id = 0;\n\treturn true;\n"))
    (d / "answers.toml").write_text((lab.dir / "answers.toml").read_text())
    [g] = labs.grade(lab, [labs.Submission("one-domain", labs.submission_files(lab, d))],
                     labs.Ctx(results=runs_root), paths.TOP / "build" / "lab-test" / "8")
    assert not g.error, g.report()
    failed = {c.name: c.detail for c in g.checks if not c.passed}
    assert set(failed) == {"isolated", "side-channel"}, g.report()
    # one frame a content, mapped across every kind of domain
    for kind in ("uids", "cgroups", "sessions"):
        assert f"256 of 256 KSM frames mapped across {kind}" in failed["isolated"], failed


def lab7_region() -> tuple[str, str]:
    """swap.c and the body of its LAB 7 region (pksm_swap_check()'s)."""
    src = (paths.TOP / "pksm" / "mm" / "pksm" / "swap.c").read_text()
    region = re.search(r"/\* LAB 7 BEGIN[^\n]*\n(.*?)\t/\* LAB 7 END \*/", src, re.S)
    assert region
    return src, region[1]


# The store-time decision merging a page into the partner it finds in the
# unstable table, whose frame it then shares (an unstable page is not
# write-protected: no stable node, no KSM page), and never looking in the
# stable tree.  Zero pages are merged as they should be.
LAB7_INTO_UNSTABLE = """\
	struct folio *pfolio;
	unsigned int replaced = 0;
	u64 domain;
	int err = -EAGAIN;

	if (READ_ONCE(pksm_use_zero_pages) &&
	    pksm_hash_folio(folio) == pksm_zero_hash &&
	    pksm_folio_is_zero(folio) &&
	    !pksm_merge_zero_locked(folio, &replaced) && replaced &&
	    !folio_mapped(folio))
		return PKSM_RECLAIM_MERGED;
	domain = pksm_folio_domain(folio);
	if (domain == PKSM_DOMAIN_NONE || domain == PKSM_DOMAIN_MIXED)
		return PKSM_RECLAIM_STORE;
	if (!pksm_unstable_search(folio, pksm_checksum_folio(folio), domain,
				  &pfolio))
		return PKSM_RECLAIM_STORE;
	if (folio_trylock(pfolio)) {
		err = pksm_wrprotect(folio, NULL);
		if (!err && pksm_folios_equal(folio, pfolio))
			err = pksm_replace(folio, pfolio, &replaced);
		folio_unlock(pfolio);
	}
	folio_put(pfolio);
	if (!err && replaced && !folio_mapped(folio))
		return PKSM_RECLAIM_MERGED;
	return PKSM_RECLAIM_STORE;
"""


@pytest.mark.boot
def test_lab7_wrong_decisions_lose_what_shows_them(runs_root: Path, tmp_path: Path) -> None:
    """Two plausible wrong store-time decisions, graded in one batch (one
    reference run for the answers, each its own kernel): the zero-page
    step left out (zero pages are stored: swap marks them zero-filled and
    gives each a slot) loses the zero half of merged and nothing else;
    merging a seen page into its unstable partner's frame, without the
    stable tree, loses kept (the frames show the seen pages on their
    partners' frames, and their content changes when the partners are
    written), the library half of merged and saving (the library pages
    are stored and compressed)."""
    lab = labs.load_lab(7)
    built(lab.base)
    src, body = lab7_region()
    zero = re.search(r"\tif \(READ_ONCE\(pksm_use_zero_pages\).*?\n\t}\n", body, re.S)
    assert zero and "pksm_merge_zero_locked" in zero[0]
    subs = []
    for name, new in (("zero-stored", body.replace(zero[0], "")),
                      ("into-unstable", LAB7_INTO_UNSTABLE)):
        d = tmp_path / name
        d.mkdir()
        (d / "swap.c").write_text(src.replace(body, new))
        (d / "answers.toml").write_text((lab.dir / "answers.toml").read_text())
        subs.append(labs.Submission(name, labs.submission_files(lab, d)))
    grades = {g.submission: g for g in labs.grade(lab, subs, labs.Ctx(results=runs_root),
                                                     paths.TOP / "build" / "lab-test" / "7")}
    for g in grades.values():
        assert not g.error, g.report()
    lost = {n: {c.name: c for c in g.checks if not c.passed} for n, g in grades.items()}
    assert set(lost["zero-stored"]) == {"merged"}, grades["zero-stored"].report()
    assert lost["zero-stored"]["merged"].earned == 2
    assert "zero pages: 0/" in lost["zero-stored"]["merged"].detail
    assert set(lost["into-unstable"]) == {"merged", "kept", "saving"}, \
        grades["into-unstable"].report()
    assert lost["into-unstable"]["merged"].earned == 2
    kept = lost["into-unstable"]["kept"].detail
    assert re.search(r" 0/\d+ resident on frames of their own \(\d+ on a partner's frame\)",
                     kept) and re.search(r", [1-9]\d* changed once their partners", kept), kept
