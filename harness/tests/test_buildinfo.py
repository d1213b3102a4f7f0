"""The build record and its checks (buildinfo.py): no kernel needed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pksmtb import buildinfo, config, console, guest, results, sweep, verdict

BANNER = ("[    0.000000] Linux version 7.3.4 (root@vm) (gcc (Debian 12.2.0-14+deb12u1) "
          "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #f538ac1ce7c3 SMP Sun Dec  6 "
          "01:35:57 UTC 2026")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A checkout's kernel sources in miniature: pksm/, a stamp, fragments."""
    top, ksrc = tmp_path / "top", tmp_path / "top" / "linux" / "src"
    for rel, text in {"pksm/mm/pksm/merge.c": "int merge;\n",
                      "pksm/mm/pksm/Makefile": "obj-y += merge.o\n",
                      "pksm/include/linux/pksm.h": "#define PKSM 1\n",
                      "pksm/patches/0001-hook.patch": "--- a\n+++ b\n",
                      "pksm/patches/series": "0001-hook.patch\n",
                      "pksm/mm/pksm/NOTES.md": "notes\n",
                      "pksm/mm/pksm/.merge.c.swp": "editor\n",
                      "linux/config/base.config": "CONFIG_A=y\n",
                      "linux/config/pksm.config": "CONFIG_PKSM=y\n",
                      "linux/src/.pksmtb-stamp": "tarball linux-source-7.3 7.3.4-1\n"}.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    return top, ksrc, ["linux/config/base.config", "linux/config/pksm.config"]


def sources_id(tree: tuple[Path, Path, list[str]]) -> str:
    top, ksrc, frags = tree
    return str(buildinfo.sources(top, ksrc, frags)["sources_sha256"])


def test_sources_are_what_prepare_links(tree: tuple[Path, Path, list[str]]) -> None:
    top, ksrc, frags = tree
    assert buildinfo.pksm_files(top) == ["include/linux/pksm.h", "mm/pksm/Makefile",
                                         "mm/pksm/merge.c"]
    src = buildinfo.sources(top, ksrc, frags)
    assert src["id"] == src["sources_sha256"][:12] and buildinfo.ID_RE.match(src["id"])
    assert src["tarball"] == "linux-source-7.3 7.3.4-1"
    assert [f["path"] for f in src["fragments"]] == frags


def test_hash_is_stable_and_follows_every_source(tree: tuple[Path, Path, list[str]]) -> None:
    top, ksrc, frags = tree
    first = sources_id(tree)
    assert sources_id(tree) == first
    # what the kernel is not built from changes nothing (patches: in the stamp)
    (top / "pksm/mm/pksm/NOTES.md").write_text("other notes\n")
    (top / "pksm/mm/pksm/.merge.c.swp").write_text("other\n")
    (top / "pksm/patches/0001-hook.patch").write_text("--- a\n+++ c\n")
    assert sources_id(tree) == first
    seen = {first}
    for rel, text in [("pksm/mm/pksm/merge.c", "int merge = 1;\n"),
                      ("pksm/include/linux/pksm.h", "#define PKSM 2\n"),
                      ("pksm/mm/pksm/policy.c", "int policy;\n"),       # a new file
                      ("linux/src/.pksmtb-stamp", "tarball linux-source-7.3 7.3.5-1\n"),
                      ("linux/config/pksm.config", "CONFIG_PKSM=n\n")]:
        (top / rel).write_text(text)
        now = sources_id(tree)
        assert now not in seen, rel
        seen.add(now)
    # a file renamed (same content) is another source
    (top / "pksm/mm/pksm/policy.c").rename(top / "pksm/mm/pksm/policy2.c")
    assert sources_id(tree) not in seen
    # the fragments' order is part of what was built
    assert buildinfo.sources(top, ksrc, frags[::-1])["sources_sha256"] != sources_id(tree)


def test_missing_stamp_is_an_error(tree: tuple[Path, Path, list[str]]) -> None:
    top, ksrc, frags = tree
    (ksrc / ".pksmtb-stamp").unlink()
    with pytest.raises(buildinfo.BuildInfoError, match="prepare.sh"):
        buildinfo.sources(top, ksrc, frags)


def test_record_beside_the_binary(tree: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    top, ksrc, frags = tree
    out = tmp_path / "build" / "pksm"
    rec = buildinfo.begin("pksm", out, frags, top, ksrc)
    assert (out / buildinfo.PENDING).is_file() and not (out / buildinfo.RECORD).exists()
    assert rec["revision"] == "unknown" and rec["dirty"] is False      # not a git checkout
    (out / "linux").write_bytes(b"kernel one")
    done = buildinfo.end(out)
    assert done["binary_sha256"] == buildinfo.binary_sha256(out / "linux")
    assert not (out / buildinfo.PENDING).exists()
    got = buildinfo.recorded(out / "linux")
    assert got.id == rec["id"] and not got.problem
    # a build that changed nothing keeps the record (and when it was made)
    old = (out / buildinfo.RECORD).read_text()
    buildinfo.begin("pksm", out, frags, top, ksrc)
    buildinfo.end(out)
    assert (out / buildinfo.RECORD).read_text() == old
    # ... and, if its sources are now a later revision's, clean, names it
    buildinfo.begin("pksm", out, frags, top, ksrc)
    nxt = json.loads((out / buildinfo.PENDING).read_text())
    nxt.update(revision="c0ffee", dirty=False)
    (out / buildinfo.PENDING).write_text(json.dumps(nxt))
    kept = buildinfo.end(out)
    assert kept["clean_at"] == ["c0ffee"] and kept["built_utc"] == done["built_utc"]
    buildinfo.begin("pksm", out, frags, top, ksrc)
    nxt = json.loads((out / buildinfo.PENDING).read_text())
    nxt.update(revision="d1rty", dirty=True)
    (out / buildinfo.PENDING).write_text(json.dumps(nxt))
    assert buildinfo.end(out)["clean_at"] == ["c0ffee"]     # a dirty tree names nothing
    # a binary built since by other means: the record does not describe it
    (out / "linux").write_bytes(b"kernel two, by hand")
    got = buildinfo.recorded(out / "linux")
    assert got.id is None and "not the binary" in got.problem
    (out / buildinfo.RECORD).unlink()
    assert "no pksmtb-build.json" in buildinfo.recorded(out / "linux").problem


def test_banner_parsing() -> None:
    con = console.Console.parse("Booting\n" + BANNER + "\nLinux version is not this\n")
    assert con.banner == BANNER.split("] ", 1)[1]
    assert con.uts_version() == "#f538ac1ce7c3 SMP Sun Dec  6 01:35:57 UTC 2026"
    assert buildinfo.banner_id(con.uts_version()) == "f538ac1ce7c3"
    # a kernel built without an id: Kbuild's counter
    assert buildinfo.banner_id("#34 SMP Sun Dec  6 01:16:24 UTC 2026") is None
    assert buildinfo.banner_id("#F538AC1CE7C3 SMP") is None
    assert buildinfo.banner_id(None) is None and buildinfo.banner_id("") is None
    assert console.Console.parse("no banner\n").uts_version() is None
    # it survives events.json
    assert json.loads(json.dumps(con.to_json()))["banner"] == con.banner


def recorded(rid: str, problem: str = "") -> buildinfo.Recorded:
    return buildinfo.Recorded({"id": rid}, "sha", problem)


def test_banner_check() -> None:
    uts = "#f538ac1ce7c3 SMP Sun Dec  6 01:35:57 UTC 2026"
    assert buildinfo.check_banner(recorded("f538ac1ce7c3"), uts)["status"] == "ok"
    other = buildinfo.check_banner(recorded("0123456789ab"), uts)
    assert other["status"] == "mismatch" and "rebuilt under the run" in other["detail"]
    assert other["banner_id"] == "f538ac1ce7c3" and other["recorded_id"] == "0123456789ab"
    none = buildinfo.check_banner(recorded("0123456789ab"), "#35 SMP Sun Dec 6 2026")
    assert none["status"] == "mismatch" and "without an id" in none["detail"]
    stale = buildinfo.check_banner(recorded("0123456789ab", "built since by other means"), uts)
    assert stale["status"] == "unrecorded"
    assert buildinfo.check_banner(None, uts)["status"] == "unrecorded"
    assert buildinfo.check_banner(recorded("f538ac1ce7c3"), None)["status"] == "no-banner"


def test_mismatch_is_a_build_error_in_the_verdict() -> None:
    con = console.Console.parse(BANNER + "\nPKSMTB-READY\nPKSMTB-EXIT 0\n")
    check = buildinfo.check_banner(recorded("0123456789ab"), con.uts_version())
    v = verdict.judge(con, verdict.Outcome(), {}, {"build_check": check})
    assert v.code == verdict.ExitCode.BUILD and "wrong kernel" in v.problems[0]
    ok = buildinfo.check_banner(recorded("f538ac1ce7c3"), con.uts_version())
    assert verdict.judge(con, verdict.Outcome(), {}, {"build_check": ok}).passed
    unrec = buildinfo.check_banner(None, con.uts_version())
    assert verdict.judge(con, verdict.Outcome(), {}, {"build_check": unrec}).passed


def test_knobs_at_start_are_dumped_and_parsed() -> None:
    sc = config.parse_scenario(tomllib.loads('[knobs.ksm]\nrun = 1\n[[workload]]\n'
                                             'program = "dupalloc"\n'), "t", None)
    script = guest.render_run_script(sc, "pksm")
    assert "PKSMTB-KNOBVAL" in script
    # after the knobs are set, before the workloads start
    assert script.index("knob ksm run") < script.index("PKSMTB-KNOBVAL") < \
        script.index("dupalloc")
    con = console.Console.parse("PKSMTB-KNOBVAL ksm/advisor_mode=[none] scan-time\n"
                                "PKSMTB-KNOBVAL pksm/probation_scans=3\n"
                                "PKSMTB-KNOB ksm/run=1\n")
    assert con.knobs_at_start == {"ksm/advisor_mode": "[none] scan-time",
                                  "pksm/probation_scans": "3"}
    assert con.knobs == {"ksm/run": "1"}


def fake_run(d: Path, build: str, bid: str | None, sha: str) -> Path:
    d.mkdir(parents=True)
    meta: dict[str, Any] = {"kernel_build": build, "build_id": bid,
                            "kernel_binary_sha256": sha,
                            "build_check": {"status": "ok", "banner_id": bid}}
    results.write_json(d / "meta.json", meta)
    return d


def test_sweep_marks_a_boot_of_another_build(tmp_path: Path) -> None:
    state: dict[str, Any] = {"builds": {"pksm": {"id": "f538ac1ce7c3", "binary_sha256": "a"},
                                        "ksm": {"id": None, "binary_sha256": "k1"}}}
    same = fake_run(tmp_path / "1", "pksm", "f538ac1ce7c3", "b")    # same sources, relinked
    other = fake_run(tmp_path / "2", "pksm", "0123456789ab", "c")
    ksm_same = fake_run(tmp_path / "3", "ksm", None, "k1")
    ksm_other = fake_run(tmp_path / "4", "ksm", None, "k2")
    unpinned = fake_run(tmp_path / "5", "pksm-up", "0123456789ab", "u")
    assert sweep.build_mismatch(state, same) is None
    why = sweep.build_mismatch(state, other)
    assert why and "0123456789ab" in why and "f538ac1ce7c3" in why
    assert sweep.build_mismatch(state, ksm_same) is None
    assert sweep.build_mismatch(state, ksm_other)
    assert sweep.build_mismatch(state, unpinned) is None
    assert sweep.build_mismatch({}, other) is None      # a sweep from before pinning
