"""A lab file's marked regions (harness/pksmtb/labregion.py) and the
student's copy of an engine file, without a boot.

The student owns only the regions: a copy made before the engine changed
around them (a git pull during the term) is built and graded as the
current file with the copy's regions in it, and the grade says where the
copy differs (a note, in the report, JSON, CSV and JUnit); a copy whose
marker lines do not pair up fails with the reason, alone in its batch.
make lab REFRESH=1 rewrites a copy so, its regions kept, the old files
kept aside.  The skeleton keeps the markers; the student edition's files
are filled by the same code, and a copy made there is spliced the same
way in either tree.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pksmtb import edition, labregion, labreport, labs, overlay, paths

CURRENT = ("head\n"
           "\t/* LAB 9 BEGIN: do it */\n\tref();\n\t/* LAB 9 END */\n"
           "mid\n"
           "\t/* LAB 9 BEGIN: and this */\n\tref2();\n\t/* LAB 9 END */\n"
           "tail\n")


def test_split_and_fill_keep_the_markers() -> None:
    m = labregion.split(CURRENT, 9, "f")
    assert m.outside == ["head\n", "mid\n", "tail\n"]
    assert [(r.line, r.body, r.hint, r.indent) for r in m.regions] == \
        [(2, "\tref();\n", "do it", "\t"), (6, "\tref2();\n", "and this", "\t")]
    assert labregion.fill(m, [r.body for r in m.regions]) == CURRENT
    assert labs.skeleton(CURRENT, 9, ["x = 0;", "y"], "f") == CURRENT.replace(
        "\tref();\n", f"\t/* {labs.TODO.format(n=9)} */\n\tx = 0;\n").replace(
        "\tref2();\n", f"\t/* {labs.TODO.format(n=9)} */\n\ty\n")


def test_splice_takes_the_copys_regions_into_the_current_file() -> None:
    mine = CURRENT.replace("ref();", "mine();\n\tmore();").replace("ref2();", "mine2();")
    old = mine.replace("head\n", "old head\n").replace("tail\n", "")   # an older engine's
    got = labregion.splice(old, CURRENT, 9, "copy.c", "cur.c")
    assert got == mine
    note = labregion.differs(old, got, "copy.c", "cur.c")
    assert note == ("copy.c differs from cur.c outside its regions in 2 lines, the first at "
                    "line 1 (`old head`; cur.c's line 1: `head`)"), note
    assert labregion.splice(mine, CURRENT, 9, "copy.c", "cur.c") == mine
    assert labregion.differs(mine, mine, "copy.c", "cur.c") == ""
    # blanks at line ends and Windows line ends are not a difference
    assert labregion.differs(mine.replace("mid\n", "mid  \r\n"), mine, "copy.c", "cur.c") == ""


@pytest.mark.parametrize("copy,why", [
    (CURRENT.replace("\t/* LAB 9 BEGIN: do it */\n", "").replace(
        "\tref();\n\t/* LAB 9 END */\n", "\tref();\n"), "1 LAB 9 regions"),
    (CURRENT.replace("\t/* LAB 9 END */\nmid", "mid"), "a second LAB 9 BEGIN inside"),
    (CURRENT.replace("\t/* LAB 9 END */\ntail", "tail"), "f:6: the LAB 9 region begun here "
                                                         "is not ended"),
    (CURRENT.replace("\t/* LAB 9 BEGIN: do it */\n", ""), "f:3: LAB 9 END without BEGIN"),
    (CURRENT.replace("/* LAB 9 END */\nmid", "/* LAB 9 END*/\nmid"), "f:4: not a LAB 9 marker"),
    ("no markers at all\n", "0 LAB 9 regions"),
    (CURRENT + "\t/* LAB 9 BEGIN: a third */\n\t/* LAB 9 END */\n", "3 LAB 9 regions")])
def test_splice_refuses_markers_that_do_not_pair_up(copy: str, why: str) -> None:
    with pytest.raises(labregion.RegionError, match=why):
        labregion.splice(copy, CURRENT, 9, "f", "cur.c")


# ---- a student's copy of an engine file --------------------------------------------

def region_bodies(text: str, n: int, bodies: list[str]) -> str:
    return labregion.fill(labregion.split(text, n, "t"), bodies)


def copies(tmp_path: Path) -> dict[str, Path]:
    """Lab 3 copies (policy.c): current (the skeleton with the student's
    regions written), stale (the same regions in the engine's file of a
    term ago: a line more at its top, its last line gone), unmarked (an
    END line deleted)."""
    lab = labs.load_lab(3)
    d = labs.prepare(lab, tmp_path / "made", kernel_tree=False)
    mine = region_bodies((d / "policy.c").read_text(), 3,
                         ["\treturn seed ^ 1;\n", "\treturn true;\n"])
    out = {}
    for name, text in (("current", mine),
                       ("stale", "/* the engine of last term */\n"
                                 + mine[:mine.rstrip("\n").rfind("\n") + 1]),
                       ("unmarked", mine.replace("\t/* LAB 3 END */\n", "", 1))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "policy.c").write_text(text)
        out[name] = tmp_path / name
    return out


def test_stale_copy_is_built_in_the_current_engine_and_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch path (labs.grade, as lab-check): what the lab tree gets
    as policy.c, and the grades.  No kernel is built: the overlay and make
    are stand-ins, the grader gives full marks to whatever builds."""
    lab = labs.load_lab(3)
    laid: dict[str, Any] = {}

    def overlay_tree(base: str, files: dict[str, Path | bytes], root: Path) -> Path:
        laid[root.name] = files["mm/pksm/policy.c"]
        return root

    monkeypatch.setattr(overlay, "overlay_tree", overlay_tree)
    monkeypatch.setattr(overlay, "build", lambda *a, **k: 0)
    monkeypatch.setitem(labs.GRADERS, 3, lambda lab, subs, ctx: [
        labs.Grade(3, s.name, [labs.check(lab, k, True, "ok") for k in lab.points])
        for s in subs])
    dirs = copies(tmp_path)
    subs = [labs.Submission(k, labs.submission_files(lab, d)) for k, d in dirs.items()]
    by = {g.submission: g for g in labs.grade(lab, subs, labs.Ctx(results=tmp_path / "runs"),
                                               tmp_path / "tree", jobs=3)}
    current = (dirs["current"] / "policy.c").read_bytes()
    # both built from the current policy.c with the student's regions
    assert laid["tree-w0"] == laid["tree-w1"] == current
    assert (dirs["stale"] / "policy.c").read_bytes() != current
    assert by["current"].notes == [] and by["current"].score == by["current"].total
    st = by["stale"]
    assert st.score == st.total and not st.error
    [note] = st.notes
    assert note.startswith("policy.c differs from pksm/mm/pksm/policy.c outside its regions "
                           "in 2 lines, the first at line 1 (`/* the engine of last term */`"), note
    assert "REFRESH=1" in note and f"note: {note}" in st.report(instructor=False)
    bad = by["unmarked"]
    assert bad.score == 0 and "a second LAB 3 BEGIN inside the region begun at" in bad.error
    assert "must stay as make lab wrote them" in bad.error and "tree-w2" not in laid
    assert labreport.status([bad], instructor=False) == 2
    # the notes go with the grades: JSON, CSV, JUnit
    out = tmp_path / "grades.json"
    labs.write_results(list(by.values()), out, tmp_path / "grades.csv")
    assert [g["notes"] for g in json.loads(out.read_text())] == [[], [note], []]
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [r["notes"] for r in rows] == ["", note, ""]
    assert note in labs.junit_path(out).read_text()


def test_refresh_keeps_the_regions_and_the_old_copy(tmp_path: Path) -> None:
    lab = labs.load_lab(4)
    d = labs.prepare(lab, tmp_path, kernel_tree=False)
    tree, answers = d / "tree.c", d / "answers.toml"
    mine = region_bodies(tree.read_text(), 4, ["\treturn NULL;\t/* mine */\n"])
    stale = "/* the engine of last term */\n" + mine
    tree.write_text(stale)
    answers.write_text("mapping_holds = \"node\"\n")
    said = labs.refresh(lab, tmp_path)
    assert tree.read_text() == mine
    assert answers.read_text() == "mapping_holds = \"node\"\n"          # all of it theirs
    keep = tmp_path / ".4.before-refresh"
    assert (keep / "tree.c").read_text() == stale and not (keep / "answers.toml").exists()
    assert any(s.startswith("tree.c: now the current pksm/mm/pksm/tree.c with your LAB 4 "
                            "regions in it (before: tree.c differs") for s in said), said
    assert "tree.c: already" in labs.refresh(lab, tmp_path)[0]
    tree.write_text(stale.replace("\t/* LAB 4 END */\n", ""))
    with pytest.raises(labs.LabError, match="not ended"):
        labs.refresh(lab, tmp_path)
    assert tree.read_text() == stale.replace("\t/* LAB 4 END */\n", "")  # nothing written
    answers.unlink()
    tree.write_text(mine)
    assert "answers.toml: was missing" in labs.refresh(lab, tmp_path)[1]
    assert answers.read_text() == labs.skeleton_files(lab)["answers.toml"]
    with pytest.raises(labs.LabError, match="make lab LAB=4 makes it"):
        labs.refresh(lab, tmp_path / "none")


def test_cli_refresh(tmp_path: Path) -> None:
    lab = labs.load_lab(4)
    d = labs.prepare(lab, tmp_path, kernel_tree=False)
    (d / "tree.c").write_text("/* old */\n" + (d / "tree.c").read_text())
    lab_py = [sys.executable, str(paths.TOP / "harness" / "lab.py"), "prepare", "4",
              "--work", str(tmp_path)]
    r = subprocess.run(lab_py + ["--refresh"], capture_output=True, text=True)
    assert r.returncode == 0 and "tree.c: now the current" in r.stdout, r.stdout + r.stderr
    assert (d / "tree.c").read_text() == labs.skeleton_files(lab)["tree.c"]
    r = subprocess.run(lab_py + ["--refresh", "--force"], capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with" in r.stderr, r.stderr
    r = subprocess.run(lab_py, capture_output=True, text=True)
    assert r.returncode == 2 and "REFRESH=1" in r.stderr, r.stderr


def test_lab6_frame_is_the_current_file_outside_the_region(tmp_path: Path) -> None:
    lab = labs.load_lab(6)
    sk = labs.skeleton_files(lab)["classify.c"]

    def problem(text: str) -> str:
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        d.mkdir()
        (d / "classify.c").write_text(text)
        (d / "answers.toml").write_text("")
        return labs.frame_problem(lab, labs.Submission("s", labs.submission_files(lab, d)))
    assert problem(sk) == ""
    assert "only its LAB 6 region is yours" in problem("int x;\n" + sk)
    assert "not ended" in problem(sk.replace("/* LAB 6 END */", ""))


@pytest.mark.parametrize("n", [3, 4])
def test_a_copy_made_in_the_student_edition_is_spliced_alike(n: int) -> None:
    """The edition's engine file (stand-ins in the regions) and the
    instructor's (the reference) differ only inside the regions: a copy
    made in either is graded without a note in either."""
    lab = labs.load_lab(n)
    f = next(f for f in lab.files if f.kernel_path)
    ref = (paths.TOP / f.solution).read_text()
    ed = edition.lab_texts(paths.TOP)[f.solution.as_posix()]
    copy = labs.skeleton(ed, n, f.stubs, "ed")
    assert copy == labs.skeleton(ref, n, f.stubs, "ref")
    for current in (ref, ed):
        got = labregion.splice(copy, current, n, f.name, "cur")
        assert got == copy and labregion.differs(copy, got, f.name, "cur") == ""
