"""Unit tests of the harness modules that need no kernel."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pksmtb import (boot, cli, config, console, guest, ktap, report, results, runner, sampling,
                    verdict)


def scenario(text: str) -> config.Scenario:
    return config.parse_scenario(tomllib.loads(text), "t", None)


def test_run_script_orders_knobs_and_opts_in_for_ksm() -> None:
    sc = scenario('[knobs.ksm]\nrun = 1\npages_to_scan = 7\n[knobs.pksm]\nprobation_scans = 0\n'
                  '[[workload]]\nprogram = "dupalloc"\noptions = { procs = 2 }\n')
    ksm = guest.render_run_script(sc, "ksm")
    lines = ksm.splitlines()
    # run is written last, after every other knob of both directories
    knob_lines = [ln for ln in lines if ln.startswith("knob ")]
    assert knob_lines == ["knob ksm pages_to_scan 7", "knob pksm probation_scans 0",
                          "knob ksm run 1"]
    assert "dupalloc --procs 2 --merge madvise &" in lines
    # PKSM needs no opt-in
    assert "dupalloc --procs 2 &" in guest.render_run_script(sc, "pksm").splitlines()


def test_run_script_keeps_explicit_merge_and_quotes_shell() -> None:
    sc = scenario('[[workload]]\nprogram = "dupalloc"\noptions = { merge = "prctl" }\n'
                  '[[workload]]\nshell = "echo \'hi\' $HOME"\n')
    text = guest.render_run_script(sc, "ksm")
    assert "dupalloc --merge prctl &" in text
    assert "sh -c 'echo '\"'\"'hi'\"'\"' $HOME' &" in text


def test_console_protocol_and_trouble() -> None:
    con = console.Console()
    for line in [
        "[    0.05] Run /init as init process",
        "PKSMTB-READY",
        "PKSMTB-KNOB ksm/run=1",
        "PKSMTB-EVENT filled t_ms=1234 procs=2 achievable=100",
        "dupalloc: MISMATCH proc 0 pid 5 page 3 offset 8 expected 0x1 got 0x2",
        "PKSMTB-EVENT verified result=fail failures=1",
        "PKSMTB-WORKLOAD 0 status=1",
        "[    1.00] Out of memory: Killed process 42 (dupalloc)",
        "[    1.10] WARNING: CPU: 0 PID: 1 at mm/ksm.c:10 foo",
        "PKSMTB-EXIT 1",
    ]:
        con.feed(line)
    assert con.ready and con.exit_status == 1
    assert con.knobs == {"ksm/run": "1"}
    assert con.events_named("filled")[0].num("achievable") == 100
    assert con.verify_result() == "fail"
    assert con.workload_status == {0: 1}
    assert len(con.mismatches) == 1 and len(con.oom) == 1 and len(con.reports) == 1
    assert not con.panic


def test_console_panic() -> None:
    con = console.Console()
    con.feed("[    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b")
    assert con.panic and con.exit_status is None


def write_csv(path: Path, rows: list[list[int]]) -> None:
    head = "t_ms,ksm_pages_sharing,ksm_ksm_zero_pages,ksm_ksmd_busy_ns,ksm_full_scans\n"
    path.write_text(head + "".join(",".join(map(str, r)) + "\n" for r in rows) + "99,1")


def test_sampling_summary(tmp_path: Path) -> None:
    p = tmp_path / "ts.csv"
    write_csv(p, [[0, 0, 0, 0, 0], [1000, 10, 10, 5 * 10**8, 1],
                  [2000, 40, 10, 10**9, 2], [3000, 80, 10, 2 * 10**9, 3]])
    s = sampling.read_csv(p)
    assert len(s.rows) == 4  # the torn last line is dropped
    out = sampling.summarize(s, filled_t_ms=1000, achievable=100)
    assert out["peak_saved_pages"] == 90
    assert out["saved_fraction"] == 0.9
    assert out["t50_s"] == 1.0 and out["t90_s"] == 2.0
    assert out["daemon_busy_s"] == 2.0
    assert out["full_scans_delta"] == 3
    none = sampling.summarize(s, filled_t_ms=None, achievable=1000)
    assert none["t90_s"] is None


def test_results_roundtrip(tmp_path: Path) -> None:
    a = results.new_run_dir("sc", "ksm", tmp_path)
    b = results.new_run_dir("sc", "ksm", tmp_path)
    assert a != b
    for d, saved in ((a, 10.0), (b, 5.0)):
        results.write_json(d / "meta.json", {"scenario": {"name": "sc"}, "kernel_build": "ksm"})
        results.write_json(d / "summary.json", {"peak_saved_mib": saved, "verdict": "pass"})
    assert results.all_runs(tmp_path) == [a, b]
    assert results.resolve_run("latest", tmp_path) == b
    assert results.resolve_run(a.name, tmp_path) == a
    with pytest.raises(results.RunNotFound):
        results.resolve_run("sc", tmp_path)  # ambiguous
    table = report.compare_table([a, b])
    assert "2.00x" in table
    assert json.loads((a / "meta.json").read_text())["kernel_build"] == "ksm"


def test_ktap() -> None:
    rep = ktap.parse([
        "[    0.1] random line",
        "[    0.2] KTAP version 1",
        "[    0.2] 1..1",
        "[    0.2]     KTAP version 1",
        "[    0.2]     # Subtest: pksm",
        "[    0.2]     1..3",
        "[    0.2]     ok 1 hash_sample",
        "[    0.2]     not ok 2 budget",
        "[    0.2]     ok 3 lists # SKIP no time",
        "[    0.3] not ok 1 pksm",
    ])
    assert [r.name for r in rep.failed] == ["budget", "pksm"]
    assert [r.name for r in rep.passed] == ["hash_sample"]
    assert rep.plans == [(0, 1), (1, 3)]
    assert [r.name for r in rep.top_level()] == ["pksm"]


def test_boot_argv_modes(tmp_path: Path) -> None:
    spec = boot.BootSpec(binary=tmp_path / "linux", mem_mib=64, share=tmp_path,
                         umid="u1", uml_dir=tmp_path / "uml")
    argv = spec.argv()
    assert "mem=64M" in argv and "umid=u1" in argv and f"pksmtb.share={tmp_path}" in argv
    assert not any(a.startswith("time-travel") for a in argv)
    spec.deterministic = True
    assert "time-travel=inf-cpu" in spec.argv()
    spec.swap_mib = 16
    assert f"ubd1={tmp_path}/uml/swap.img" in spec.argv()
    spec.prepare()
    assert spec.swap_image.stat().st_size == 16 << 20
    # an SMP build gets its vCPUs and the seccomp userspace; a UP build neither
    assert not any(a.startswith(("ncpus=", "seccomp=")) for a in spec.argv())
    spec.vcpus = 3
    assert {"ncpus=3", "seccomp=on"} <= set(spec.argv())


def test_run_boots_the_up_twin_in_deterministic_mode() -> None:
    load = [{"program": "dupalloc"}]
    perf = config.parse_scenario({"scenario": {"vcpus": 2}, "workload": load}, "p", None)
    det = config.parse_scenario({"scenario": {"mode": "deterministic"}, "workload": load},
                                "d", None)
    assert runner.flavour_of(perf, "") == "" and runner.flavour_of(perf, "debug") == "debug"
    assert runner.flavour_of(det, "") == "up" and runner.flavour_of(det, "debug") == "debug-up"
    assert runner.flavour_of(det, "g-up") == "g-up"
    with pytest.raises(config.ConfigError, match="uniprocessor"):
        runner.flavour_of(perf, "up")
    # --mode deterministic on a perf scenario drops it to 1 vCPU, unless
    # --set vcpus asked for more, which is refused
    sc, _ = runner.scenario_of(runner.RunRequest("default", mode="deterministic"))
    assert sc.vcpus == 1
    with pytest.raises(config.ConfigError, match="vcpus must be 1"):
        runner.scenario_of(runner.RunRequest("default", mode="deterministic",
                                             sets=["vcpus=2"]))


@pytest.mark.parametrize("arg", ["mem=1G", "umid=x", "a b", "x;y", "ubd1=/etc/passwd"])
def test_reserved_or_malformed_kernel_args(arg: str) -> None:
    with pytest.raises(boot.BadKernelArg):
        boot.check_kernel_arg(arg)
    assert boot.check_kernel_arg("pksm.enabled=0") == "pksm.enabled=0"


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "no-such-scenario", "--dry-run"]) == 2
    assert "no scenario named" in capsys.readouterr().err
    assert cli.main(["show", "nothing-like-this", "--results", "/nonexistent"]) == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "default", "--variant", "uksm"])
    assert e.value.code == 2


def test_trace_analysis(tmp_path: Path) -> None:
    from pksmtb import trace
    lines = [
        "# tracer: nop",
        "   sh-40  [000] .....  1.000000: pksm_page_registered: pfn=0x10",
        "   sh-40  [000] .....  1.000100: pksm_page_registered: pfn=0x11",
        "pksmd-14  [000] .....  1.100000: pksm_probation_passed: pfn=0x10 visits=3",
        "pksmd-14  [000] .....  1.200000: pksm_merge: pfn=0x10 kpfn=0x11 kind=unstable",
        "pksmd-14  [000] .....  1.200001: pksm_item_released: pfn=0x10",
        "  dup-50  [000] .....  1.500000: pksm_cow_break: pfn=0x11",
        "  dup-50  [000] .....  1.600000: pksm_page_registered: pfn=0x10",
        "pksmd-14  [000] .....  1.700000: pksm_merge: pfn=0x12 kpfn=0x11 kind=stable",
        "  dup-51  [000] .....  4.700000: pksm_cow_break: pfn=0x11",
    ]
    (tmp_path / "trace.txt").write_text("\n".join(lines) + "\n")
    summary = trace.process_run(tmp_path, "t")
    assert summary is not None
    assert summary["events"]["pksm_merge"] == 2
    assert summary["cow_after_merge"] == 2
    assert summary["wasted_merges"] == 1          # 0.3 s; the other lived 3 s
    assert summary["probation_median_s"] == 0.1
    rows = (tmp_path / "timeline.csv").read_text().splitlines()
    # pfn 0x10 has two lives; 0x12 was born before tracing started
    assert [r.split(",")[0] for r in rows[1:]] == ["0x10", "0x11", "0x10", "0x12"]
    assert rows[1].split(",")[4:6] == ["unstable", "0x11"]
    with pytest.raises(config.ConfigError):
        config.parse_events("merge,bogus")
    assert config.parse_events("merge,cow_break") == ["pksm_merge", "pksm_cow_break"]


def test_ktap_kselftest_cases_and_bail_out() -> None:
    rep = ktap.parse([
        "TAP version 13",
        "1..3",
        "# [RUN] test_unmerge",
        "ok 1 Pages were unmerged",
        "# [RUN] test_unmerge_uffd_wp",
        "ok 2 # SKIP __NR_userfaultfd failed",
        "# NUMA support not enabled",
        "not ok 3 KSM merging",
        "Bail out! 1 out of 3 tests failed",
        "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0",
    ])
    assert [r.case for r in rep.results] == ["test_unmerge", "test_unmerge_uffd_wp",
                                             "KSM merging"]
    assert [r.number for r in rep.results] == [1, 2, 3]
    assert rep.results[1].skipped and rep.results[1].directive == "SKIP __NR_userfaultfd failed"
    assert rep.results[2].diagnostics == ["NUMA support not enabled"]
    assert rep.bail_out == "1 out of 3 tests failed"
    assert rep.plans == [(0, 3)]


def write_ksft(root: Path, runs: list[tuple[str, int | None, str]]) -> Path:
    """A run directory with the guest runner's ksft/ files: (command, status, output)."""
    d = root / "ksft"
    d.mkdir(parents=True)
    (d / "plan").write_text("".join(cmd + "\n" for cmd, _, _ in runs))
    for i, (_, status, text) in enumerate(runs, 1):
        (d / f"{i:02d}.tap").write_text(text)
        if status is not None:
            (d / f"{i:02d}.status").write_text(f"{status}\n")
    return root


FUNC_OK = ("TAP version 13\n1..2\n# [RUN] test_a\nok 1 fine\n"
           "# [RUN] test_b\nok 2 # SKIP __NR_userfaultfd failed\n")
FUNC_FAIL = ("TAP version 13\n1..2\n# [RUN] test_a\nnot ok 1 MADV_UNMERGEABLE failed\n"
             "# [RUN] test_b\nok 2 # SKIP __NR_userfaultfd failed\n"
             "Bail out! 1 out of 2 tests failed\n")
NUMA_SKIP = "TAP version 13\n1..1\n# NUMA support not enabled\nok 1 # SKIP KSM NUMA merging\n"
MERGE_FAIL = "TAP version 13\n1..1\nnot ok 1 KSM merging\n"


def ksft_summary(run_dir: Path, expect: dict[str, Any]) -> dict[str, Any]:
    from pksmtb import ksft
    out = ksft.summarize(run_dir, expect)
    assert out is not None
    return out


def test_ksft_judge(tmp_path: Path) -> None:
    from pksmtb import ksft
    skips = {"ksft_skip": {"f / test_b": "__NR_userfaultfd failed",
                           "t -N": "NUMA support not enabled"}}
    good = ksft_summary(write_ksft(tmp_path / "a", [("f", 0, FUNC_OK), ("t -N", 0, NUMA_SKIP)]),
                          skips)
    assert good["problems"] == [] and good["planned"] == good["ran"] == 3
    assert good["passed"] == ["f / test_a"] and len(good["skipped"]) == 2
    assert ksft.describe(good) == "1 passed, 2 skipped, 0 failed of 3 planned"

    # a failure; a test that never reported; a skip nobody allowed
    bad = ksft_summary(write_ksft(tmp_path / "b", [
        ("f", 1, FUNC_FAIL), ("t -M", 139, "TAP version 13\n1..1\n"),
        ("t -N", 0, NUMA_SKIP)]), {"ksft_skip": {"f / test_b": "__NR_userfaultfd"}})
    assert bad["failed"] == ["f / test_a"]
    assert bad["problems"] == [
        "f / test_a: not ok 1 MADV_UNMERGEABLE failed",
        "t -M: planned 1 tests, 0 reported; exited 139",
        "t -N / KSM NUMA merging: skipped, and no skip is allowed here: "
        "NUMA support not enabled / ok 1 # SKIP KSM NUMA merging",
    ]

    # a skip for another reason than the allowed one; a runner that stopped
    odd = ksft_summary(write_ksft(tmp_path / "c", [("t -N", 0, NUMA_SKIP), ("t -U", None, "")]),
                         {"ksft_skip": {"t -N": "no THP"}})
    assert odd["problems"][0].startswith(
        "t -N / KSM NUMA merging: skipped, but not because 'no THP'")
    assert odd["problems"][1] == "t -U: no exit status (did not run to the end)"

    # left out: whole commands or single cases, run but not judged; the
    # Bail out!/exit 1 of a left-out failure is no problem; stale entries are
    left = ksft_summary(write_ksft(tmp_path / "d",
                                     [("f", 1, FUNC_FAIL), ("t -M", 1, MERGE_FAIL)]),
                          {"ksft_skip": {"f / test_b": "userfaultfd"},
                           "ksft_left_out": {"f / test_a": "why", "t -M": "why",
                                             "t -Z": "stale"}})
    assert left["left_out"] == {"f / test_a": "fail: not ok 1 MADV_UNMERGEABLE failed",
                                "t -M / KSM merging": "fail: not ok 1 KSM merging"}
    assert left["problems"] == ["[expect.ksft_left_out] 't -Z' matches no test that ran"]
    # ... but a left-out command that crashed (exit 128 + signal) or never
    # ended is a problem all the same
    crashed = ksft_summary(write_ksft(tmp_path / "d2",
                                        [("t -M", 139, "TAP version 13\n1..1\n"),
                                         ("t -U", None, ""), ("t -Z", 1, MERGE_FAIL)]),
                             {"ksft_left_out": {"t -M": "why", "t -U": "why", "t -Z": "why"}})
    assert crashed["problems"] == [
        "t -M: planned 1 tests, 0 reported; exited 139 (left out, but a crash or hang is "
        "never left out)",
        "t -U: no exit status (did not run to the end) (left out, but a crash or hang is "
        "never left out)"]
    assert crashed["left_out"] == {"t -Z / KSM merging": "fail: not ok 1 KSM merging"}

    # nothing ran although the scenario expects kselftests; none expected
    assert ksft_summary(tmp_path / "e", skips)["problems"]
    assert ksft.summarize(tmp_path / "e", {}) is None


def test_scenario_ksft_expectations() -> None:
    sc = scenario('[[workload]]\nshell = "ksm-selftests"\n'
                  '[expect.ksft_skip]\n"ksm_tests -N -m 1" = "NUMA"\n'
                  '[expect.ksft_left_out]\n"ksm_tests -U" = "system-wide counts"\n')
    assert sc.expect["ksft_skip"] == {"ksm_tests -N -m 1": "NUMA"}
    for bad in ('[expect]\nksft_skip = 3\n', '[expect.ksft_left_out]\n"x" = 1\n',
                '[expect.ksft_left_out]\n"x" = " "\n'):
        with pytest.raises(config.ConfigError):
            scenario('[[workload]]\nshell = "true"\n' + bad)
    # the shipped selftest scenarios load
    for name in ("ksm-selftests", "pksm-selftests"):
        assert config.load_scenario(name).expect["ksft_skip"]


def test_protocol_is_parsed_in_one_place() -> None:
    """Only console.py reads PKSMTB-* lines; nothing else keeps a regex copy."""
    import re
    harness = Path(__file__).resolve().parents[1]
    owner = {harness / "pksmtb" / "console.py"}
    reading = re.compile(r"re\.(search|match|fullmatch|findall|finditer|compile)\(|"
                         r"\bin (console|text|out|log)\b|\.count\(")
    offenders = [f"{p.relative_to(harness)}:{i}: {line.strip()}"
                 for p in sorted(harness.rglob("*.py")) if p not in owner
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if "PKSMTB-" in line and reading.search(line)]
    assert offenders == []


def test_captured_run_figures() -> None:
    """A real run's timeseries.csv and events.json give its summary.json figures."""
    from conftest import TEST_DATA
    run = TEST_DATA / "runs" / "test-merge" / "ksm" / "20261130T021826Z"
    con = console.load_events(run)
    filled_t, achievable = con.filled()
    figures = sampling.summarize(sampling.read_csv(run / "timeseries.csv"), filled_t, achievable)
    recorded = results.read_json(run / "summary.json")
    for key, value in figures.items():
        assert recorded[key] == value, key
    assert recorded["saved_fraction"] >= 0.9 and recorded["verdict"] == "pass"


def test_bench_vcpus_list() -> None:
    """A bench's --vcpus: counts in range, each once, a clear message else."""
    assert config.parse_vcpus_list("1,2", "--vcpus") == [1, 2]
    assert config.parse_vcpus_list(" 4 ", "--vcpus") == [4]
    for bad, msg in (("1,1", "given twice"), ("0", "vcpus must be"), ("9", "vcpus must be"),
                     ("1,x", "whole number"), ("", "whole number")):
        with pytest.raises(config.ConfigError, match=msg):
            config.parse_vcpus_list(bad, "--vcpus")


def test_vcpus_online_is_checked() -> None:
    """The guest reports the CPUs it brought up; fewer (or more) than the
    run asked for is a kernel problem, not a silent 1-vCPU run."""
    assert [guest.cpu_count(s) for s in ("0", "0-1", "0,2-3", "0-7\n")] == [1, 2, 3, 8]
    for bad in ("", "1-0", "x", "0-"):
        with pytest.raises(ValueError):
            guest.cpu_count(bad)
    script = guest.render_run_script(scenario('[[workload]]\nprogram = "dupalloc"\n'), "pksm")
    assert "PKSMTB-EVENT$nc cpus online=$(cat /sys/devices/system/cpu/online)" in script
    con = console.Console()
    for line in ("PKSMTB-READY", "PKSMTB-EVENT cpus online=0", "PKSMTB-EXIT 0"):
        con.feed(line)
    assert runner.vcpus_online(con) == 1
    v = verdict.judge(con, verdict.Outcome(), {}, {"vcpus": 2, "vcpus_online": 1})
    assert v.code == verdict.ExitCode.KERNEL and "1 vCPUs" in v.problems[0], v.problems
    assert verdict.judge(con, verdict.Outcome(), {}, {"vcpus": 1, "vcpus_online": 1}).passed


def test_two_boots_in_one_second_get_their_own_umid() -> None:
    """A lab grader runs two boots in threads: started within one second,
    their run directories share a name, and their umids (and so their short
    /tmp links) must not (before, the second boot's link already existed:
    FileExistsError, one lab 5 grading failed in make test)."""
    a, b = runner.umid_for(Path("/x/lab5-run/20261206T095716Z")), \
        runner.umid_for(Path("/x/lab5-base/20261206T095716Z"))
    assert a != b and a.startswith("pksmtb-") and b.endswith("20261206T095716Z")
