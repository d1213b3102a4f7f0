"""The no-output watchdog: a silent guest is stopped, with its backtrace.

The watchdog's bookkeeping on a fake clock; the boot loop on a fake
console stream (a host script standing in for the kernel, no kernel);
the scenario key, the option and the heartbeat in run.sh; the host's
time-out scale; the verdict.  One boot really hangs a guest.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest

from conftest import RunScenario, explain, scenario
from pksmtb import boot, config, guest, runner
from pksmtb.console import Console
from pksmtb.verdict import ExitCode, Outcome, judge


def test_watchdog_bookkeeping() -> None:
    """Output resets it; it expires at the limit of silence, never if off."""
    wd = boot.Watchdog(10.0, start=100.0)
    assert not wd.expired(109.9) and wd.wait_s(104.0) == pytest.approx(6.0)
    wd.output(105.0)
    assert not wd.expired(114.9)
    assert wd.expired(115.0) and wd.silent_s(115.0) == pytest.approx(10.0)
    wd.output(112.0)
    assert wd.max_silence_s == pytest.approx(7.0)
    off = boot.Watchdog(0.0, start=0.0)
    assert not off.expired(1e9) and off.wait_s(5.0) > 60


def fake_kernel(tmp_path: Path, body: str) -> boot.BootSpec:
    """A BootSpec whose 'kernel' is a shell script (it ignores the UML arguments)."""
    script = tmp_path / "fake-linux"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return boot.BootSpec(binary=script, mem_mib=64, share=tmp_path, umid="fake",
                         uml_dir=tmp_path / "uml")


def test_silent_stream_is_hung(tmp_path: Path) -> None:
    """A console that prints, then nothing: stopped at the limit, every
    line before the silence handed on, the backtrace file written (no
    mconsole here: gdb's view of the host process instead)."""
    spec = fake_kernel(tmp_path, "echo one; echo two; printf part; exec sleep 300\n")
    lines: list[str] = []
    t0 = time.monotonic()
    res = boot.boot(spec, lines.append, timeout=60, watchdog_s=1.0)
    took = time.monotonic() - t0
    assert res.hung and not res.timed_out and res.watchdog_s == 1.0
    assert 0.95 <= res.max_silence_s < 2.5, res
    assert took < 1.0 + 30, took
    assert lines[:2] == ["one", "two"]
    text = (tmp_path / boot.HANG_BACKTRACE).read_text()
    assert text.startswith("# hung: no console output for 1 s")
    assert "mconsole 'sysrq l'" in text and "gdb -p" in text
    assert not (tmp_path / "uml").exists()


def test_chatty_stream_is_not_hung(tmp_path: Path) -> None:
    """Output every 0.2 s for 1.2 s under a 0.8 s watchdog: no trip, and the
    longest silence measured."""
    spec = fake_kernel(tmp_path, "for i in 1 2 3 4 5 6; do echo beat $i; sleep 0.2; done\n")
    lines: list[str] = []
    res = boot.boot(spec, lines.append, timeout=60, watchdog_s=0.8)
    assert not res.hung and not res.timed_out and res.returncode == 0
    assert len(lines) == 6 and 0.1 < res.max_silence_s < 0.8, res
    assert not (tmp_path / boot.HANG_BACKTRACE).exists()


def test_timeout_still_applies_with_the_watchdog_off(tmp_path: Path) -> None:
    spec = fake_kernel(tmp_path, "exec sleep 300\n")
    res = boot.boot(spec, lambda _l: None, timeout=0.5, watchdog_s=0)
    assert res.timed_out and not res.hung


def test_long_run_dirs_get_a_short_mconsole_path(tmp_path: Path) -> None:
    """The mconsole socket must fit a Unix socket's path: a long uml_dir is
    given to the kernel through a link in /tmp, removed afterwards."""
    deep = tmp_path / ("d" * 90) / "uml"
    spec = boot.BootSpec(binary=Path("/bin/true"), mem_mib=64, share=tmp_path,
                         umid="pksmtb-1-20260101T000000Z", uml_dir=deep)
    assert spec.uml_link is not None
    assert len(str(spec.mconsole)) <= boot.SOCKET_PATH_MAX
    assert f"uml_dir={spec.uml_link}" in spec.argv()
    stale = Path("/tmp") / f"pksmtb-test-{os.getpid()}.uml"
    stale.unlink(missing_ok=True)
    stale.symlink_to(tmp_path / "gone" / "uml")    # a SIGKILLed harness's
    spec.prepare()
    assert spec.uml_link.resolve() == deep.resolve()
    assert not stale.is_symlink(), "a dangling link of a run gone is removed"
    spec.clean_up()
    assert not spec.uml_link.is_symlink() and not deep.exists()
    short = boot.BootSpec(binary=Path("/bin/true"), mem_mib=64, share=tmp_path,
                          umid="u", uml_dir=tmp_path / "uml")
    assert short.uml_link is None and f"uml_dir={tmp_path / 'uml'}" in short.argv()


def test_mconsole_without_a_kernel_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(boot.MconsoleError):
        boot.mconsole(tmp_path / "nobody", "version", timeout=1)


def test_stack_lines_are_recognised() -> None:
    assert boot.STACK_LINE_RE.search("[   19.54] Call Trace:")
    assert boot.STACK_LINE_RE.search("[   19.54]  [<6006eb2d>] do_wait+0xed/0x260")
    assert boot.STACK_LINE_RE.search("#3  0x00000000600493f1 in os_idle_sleep ()")
    assert not boot.STACK_LINE_RE.search("PKSMTB-EVENT silent")


def test_watchdog_key_option_and_heartbeat() -> None:
    """watchdog = N (0 off, 10..3600), --watchdog overrides; run.sh prints
    its heartbeat at a quarter of it, none when off."""
    sc = scenario('[[workload]]\nshell = "true"\n')
    assert sc.watchdog == config.WATCHDOG_DEFAULT_S
    assert "PKSMTB-ALIVE" in guest.render_run_script(sc, "pksm")
    assert "while sleep 15;" in guest.render_run_script(sc, "pksm")
    for bad in ("5", "4000", "-1", "true", '"60"'):
        with pytest.raises(config.ConfigError, match="watchdog"):
            scenario(f'[scenario]\nwatchdog = {bad}\n[[workload]]\nshell = "true"\n')
    off = scenario('[scenario]\nwatchdog = 0\n[[workload]]\nshell = "true"\n')
    assert "PKSMTB-ALIVE" not in guest.render_run_script(off, "pksm")
    assert [config.heartbeat_s(w) for w in (0, 10, 60, 3600)] == [0, 2, 15, 15]
    sc2, _ = runner.scenario_of(runner.RunRequest(sc, variant="pksm", watchdog=20))
    assert sc2.watchdog == 20
    with pytest.raises(config.ConfigError, match="--watchdog"):
        runner.scenario_of(runner.RunRequest(sc, variant="pksm", watchdog=3))
    con = Console.parse("PKSMTB-ALIVE t=15.01\nPKSMTB-ALIVE t=30.02\n")
    assert con.heartbeats == 2 and not con.events


def test_host_time_scale() -> None:
    """Idle host with cores to spare: 1; load and vCPUs beyond the cores
    stretch it proportionally, at most TIMEOUT_SCALE_MAX."""
    assert config.host_time_scale(2, load1=0.0, cores=2).scale == 1.0
    assert config.host_time_scale(1, load1=0.5, cores=8).scale == 1.0
    assert config.host_time_scale(2, load1=2.0, cores=2).scale == 2.0
    assert config.host_time_scale(8, load1=30.0, cores=2).scale == config.TIMEOUT_SCALE_MAX
    live = config.host_time_scale(2)
    assert 1.0 <= live.scale <= config.TIMEOUT_SCALE_MAX and live.cores >= 1


def test_verdict_of_a_hang() -> None:
    con = Console.parse("PKSMTB-READY\n")
    v = judge(con, Outcome(hung=True, watchdog_s=60, backtrace="mconsole sysrq l t"), {}, {})
    assert v.code == ExitCode.HUNG and int(v.code) == 6
    assert v.problems == ["hung: no output for 60 s (guest killed; backtrace "
                          "(mconsole sysrq l t) in hang-backtrace.txt)"]


HANG = '''
[scenario]
description = "a guest gone silent: its heartbeat stopped, its workload asleep"
mem = "128M"
timeout = 600
watchdog = 10
[[workload]]
shell = "kill $PKSMTB_HEARTBEAT_PID; echo PKSMTB-EVENT silent; sleep 1000"
'''


@pytest.mark.boot
def test_hung_guest_is_stopped_with_a_backtrace(run_scenario: RunScenario) -> None:
    """A guest silent for the watchdog's 10 s is stopped well before its
    time-out, with every task's kernel stack in hang-backtrace.txt, exit 6."""
    res = run_scenario(scenario(HANG, "hang"), "pksm", check=False)
    assert res.exit_code == ExitCode.HUNG, explain(res)
    assert res.problems[0].startswith("hung: no output for 10 s"), res.problems
    assert res.console.event("silent") and res.console.exit_status is None
    assert res.boot.hung and 10 <= res.boot.max_silence_s < 10 + 5, res.boot
    # booted, went silent, 10 s, the backtrace (a few seconds): far from 600 s
    assert res.boot.wall_s < 10 + 60, res.boot
    bt = res.run_dir / boot.HANG_BACKTRACE
    text = bt.read_text()
    assert "mconsole sysrq" in res.boot.backtrace, text[:2000]
    assert "Call Trace:" in text and re.search(r"\bschedule\+0x[0-9a-f]+/0x", text), text[:2000]
    assert re.search(r"task:sleep\s", text), "the sleeping workload's stack"
    assert res.summary["hung"] and res.summary["exit_code"] == 6
    assert res.meta["watchdog_s"] == 10 and res.meta["timeout_s"] >= 600


@pytest.mark.boot
def test_unanswering_guest_gets_gdbs_backtrace(run_scenario: RunScenario,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest whose mconsole does not answer (as one whose vCPUs take no
    interrupts): gdb attaches to the kernel's host threads instead, and
    each vCPU thread's stack is there in kernel symbols."""
    def refuse(self: boot.Mconsole, command: str) -> None:
        raise boot.MconsoleError(f"mconsole {command!r}: refused by the test")
    monkeypatch.setattr(boot.Mconsole, "send", refuse)
    res = run_scenario(scenario(HANG, "hang-gdb"), "pksm", check=False)
    assert res.exit_code == ExitCode.HUNG, explain(res)
    assert res.boot.backtrace == "gdb" and res.boot.wall_s < 10 + 60, res.boot
    text = (res.run_dir / boot.HANG_BACKTRACE).read_text()
    assert "refused by the test" in text and "---- gdb -p" in text, text[:2000]
    # both vCPUs idle in the guest kernel's idle loop, seen from the host
    assert len(re.findall(r"^#\d+ .* in (um_idle_sleep|os_idle_sleep|arch_cpu_idle)\b",
                          text, re.M)) >= 2, text[:4000]
