"""Scenario parsing and validation (no kernel needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pksmtb import config, paths
from pksmtb.config import ConfigError


def parse(text: str) -> config.Scenario:
    return config.parse_scenario(tomllib.loads(text), "t", None)


MINIMAL = '[[workload]]\nprogram = "dupalloc"\n'


def test_minimal_defaults() -> None:
    sc = parse(MINIMAL)
    assert sc.variant == "ksm" and sc.mem_mib == 256 and sc.mode == "perf"
    assert sc.workloads[0].argv() == ["dupalloc"]


def test_options_become_flags() -> None:
    sc = parse('[[workload]]\nprogram = "dupalloc"\n'
               '[workload.options]\nprocs = 4\ndup_set = 3\nhold = 1.5\nverbose = true\n'
               'quiet = false\n')
    assert sc.workloads[0].argv() == ["dupalloc", "--procs", "4", "--dup-set", "3",
                                      "--hold", "1.5", "--verbose"]


@pytest.mark.parametrize("text,needle", [
    ("[scenario]\nmem = \"12X\"\n" + MINIMAL, "size"),
    ("[scenario]\nmem = \"8M\"\n" + MINIMAL, "32M..16G"),
    ("[scenario]\nvariant = \"uksm\"\n" + MINIMAL, "variant"),
    ("[scenario]\nmode = \"fast\"\n" + MINIMAL, "mode"),
    ("[scenario]\ntimeout = true\n" + MINIMAL, "timeout"),
    ("[scenario]\nsample_interval_ms = 1\n" + MINIMAL, "sample_interval_ms"),
    ("[scenario]\ncolour = 1\n" + MINIMAL, "unknown key"),
    ("[knobs.foo]\nx = 1\n" + MINIMAL, "unknown key"),
    ("[knobs.ksm]\n\"bad name\" = 1\n" + MINIMAL, "bad knob name"),
    ("[knobs.ksm]\nrun = 1.5\n" + MINIMAL, "knob value"),
    ("[[workload]]\nprogram = \"rm\"\n", "not one of"),
    ("[[workload]]\nprogram = \"dupalloc\"\noptions = { procs = \"4; reboot\" }\n", "bad value"),
    ("[scenario]\n", "no [[workload]]"),
    ("[expect]\nsaved_fraction_min = 2\n" + MINIMAL, "0..1"),
    ("[expect]\nverify = \"maybe\"\n" + MINIMAL, "verify"),
])
def test_bad_scenarios_are_rejected(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        parse(text)


def test_sizes() -> None:
    assert config.parse_size_mib("1G", "x") == 1024
    assert config.parse_size_mib("262144K", "x") == 256
    assert config.parse_size_mib(64, "x") == 64
    with pytest.raises(ConfigError):
        config.parse_size_mib(True, "x")


def test_overrides() -> None:
    sc = parse(MINIMAL)
    config.apply_overrides(sc, ["pages_to_scan=500", "pksm.probation_scans=0"])
    assert sc.knobs == {"ksm": {"pages_to_scan": "500"}, "pksm": {"probation_scans": "0"}}
    for bad in ["pages_to_scan", "=1", "nope.x=1", "ksm.Bad=1", "x=a'b"]:
        with pytest.raises(ConfigError):
            config.apply_overrides(sc, [bad])


def test_shipped_scenarios_are_valid() -> None:
    names = sorted(p.stem for p in paths.SCENARIOS.glob("*.toml"))
    assert "default" in names
    for name in names:
        config.load_scenario(name)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load_scenario(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        config.load_scenario(str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="no scenario named"):
        config.load_scenario("no-such-scenario")


def test_vcpus_key_and_override() -> None:
    """vcpus: 1..8, perf mode's default; deterministic mode boots the UP
    build, so 1 there (its default) and nothing else."""
    assert parse(MINIMAL).vcpus == paths.DEFAULT_VCPUS
    assert parse('[scenario]\nvcpus = 4\n' + MINIMAL).vcpus == 4
    assert parse('[scenario]\nmode = "deterministic"\n' + MINIMAL).vcpus == 1
    for bad, needle in (("0", "1..8"), ("9", "1..8"), ('"2"', "vcpus"), ("true", "vcpus")):
        with pytest.raises(ConfigError, match=needle):
            parse(f"[scenario]\nvcpus = {bad}\n" + MINIMAL)
    with pytest.raises(ConfigError, match="deterministic.*vcpus must be 1"):
        parse('[scenario]\nmode = "deterministic"\nvcpus = 2\n' + MINIMAL)
    sc = parse(MINIMAL)
    config.apply_overrides(sc, ["vcpus=3", "pksm.pages_to_scan=10"])
    assert sc.vcpus == 3 and sc.knobs == {"pksm": {"pages_to_scan": "10"}}
    for bad in ("vcpus=x", "vcpus=12", "vcpus=-1"):
        with pytest.raises(ConfigError, match="vcpus"):
            config.apply_overrides(sc, [bad])
    assert sc.to_json()["vcpus"] == 3


def test_the_opt_out_groups_never_share_a_seed() -> None:
    """pksm-optout's assertions count each group's KSM pages exactly: with a
    shared seed a page of one group can hold another group's content and
    merge with it legitimately (seen: one KSM page more than the region's
    dup pages), so every group sets a seed of its own."""
    seeds = [w.options.get("seed") for w in config.load_scenario("pksm-optout").workloads]
    assert len(seeds) == 4 and None not in seeds, seeds
    assert len(set(seeds)) == len(seeds), seeds
