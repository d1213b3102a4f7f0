"""The flake hunt's reader on synthetic rounds (no kernel is booted): a
test that passed in one round and failed in another is flagged, the
counts and first failure per test, pytest's own JUnit XML of a test that
fails every other session, bad input refused, and make flake-hunt's
argument checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pksmtb import cli, flakes, paths

HEAD = '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
TAIL = "</testsuite></testsuites>"
PASS = '<testcase classname="tests.test_x" name="{}" time="1.0"/>'
FAIL = ('<testcase classname="tests.test_x" name="{}" time="1.0">'
        '<failure message="AssertionError: exit 1 in /tmp/run&#10;more">long text</failure>'
        '</testcase>')
ERROR = ('<testcase classname="tests.test_x" name="{}" time="1.0">'
         '<error message="failed on setup with &quot;OSError: no core&quot;">tb</error>'
         '</testcase>')
SKIP = ('<testcase classname="tests.test_x" name="{}" time="0.0">'
        '<skipped type="pytest.skip" message="no NUMA">why</skipped></testcase>')


def write_rounds(d: Path, *rounds: list[str]) -> Path:
    """D/round1.xml ... from each round's testcase elements."""
    d.mkdir(parents=True, exist_ok=True)
    for k, cases in enumerate(rounds, 1):
        (d / f"round{k}.xml").write_text(HEAD + "".join(cases) + TAIL)
    return d


def test_passed_in_one_round_failed_in_another_is_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = write_rounds(tmp_path / "hunt",
                     [PASS.format("test_a"), PASS.format("test_ok")],
                     [FAIL.format("test_a"), PASS.format("test_ok")],
                     [PASS.format("test_a"), PASS.format("test_ok")])
    tallies = flakes.tally([flakes.read_round(p) for p in flakes.round_files(d)])
    a = tallies["tests.test_x::test_a"]
    assert a.verdict() == "flaky"
    assert a.counts == {"passed": 2, "failed": 1, "error": 0, "skipped": 0, "absent": 0}
    assert a.first_failure == "round 2: AssertionError: exit 1 in /tmp/run"
    assert tallies["tests.test_x::test_ok"].verdict() == "passed"
    assert flakes.failing(tallies)
    text, failed = flakes.report(d)
    assert failed
    lines = text.splitlines()
    assert lines[0] == f"flakes: {d}: 3 round(s), 2 test(s): 1 flaky"
    assert lines[1].split() == ["test", "verdict", "passed", "failed", "error", "skipped",
                                "absent", "first", "failure"]
    assert lines[3].split()[:7] == ["tests.test_x::test_a", "flaky", "2", "1", "0", "0", "0"]
    assert lines[3].endswith("round 2: AssertionError: exit 1 in /tmp/run")
    assert len(lines) == 4                         # test_ok passed every round: not listed
    assert cli.main(["flakes", str(d)]) == 1
    assert "tests.test_x::test_a" in capsys.readouterr().out


def test_every_round_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = write_rounds(tmp_path, *[[PASS.format("test_a"), PASS.format("test_b")]] * 3)
    text, failed = flakes.report(d)
    assert not failed and text.endswith("2 test(s): every test passed in every round")
    assert cli.main(["flakes", str(d)]) == 0
    assert "every test passed" in capsys.readouterr().out


def test_verdicts_counts_and_order(tmp_path: Path) -> None:
    d = write_rounds(tmp_path,
                     [FAIL.format("test_f"), ERROR.format("test_e"), SKIP.format("test_s"),
                      SKIP.format("test_v"), PASS.format("test_gone")],
                     [FAIL.format("test_f"), FAIL.format("test_e"), SKIP.format("test_s")])
    tallies = flakes.tally([flakes.read_round(p) for p in flakes.round_files(d)])
    verdicts = {t.test.split("::")[1]: t.verdict() for t in flakes.bad(tallies)}
    # flaky first (passed, then absent), failed, varied (skipped, then absent), skipped
    assert list(verdicts.items()) == [("test_gone", "flaky"), ("test_e", "failed"),
                                      ("test_f", "failed"), ("test_v", "varied"),
                                      ("test_s", "skipped")]
    e = tallies["tests.test_x::test_e"]
    assert e.counts["error"] == 1 and e.counts["failed"] == 1
    assert e.first_failure == 'round 1: failed on setup with "OSError: no core"'
    assert tallies["tests.test_x::test_gone"].counts["absent"] == 1
    assert flakes.failing(tallies)
    # skipped in every round: shown, but not a failure of the hunt
    only_skips = write_rounds(tmp_path / "skips", [SKIP.format("test_s"), PASS.format("t")],
                              [SKIP.format("test_s"), PASS.format("t")])
    text, failed = flakes.report(only_skips)
    assert not failed and "1 skipped" in text and "tests.test_x::test_s" in text


def test_a_test_written_twice_in_a_round_counts_once_by_its_worst(tmp_path: Path) -> None:
    # pytest writes a call failure and a teardown error as two testcases
    d = write_rounds(tmp_path, [ERROR.format("test_t"), FAIL.format("test_t"),
                                PASS.format("test_u"), ERROR.format("test_u")])
    r = flakes.read_round(d / "round1.xml")
    assert r["tests.test_x::test_t"].outcome == "failed"
    assert r["tests.test_x::test_u"].outcome == "error"
    assert flakes.tally([r])["tests.test_x::test_t"].counts["failed"] == 1


def test_long_messages_are_cut(tmp_path: Path) -> None:
    long = ('<testcase classname="c" name="t"><failure message="' + "x" * 500
            + '"/></testcase>')
    d = write_rounds(tmp_path, [long], [PASS.replace("tests.test_x", "c").format("t")])
    line = flakes.report(d)[0].splitlines()[-1]
    assert line.endswith("...") and len(line.split()[-1]) == flakes.MESSAGE_WIDTH - len("round 1: ")


def test_pytests_own_junit_of_a_test_that_fails_every_other_session(tmp_path: Path) -> None:
    """Real pytest XML, the way make flake-hunt writes it: two sessions of
    a test that passes when a counter is even and fails when it is odd."""
    (tmp_path / "test_luck.py").write_text(
        "from pathlib import Path\n"
        "import pytest\n"
        "COUNTER = Path(__file__).with_name('counter')\n"
        "def test_luck():\n"
        "    n = int(COUNTER.read_text()) if COUNTER.exists() else 0\n"
        "    COUNTER.write_text(str(n + 1))\n"
        "    assert n % 2 == 0, f'odd session {n}'\n"
        "def test_steady():\n"
        "    pass\n"
        "@pytest.mark.xfail(strict=True)\n"
        "def test_xpass():\n"
        "    pass\n")
    hunt = tmp_path / "hunt"
    for k in (1, 2):
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={hunt}/round{k}.xml", "-o", f"junit_suite_name=round{k}",
                        "test_luck.py"], cwd=tmp_path, capture_output=True, check=False)
    tallies = flakes.tally([flakes.read_round(p) for p in flakes.round_files(hunt)])
    assert {t.test: t.verdict() for t in tallies.values()} == {
        "test_luck::test_luck": "flaky", "test_luck::test_steady": "passed",
        "test_luck::test_xpass": "failed"}
    assert tallies["test_luck::test_luck"].first_failure == \
        "round 2: AssertionError: odd session 1"
    assert flakes.report(hunt)[1]


def test_bad_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def refused(d: Path, words: str) -> None:
        with pytest.raises(flakes.FlakeError, match=re.escape(words)):
            flakes.report(d)
        assert cli.main(["flakes", str(d)]) == 2
        assert words in capsys.readouterr().err

    refused(tmp_path / "nowhere", "no such directory")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "no round1.xml")
    gap = write_rounds(tmp_path / "gap", [PASS.format("a")], [PASS.format("a")])
    (gap / "round2.xml").rename(gap / "round3.xml")
    refused(gap, "round(s) 2 missing of 1..3")
    broken = write_rounds(tmp_path / "broken", [PASS.format("a")])
    (broken / "round1.xml").write_text("<testsuites><testsuite>")
    refused(broken, "not JUnit XML")
    (broken / "round1.xml").write_text("<html/>")
    refused(broken, "not JUnit XML (root <html>)")
    refused(write_rounds(tmp_path / "none", [], []), "no test in any of its 2 round(s)")
    with pytest.raises(flakes.FlakeError, match="no flake hunt yet"):
        flakes.latest(tmp_path / "empty")


def test_latest_is_the_newest_hunt(tmp_path: Path) -> None:
    for name in ("20261206T090000Z", "20261206T120000Z", "20261205T235959Z"):
        (tmp_path / name).mkdir()
    (tmp_path / "20261207T000000Z.txt").write_text("")
    assert flakes.latest(tmp_path).name == "20261206T120000Z"


@pytest.mark.parametrize("args,words", [
    (["N=0"], "N must be a whole number of rounds, 1..100 (got '0')"),
    (["N=two"], "N must be a whole number of rounds, 1..100 (got 'two')"),
    (["N=1.5"], "(got '1.5')"),
    (["N=101"], "N must be at most 100"),
    (["N=1", "TESTS=harness/tests/no_such_test.py"],
     "TESTS: no such file or directory: harness/tests/no_such_test.py"),
])
def test_make_flake_hunt_refuses_bad_arguments(args: list[str], words: str) -> None:
    # K matches nothing: were the checks broken, nothing would boot
    r = subprocess.run(["make", "-s", "-C", str(paths.TOP), "flake-hunt", "K=no_test_is_named_so",
                        *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and words in r.stderr, r.stderr
    assert "round 1" not in r.stdout
