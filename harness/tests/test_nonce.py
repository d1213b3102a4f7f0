"""The boot's nonce on the console protocol (console.py): no boot.

Only lines stamped with the boot's nonce count as init's and run.sh's;
a control line without it, or any line with another nonce, is kept as
forged and fails the run; workloads' events (they do not know the nonce)
count as their own claims.  The guest side is run under busybox sh as
the guest runs it: rootfs/init's own lines read and delete the nonce
file and hand the nonce to a rendered run.sh's header on descriptor 3; a
workload started after it has neither the descriptor nor the nonce.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pksmtb import config, console, guest, paths, runner, verdict

N = "0123456789abcdef"


def feed(lines: list[str], nonce: str | None = N) -> console.Console:
    con = console.Console(nonce=nonce)
    for ln in lines:
        con.feed(ln)
    return con


def test_only_stamped_control_lines_count() -> None:
    con = feed([f"PKSMTB-READY@{N}",
                "PKSMTB-READY",                          # a program's: not init's
                f"PKSMTB-KNOB@{N} ksm/run=1",
                "PKSMTB-KNOB ksm/run=0",
                "PKSMTB-ALIVE t=3",
                f"PKSMTB-ALIVE@{N} t=2",
                "PKSMTB-EVENT filled t_ms=5 achievable=7",  # a workload's own claim
                f"PKSMTB-EVENT@{N} cpus online=0",
                "PKSMTB-EVENT@ffffffffffffffff lab6 pages=1",  # another boot's nonce
                "PKSMTB-ERROR a workload could not mount",  # an error only fails a run
                "PKSMTB-WORKLOAD 0 status=0",
                f"PKSMTB-WORKLOAD@{N} 0 status=1",
                "[   12.5] PKSMTB-EXIT 0",
                f"PKSMTB-EXIT@{N} 1"])
    assert con.ready and con.exit_status == 1 and con.workload_status == {0: 1}
    assert con.knobs == {"ksm/run": "1"} and con.heartbeats == 1
    assert [e.name for e in con.events] == ["filled", "cpus"]
    assert con.errors == ["a workload could not mount"]
    assert con.forged == ["PKSMTB-READY", "PKSMTB-KNOB ksm/run=0", "PKSMTB-ALIVE t=3",
                          "PKSMTB-EVENT@ffffffffffffffff lab6 pages=1",
                          "PKSMTB-WORKLOAD 0 status=0", "PKSMTB-EXIT 0"]
    v = verdict.judge(con, verdict.Outcome(), {"exit": 1}, {})
    assert not v.passed and any("without this boot's nonce" in p for p in v.problems)
    assert "forged" in con.to_json() and "nonce" not in con.to_json()


def test_a_forged_success_does_not_pass() -> None:
    """A program that prints a clean end before the guest's real one."""
    con = feed([f"PKSMTB-READY@{N}", "PKSMTB-WORKLOAD 0 status=0", "PKSMTB-EXIT 0"])
    assert con.exit_status is None and con.workload_status == {}
    assert not verdict.judge(con, verdict.Outcome(), {}, {}).passed


def test_without_a_nonce_every_line_counts() -> None:
    """A captured console (no nonce known): stamped or not, as printed."""
    con = feed(["PKSMTB-READY", f"PKSMTB-KNOB@{N} ksm/run=1", f"PKSMTB-EXIT@{N} 0"],
               nonce=None)
    assert con.ready and con.exit_status == 0 and con.knobs == {"ksm/run": "1"}
    assert con.forged == []


def test_redact_and_give_nonce(tmp_path: Path) -> None:
    assert console.redact(f"PKSMTB-EXIT@{N} 0", N) == "PKSMTB-EXIT@nonce 0"
    assert console.redact("x", None) == "x"
    a = runner.give_nonce(tmp_path)
    f = tmp_path / guest.NONCE_FILE
    assert f.read_text() == a + "\n" and re.fullmatch(r"[0-9a-f]{16}", a)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    f.unlink()
    assert runner.give_nonce(tmp_path) != a


def test_run_script_stamps_every_protocol_line() -> None:
    sc = config.parse_scenario({"scenario": {"duration": 5, "swap": "16M", "trace": "pksm"},
                                "workload": [{"program": "dupalloc"}]}, "t", None)
    assert sc.duration and sc.swap_mib and sc.trace and config.heartbeat_s(sc.watchdog)
    script = guest.render_run_script(sc, "pksm")
    words = [w.strip('"') for w in script.split() if w.strip('"').startswith("PKSMTB-")]
    assert words and all(w.startswith(tuple(f"PKSMTB-{k}$nc" for k in
                                            ("KNOB", "KNOBVAL", "ERROR", "ALIVE", "EVENT",
                                             "WORKLOAD"))) for w in words), words


def init_block() -> str:
    """rootfs/init's lines from reading the nonce to run.sh's status."""
    text = (paths.TOP / "rootfs" / "init").read_text()
    m = re.search(r"^\tif \[ -f /mnt/run/\.pksmtb-nonce \].*?^\t\tstatus=\$\?\n\tfi\n",
                  text, re.M | re.S)
    assert m, "rootfs/init no longer reads the nonce as this test expects"
    return m.group(0)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox (make deps) missing")
def test_guest_side_hands_the_nonce_to_run_sh_only(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    nonce = runner.give_nonce(share)
    header = guest.render_run_script(config.parse_scenario({"workload": [{"program": "dupalloc"}]}, "t", None), "pksm")
    keep = [ln for ln in header.splitlines()
            if ln.startswith(("read -r nc", "nc=${nc"))]
    assert len(keep) == 2
    workload = ("sh -c 'echo PKSMTB-EXIT 0; echo PKSMTB-EVENT mine x=1; "
                "[ -e /proc/self/fd/3 ] && echo FD3-OPEN; env | grep -c " + nonce + "; "
                "cat " + str(share / guest.NONCE_FILE) + " 2>/dev/null; exit 0'")
    (share / "run.sh").write_text("\n".join(keep + [
        workload + " &", "wait $!",
        'echo "PKSMTB-WORKLOAD$nc 0 status=$?"', "exit 0", ""]))
    block = init_block().replace("/mnt/run", str(share))
    script = (f"status=0\nnonce=\ncd {share}\n" + block
              + 'echo "PKSMTB-EXIT${nonce:+@$nonce} $status"\n')
    r = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, text=True,
                       timeout=30)
    printed = r.stdout.splitlines()
    assert r.returncode == 0, r.stderr
    assert not (share / guest.NONCE_FILE).exists()
    assert "FD3-OPEN" not in printed and "0" in printed   # no descriptor, no nonce in env
    theirs = [ln for ln in printed if not ln.startswith("PKSMTB-")]
    assert theirs and not any(nonce in ln for ln in theirs)
    con = feed(printed, nonce)
    assert con.exit_status == 0 and con.workload_status == {0: 0}
    assert con.forged == ["PKSMTB-EXIT 0"] and con.events_named("mine")


# A guest program that prints the protocol, and looks for the nonce where
# a program could: other processes' environments and command lines, the
# share (the nonce file, the console log being written), descriptor 3.
FORGER = '''
[scenario]
description = "a guest program prints protocol lines: they are not the guest's"
variant = "pksm"
mem = "128M"
vcpus = 1
timeout = 300
[knobs.ksm]
run = 1
[[workload]]
shell = "sleep 3"
[[workload]]
shell = 'sleep 1; for p in /proc/[0-9]*; do tr "\\0" " " < $p/environ; echo; tr "\\0" " " < $p/cmdline; echo; done > probe-procs.txt 2>/dev/null; cp console.log probe-console.txt; ls -a > probe-ls.txt; [ -e /proc/self/fd/3 ] && echo open > probe-fd3.txt; echo PKSMTB-WORKLOAD 7 status=0; echo PKSMTB-KNOB ksm/run=7; echo PKSMTB-EXIT 0; echo PKSMTB-EVENT probe done=1'
'''


@pytest.mark.boot
def test_a_guest_program_cannot_speak_for_the_guest(tmp_path: Path) -> None:
    from conftest import built, explain, scenario
    built("pksm")
    res = runner.run(runner.RunRequest(scenario(FORGER, "forger"), variant="pksm",
                                       results=tmp_path, progress=False))
    con, d = res.console, res.run_dir
    assert con.nonce and con.ready and con.exit_status == 0, explain(res)
    assert con.workload_status == {0: 0, 1: 0} and con.knobs["ksm/run"] == "1", explain(res)
    assert con.events_named("probe")
    assert con.forged == ["PKSMTB-WORKLOAD 7 status=0", "PKSMTB-KNOB ksm/run=7",
                          "PKSMTB-EXIT 0"], explain(res)
    assert res.exit_code == verdict.ExitCode.FAIL and len(res.problems) == 1, explain(res)
    assert res.problems[0].startswith("protocol lines without this boot's nonce")
    # what the program could see had no nonce; the share never kept it
    assert (d / "probe-procs.txt").stat().st_size > 0
    for name in ("probe-procs.txt", "probe-console.txt", "console.log", "events.json"):
        assert con.nonce not in (d / name).read_text(errors="replace"), name
    assert "PKSMTB-READY@nonce" in (d / "probe-console.txt").read_text()
    assert guest.NONCE_FILE not in (d / "probe-ls.txt").read_text().split()
    assert not (d / "probe-fd3.txt").exists() and not (d / guest.NONCE_FILE).exists()
