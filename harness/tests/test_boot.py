"""Boot tests: the real UML kernel, the real guest, the harness's own API.

Each test is one boot (or two) that batches several checks.  They need the
builds 'make test' makes first (kernels ksm and ksm-g, the rootfs); a
missing build fails the test rather than skipping it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import RunScenario, explain, scenario
from pksmtb import cli, paths, sampling
from pksmtb.verdict import ExitCode

pytestmark = pytest.mark.boot


def host_has_avx512() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return re.search(r"^flags\s*:.*\bavx512f\b", flags, re.MULTILINE) is not None


def test_merge_and_vector_registers(run_scenario: RunScenario) -> None:
    """Boot to init; fpregs keeps vector state; KSM reaches 90 % of the saving."""
    res = run_scenario("test-merge", "ksm")
    assert res.console.ready and res.console.exit_status == 0
    m = re.search(r"fpregs: level=(\w+) threads=2 iters=20000 result=(\w+)", res.console_text)
    assert m, explain(res)
    assert m.group(2) == "ok"
    if host_has_avx512():
        assert m.group(1) == "avx512", "AVX-512 host, but the guest did not test zmm state"

    summary = res.summary
    assert summary["verify"] == "ok"
    assert summary["saved_fraction"] >= 0.9
    assert summary["daemon_busy_s"] > 0
    for key in ("kernel_version", "build", "build_id", "config_sha256", "harness_revision",
                "command_line", "knobs", "kernel_command_line", "host_cpu_model",
                "host_load_start", "host_load_end", "mem_mib", "knobs_at_start"):
        assert res.meta.get(key), key
    # the kernel that booted is the build recorded beside the binary
    assert res.meta["build_check"]["status"] == "ok", res.meta["build_check"]
    assert res.meta["build_check"]["banner_id"] == res.meta["build"]["id"]
    assert res.meta["knobs_at_start"]["ksm/pages_to_scan"] == "2000"
    assert res.meta["knobs"]["ksm"]["pages_to_scan"] == "2000"
    series = res.series()
    assert len(series.rows) >= 10
    assert "ksm_pages_sharing" in series.columns and "ksm_ksmd_busy_ns" in series.columns
    assert (res.run_dir / "savings.png").stat().st_size > 1000
    assert (res.run_dir / "events.json").is_file()


def test_injected_corruption_is_caught(run_scenario: RunScenario) -> None:
    """A byte flipped through /proc/PID/mem must fail verification, naming the spot."""
    # The scenario expects the failure; the run passes when it sees exactly that.
    res = run_scenario("test-corrupt", "ksm")
    assert re.search(r"pokemem: pid \d+ addr", res.console_text), explain(res)
    assert any(re.search(r"MISMATCH proc \d+ pid \d+ page 100 offset 1234 ", m)
               for m in res.console.mismatches), explain(res)
    assert res.console.verify_result() == "fail"


def test_corruption_fails_a_normal_expectation(run_scenario: RunScenario) -> None:
    """Same corruption with the default expectation (verify ok): exit 1, mismatch shown."""
    text = (paths.SCENARIOS / "test-corrupt.toml").read_text()
    text = text.replace('exit = 1\nverify = "fail"', 'exit = 0\nverify = "ok"')
    res = run_scenario(scenario(text, "corrupt-strict"), "ksm", check=False)
    assert res.exit_code == ExitCode.FAIL, explain(res)
    problems = "\n".join(res.problems)
    assert "workload verification failed" in problems
    assert "page 100 offset 1234" in problems


def leftover(umid: str) -> str:
    """Host processes of the boot with this umid still running ('' if none)."""
    out = subprocess.run(["pgrep", "-a", "-f", f"umid={umid}"], capture_output=True, text=True)
    return out.stdout.strip()


def test_timeout_kills_everything(run_scenario: RunScenario) -> None:
    """A run past its time-out exits 5 and leaves no UML process behind."""
    slow = scenario('[scenario]\ntimeout = 5\nmem = "64M"\n'
                    '[[workload]]\nprogram = "dupalloc"\noptions = { hold = 120 }\n', "slow")
    res = run_scenario(slow, "ksm", check=False)
    assert res.exit_code == ExitCode.TIMEOUT, explain(res)
    assert any("time-out" in p for p in res.problems)
    umid = re.search(r"umid=(\S+)", res.meta["kernel_command_line"])
    assert umid
    assert leftover(umid.group(1)) == "", "stray UML processes"


def test_deterministic_mode_repeats(run_scenario: RunScenario) -> None:
    """time-travel=inf-cpu: two runs give identical guest timings (on the
    uniprocessor twin pksm-up, the one deterministic runs and labs boot)."""
    det = scenario('[scenario]\nmode = "deterministic"\nmem = "64M"\nsample_interval_ms = 100\n'
                   '[knobs.ksm]\npages_to_scan = 500\nsleep_millisecs = 20\nrun = 1\n'
                   '[[workload]]\nprogram = "dupalloc"\n'
                   'options = { procs = 2, mib = 4, dup = 50, zero = 25, hold = 2 }\n', "det")
    timings = []
    for _ in range(2):
        res = run_scenario(det, "pksm")
        assert res.meta["flavour"] == "up", res.meta["flavour"]
        assert "time-travel=inf-cpu" in res.meta["kernel_command_line"]
        series = res.series()
        assert len(series.rows) >= 10
        timings.append((res.console.event("filled").fields["t_ms"],
                        [r["t_ms"] for r in series.rows],
                        [sampling.saved_pages(r) for r in series.rows]))
    assert timings[0] == timings[1]


def test_cli_errors(run_scenario: RunScenario, runs_root: Path, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input and missing builds: clear message, distinct non-zero exits."""
    def cli_run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["run", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, _, err = cli_run("no-such-scenario")
    assert code == 2 and "no scenario named" in err
    code, _, err = cli_run("default", "--set", "pages_to_scan")
    assert code == 2 and "expected knob=value" in err
    code, _, err = cli_run("default", "--mem", "lots")
    assert code == 2 and "size" in err
    with monkeypatch.context() as m:
        m.setattr(paths, "KBUILD", tmp_path)
        code, _, err = cli_run("default", "--variant", "ksm", "--flavour", "debug",
                               "--results", str(runs_root))
    assert code == 3 and "make kernel VARIANT=ksm FLAVOUR=debug" in err
    code, out, _ = cli_run("default", "--dry-run", "--mode", "deterministic")
    assert code == 0 and "time-travel=inf-cpu" in out
    # A knob the kernel rejects is reported from the guest and fails the run.
    res = run_scenario("test-merge", "ksm", check=False, sets=["pages_to_scan=-5"])
    assert res.exit_code == ExitCode.FAIL, explain(res)
    assert any("rejected by the kernel" in p for p in res.problems)


def test_kernel_panic_and_oom_are_reported(run_scenario: RunScenario) -> None:
    """A kernel panic and a guest OOM end the run with exit 4 and their lines shown."""
    panic = scenario('[scenario]\nmem = "64M"\ntimeout = 60\n'
                     '[[workload]]\nshell = "sleep 0.3; echo c > /proc/sysrq-trigger"\n', "panic")
    res = run_scenario(panic, "ksm", check=False)
    assert res.exit_code == ExitCode.KERNEL, explain(res)
    problems = "\n".join(res.problems)
    assert "kernel panic/oops" in problems
    assert "Kernel panic - not syncing: sysrq triggered crash" in problems

    oom = scenario('[scenario]\nmem = "64M"\ntimeout = 120\n'
                   '[[workload]]\nprogram = "dupalloc"\n'
                   'options = { procs = 4, mib = 24, dup = 0, hold = 1 }\n', "oom")
    res = run_scenario(oom, "ksm", check=False)
    assert res.exit_code == ExitCode.KERNEL, explain(res)
    problems = "\n".join(res.problems)
    assert "guest OOM" in problems
    assert re.search(r"Out of memory: Killed process \d+ \(dupalloc\)", problems)
