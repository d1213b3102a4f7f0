"""make mutants without a kernel: the list's checks, how a killer's outcome
is read from pytest's JUnit XML, and the verdicts (the mutants themselves
are built and run by 'make mutants', not by the test suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pksmtb import mutants, overlay

GOOD = '''
[[mutant]]
name = "ok"
what = "skip the opt-out"
find = "bool pksm_vma_excluded(struct vm_area_struct *vma)\\n{\\n"
replace = "bool pksm_vma_excluded(struct vm_area_struct *vma)\\n{\\n\\treturn false;\\n"
killers = ["harness/tests/test_pksm.py::test_opt_out_keeps_pksm_away[pksm]"]
'''


def spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_the_committed_list_loads_and_every_mutant_changes_its_file() -> None:
    ms = mutants.load()
    assert len(ms) >= 8
    files = overlay.pksm_files()
    for m in ms:
        text = files[m.file].read_text()
        assert m.mutated(text) != text and text.count(m.find) == 1, m.name
        assert all(k.startswith("harness/tests/") for k in m.killers), m.name


def test_a_good_entry_is_located(tmp_path: Path) -> None:
    (m,) = mutants.load(spec(tmp_path, GOOD))
    assert m.file == "mm/pksm/track.c" and m.base == "pksm"


@pytest.mark.parametrize("edit, complaint", [
    (lambda s: s.replace('name = "ok"', 'name = "Bad Name"'), "name must be"),
    (lambda s: s + s, "unique"),
    (lambda s: s.replace("killers =", "killerz ="), "unknown keys"),
    (lambda s: s.replace('"harness/tests/test_pksm.py::test_opt_out_keeps_pksm_away[pksm]"',
                         '"test_opt_out"'), "node ids"),
    (lambda s: s.replace("bool pksm_vma_excluded(struct vm_area_struct *vma)\\n{\\n\"",
                         "no such code anywhere\""), "found 0 times"),
    (lambda s: s.replace("bool pksm_vma_excluded(struct vm_area_struct *vma)\\n{\\n\"",
                         "spin_lock_irqsave(&pksm_lock, flags);\""), "exactly once"),
    (lambda s: s.replace('what = "skip the opt-out"', 'what = 3'), "must be strings"),
    (lambda s: "[[mutants]]\n", "unknown top-level keys"),
])
def test_bad_lists_are_refused_with_the_reason(tmp_path: Path, edit: object,
                                               complaint: str) -> None:
    assert callable(edit)
    with pytest.raises(mutants.MutantError, match=complaint):
        mutants.load(spec(tmp_path, edit(GOOD)))


def test_a_list_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(mutants.MutantError, match="m.toml"):
        mutants.load(spec(tmp_path, "[[mutant]\nname="))


def junit_file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "r.xml"
    p.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                 f"{body}</testsuite></testsuites>")
    return p


@pytest.mark.parametrize("body, outcome", [
    ('<testcase classname="tests.t" name="a" time="1"/>', "pass"),
    ('<testcase classname="tests.t" name="a"><failure message="x"/></testcase>', "fail"),
    ('<testcase classname="tests.t" name="a"><error message="fixture"/></testcase>', "error"),
    ('<testcase classname="tests.t" name="a"><skipped message="s"/></testcase>', "skip"),
    # a failure and a teardown error: the test failed
    ('<testcase classname="tests.t" name="a"><failure/><error/></testcase>', "fail"),
    # nothing collected, or more than the one test asked for: not a verdict
    ("", "error"),
    ('<testcase name="a"/><testcase name="b"/>', "error"),
])
def test_a_killers_outcome_is_read_from_junit(tmp_path: Path, body: str, outcome: str) -> None:
    assert mutants.junit_outcome(junit_file(tmp_path, body)) == outcome


def test_no_junit_file_is_an_error(tmp_path: Path) -> None:
    assert mutants.junit_outcome(tmp_path / "missing.xml") == "error"
    (tmp_path / "bad.xml").write_text("<testsuites>")
    assert mutants.junit_outcome(tmp_path / "bad.xml") == "error"


def test_only_a_failed_killer_kills() -> None:
    assert mutants.judge(mutants.KillerRun({"a": "pass", "b": "fail"})) == "killed"
    # an error (a missing build, a fixture) is no kill
    assert mutants.judge(mutants.KillerRun({"a": "error", "b": "pass"})) == "survived"
    assert mutants.judge(mutants.KillerRun({"a": "pass"})) == "survived"


def record(control: str, outcomes: list[str]) -> dict[str, object]:
    return {"harness_revision": "abc", "control": {"base": "pksm", "outcome": control},
            "mutants": [{"name": f"m{i}", "what": "w", "outcome": o, "killers": {}}
                        for i, o in enumerate(outcomes)]}


def test_all_killed_needs_every_mutant_killed_and_the_control() -> None:
    assert mutants.all_killed(record("pass", ["killed", "killed"]))
    assert not mutants.all_killed(record("pass", ["killed", "survived"]))
    assert not mutants.all_killed(record("pass", ["killed", "stillborn"]))
    assert not mutants.all_killed(record("error", ["killed"]))
    assert not mutants.all_killed(record("pass", []))


def test_junit_cases_follow_the_outcomes() -> None:
    s = mutants.suite(record("pass", ["killed", "survived", "stillborn"]))
    assert [c.outcome for c in s.cases] == ["pass", "pass", "fail", "error"]
    assert "no killer failed" in s.cases[2].message


def test_the_control_records_every_base(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """run(): the control's record keeps each base's killers (it kept the
    last base's alone), and a killer failing on one base's unmutated
    engine stops the run with that base named."""
    ms = [m for m in mutants.load() if m.base != "pksm"][:1] + \
        [m for m in mutants.load() if m.base == "pksm"][:1]
    bases = sorted({m.base for m in ms})
    assert len(bases) == 2
    monkeypatch.setattr(mutants, "ROOT", tmp_path / "overlays")
    monkeypatch.setattr(overlay, "overlay_tree", lambda *a, **k: None)
    monkeypatch.setattr(overlay, "build", lambda *a, **k: 0)
    failing: set[str] = set()

    def killers(ks: list[str], kbuild: Path, work: Path,
                first_kill: bool = False) -> mutants.KillerRun:
        base = kbuild.parent.parent.name
        return mutants.KillerRun({k: "fail" if base in failing or first_kill else "pass"
                                  for k in ks}, seconds=1.0)
    monkeypatch.setattr(mutants, "run_killers", killers)
    rec = mutants.run(ms, tmp_path / "out", progress=False)
    ctl = rec["control"]
    assert ctl["outcome"] == "pass" and ctl["base"] == ", ".join(bases), ctl
    assert {k.split(": ")[0] for k in ctl["killers"]} == set(bases), ctl
    assert ctl["seconds"] == 2.0 and mutants.all_killed(rec)
    failing.add(bases[1])
    rec = mutants.run(ms, tmp_path / "out2", progress=False)
    assert rec["control"]["outcome"] == "error" and bases[1] in rec["control"]["detail"]
    assert rec["mutants"] == [] and not mutants.all_killed(rec)
