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


def test_workers_spread_over_domains() -> None:
    """domains = N: worker i runs as uid 1001 + i % N, in that group's memory
    cgroup (made once, the memory controller on) and a session of its own."""
    sc = parse(HOST + "domains = 2\n")
    line = next(x for x in guest.render_run_script(sc, "pksm").splitlines()
                if "chroot /tmp/host" in x)
    cg = f"{hostprog.CGROUP_ROOT}/{hostprog.CGROUP_PREFIX}"
    assert f"mkdir -p {cg}0 {cg}1 " in line and "+memory" in line
    assert "g=$((i % 2))" in line and f"> {cg}$g/cgroup.procs" in line
    assert "exec setsid chroot /tmp/host /usr/bin/setpriv --reuid=$((1001 + g))" in line
    assert "--regid=$((1001 + g)) --clear-groups /usr/bin/python3 -I" in line
    # the option is the workers', not the program's
    assert "--domains" not in line
    # none: every worker root, one cgroup and session, as before
    plain = next(x for x in guest.render_run_script(parse(HOST), "pksm").splitlines()
                 if "chroot /tmp/host" in x)
    assert "setpriv" not in plain and "cgroup" not in plain


def test_workload_option_set_from_the_command_line() -> None:
    """--set workload.NAME=V sets an option of the scenario's real programs,
    checked as the scenario file's; a scenario without one refuses it."""
    sc = parse(HOST)
    config.apply_overrides(sc, ["workload.domains=4", "workload.seconds=2.5"])
    assert sc.workloads[0].options["domains"] == 4 and sc.workloads[0].options["seconds"] == 2.5
    for bad, needle in (("workload.domains=9", "outside 0..8"),
                        ("workload.domain=2", "pyserve has no such option"),
                        ("workload.domains=two", "not a number")):
        with pytest.raises(config.ConfigError, match=needle):
            config.apply_overrides(parse(HOST), [bad])
    with pytest.raises(config.ConfigError, match="no real program"):
        config.apply_overrides(parse('[[workload]]\nprogram = "dupalloc"\n'),
                               ["workload.domains=2"])
