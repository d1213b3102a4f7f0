"""The builds a bench pins and holds its boots to (benchbuilds.py): no kernel needed."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

from pksmtb import benchbuilds, buildinfo, kernel, paths, results

BID = "f538ac1ce7c3"
UTS = f"#{BID} SMP Sun Dec  6 01:35:57 UTC 2026"


def fake_build(root: Path, name: str, data: bytes, record: dict[str, Any] | None
               ) -> kernel.KernelBuild:
    """A kernel binary under ROOT/NAME, with a build record that describes it."""
    out = root / name
    out.mkdir(parents=True)
    (out / "linux").write_bytes(data)
    if record is not None:
        results.write_json(out / buildinfo.RECORD,
                           {"binary_sha256": buildinfo.binary_sha256(out / "linux"),
                            "built_utc": "2026-12-06T01:35:57Z", **record})
    variant, _, flavour = name.partition("-")
    return kernel.KernelBuild(variant, flavour, out / "linux")


def run_meta(name: str, banner_id: str | None, sha: str = "x") -> dict[str, Any]:
    return {"kernel_build": name, "build_id": banner_id, "kernel_binary_sha256": sha,
            "build_check": {"status": "ok", "banner_id": banner_id}}


@pytest.fixture
def builds(tmp_path: Path) -> tuple[kernel.KernelBuild, kernel.KernelBuild]:
    pksm = fake_build(tmp_path, "pksm-debug", b"pksm kernel",
                      {"id": BID, "revision": "0123456789abcdef0123", "dirty": True,
                       "dirty_paths": ["pksm/mm/pksm/merge.c"], "tarball": "linux 7.3.4-1"})
    ksm = fake_build(tmp_path, "ksm", b"ksm kernel, by hand", None)
    return pksm, ksm


def test_pins_record_each_build(builds: tuple[kernel.KernelBuild, kernel.KernelBuild]) -> None:
    """As the bench starts: id, revision, dirty flag, variant and flavour of
    each build, the harness's revision labelled apart."""
    pins = benchbuilds.Pins.of(builds)
    rec = pins.to_json()
    p = rec["builds"]["pksm-debug"]
    assert (p["id"], p["revision"], p["dirty"], p["variant"], p["flavour"]) == \
        (BID, "0123456789abcdef0123", True, "pksm", "debug")
    assert p["dirty_paths"] == ["pksm/mm/pksm/merge.c"] and p["tarball"] == "linux 7.3.4-1"
    k = rec["builds"]["ksm"]
    assert k["id"] is None and "no pksmtb-build.json" in k["problem"]
    assert rec["build_changed"] == [] and rec["harness_revision"]
    assert rec["host_cpu_model"] == results.host_identity()["host_cpu_model"] != "unknown"
    assert rec["host_cpus"] == os.cpu_count()
    head = "\n".join(pins.header())
    assert f"kernel pksm-debug: build {BID} (revision 0123456789ab, dirty (1 source path " \
           "differs)" in head and "variant pksm, flavour debug" in head
    assert "kernel ksm: unrecorded build" in head
    assert "harness revision (the harness that ran the bench, not the kernel's sources)" in head
    assert "git_revision" not in rec and "patch_series_sha256" not in rec


def test_a_boot_of_the_pinned_build_passes(
        builds: tuple[kernel.KernelBuild, kernel.KernelBuild]) -> None:
    pksm, ksm = builds
    pins = benchbuilds.Pins.of(builds)
    pins.check_run("same sources, relinked", run_meta("pksm-debug", BID, "another binary"))
    pins.check_boot("bare boot", pksm, UTS)
    # an unrecorded build is held to its binary
    pins.check_run("ksm", run_meta("ksm", None, buildinfo.binary_sha256(ksm.binary)))
    pins.check_boot("ksm bare", ksm, "#1 SMP Sun Dec  6 01:35:57 UTC 2026")
    assert pins.changed == []


def test_a_boot_of_another_build_stops_the_bench(
        builds: tuple[kernel.KernelBuild, kernel.KernelBuild]) -> None:
    pksm, ksm = builds
    pins = benchbuilds.Pins.of(builds)
    with pytest.raises(benchbuilds.BuildChanged, match="BUILD CHANGED: dup-pksm: pksm-debug "
                       f"was build 0123456789ab, the bench pinned build {BID}") as e:
        pins.check_run("dup-pksm", run_meta("pksm-debug", "0123456789ab"))
    assert isinstance(e.value, SystemExit) and "the bench stops" in str(e.value.code)
    assert pins.to_json()["build_changed"][0]["booted_id"] == "0123456789ab"
    assert any(line.startswith("BUILD CHANGED: dup-pksm") for line in pins.header())
    # a bare boot: by its banner; the ksm binary rebuilt by hand
    with pytest.raises(benchbuilds.BuildChanged):
        pins.check_boot("boot 2", pksm, "#0123456789ab SMP Sun Dec  6 01:35:57 UTC 2026")
    ksm.binary.write_bytes(b"ksm kernel, rebuilt")
    with pytest.raises(benchbuilds.BuildChanged, match="binary"):
        pins.check_boot("ksm boot", ksm, "#2 SMP Sun Dec  6 01:35:57 UTC 2026")
    with pytest.raises(benchbuilds.BuildChanged, match="did not pin"):
        pins.check_run("up", run_meta("pksm-up", BID))
    assert len(pins.changed) == 4


@pytest.mark.parametrize("script", ["bench_engine.py", "bench_pksm.py", "bench_swap.py",
                                    "bench_testbed.py"])
def test_every_bench_pins_its_builds(script: str) -> None:
    """Each bench pins through benchbuilds and no longer names the kernel by
    the checkout's revision or the patches alone."""
    text = (paths.TOP / "harness" / script).read_text()
    tree = ast.parse(text)
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    if script == "bench_swap.py":
        # a bench the sweep engine runs: pinned by benchsweep.pin(), each
        # boot held to the pin by the sweep (build_mismatch), marked by
        # benchsweep.changed()
        assert {"pin", "changed", "run_spec"} <= attrs
        text = (paths.TOP / "harness" / "pksmtb" / "benchsweep.py").read_text()
        attrs = {n.attr for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Attribute)}
        assert {"Pins", "mismatches"} <= attrs
    else:
        assert "Pins" in attrs and "check_run" in attrs
    assert "patch_series_hash" not in attrs and "git_revision" not in attrs
