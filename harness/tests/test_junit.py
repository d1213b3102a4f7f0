"""JUnit XML without a kernel: the writer (round trip through xml.etree,
the common schema's structure, escaping, empty suites), KTAP and
kselftest results as JUnit, a run directory's junit.xml, and the lab
grades' JUnit, which never carries what a student may not see.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_DATA
from pksmtb import console, junit, ksft, ktap, labreport, labs, runner
from pksmtb.verdict import ExitCode, Verdict
from test_units import FUNC_FAIL, FUNC_OK, NUMA_SKIP, write_ksft

# The common JUnit schema (Jenkins', Ant's), as far as the writer uses it:
# each element's children in the order they may come, and its required attributes.
CHILDREN: dict[str, list[str]] = {"testsuites": ["testsuite"],
            "testsuite": ["properties", "testcase", "system-out", "system-err"],
            "properties": ["property"],
            "property": [],
            "testcase": ["skipped", "error", "failure", "system-out", "system-err"],
            "skipped": [], "error": [], "failure": [], "system-out": [], "system-err": []}
REQUIRED: dict[str, set[str]] = {"testsuite": {"name", "tests"}, "property": {"name", "value"},
            "testcase": {"name", "classname"}}
COUNTED = ("tests", "failures", "errors", "skipped")


def valid(el: ET.Element) -> None:
    """EL keeps to the schema: known children in order, required attributes,
    a test case with at most one outcome, counts that add up."""
    order = CHILDREN[el.tag]
    ranks = [order.index(c.tag) for c in el]       # ValueError: an unknown child
    assert ranks == sorted(ranks), (el.tag, [c.tag for c in el])
    assert REQUIRED.get(el.tag, set()) <= set(el.attrib), (el.tag, el.attrib)
    if el.tag == "testcase":
        assert sum(c.tag in ("skipped", "error", "failure") for c in el) <= 1
    if el.tag in ("testsuites", "testsuite"):
        cases = el.findall(".//testcase")
        got = {"tests": len(cases),
               "failures": sum(c.find("failure") is not None for c in cases),
               "errors": sum(c.find("error") is not None for c in cases),
               "skipped": sum(c.find("skipped") is not None for c in cases)}
        assert {k: int(el.get(k, "-1")) for k in COUNTED} == got, el.attrib
    for c in el:
        valid(c)


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    valid(root)
    return root


def cases(root: ET.Element) -> dict[str, ET.Element]:
    """Every test case, keyed 'suite :: case'."""
    return {f"{s.get('name')} :: {c.get('name')}": c
            for s in root.iter("testsuite") for c in s.iter("testcase")}


# ---- the writer ------------------------------------------------------------------

def test_round_trip(tmp_path: Path) -> None:
    suites = [junit.Suite("s", [
        junit.Case("good", out="printed"),
        junit.Case("bad", "k", "fail", "it broke", "line 1\nline 2"),
        junit.Case("gone", outcome="skip", message="no NUMA"),
        junit.Case("crashed", outcome="error", text="\n\nfirst line of text\nmore")],
        {"points": "3"}, out="suite output")]
    junit.write(tmp_path / "a" / "r.xml", suites, "top")
    text = (tmp_path / "a" / "r.xml").read_text(encoding="utf-8")
    assert text.startswith("<?xml") and not (tmp_path / "a" / "r.xml.tmp").exists()
    root = parse(text)
    assert root.get("name") == "top" and root.get("tests") == "4"
    [s] = root
    assert [p.attrib for p in s.iter("property")] == [{"name": "points", "value": "3"}]
    assert s.findtext("system-out") == "suite output"
    got = cases(root)
    assert got["s :: good"].get("classname") == "s"
    assert got["s :: good"].findtext("system-out") == "printed"
    fail = got["s :: bad"].find("failure")
    assert fail is not None and fail.get("message") == "it broke"
    assert fail.text == "line 1\nline 2" and got["s :: bad"].get("classname") == "k"
    skip = got["s :: gone"].find("skipped")
    assert skip is not None and skip.get("message") == "no NUMA"
    err = got["s :: crashed"].find("error")
    assert err is not None and err.get("message") == "first line of text"


def test_escaping() -> None:
    """Markup, ']]>', control characters, lone surrogates (undecodable
    console bytes) and newlines in attributes all survive as text."""
    nasty = "a <b> & 'c' \"d\" ]]> \x00\x07\x1b[31m\ud800 \ufffe tab\there"
    root = parse(junit.to_string([junit.Suite(nasty, [
        junit.Case(nasty, nasty, "fail", nasty + "\nsecond", nasty, nasty)],
        {nasty: nasty}, nasty)], nasty))
    want = junit.clean(nasty)
    assert want == ("a <b> & 'c' \"d\" ]]> \\x00\\x07\\x1b[31m\\ud800 \\ufffe tab\there")
    [s] = root
    [c] = s.iter("testcase")
    fail = c.find("failure")
    assert fail is not None
    assert (root.get("name"), s.get("name"), c.get("name"), c.get("classname")) == (want,) * 4
    assert (fail.get("message"), fail.text, c.findtext("system-out"),
            s.findtext("system-out")) == (want, want, want, want)
    assert [p.attrib for p in s.iter("property")] == [{"name": want, "value": want}]
    multi = parse(junit.to_string([junit.Suite("s", [junit.Case("n\nm", "x")])]))
    assert [c.get("name") for c in multi.iter("testcase")] == ["n\nm"]
    long = junit.one_line("x" * 1000)
    assert len(long) == junit.MESSAGE_MAX and long.endswith("...")


def test_empty() -> None:
    root = parse(junit.to_string([]))
    assert len(root) == 0 and root.get("tests") == "0"
    root = parse(junit.to_string([junit.Suite("nothing")]))
    [s] = root
    assert s.get("name") == "nothing" and s.get("tests") == "0" and len(s) == 0
    with pytest.raises(ValueError):
        junit.Case("x", outcome="maybe")


# ---- KTAP and kselftests ----------------------------------------------------------

def test_kunit_failure_console_as_junit() -> None:
    con = console.Console.parse((TEST_DATA / "consoles" / "kunit-failure.log").read_text())
    root = parse(junit.to_string(ktap.junit_suites(ktap.parse(con.lines))))
    assert [s.get("name") for s in root] == ["kunit.pksm"]
    got = cases(root)
    assert list(got) == ["kunit.pksm :: pksm_test_hash_sample", "kunit.pksm :: pksm_test_budget",
                         "kunit.pksm :: pksm_test_lists"]
    fail = got["kunit.pksm :: pksm_test_budget"].find("failure")
    assert fail is not None and fail.get("message") == "not ok 2 pksm_test_budget"
    # the diagnostic lines KUnit printed before the result, the suite's header not
    assert fail.text == ("# pksm_test_budget: EXPECTATION FAILED at mm/pksm/pksm_kunit.c:88\n"
                         "Expected budget == 4000, but\n    budget == 3999 (0xf9f)\n"
                         "not ok 2 pksm_test_budget")
    assert got["kunit.pksm :: pksm_test_hash_sample"].find("system-out") is None
    # a console without KUnit results has no suites
    con = console.Console.parse((TEST_DATA / "consoles" / "real-pass.log").read_text())
    assert ktap.junit_suites(ktap.parse(con.lines)) == []


NESTED = """\
[    0.1] KTAP version 1
[    0.1] 1..4
[    0.1]     KTAP version 1
[    0.1]     # Subtest: outer
[    0.1]     1..2
[    0.1]         KTAP version 1
[    0.1]         # Subtest: inner
[    0.1]         1..2
[    0.1]         ok 1 a
[    0.1]         ok 2 b # SKIP no NUMA
[    0.1]     ok 1 inner
[    0.1]     ok 2 c
[    0.1] ok 1 outer
[    0.1] ok 2 lonely # SKIP not built
[    0.1]     KTAP version 1
[    0.1]     # Subtest: broken_init
[    0.1]     1..1
[    0.1]     ok 1 fine
[    0.1]     # broken_init: exit failed
[    0.1] not ok 3 broken_init
[    0.1]     KTAP version 1
[    0.1]     # Subtest: crashed
[    0.1]     1..2
[    0.1]     ok 1 first
[    0.1]     BUG: kernel NULL pointer dereference
"""


def test_nested_skipped_crashed_suites_as_junit() -> None:
    root = parse(junit.to_string(ktap.junit_suites(ktap.parse(NESTED.splitlines()))))
    assert [s.get("name") for s in root] == ["kunit", "kunit.outer", "kunit.outer.inner",
                                             "kunit.broken_init", "kunit.crashed"]
    got = cases(root)
    assert got["kunit :: lonely"].find("skipped") is not None
    assert list(got) == ["kunit :: lonely", "kunit.outer :: c", "kunit.outer.inner :: a",
                         "kunit.outer.inner :: b", "kunit.broken_init :: fine",
                         "kunit.broken_init :: (suite result)", "kunit.crashed :: first",
                         "kunit.crashed :: (suite result)"]
    skipped = got["kunit.outer.inner :: b"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no NUMA"
    init = got["kunit.broken_init :: (suite result)"].find("failure")
    assert init is not None and init.text == \
        "    # broken_init: exit failed\nnot ok 3 broken_init"
    assert got["kunit.crashed :: (suite result)"].find("error") is not None
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("1", "1", "2")


def test_kselftests_as_junit(tmp_path: Path) -> None:
    run = write_ksft(tmp_path / "b", [("f", 1, FUNC_FAIL), ("t -M", 139, "TAP version 13\n1..1\n"),
                                      ("t -N", 0, NUMA_SKIP), ("g", 0, FUNC_OK)])
    expect: dict[str, Any] = {"ksft_skip": {"f / test_b": "__NR_userfaultfd",
                                            "g / test_b": "__NR_userfaultfd"},
                              "ksft_left_out": {"t -Z": "stale"}}
    cmds = ksft.load(run / "ksft")
    root = parse(junit.to_string(ksft.junit_suites(cmds, ksft.judge(cmds, expect))))
    assert [s.get("name") for s in root] == ["ksft: f", "ksft: t -M", "ksft: t -N", "ksft: g",
                                             "ksft"]
    got = cases(root)
    fail = got["ksft: f :: test_a"].find("failure")
    assert fail is not None and fail.get("message") == \
        "f / test_a: not ok 1 MADV_UNMERGEABLE failed"
    assert got["ksft: f :: test_b"].find("skipped") is not None
    assert got["ksft: f :: (command)"].find("failure") is None     # its Bail out! is test_a's
    end = got["ksft: t -M :: (command)"].find("failure")
    assert end is not None and "planned 1 tests, 0 reported; exited 139" in str(end.get("message"))
    numa = got["ksft: t -N :: KSM NUMA merging"].find("failure")     # a skip nobody allowed
    assert numa is not None and "no skip is allowed here" in str(numa.get("message"))
    assert [c.tag for c in got["ksft: g :: test_a"]] == ["system-out"]
    stale = got["ksft :: (kselftests)"].find("failure")
    assert stale is not None and "'t -Z' matches no test" in str(stale.get("message"))
    left = ksft.judge(cmds, {"ksft_left_out": {"f": "why", "t -M": "why", "t -N": "why",
                                               "g": "why"}})
    root = parse(junit.to_string(ksft.junit_suites(cmds, left)))
    # every other result skipped as left out; t -M's end is a failure all the
    # same: it was killed by a signal (exit 139), and a crash is never left out
    assert (root.get("failures"), root.get("skipped"), root.get("tests")) == ("1", "5", "9")
    crash = cases(root)["ksft: t -M :: (command)"].find("failure")
    assert crash is not None and "exited 139 (left out, but a crash" in str(crash.get("message"))
    assert ksft.junit_suites(None, None) == []


def test_run_directory_junit(tmp_path: Path) -> None:
    con = console.Console.parse((TEST_DATA / "consoles" / "kunit-failure.log").read_text())
    v = Verdict()
    v.add(ExitCode.FAIL, "KUnit failures: pksm_test_budget, pksm")
    runner.write_junit(tmp_path, "t on pksm", con, v, {"ksft": None})
    root = parse((tmp_path / runner.JUNIT).read_text())
    assert root.get("name") == "t on pksm"
    assert [s.get("name") for s in root] == ["run", "kunit.pksm"]
    verdict = cases(root)["run :: verdict"].find("failure")
    assert verdict is not None and verdict.get("message") == \
        "exit 1 (FAIL): KUnit failures: pksm_test_budget, pksm"


# ---- lab grades ------------------------------------------------------------------------

SECRETS = ("measured", "1532", "260", "baseline", "wrong:", "right")


def lab_grades() -> list[labs.Grade]:
    lab2, lab4 = labs.load_lab(2), labs.load_lab(4)
    return [labs.Grade(2, "alice", [
        labs.check(lab2, "pages_shared", True, "predicted 260, measured 260 (262 less 2 of the "
                   "baseline run)"),
        labs.check(lab2, "pages_sharing", False, "predicted 1535, measured 1532"),
        labs.check(lab2, "ksm_zero_pages", False, "predicted 'x', measured 512",
                   "ksm_zero_pages: not a whole number")]),
        labs.Grade(4, "bob <b>", [
            labs.check(lab4, "stale-not-counted", False, "census 0/0, frames 262/262"),
            labs.check(lab4, "debug-silent", True, "no kernel report"),
            labs.scored(lab4, "answers", 2, "2/4 right; wrong: a, b")],
            error="does not build:\nfoo.c:1: error", record={"seed": 42})]


@pytest.mark.parametrize("instructor", [False, True])
def test_lab_junit_shows_only_what_a_student_sees(tmp_path: Path, instructor: bool) -> None:
    out = tmp_path / "lab-grades.json"
    labs.write_results(lab_grades(), out, instructor=instructor)
    assert labs.junit_path(out) == tmp_path / "lab-grades.junit.xml"
    text = labs.junit_path(out).read_text()
    for secret in SECRETS:
        assert secret not in text, (secret, text)
    root = parse(text)
    alice, bob = root
    assert alice.get("name") == "lab 2: alice" and bob.get("name") == "lab 4: bob <b>"
    props = {p.get("name"): p.get("value") for p in bob.iter("property")}
    assert props["stale-not-counted.points"] == "4" and props["record.seed"] == "42"
    assert props["stale-not-counted.earned"] == "0" and props["debug-silent.earned"] == "2"
    got = cases(root)
    code = got["lab 4: bob <b> :: stale-not-counted"].find("failure")
    assert code is not None and code.get("message") == "0/4 points: census 0/0, frames 262/262"
    assert code.text == "0/4 points: census 0/0, frames 262/262\ndoes not build:\nfoo.c:1: error"
    assert bob.findtext("system-out") == "does not build:\nfoo.c:1: error"
    shared = got["lab 2: alice :: pages_shared"]
    typo = got["lab 2: alice :: ksm_zero_pages"].find("failure")
    assert typo is not None and "ksm_zero_pages: not a whole number" in str(typo.get("message"))
    answers = got["lab 4: bob <b> :: answers"]
    alice_props = {p.get("name") for p in alice.iter("property")}
    if instructor:
        assert shared.find("failure") is None and shared.find("skipped") is None
        wrong = answers.find("failure")
        assert wrong is not None and wrong.get("message") == "2/4 points: recorded"
        assert "pages_shared.earned" in alice_props
    else:   # sealed: recorded ones skipped, malformed ones failed, nothing earned shown
        skipped = shared.find("skipped")
        assert skipped is not None and "graded after the deadline" in str(skipped.get("message"))
        assert answers.find("skipped") is not None
        assert not any(p.endswith(".earned") for p in alice_props if p)
        assert {p.get("name"): p.get("value") for p in alice.iter("property")}["score"] == "0"
