"""Hand-in archives (make handin, lab.py batch): no boot.

make handin packs the lab's work files and a manifest; the batch grader
takes such archives beside submission directories and refuses, with the
reason, an archive of another lab, one missing a file, one with a file
outside the lab's list, one changed since it was packed, one with a link
or a path out of its directory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pksmtb import handin, labs, paths

LAB3 = labs.load_lab(3)
LAB4 = labs.load_lab(4)
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def work(tmp_path: Path, lab: labs.Lab) -> Path:
    d = tmp_path / "work" / str(lab.number)
    d.mkdir(parents=True)
    for name, text in labs.skeleton_files(lab).items():
        (d / name).write_text(text)
    return d


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for ti in tar.getmembers():
            f = tar.extractfile(ti)
            out[ti.name] = f.read() if f else b""
        return out


def repack(archive: Path, dest: Path, change: dict[str, bytes | None],
           link: str | None = None) -> Path:
    """ARCHIVE's members with CHANGE applied (None: removed), as DEST."""
    m = members(archive)
    for k, v in change.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in m.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        if link:
            ti = tarfile.TarInfo(link)
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(ti)
    return dest


def test_student_id_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(handin.STUDENT_ENV, raising=False)
    with pytest.raises(handin.HandinError, match="STUDENT=id"):
        handin.student_id(None)
    monkeypatch.setenv(handin.STUDENT_ENV, "jdoe")
    assert handin.student_id(None) == "jdoe"
    assert handin.student_id("a.b-c_1") == "a.b-c_1"
    for bad in ("../x", "a b", ".hidden", "x" * 65, "a/b"):
        with pytest.raises(handin.HandinError, match="letters, digits"):
            handin.student_id(bad)


def test_pack_writes_the_work_files_and_a_manifest(tmp_path: Path) -> None:
    d = work(tmp_path, LAB4)
    a = handin.pack(LAB4, d, "jdoe", tmp_path / "out", WHEN)
    assert a == tmp_path / "out" / "lab4-jdoe.tar.gz"
    m = members(a)
    assert sorted(m) == ["lab4-jdoe/MANIFEST.json", "lab4-jdoe/answers.toml", "lab4-jdoe/tree.c"]
    man = json.loads(m["lab4-jdoe/MANIFEST.json"])
    assert man["lab"] == 4 and man["student"] == "jdoe" and man["format"] == handin.FORMAT
    assert man["created_utc"] == "2026-01-02T03:04:05Z"
    assert man["files"] == {n: handin.sha256((d / n).read_bytes())
                            for n in ("answers.toml", "tree.c")}
    # unpacked, it is a submission directory as batch takes them
    h = handin.unpack(LAB4, a, tmp_path / "un")
    assert h.student == "jdoe" and h.dir == tmp_path / "un" / "jdoe"
    assert sorted(p.name for p in h.dir.iterdir()) == ["answers.toml", "tree.c"]
    assert labs.submission_files(LAB4, h.dir)["tree.c"].read_bytes() == (d / "tree.c").read_bytes()


def test_pack_refuses_missing_work(tmp_path: Path) -> None:
    d = work(tmp_path, LAB4)
    (d / "answers.toml").unlink()
    with pytest.raises(labs.LabError, match="no answers.toml"):
        handin.pack(LAB4, d, "jdoe", tmp_path / "out")


@pytest.mark.parametrize("change,why", [
    ({"lab3-jdoe/policy.c": None}, "missing policy.c"),
    ({"lab3-jdoe/notes.txt": b"hi"}, "files outside lab 3's list: notes.txt"),
    ({"lab3-jdoe/policy.c": b"int x;\n"}, "policy.c not as handed in"),
    ({"lab3-jdoe/MANIFEST.json": None}, "no MANIFEST.json"),
    ({"lab3-jdoe/MANIFEST.json": b"{"}, "MANIFEST.json is not JSON"),
    ({"other/policy.c": b"x"}, "more than one directory"),
    ({"lab3-jdoe/../../evil": b"x"}, "not a file of one directory"),
    ({"/abs": b"x"}, "not a file of one directory"),
])
def test_unpack_refuses_a_bad_archive(tmp_path: Path, change: dict[str, bytes | None],
                                      why: str) -> None:
    good = handin.pack(LAB3, work(tmp_path, LAB3), "jdoe", tmp_path / "out")
    bad = repack(good, tmp_path / "bad.tar.gz", change)
    with pytest.raises(handin.HandinError, match=why):
        handin.unpack(LAB3, bad, tmp_path / "un")
    assert not (tmp_path / "un" / "jdoe").exists()


def test_unpack_refuses_links_other_labs_and_non_archives(tmp_path: Path) -> None:
    good = handin.pack(LAB3, work(tmp_path, LAB3), "jdoe", tmp_path / "out")
    bad = repack(good, tmp_path / "link.tar.gz", {}, link="lab3-jdoe/answers.toml")
    with pytest.raises(handin.HandinError, match="not a regular file"):
        handin.unpack(LAB3, bad, tmp_path / "un")
    with pytest.raises(handin.HandinError, match="a hand-in of lab 3, not of lab 4"):
        handin.unpack(LAB4, good, tmp_path / "un")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(handin.HandinError, match="not a hand-in archive"):
        handin.unpack(LAB3, junk, tmp_path / "un")
    renamed = repack(good, tmp_path / "r.tar.gz", {
        "lab3-jdoe/MANIFEST.json": members(good)["lab3-jdoe/MANIFEST.json"].replace(
            b'"jdoe"', b'"other"')})
    with pytest.raises(handin.HandinError, match="its manifest says lab3-other"):
        handin.unpack(LAB3, renamed, tmp_path / "un")


def test_batch_collects_archives_and_directories(tmp_path: Path) -> None:
    cls = tmp_path / "class"
    cls.mkdir()
    handin.pack(LAB3, work(tmp_path / "a", LAB3), "alice", cls)
    handin.pack(LAB4, work(tmp_path / "b", LAB4), "bob", tmp_path / "b4")
    (tmp_path / "b4" / "lab4-bob.tar.gz").rename(cls / "lab4-bob.tar.gz")   # wrong lab
    plain = cls / "carol"
    plain.mkdir()
    (plain / "policy.c").write_text("x")
    (plain / "notes.txt").write_text("kept as always: no manifest")
    unpacked = cls / "dave"                       # an unpacked hand-in, then added to
    h = handin.unpack(LAB3, handin.pack(LAB3, work(tmp_path / "d", LAB3), "dave",
                                        tmp_path / "d4"), tmp_path / "d5")
    os.rename(h.dir, unpacked)
    (unpacked / handin.MANIFEST).write_bytes(
        members(tmp_path / "d4" / "lab3-dave.tar.gz")["lab3-dave/MANIFEST.json"])
    (unpacked / "extra.c").write_text("x")
    (cls / "lab3-grades.json").write_text("[]")  # the batch's own output: ignored
    (cls / "README").write_text("x")
    (cls / ".notes").write_text("hidden: skipped")
    handin.pack(LAB3, work(tmp_path / "e", LAB3), "alice", tmp_path / "e4")
    (tmp_path / "e4" / "lab3-alice.tar.gz").rename(cls / "zz-lab3-alice.tar.gz")
    subs, refused = handin.collect(LAB3, cls, tmp_path / "unpacked")
    assert [s.name for s in subs] == ["carol", "alice"]
    assert subs[1].files["policy.c"].parent == tmp_path / "unpacked" / "alice"
    why = {g.submission: g.error for g in refused}
    assert "not of lab 3" in why["lab4-bob.tar.gz"]
    assert "files outside lab 3's list: extra.c" in why["dave"]
    assert "neither a submission directory nor a hand-in archive" in why["README"]
    assert "alice handed in twice (also lab3-alice.tar.gz)" in why["alice"]
    assert ".notes" not in why and "lab3-grades.json" not in why
    assert all(c.earned == 0 for g in refused for c in g.checks)


def _lab_py(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != handin.STUDENT_ENV}
    return subprocess.run([sys.executable, str(paths.TOP / "harness" / "lab.py"), *args],
                          capture_output=True, text=True, env={**e, **env})


def test_cli_handin(tmp_path: Path) -> None:
    work(tmp_path, LAB3)
    base = ["handin", "3", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    r = _lab_py(*base, env={})
    assert r.returncode == 2 and "give your student id" in r.stderr
    r = _lab_py(*base, env={handin.STUDENT_ENV: "jdoe"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "lab3-jdoe.tar.gz").is_file()
    r = _lab_py(*base, "--student", "x y", env={})
    assert r.returncode == 2 and "letters, digits" in r.stderr
    r = _lab_py("handin", "5", "--student", "jdoe", "--work", str(tmp_path / "work"),
                env={})
    assert r.returncode == 2 and "make lab LAB=5" in r.stderr
