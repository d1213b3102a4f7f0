"""Real programs as workloads: validation, the guest script, package
versions (no kernel needed; the boot is in test_sweep.py)."""

from __future__ import annotations

import tomllib

import pytest

from pksmtb import config, guest, hostprog


def parse(text: str) -> config.Scenario:
    return config.parse_scenario(tomllib.loads(text), "t", None)


HOST = '[[workload]]\nhost = "pyserve"\n[workload.options]\nworkers = 3\nrecords = 500\n'


def test_run_script_mounts_the_host_root_and_starts_n_workers() -> None:
    sc = parse(HOST)
    assert sc.workloads[0].host and sc.workloads[0].program == "pyserve"
    script = guest.render_run_script(sc, "pksm")
    assert "mount -t hostfs -o ro none /tmp/host" in script
    assert script.index("mount -t hostfs") < script.index("sampler --interval")
    line = next(x for x in script.splitlines() if "chroot /tmp/host" in x)
    assert "$(seq 1 3)" in line and "--records 500" in line
    # PKSM merges without opt-in: the workers opt in only on a kernel that
    # merges nothing else (pksm.opted_in_only=1)
    cond = f"$(grep -qx 1 {hostprog.OPTED_IN_ONLY} 2>/dev/null && echo --merge)"
    assert cond in line and "--merge" not in line.replace(cond, "")
    assert str(hostprog.SCRIPTS / "pyserve.py") in line
    assert line.count("cowksm when=") == 2        # COW breaks of KSM pages, before and after
    # upstream KSM only sees memory that opted in
    assert "--merge" in guest.render_run_script(sc, "ksm")
    # no host workload, no mount
    plain = parse('[[workload]]\nprogram = "dupalloc"\n')
    assert "/tmp/host" not in guest.render_run_script(plain, "pksm")


@pytest.mark.parametrize("text,needle", [
    ('[[workload]]\nhost = "redis"\n', "is not one of pyserve, sqliteload, pycompile"),
    (HOST.replace("records", "rows"), "pyserve has no such option"),
    (HOST.replace("workers = 3", "workers = 0"), "outside 1..64"),
    (HOST.replace("workers = 3", "workers = 2.5"), "whole number"),
    (HOST.replace("records = 500", 'records = "many"'), "whole number"),
    ('[[workload]]\nhost = "pyserve"\nprogram = "dupalloc"\n', "stands alone"),
])
def test_bad_host_workloads_refused(text: str, needle: str) -> None:
    with pytest.raises(config.ConfigError, match=needle):
        parse(text)


def test_shipped_real_scenarios_and_package_versions() -> None:
    for name in ("real-pyserve", "real-sqliteload", "real-pycompile"):
        sc = config.load_scenario(name)
        assert [w.host for w in sc.workloads] == [True]
    versions = hostprog.packages(["pyserve"])
    assert set(versions) == set(hostprog.PROGRAMS["pyserve"].packages)
    assert versions["python3"][0].isdigit() and versions["libsqlite3-0"][0].isdigit()
