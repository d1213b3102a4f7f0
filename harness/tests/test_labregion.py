"""A lab file's marked regions (harness/pksmtb/labregion.py), without a
boot: split and filled, the markers kept by the skeleton; a student's
copy spliced into the current file, the difference outside the regions
said; marker lines that do not pair up refused with the line and the
reason; lab 6's frame is the current file outside its region; the
student edition's files are filled by the same code, and a copy made
there is spliced the same way in either tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pksmtb import edition, labregion, labs, paths

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


# ---- a student's copy ---------------------------------------------------------------

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
