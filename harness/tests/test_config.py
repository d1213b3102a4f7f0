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
