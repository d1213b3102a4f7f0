"""Boot tests: the real UML kernel, the real guest, the real harness CLI.

Each test is one boot that batches several checks.  They need the builds
'make test' makes first (kernels ksm and ksm-g, the rootfs); a missing
build fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import built
from pksmtb import paths, sampling

pytestmark = pytest.mark.boot

CLI = [sys.executable, str(paths.TOP / "harness" / "pksmtb.py")]


def run_cli(*args: str, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def only_run(root: Path) -> Path:
    runs = [p.parent for p in root.glob("*/*/*/meta.json")]
    assert len(runs) == 1, runs
    return runs[0]


def host_has_avx512() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return re.search(r"^flags\s*:.*\bavx512f\b", flags, re.MULTILINE) is not None


def test_merge_and_vector_registers(runs_root: Path) -> None:
    """Boot to init; fpregs keeps vector state; KSM reaches 90 % of the saving."""
    built("ksm")
    res = run_cli("run", "test-merge", "--variant", "ksm", "--results", str(runs_root), "-q")
    assert res.returncode == 0, res.stdout + res.stderr
    run = only_run(runs_root)
    console = (run / "console.log").read_text()
    assert "PKSMTB-READY" in console and "PKSMTB-EXIT 0" in console

    m = re.search(r"fpregs: level=(\w+) threads=2 iters=20000 result=(\w+)", console)
    assert m, console[-2000:]
    assert m.group(2) == "ok"
    if host_has_avx512():
        assert m.group(1) == "avx512", "AVX-512 host, but the guest did not test zmm state"

    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["verify"] == "ok"
    assert summary["saved_fraction"] >= 0.9
    assert summary["daemon_busy_s"] > 0
    meta = json.loads((run / "meta.json").read_text())
    for key in ("kernel_version", "patch_series_sha256", "config_sha256", "git_revision",
                "command_line", "knobs", "kernel_command_line"):
        assert meta.get(key), key
    assert meta["knobs"]["ksm"]["pages_to_scan"] == "2000"
    series = sampling.read_csv(run / "timeseries.csv")
    assert len(series.rows) >= 10
    assert "ksm_pages_sharing" in series.columns and "ksm_ksmd_busy_ns" in series.columns
    assert (run / "savings.png").stat().st_size > 1000


def test_injected_corruption_is_caught(runs_root: Path) -> None:
    """A byte flipped through /proc/PID/mem must fail verification, naming the spot."""
    built("ksm")
    res = run_cli("run", "test-corrupt", "--variant", "ksm", "--results", str(runs_root), "-q")
    # The scenario expects the failure; the CLI passes when it sees exactly that.
    assert res.returncode == 0, res.stdout + res.stderr
    console = (only_run(runs_root) / "console.log").read_text()
    assert re.search(r"pokemem: pid \d+ addr", console), console[-2000:]
    assert re.search(r"MISMATCH proc \d+ pid \d+ page 100 offset 1234 ", console), console[-2000:]
    assert "PKSMTB-EVENT verified result=fail" in console


def test_corruption_fails_a_normal_expectation(runs_root: Path, tmp_path: Path) -> None:
    """Same corruption with the default expectation (verify ok): exit 1, mismatch shown."""
    built("ksm")
    text = (paths.SCENARIOS / "test-corrupt.toml").read_text()
    text = text.replace('exit = 1\nverify = "fail"', 'exit = 0\nverify = "ok"')
    sc = tmp_path / "corrupt-strict.toml"
    sc.write_text(text)
    res = run_cli("run", str(sc), "--variant", "ksm", "--results", str(runs_root), "-q")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "workload verification failed" in res.stderr
    assert "page 100 offset 1234" in res.stderr


def test_timeout_kills_everything(runs_root: Path, tmp_path: Path) -> None:
    """A run past its time-out exits 5 and leaves no UML process behind."""
    built("ksm")
    sc = tmp_path / "slow.toml"
    sc.write_text('[scenario]\ntimeout = 5\nmem = "64M"\n'
                  '[[workload]]\nprogram = "dupalloc"\noptions = { hold = 120 }\n')
    res = run_cli("run", str(sc), "--variant", "ksm", "--results", str(runs_root), "-q")
    assert res.returncode == 5, res.stdout + res.stderr
    assert "time-out" in res.stderr
    umid = json.loads((only_run(runs_root) / "meta.json").read_text())["kernel_command_line"]
    umid = re.search(r"umid=(\S+)", umid).group(1)
    left = subprocess.run(["pgrep", "-f", f"umid={umid}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"stray UML processes: {left.stdout}"


def test_deterministic_mode_repeats(runs_root: Path, tmp_path: Path) -> None:
    """time-travel=inf-cpu: two runs give identical guest timings."""
    built("ksm")
    sc = tmp_path / "det.toml"
    sc.write_text('[scenario]\nmode = "deterministic"\nmem = "64M"\nsample_interval_ms = 100\n'
                  '[knobs.ksm]\npages_to_scan = 500\nsleep_millisecs = 20\nrun = 1\n'
                  '[[workload]]\nprogram = "dupalloc"\n'
                  'options = { procs = 2, mib = 4, dup = 50, zero = 25, hold = 2 }\n')
    timings = []
    for i in range(2):
        root = runs_root / str(i)
        res = run_cli("run", str(sc), "--variant", "ksm", "--results", str(root), "-q")
        assert res.returncode == 0, res.stdout + res.stderr
        run = only_run(root)
        meta = json.loads((run / "meta.json").read_text())
        assert "time-travel=inf-cpu" in meta["kernel_command_line"]
        console = (run / "console.log").read_text()
        filled = re.search(r"PKSMTB-EVENT filled t_ms=(\d+)", console).group(1)
        series = sampling.read_csv(run / "timeseries.csv")
        assert len(series.rows) >= 10
        timings.append((filled, [r["t_ms"] for r in series.rows],
                        [sampling.saved_pages(r) for r in series.rows]))
    assert timings[0] == timings[1]


def test_cli_errors(runs_root: Path, tmp_path: Path) -> None:
    """Bad input and missing builds: clear message, distinct non-zero exits."""
    res = run_cli("run", "no-such-scenario")
    assert res.returncode == 2 and "no scenario named" in res.stderr
    res = run_cli("run", "default", "--set", "pages_to_scan")
    assert res.returncode == 2 and "expected knob=value" in res.stderr
    res = run_cli("run", "default", "--mem", "lots")
    assert res.returncode == 2 and "size" in res.stderr
    res = run_cli("run", "default", "--variant", "ksm", "--flavour", "debug",
                  "--results", str(runs_root), env={"PKSMTB_KBUILD": str(tmp_path)})
    assert res.returncode == 3 and "make kernel VARIANT=ksm FLAVOUR=debug" in res.stderr
    # A knob the kernel rejects is reported from the guest and fails the run.
    built("ksm")
    res = run_cli("run", "test-merge", "--variant", "ksm", "--set", "pages_to_scan=-5",
                  "--results", str(runs_root), "-q")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "rejected by the kernel" in res.stderr
    res = run_cli("run", "default", "--dry-run", "--mode", "deterministic")
    assert res.returncode == 0 and "time-travel=inf-cpu" in res.stdout


def test_kernel_panic_and_oom_are_reported(runs_root: Path, tmp_path: Path) -> None:
    """A kernel panic and a guest OOM end the run with exit 4 and their lines shown."""
    built("ksm")
    panic = tmp_path / "panic.toml"
    panic.write_text('[scenario]\nmem = "64M"\ntimeout = 60\n'
                     '[[workload]]\nshell = "sleep 0.3; echo c > /proc/sysrq-trigger"\n')
    res = run_cli("run", str(panic), "--variant", "ksm", "--results", str(runs_root / "p"), "-q")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "kernel panic/oops" in res.stderr
    assert "Kernel panic - not syncing: sysrq triggered crash" in res.stderr

    oom = tmp_path / "oom.toml"
    oom.write_text('[scenario]\nmem = "64M"\ntimeout = 120\n'
                   '[[workload]]\nprogram = "dupalloc"\n'
                   'options = { procs = 4, mib = 24, dup = 0, hold = 1 }\n')
    res = run_cli("run", str(oom), "--variant", "ksm", "--results", str(runs_root / "o"), "-q")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "guest OOM" in res.stderr
    assert re.search(r"Out of memory: Killed process \d+ \(dupalloc\)", res.stderr)
