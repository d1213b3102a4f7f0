"""The labs' autograder without a boot: answers files (a broken one costs
its own points only, named by file and line; partial credit per answer),
student mode (answers sealed: neither measured values, keys nor which
answers are right), the run directory printed, lab 4's census against the
frames' count, lab 6's seed drawn at grading time, the score counted by
the grader and the program's frame kept, lab 7's code graded from the
frames of its own kernel's run and its key taken from the reference's
run, with the page counts drawn at grading time.  The runs are stand-ins: what
run_checked() would return, built from a console's events.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pksmtb import config, labanswers, labdraw, labreport, labs, paths
from pksmtb.console import Console, Event
from pksmtb.verdict import ExitCode

LAB_PY = [sys.executable, str(paths.TOP / "harness" / "lab.py")]


def fake_run(tmp_path: Path, events: dict[str, dict[str, str]]) -> Any:
    """What run_checked() returns, as far as the graders read it."""
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    return SimpleNamespace(run_dir=d, exit_code=ExitCode.OK, problems=[],
                           console=Console(events=[Event(k, v) for k, v in events.items()]))


def submission(tmp_path: Path, n: int, **files: str) -> labs.Submission:
    """Lab N's skeleton in TMP_PATH/sub, FILES (name with '.' as '_') replaced."""
    lab = labs.load_lab(n)
    d = labs.prepare(lab, tmp_path / "sub", kernel_tree=False)
    for name, text in files.items():
        (d / name.replace("_", ".")).write_text(text)
    return labs.Submission(f"sub-{n}", labs.submission_files(lab, d))


# ---- answers files ------------------------------------------------------------

def test_broken_answers_file_named_by_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "answers.toml"
    f.write_text('mapping_holds = "node"\nstale_after_free = yes\n')
    a = labanswers.read(f)
    assert a.error.startswith(f"{f}:2:") and "not valid TOML" in a.error, a.error
    assert labanswers.form_problems(a, ["x"]) == [a.error]
    f.write_text('mapping_holds = "Node "\nstale_after_free = "maybe"\nn = true\n')
    a = labanswers.read(f)
    assert not a.error
    assert labanswers.form_problems(a, ["n", "m"], {"mapping_holds": ("node",),
                                                    "stale_after_free": ("yes", "no")}) == \
        ["n: neither a whole number nor a formula in quotes", "m: missing",
         "stale_after_free: not one of yes, no"]
    assert labanswers.right_choices(a, {"mapping_holds": "node", "stale_after_free": "yes"}) \
        == ["mapping_holds"]
    for text, why in (("x = " + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply"),
                      ("x = " + "9" * 5000 + "\n", "not valid TOML")):
        f.write_text(text)       # the TOML reader's RecursionError, int()'s ValueError
        a = labanswers.read(f)
        assert why in a.error and "only the answers' points are lost" in a.error, a.error
    assert [labanswers.share(4, r, 4) for r in range(5)] == [0, 1, 2, 3, 4]
    assert labanswers.share(2, 1, 2) == 1


# ---- labs 2 and 5: formulas in sizes drawn at grading ---------------------------

def test_prediction_formulas_are_evaluated_exactly_and_nothing_else() -> None:
    names = {"a": 6, "b": 4}
    ev = labanswers.evaluate
    assert ev(7, names) == 7 and ev("7", names) == 7
    assert ev("a * (b - 1) + a / b", names) == Fraction(39, 2)      # / is exact
    assert ev("a // b + a % b + -a + +b", names) == 1 + 2 - 6 + 4
    assert ev("ceil(a / b) + floor(a / b) + min(a, b, 9) + max(a, 1)", names) == 2 + 1 + 4 + 6
    bad = {"c + 1": "unknown name 'c'", "a / (b - 4)": "division by zero",
           "2 ** 64": "not allowed", "a.real": "characters no formula has: '.'",
           "1.5 * a": "characters", "__import__('os')": "characters no formula has: \"'\"",
           "ceil(a, b)": "not allowed", "min(a, key=b)": "characters", "a +": "not a formula",
           "True": "not allowed", "a if b else 1": "not allowed", "a # note": "characters",
           "a\0": "characters", "((a)": "not a formula",
           "9" * 16: "beyond", "10 ** 3": "not allowed",
           "99999999 * 99999999": "beyond", "1 / 99999999 / 99999999": "beyond",
           "a" + " + a" * 200: "longer than"}
    for text, why in bad.items():
        with pytest.raises(labanswers.FormulaError, match=re.escape(why)):
            ev(text, names)
    assert ev("-" * 399 + "a", names) == -6            # deep, but a formula
    assert ev("(" * 199 + "a" + ")" * 199, names) == 6
    for value in (True, 1.0, ["a"], None):
        with pytest.raises(labanswers.FormulaError, match="neither a whole number"):
            ev(value, names)


@pytest.mark.parametrize("n", [2, 5])
def test_drawn_sizes_never_the_handouts_and_the_reference_agrees(n: int) -> None:
    """Every size drawn differs from the handout's and between the sets;
    the scenario takes them where lab.toml says; the reference's formulas
    give, at the handout's sizes, the counts measured there when the
    answers were whole numbers; a constant (the handout run's counts) is
    right with no set, with every combination lab.toml allows."""
    lab = labs.load_lab(n)
    hand = labs.handout_sizes(lab)
    want = {2: {"a_procs": 3, "a_pages": 256, "b_procs": 2, "b_pages": 256, "c_pages": 1024,
                "c_contents": 1, "max_sharing": 256},
            5: {"procs": 2, "pages": 256, "children": 1}}[n]
    assert hand == want
    ref = labanswers.read(paths.TOP / f"labs/0{n}-{lab.slug}/answers.toml")
    counts = {2: {"pages_shared": 260, "pages_sharing": 1532, "ksm_zero_pages": 512},
              5: {"pages_shared": 256, "pages_sharing": 768, "stable_nodes": 256,
                  "mappings": 512}}[n]
    assert {k: labanswers.predicted(ref, k, hand) for k in counts} == \
        {k: Fraction(v) for k, v in counts.items()}
    seen: dict[str, set[int]] = {s.name: set() for s in lab.sizes}
    for _ in range(100):
        sets = labdraw.draws(lab.sizes)
        assert len(sets) == labdraw.DRAWS == 2
        assert labdraw.parse_text(lab.sizes, labdraw.text(sets)) == sets
        for s in lab.sizes:
            assert sets[0][s.name] != sets[1][s.name]
        for d in sets:
            for s in lab.sizes:
                assert d[s.name] != hand[s.name] and d[s.name] // s.scale in s.values
                seen[s.name].add(d[s.name])
            sc = labs.drawn_scenario(lab, d)
            argv = " ".join(sc.workloads[0].argv())
            if n == 5:
                assert f"--procs {d['procs']} --mib {d['pages'] // 256}" in argv
                assert f"--fork-share {d['children']}" in argv
            else:
                assert sc.knobs["ksm"]["max_page_sharing"] == str(d["max_sharing"])
            base = labs.baseline_scenario(lab, d)
            assert all(w.options.get("dup") == 0 for w in base.workloads
                       if w.program == "dupalloc")
    assert all(len(v) == len(s.values) for s, v in zip(lab.sizes, seen.values())), seen
    every = [dict(zip([s.name for s in lab.sizes], (v * s.scale for s, v in zip(lab.sizes, c))))
             for c in itertools.product(*(s.values for s in lab.sizes))]
    for d in every:
        if n == 2:
            per = d["c_pages"] // d["c_contents"]
            # each content a whole number of full KSM pages, more than one
            assert per % d["max_sharing"] == 0 and per > d["max_sharing"], d
    for k, v in counts.items():     # the handout run's count is right with no two sets
        tol = lab.tolerance.get(k, labs.TOLERANCE)
        right = [d for d in every if abs(labanswers.evaluate(ref.values[k], d) - v) <= tol]
        for d1, d2 in itertools.product(right, right):
            assert any(d1[s] == d2[s] for s in d1), (k, d1, d2)


def test_bad_draw_tables_and_sizes_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    bad = [({"x": {"at": "workload.1.procs", "values": [2]}}, "2 or more"),
           ({"x": {"at": "workload.0.procs", "values": [2, 3]}}, "at must be"),
           ({"x": {"at": "knobs.vm.procs", "values": [2, 3]}}, "at must be"),
           ({"x": {"at": "workload.1.procs", "values": [2, 2]}}, "distinct"),
           ({"x": {"at": "workload.1.procs", "values": [2, True]}}, "whole numbers"),
           ({"x": {"at": "workload.1.procs", "values": [2, 3], "scale": 0}}, "scale"),
           ({"x": {"at": "workload.1.procs", "values": [2, 3], "step": 1}}, "unknown keys"),
           ({"X": {"at": "workload.1.procs", "values": [2, 3]}}, "lower-case"),
           ([1], "must be a table")]
    for raw, why in bad:
        with pytest.raises(labdraw.DrawError, match=why):
            labdraw.parse(raw, f)
    sc = config.load_scenario(str(labs.load_lab(5).scenario))
    for at, why in (("workload.1.procs", "is one of the values drawn"),
                    ("workload.2.procs", "no such dupalloc-style workload"),
                    ("workload.1.nothing", "no whole number there")):
        with pytest.raises(labdraw.DrawError, match=why):
            labdraw.handout(labdraw.parse({"x": {"at": at, "values": [2, 3]}}, f), sc)
    sizes = labs.load_lab(5).sizes
    for text, why in (("procs=4 pages=512", "names every size"),
                      ("procs=4 pages=512 children=2 procs=5", "given once"),
                      ("procs=4 pages=500 children=2", "not one the lab draws"),
                      ("procs=2 pages=512 children=2", "not one the lab draws"),
                      ("procs=4 pages=512 kids=2", "NAME=VALUE of a size"),
                      ("procs=4 pages=512 children=-2", "NAME=VALUE"), ("", "names every"),
                      ("procs=4 pages=512 children=2", "1 set(s), not the 2"),
                      ("procs=4 pages=512 children=2; procs=5 pages=768 children=3; "
                       "procs=4 pages=512 children=2", "one value in two sets"),
                      ("procs=4 pages=512 children=2; procs=5 pages=512 children=3",
                       "one value in two sets"),
                      ("procs=\u0664 pages=512 children=2", "NAME=VALUE"),
                      ("procs=" + "4" * 20 + " pages=512 children=2", "NAME=VALUE"),
                      ("procs=" + "4" * 5000, "longer than a grade's record")):
        with pytest.raises(labdraw.DrawError, match=re.escape(why)):
            labdraw.parse_text(sizes, text)


def test_predictions_graded_with_every_set_of_sizes(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference's formulas earn everything with the sizes given; the
    handout run's counts, answered as numbers, earn nothing; a formula
    right with one set of sizes only earns nothing for that counter; the
    runs boot the sizes given and the grade records them."""
    lab = labs.load_lab(5)
    sets = [{"procs": 4, "pages": 512, "children": 2}, {"procs": 5, "pages": 768, "children": 3}]
    booted: list[config.Scenario] = []

    def run(req: Any, files: Any = None) -> Any:
        booted.append(req.scenario)
        base = "-baseline" in req.scenario.name
        d = sets[int(req.scenario.name[-1]) - 1]
        pages, procs, kids = d["pages"], d["procs"], d["children"]
        truth = [pages, pages * (procs * (1 + kids) - 1), pages, procs * pages]
        ev = {k: str(v + (0 if base else w)) for (k, v), w in zip(
            {"pages_shared": 3, "pages_sharing": 5, "stable_nodes": 3, "mappings": 4}.items(),
            truth)}
        where = tmp_path / req.scenario.name
        where.mkdir(exist_ok=True)
        return fake_run(where, {"lab5": ev})
    monkeypatch.setattr(labs, "run_checked", run)
    ref = labs.solution(lab)
    copied = submission(tmp_path / "c", 5, answers_toml="pages_shared = 256\n"
                        "pages_sharing = 768\nstable_nodes = 256\nmappings = 512\n")
    # right with the first set only (mappings 2048 = 4 x 512), then within
    # mappings' tolerance (16) and outside it, then 2 off where 1 is allowed
    once = submission(tmp_path / "o", 5, answers_toml='pages_shared = "pages"\n'
                      'pages_sharing = "pages * (procs * (1 + children) - 1)"\n'
                      'stable_nodes = "pages"\nmappings = 2048\n')
    near = submission(tmp_path / "n", 5, answers_toml='pages_shared = "pages + 2"\n'
                      'pages_sharing = "pages * (procs * (1 + children) - 1) - 1"\n'
                      'stable_nodes = "pages"\nmappings = "procs * pages + 16"\n')
    far = submission(tmp_path / "f", 5, answers_toml='pages_shared = "pages"\n'
                     'pages_sharing = "pages * (procs * (1 + children) - 1)"\n'
                     'stable_nodes = "pages"\nmappings = "procs * pages - 17"\n')
    assert lab.tolerance == {"mappings": 16}
    g_ref, g_copy, g_once, g_near, g_far = labs.grade_predictions(
        lab, [ref, copied, once, near, far], labs.Ctx(sizes=sets))
    assert g_ref.score == g_ref.total == 10, g_ref.report()
    assert g_copy.score == 0, g_copy.report()
    assert [c.name for c in g_once.checks if not c.passed] == ["mappings"], g_once.report()
    assert [c.name for c in g_near.checks if not c.passed] == ["pages_shared"], g_near.report()
    assert [c.name for c in g_far.checks if not c.passed] == ["mappings"], g_far.report()
    assert g_ref.record == {"drawn": "procs=4 pages=512 children=2; "
                                     "procs=5 pages=768 children=3"}
    assert ("predicted 'pages * (procs * (1 + children) - 1)'; sizes 1: 5632, measured 5632 "
            "(5637 less 5 of the baseline run); sizes 2: 14592, measured 14592") \
        in g_ref.report()
    assert len(booted) == 4 and len(g_ref.runs) == 4
    assert sorted(" ".join(s.workloads[0].argv()).split("--mib ")[1][0] for s in booted) == \
        ["2", "2", "3", "3"]


def test_cli_sizes_replays_a_draw_and_refuses_bad_sizes(tmp_path: Path) -> None:
    """lab.py batch --sizes: bad sizes or a lab that draws none stop with
    exit 2 before anything boots."""
    for lab, text, why in (("5", "procs=9 pages=512 children=4", "not one the lab draws"),
                           ("3", "procs=3", "draws no sizes")):
        r = subprocess.run(LAB_PY + ["batch", lab, str(tmp_path), "--sizes", text],
                           capture_output=True, text=True)
        assert r.returncode == 2 and why in r.stderr, r.stdout + r.stderr


LAB4_GOOD = {"lab4": {"stale_shared": "266", "stale_sharing": "274", "stale_nodes": "1300",
                      "shared": "266", "sharing": "274", "nodes": "272"},
             "lab4truth_stale": {"shared": "266", "sharing": "270"},
             "lab4truth": {"shared": "266", "sharing": "270"},
             "lab4reuse": {"live": "266", "migrated": "266", "failed": "0", "reused": "200"}}


def grade_lab4_faked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     events: dict[str, dict[str, str]], answers: str) -> labs.Grade:
    monkeypatch.setattr(labs, "LAB_BUILD", tmp_path / "build")
    monkeypatch.setattr(labs, "run_checked", lambda *a, **k: fake_run(tmp_path, events))
    lab = labs.load_lab(4)
    sub = submission(tmp_path, 4, answers_toml=answers)
    [g] = labs.grade_lab4(lab, [sub], labs.Ctx(results=tmp_path / "runs"))
    return g


def test_broken_answers_cost_only_their_points(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML typo fails the answers check, named by file and line; the
    code checks are graded all the same and the grade has no error."""
    g = grade_lab4_faked(tmp_path, monkeypatch, LAB4_GOOD,
                         'mapping_holds = "node"\nstale_after_free = yes\n')
    assert not g.error, g.report()
    got = {c.name: c for c in g.checks}
    assert got["stale-not-counted"].passed and got["debug-silent"].passed, g.report()
    assert got["answers"].earned == 0
    assert re.search(r"answers\.toml:2:\d+: not valid TOML", got["answers"].detail)
    assert got["answers"].shown == got["answers"].detail     # a student sees the typo
    assert g.score == 6 and g.total == 10


def test_choices_earn_a_point_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    three = ('mapping_holds = "node"\nstale_after_free = "yes"\ncount_without_check = "more"\n'
             'second_check_for = "speed"\n')
    g = grade_lab4_faked(tmp_path, monkeypatch, LAB4_GOOD, three)
    [a] = [c for c in g.checks if c.name == "answers"]
    assert (a.earned, a.points, a.shown) == (3, 4, "recorded"), a
    assert "wrong: second_check_for" in a.detail


# ---- lab 4: the census against the frames ---------------------------------------

def test_lab4_census_is_checked_against_the_frames() -> None:
    """A recount of nothing (pksm_node_folio() returning NULL) used to equal
    itself before and after the release; now it must equal the KSM pages
    the frames show.  Figures of real runs: the reference, `return NULL;`,
    the skeleton (stale nodes counted)."""
    ev = {k: int(v) for k, v in LAB4_GOOD["lab4"].items()}
    reuse = {k: int(v) for k, v in LAB4_GOOD["lab4reuse"].items()}
    truth = {"shared": 266, "sharing": 270}
    assert labs.lab4_stale_check(ev, truth, truth, reuse)[0]
    null = dict(ev, stale_shared=0, stale_sharing=0, shared=0, sharing=0)
    ok, why = labs.lab4_stale_check(null, {"shared": 262, "sharing": 262},
                                    {"shared": 262, "sharing": 262}, reuse)
    assert not ok and "census shared/sharing 0/0, frames 262/262" in why
    stale = dict(ev, stale_shared=1296, stale_sharing=275)
    assert not labs.lab4_stale_check(stale, truth, truth, reuse)[0]
    # folio_test_ksm() alone: each stale node on another node's KSM page counted
    weak = dict(ev, stale_shared=266 + 200, stale_sharing=274 + 200)
    ok, why = labs.lab4_stale_check(weak, truth, truth, reuse)
    assert not ok and "200 of them naming a frame that holds another node's KSM page" in why
    assert not labs.lab4_stale_check(ev, None, truth, reuse)[0]    # no count: no pass
    nothing = {"shared": 0, "sharing": 0}
    assert not labs.lab4_stale_check(null, nothing, nothing, reuse)[0]  # the live set is needed
    assert not labs.lab4_stale_check(dict(ev, stale_nodes=300), truth, truth, reuse)[0]  # window
    # a run in which too few stale nodes name another KSM page tells nothing
    for few in (None, dict(reuse, reused=labs.LAB4_REUSED - 1)):
        assert not labs.lab4_stale_check(ev, truth, truth, few)[0], few


def test_lab4_truth_program_builds(tmp_path: Path) -> None:
    labs.compile_guest(labs.LAB4_TRUTH, tmp_path / "kpages")
    scenario = labs.load_lab(4).scenario.read_text()
    assert "./lab/kpages lab4truth_stale" in scenario
    assert "./lab/kpages --migrate /tmp/lab4-ksm-frames lab4reuse" in scenario


# ---- student mode --------------------------------------------------------------

def prediction_grade() -> labs.Grade:
    lab = labs.load_lab(2)
    return labs.Grade(2, "s", [
        labs.check(lab, "pages_shared", True, "predicted 260, measured 260 (262 less 2 of the "
                   "baseline run)"),
        labs.check(lab, "pages_sharing", False, "predicted 1535, measured 1532 (1540 less 8 "
                   "of the baseline run)"),
        labs.check(lab, "ksm_zero_pages", False, "predicted 'x', measured 512",
                   "ksm_zero_pages: neither a whole number nor a formula in quotes")],
        runs=["/r/lab2-run", "/r/base"])


def test_student_mode_hides_measured_values_and_keys() -> None:
    g = prediction_grade()
    student = g.report(instructor=False)
    for secret in ("measured", "1532", "260", "PASS", "FAIL", "3/3", "0/3"):
        assert secret not in student, (secret, student)
    assert "recorded" in student and \
        "ksm_zero_pages: neither a whole number nor a formula" in student
    assert "answers (8 points) NOT all recorded" in student
    j = g.to_json(instructor=False)
    assert "measured" not in str(j) and "passed" not in str(j) and j["score"] == 0
    teacher = g.report(instructor=True)
    assert "measured 1532" in teacher and "total 3/8" in teacher
    assert labreport.status([g], instructor=False) == 1     # an answer not recorded
    g.checks[2] = labs.check(labs.load_lab(2), "ksm_zero_pages", False, "measured 512")
    assert labreport.status([g], instructor=False) == 0     # all recorded: nothing more shown
    assert labreport.status([g], instructor=True) == 1


def test_student_mode_does_not_say_how_many_choices_are_right(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = grade_lab4_faked(tmp_path, monkeypatch, LAB4_GOOD,
                         'mapping_holds = "node"\nstale_after_free = "no"\n'
                         'count_without_check = "less"\nsecond_check_for = "speed"\n')
    student = g.report(instructor=False)
    assert "right" not in student and "wrong" not in student and "1/4" not in student, student
    assert "?/4  answers: recorded" in student
    assert "total 6/6 of the code checks; answers (4 points) recorded" in student
    assert "1/4 right" in g.report(instructor=True)


def test_report_prints_the_run_directories() -> None:
    g = prediction_grade()
    for mode in (True, False):
        assert "run directory: /r/lab2-run\n  run directory: /r/base" in g.report(mode)


def test_cli_student_mode_records_predictions_without_a_boot(tmp_path: Path) -> None:
    """Lab 2 in student mode boots nothing and shows nothing but the form;
    a typo is named by file and line, and the grade says what to fix."""
    lab = labs.load_lab(2)
    d = labs.prepare(lab, tmp_path, kernel_tree=False)
    out = tmp_path / "r.json"
    env = {k: v for k, v in __import__("os").environ.items() if k != labreport.INSTRUCTOR_ENV}
    r = subprocess.run(LAB_PY + ["check", "2", "--work", str(tmp_path), "--json", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recorded, graded by the instructor after the deadline" in r.stdout and "measured" not in r.stdout
    # the skeleton's stubs are formulas too (0), shown with the handout's sizes
    assert r.stdout.count("recorded; with the handout's sizes it gives 0") == 3, r.stdout
    # JUnit beside the JSON: the predictions recorded (skipped), nothing else shown
    root = ET.parse(labs.junit_path(out)).getroot()
    assert [c.find("skipped") is not None for c in root.iter("testcase")] == [True] * 3
    (d / "answers.toml").write_text("pages_shared = 260\npages_sharing = 1532\n"
                                    "ksm_zero_pages = = 512\n")
    r = subprocess.run(LAB_PY + ["check", "2", "--work", str(tmp_path), "--json", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{d / 'answers.toml'}:3:" in r.stdout, r.stdout


# ---- lab 6: seed, score, frame --------------------------------------------------

def bits_hex(bits: list[int]) -> str:
    return "".join("0123456789abcdef"[sum(b << j for j, b in enumerate(bits[k:k + 4]))]
                   for k in range(0, len(bits), 4))


def test_lab6_secret_is_timing_c_s(tmp_path: Path) -> None:
    """victim_holds() is the victim's choice in timing.c (its mix(), compiled)."""
    src = (paths.TOP / "labs" / "06-timing" / "timing.c").read_text()
    mix = re.search(r"static uint64_t mix\(uint64_t z\)\n\{.*?\n\}\n", src, re.S)
    assert mix
    c = tmp_path / "mix.c"
    c.write_text("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n" + mix[0] +
                 "int main(int c, char **v) { uint64_t s = strtoull(v[1], 0, 10);\n"
                 "for (int i = 0; i < 64; i++) putchar('0' + (int)(mix(s ^ (uint64_t)i) & 1));\n"
                 "return 0; }\n")
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "mix"), str(c)], check=True)
    for seed in (1, 987654321, (1 << 40) - 3):
        out = subprocess.run([str(tmp_path / "mix"), str(seed)], capture_output=True,
                             text=True, check=True).stdout
        assert out == "".join(map(str, labs.victim_holds(seed, 64))), seed
    assert labs.hex_bits(bits_hex([1, 0, 0, 1, 1]), 5) == [1, 0, 0, 1, 1]
    assert labs.hex_bits("zz", 5) is None


TOKEN = "0123456789abcdef" * 2


def lab6_fields(seed: int, guess: list[int], truth: list[int],
                token: str = TOKEN) -> dict[str, str]:
    return {"pages": str(len(truth)), "seed": str(seed), "token": token, "classifier": "ok",
            "guess": bits_hex(guess), "truth": bits_hex(truth)}


def test_lab6_grader_counts_and_checks_the_truth() -> None:
    lab = labs.load_lab(6)
    seed, n = 12345, 256
    truth = labs.victim_holds(seed, n)

    def passed(*events: dict[str, str]) -> list[bool]:
        return [c.passed for c in labs.lab6_checks(lab, list(events), seed, TOKEN)]
    assert passed(lab6_fields(seed, truth, truth)) == [True, True]
    assert passed(lab6_fields(seed, [0] * n, truth)) == [False, False]
    # a program claiming every page merged, and guessing so
    assert passed(lab6_fields(seed, [1] * n, [1] * n)) == [False, False]
    # the right bits for another seed than the one drawn
    assert passed(lab6_fields(7, truth, truth)) == [False, False]
    # the old event, its score printed by the program itself
    old = {"pages": "256", "merged": "128", "right": "256", "merged_right": "128",
           "unmerged_right": "128", "token": TOKEN}
    assert passed(old) == [False, False]
    # a line without the grader's token, before or after the grader's own:
    # nothing is graded from the run
    forged = lab6_fields(seed, truth, truth, token="")
    for events in ([forged], [forged, lab6_fields(seed, truth, truth)],
                   [lab6_fields(seed, truth, truth), forged]):
        assert passed(*events) == [False, False], events
        assert "not printed by the grader's program" in labs.lab6_why_not(events, seed, TOKEN)
    # two lines with the token (the grader's program prints one)
    assert passed(lab6_fields(seed, truth, truth), lab6_fields(seed, truth, truth)) == \
        [False, False]
    # a classifier that gave no guesses: why is said
    dead = dict(lab6_fields(seed, truth, truth), classifier="exit-2", guess="none")
    assert passed(dead) == [False, False]
    assert "exit-2" in labs.lab6_why_not([dead], seed, TOKEN)


def test_lab6_seed_drawn_at_grading_and_frame_kept(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[int] = []

    def run(req: Any, files: dict[str, Path]) -> Any:
        secret = files[labs.LAB6_SECRET]
        assert secret.stat().st_mode & 0o777 == 0o600      # root's alone in the guest
        seed, token = secret.read_text().split()
        seeds.append(int(seed))
        assert files["lab/timing"].read_bytes() != files["lab/classify"].read_bytes()
        truth = labs.victim_holds(int(seed), 256)
        return fake_run(tmp_path, {"lab6": lab6_fields(int(seed), truth, truth, token)})

    monkeypatch.setattr(labs, "LAB_BUILD", tmp_path / "build")
    monkeypatch.setattr(labs, "run_checked", run)
    lab = labs.load_lab(6)
    ctx = labs.Ctx(results=tmp_path / "runs")
    sub = labs.Submission("ref", labs.solution_files(lab))
    grades = labs.grade_lab6(lab, [sub], ctx) + labs.grade_lab6(lab, [sub], ctx)
    assert [g.record["seed"] for g in grades] == seeds and len(set(seeds)) == 2
    assert all(g.score == g.total for g in grades), grades[0].report()
    assert f"(seed {seeds[0]})" in grades[0].report(instructor=False)
    assert not list((tmp_path / "build").rglob("secret"))    # not left on the host
    # a classifier changed outside classify(): not run, its code checks failed
    text = (paths.TOP / "labs" / "06-timing" / "classify.c").read_text()
    forged = submission(tmp_path, 6, classify_c=text.replace(
        "\tclassify(ns, n,", '\tprintf("PKSMTB-EVENT lab6 right=256\\n");\n\tclassify(ns, n,'))
    [g] = labs.grade_lab6(lab, [forged], ctx)
    assert len(seeds) == 2, "a changed program was run"
    failed = {c.name: c.detail for c in g.checks if not c.passed}
    assert set(failed) == {"accuracy", "both-classes", "answers"}
    assert "outside its regions" in failed["accuracy"]
    assert "only its LAB 6 region is yours" in failed["accuracy"]


def test_lab6_frame_allows_the_region_only(tmp_path: Path) -> None:
    lab = labs.load_lab(6)
    sk = labs.skeleton_files(lab)["classify.c"]
    sol = (paths.TOP / "labs" / "06-timing" / "classify.c").read_text()

    def problem(text: str) -> str:
        return labs.frame_problem(lab, submission(tmp_path / str(len(list(tmp_path.iterdir()))),
                                                  6, classify_c=text))
    assert problem(sk) == "" and problem(sol) == ""
    assert problem(sk.replace("\tguess[i] = 0;", "\tguess[i] = ns[i] > 1000;  \r")) == ""
    assert "ncal > 4096" in problem(sk.replace("ncal > 4096", "ncal > 4097"))
    assert problem(sk + "int x;\n")


# ---- lab 7: the code from the frames, the key measured, the counts drawn ---------------

# What each page-out of lab 7's run shows, per page (LAB7_FIGURES' order),
# on this kernel: (round, kind): outcome word.
LAB7_MEASURED = {("on", "zero"): "zero", ("on", "library"): "merged",
                 ("on", "twin"): "stored", ("on", "unique"): "stored",
                 ("on", "seen"): "kept", ("on", "first"): "stored",
                 ("on", "cycled"): "merged", ("off", "zero"): "zeromap",
                 ("off", "library"): "unasked", ("off", "twin"): "unasked",
                 ("off", "unique"): "unasked"}
# The skeleton's decision (every page stored): what round on shows then.
LAB7_STORE_ALL = {**LAB7_MEASURED, ("on", "zero"): "zeromap", ("on", "library"): "stored",
                  ("on", "seen"): "stored", ("on", "cycled"): "stored"}
# Where a page of each outcome is afterwards, and what it cost: the
# frames and zswap's counters (LAB7_FIGURES' besides), a page each.
LAB7_PLACES = {"zero": {"mapzero": 1}, "merged": {"mapksm": 1},
               "kept": {"resident": 1, "rescan": 1},
               "stored": {"swapped": 1, "compress": 1, "slots": 1, "pool": 2048},
               "unasked": {"swapped": 1, "compress": 1, "slots": 1, "pool": 2048},
               "zeromap": {"swapped": 1, "slots": 1}}


def lab7_events(drawn: dict[str, int], measured: dict[tuple[str, str], str],
                verified: str = "ok", bad: dict[str, int] | None = None) -> list[Event]:
    """The console of lab 7's program, each page-out showing the figures
    of its outcome word for the counts DRAWN (kind first: the cycled
    pages), where its pages are, and each kind's pages checked (BAD:
    pages changed, by kind of round on)."""
    out = []
    for (rnd, kind), word in measured.items():
        n = drawn["cycled" if kind == "first" else kind]
        fields = {"round": rnd, "kind": kind, "pages": str(n), "checked": "0", "busy": "0"}
        fields.update({f: str(n * v) for f, v in zip(labs.LAB7_FIGURES,
                                                      labs.LAB7_OUTCOMES[word])})
        fields.update({f: "0" for f in ("compress", "pool", "rescan", "slots", "mapzero",
                                        "mapksm", "resident", "swapped", "foreign")})
        fields.update({f: str(n * v) for f, v in LAB7_PLACES[word].items()})
        out.append(Event("lab7", fields))
    out += [Event("lab7verify", {"round": rnd, "kind": kind, "pages": str(drawn.get(kind, 0)),
                                 "bad": str((bad or {}).get(kind, 0) if rnd == "on" else 0)})
            for rnd, kind in measured]
    return out + [Event("lab7done", {"verified": verified, "bad": "0"})]


def drawn_of(files: dict[str, Path]) -> dict[str, int]:
    opts = files[labs.LAB7_PARAMS].read_text().split()
    return {opts[i][2:]: int(opts[i + 1]) for i in range(0, len(opts), 2)}


def grade_lab7_faked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     measured: dict[tuple[str, str], str], subs: list[labs.Submission],
                     verified: str = "ok", pages: dict[str, int] | None = None,
                     theirs: dict[tuple[str, str], str] | None = None,
                     ctx: labs.Ctx | None = None) -> tuple[list[labs.Grade], list[Any]]:
    """Lab 7 graded on stand-in runs for the counts the grader drew (or
    PAGES): the reference's (its run has no kernel build of its own: this
    checkout's) shows MEASURED, a submission's own kernel THEIRS (default
    the same); also each run's request and options."""
    given: list[Any] = []

    def run(req: Any, files: dict[str, Path]) -> Any:
        drawn = drawn_of(files)
        given.append((req, " ".join(f"--{k} {v}" for k, v in drawn.items())))
        d = tmp_path / f"run{len(given)}"
        d.mkdir(exist_ok=True)
        shows = measured if req.kbuild is None else (theirs or measured)
        return SimpleNamespace(run_dir=d, exit_code=ExitCode.OK, problems=[], console=Console(
            events=lab7_events(pages or drawn, shows, verified)))

    monkeypatch.setattr(labs, "LAB_BUILD", tmp_path / "build")
    monkeypatch.setattr(labs, "run_checked", run)
    grades = labs.grade(labs.load_lab(7), subs, ctx or labs.Ctx(results=tmp_path / "runs"))
    return grades, given


def lab7_sub(tmp_path: Path, name: str, **files: str) -> labs.Submission:
    """Lab 7's skeleton (FILES replaced) with a kernel build of its own."""
    sub = submission(tmp_path / name, 7, **files)
    sub.name, sub.kbuild = name, tmp_path / name / "kbuild"
    return sub


def test_lab7_key_is_what_the_run_measured(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts are drawn once a grading (recorded in each grade); the
    reference's run is the answers' key and grades the reference's code
    too, and each other submission's own kernel is booted once with the
    same counts: the reference gets full marks, the skeleton (every page
    stored) nothing; were the cycled pages not offered instead (an engine
    whose hook skips swap-cache pages), the key would follow the
    measurement, not the reference."""
    lab = labs.load_lab(7)
    ref = labs.solution(lab)
    sk = lab7_sub(tmp_path, "skeleton")
    grades, given = grade_lab7_faked(tmp_path, monkeypatch, LAB7_MEASURED, [ref, sk],
                                     theirs=LAB7_STORE_ALL)
    g, s = grades
    assert [r.kbuild for r, _ in given] == [None, sk.kbuild], given     # key, then skeleton
    assert given[0][1] == given[1][1]                                   # one draw
    assert not g.error and g.score == g.total == 18, g.report()
    assert g.record == s.record == {"drawn": given[0][1]} and given[0][1] in g.report(False)
    assert s.score == 0 and not s.error, s.report()
    assert len(g.runs) == 1 and len(s.runs) == 2        # the skeleton's run and the key's
    assert "measured 'merged'" in g.report(instructor=True)
    grades2, given2 = grade_lab7_faked(tmp_path, monkeypatch,
                                       {**LAB7_MEASURED, ("on", "cycled"): "unasked"}, [ref])
    assert given2[-1][1] != given[0][1]                     # drawn afresh
    [c] = [c for c in grades2[0].checks if c.name == "limits"]
    assert (c.earned, c.points) == (1, 2) and "said 'merged', measured 'unasked'" in c.detail
    # student mode: neither the measured outcome nor which answers are right
    student = grades2[0].report(instructor=False)
    assert "measured" not in student and "?/2  limits: recorded" in student, student


def lab7_code(drawn: dict[str, int], shows: dict[tuple[str, str], str],
              bad: dict[str, int] | None = None, **seen: int) -> dict[str, labs.Check]:
    lab = labs.load_lab(7)
    evs = lab7_events(drawn, shows, bad=bad)
    for e in evs:
        if e.name == "lab7" and e.fields["kind"] == "seen" and e.fields["round"] == "on":
            e.fields.update({k: str(v) for k, v in seen.items()})
    res: Any = SimpleNamespace(run_dir=Path("/r"), exit_code=ExitCode.OK, problems=[],
                          console=Console(events=evs))
    return {c.name: c for c in labs.lab7_code_checks(lab, res, drawn)}


def test_lab7_code_checks_read_the_frames() -> None:
    """The code checks, on figures a decision would give: the reference's
    pass; every page stored (the skeleton) fails all three; zero pages
    stored costs the zero half of merged alone (zero-filled pages are not
    compressed: the saving is the library's); seen pages merged into their
    partners' frames (an unstable page's content, no stable node) fail
    kept, which sees them there and changed once the partners were
    written; every page kept fails saving (nothing stored)."""
    drawn = {"zero": 64, "library": 100, "twin": 80, "unique": 50, "seen": 70, "cycled": 60,
             "seed": 1}
    ok = lab7_code(drawn, LAB7_MEASURED)
    assert all(c.passed for c in ok.values()), [c.detail for c in ok.values()]
    assert "100 saved (need the 100 library pages'" in ok["saving"].detail, ok["saving"].detail
    assert "pool 260 KiB against 460 KiB (0.57x)" in ok["saving"].detail, ok["saving"].detail
    sk = lab7_code(drawn, LAB7_STORE_ALL)
    assert not any(c.earned for c in sk.values()), [c.detail for c in sk.values()]
    zero = lab7_code(drawn, {**LAB7_MEASURED, ("on", "zero"): "zeromap"})
    assert (zero["merged"].earned, zero["kept"].passed, zero["saving"].passed) == (2, True, True)
    assert "zero pages: 0/64 on the zero page" in zero["merged"].detail
    partner = lab7_code(drawn, LAB7_MEASURED, bad={"seen": 70}, foreign=70)
    assert not partner["kept"].passed and partner["merged"].passed and partner["saving"].passed
    assert "0/70 resident on frames of their own (70 on a partner's frame)" in \
        partner["kept"].detail and "70 changed" in partner["kept"].detail
    keep = lab7_code(drawn, {**LAB7_MEASURED, ("on", "twin"): "kept", ("on", "unique"): "kept"})
    assert not keep["saving"].passed and keep["merged"].passed and keep["kept"].passed


def test_lab7_draw_and_outcomes() -> None:
    for _ in range(50):
        d = labs.lab7_draw()
        assert set(d) == {*labs.LAB7_KINDS, "seed"} and d["twin"] % 2 == 0
        assert all(labs.LAB7_DRAW[0] - 1 <= d[k] <= labs.LAB7_DRAW[1] for k in labs.LAB7_KINDS)
    # the words are told apart by their figures, each within 5 %
    figs = dict(zip(labs.LAB7_FIGURES, (100, 0, 96, 3, 0)))
    assert labs.lab7_outcome(figs, 100) == "merged"
    assert labs.lab7_outcome({**figs, "stable": 90}, 100) is None
    assert labs.lab7_outcome({**figs, "stored": 100}, 100) is None
    assert len(set(labs.LAB7_OUTCOMES.values())) == len(labs.LAB7_OUTCOMES)


def test_lab7_run_that_cannot_be_graded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that did not verify, a page-out that shows no one outcome, a
    run with counts other than those drawn: the error says which, and no
    answer graded from the reference's run earns a point (those graded
    from the key, `answers`, do not need it)."""
    ref = labs.solution(labs.load_lab(7))
    for measured, verified, pages, why in (
            (LAB7_MEASURED, "fail", None, "lab7done"),
            ({**LAB7_MEASURED, ("on", "seen"): "nonsense"}, "ok", None, "no page-out on/seen"),
            (LAB7_MEASURED, "ok", dict.fromkeys(labs.LAB7_KINDS, 200), "not the")):
        m = {k: v for k, v in measured.items() if v in labs.LAB7_OUTCOMES}
        [g], _ = grade_lab7_faked(tmp_path, monkeypatch, m, [ref], verified, pages)
        assert why in g.error, (why, g.report())
        earned = {c.name for c in g.checks if c.earned}
        assert "answers" in earned and not earned & set(labs.LAB7_CHECKS), g.report()
    # the run of a submission's own kernel that lacks page-outs fails its code checks
    [g], _ = grade_lab7_faked(tmp_path, monkeypatch, LAB7_MEASURED, [lab7_sub(tmp_path, "s")],
                              theirs={k: v for k, v in LAB7_MEASURED.items() if k[0] == "off"})
    code = {c.name: c for c in g.checks if c.name in ("merged", "kept", "saving")}
    assert not g.error and not any(c.earned for c in code.values()), g.report()
    assert "has no page-out on/zero, on/library" in code["merged"].detail

    # figures of no word: half the library merged
    def half(req: Any, files: dict[str, Path]) -> Any:
        drawn = drawn_of(files)
        evs = lab7_events(drawn, LAB7_MEASURED)
        for e in evs:
            if e.fields.get("kind") == "library" and e.fields.get("round") == "on" \
                    and e.name == "lab7":
                e.fields["stable"] = str(drawn["library"] // 2)
        return SimpleNamespace(run_dir=tmp_path, exit_code=ExitCode.OK, problems=[],
                               console=Console(events=evs))

    monkeypatch.setattr(labs, "run_checked", half)
    [g] = labs.grade(labs.load_lab(7), [ref], labs.Ctx(results=tmp_path / "runs"))
    assert "on/library shows no one outcome" in g.error, g.report()


def test_lab7_student_mode_boots_only_the_students_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In student mode the answers are not graded: no reference run, the
    submission's own kernel alone is booted; its code checks are shown, a
    word not offered is named, well-formed words are recorded."""
    sk = lab7_sub(tmp_path, "sk")
    [g], given = grade_lab7_faked(tmp_path, monkeypatch, LAB7_MEASURED, [sk],
                                  theirs=LAB7_STORE_ALL,
                                  ctx=labs.Ctx(results=tmp_path / "runs", instructor=False))
    assert [r.kbuild for r, _ in given] == [sk.kbuild] and len(g.runs) == 1
    shown = {c.name: c.shown for c in g.checks}
    assert set(shown) == set(labs.load_lab(7).points)
    assert "on_zero: not one of zero, merged" in shown["hook-on"]
    student = g.report(instructor=False)
    assert "FAIL]  0/4  merged: zero pages: 0/" in student, student
    assert "measured" not in student and "said" not in student, student
    assert labreport.status([g], instructor=False) == 1
    lab = labs.load_lab(7)
    ref = lab7_sub(tmp_path, "ref", answers_toml=(lab.dir / "answers.toml").read_text())
    [r], _ = grade_lab7_faked(tmp_path, monkeypatch, LAB7_MEASURED, [ref],
                              ctx=labs.Ctx(results=tmp_path / "runs", instructor=False))
    assert {c.shown for c in r.checks if c.answers} == {"recorded"}
    assert labreport.status([r], instructor=False) == 0, r.report(False)


def test_lab7_program_builds(tmp_path: Path) -> None:
    labs.compile_guest(labs.LAB7_PROGRAM, tmp_path / "pageout")
    r = subprocess.run([str(tmp_path / "pageout"), "--zero", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--library N is needed" in r.stderr
