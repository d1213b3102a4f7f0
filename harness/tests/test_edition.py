"""The student edition (make dist-student), by file inspection: no boot.

The edition is built into a temporary directory and searched for what a
student must not get: instructor-only paths, the instructor mark, every
reference region's body (each lab file's code or answers between its
LAB markers) and the choice questions' keys, by content wherever they
might have been copied.  What a student needs must be there: every
other file of the checkout, the labs' files with the markers (so that
`make lab` makes the very skeleton it makes from the reference), the
pages the handouts link to.  The search is shown to bite: an edition
built with a leaky file list (the tests kept, a solution and a key
copied as they are, an instructor page let through) is caught, each
leak by name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pksmtb import edition, labanswers, labs, paths

# What the inspection calls instructor-only by path; independent of
# edition.PRIVATE, which it checks.
INSTRUCTOR_PATHS = ("labs/INSTRUCTOR.md", "labs/PLATFORM.md", "harness/tests/", "results/", ".ci/", ".git/")
MARK = "PKSMTB-" + "INSTRUCTOR-ONLY"


def _norm(text: str) -> str:
    """Lines stripped, blank ones dropped: copies re-indented still match."""
    return "\n".join(ln.strip() for ln in text.splitlines() if ln.strip())


def secrets() -> list[tuple[str, str]]:
    """(what, needle) pairs, from the instructor's tree: each reference
    region body, each choice key as a TOML line and as a Python item."""
    out = [("the instructor mark", MARK)]
    for n in sorted(labs.lab_dirs()):
        lab = labs.load_lab(n)
        for f in lab.files:
            text = (paths.TOP / f.solution).read_text()
            bodies = re.findall(rf"LAB {n} BEGIN[^\n]*\n(.*?)\n[^\n]*LAB {n} END", text, re.S)
            assert bodies, (n, f.solution)
            for i, body in enumerate(bodies):
                out.append((f"lab {n} reference {f.name} region {i + 1}", _norm(body)))
            if f.name == "answers.toml":
                a = labanswers.read(paths.TOP / f.solution)
                for k, v in a.values.items():
                    if isinstance(v, str):
                        out += [(f"lab {n} key {k}", f'{k} = "{v}"'),
                                (f"lab {n} key {k}", f'"{k}": "{v}"')]
    return out


SECRETS = secrets()


def leaks(root: Path) -> list[str]:
    """What of the instructor's ROOT carries: "path: why" each."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix() + ("/" if p.is_dir() else "")
        if any(rel == x or (x.endswith("/") and rel.startswith(x)) for x in INSTRUCTOR_PATHS):
            out.append(f"{rel}: instructor-only path")
        if p.is_symlink() or not p.is_file():
            continue
        text = _norm(p.read_bytes().decode(errors="replace"))
        out += [f"{rel}: {what}" for what, needle in SECRETS if needle in text]
    return out


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return edition.build(tmp_path_factory.mktemp("dist"))


def test_the_secrets_are_found_in_the_instructors_tree() -> None:
    """The needles are real: each secret occurs (in one of its forms) in
    the checkout it comes from."""
    whole = {rel: _norm((paths.TOP / rel).read_text(errors="replace"))
             for rel in edition.source_files(paths.TOP)
             if (paths.TOP / rel).is_file() and not rel.startswith("results/")}
    for what in {w for w, _ in SECRETS}:
        assert any(needle in t for w, needle in SECRETS if w == what
                   for t in whole.values()), what
    assert len(SECRETS) >= 16


def test_student_edition_leaks_nothing(student: Path) -> None:
    assert leaks(student) == []
    assert (student / "labs" / "EDITION").read_text().strip() == labs.STUDENT_EDITION


def test_student_edition_has_what_a_student_needs(student: Path) -> None:
    for rel in edition.source_files(paths.TOP):
        if (edition.is_private(rel) or rel in edition.RENAMED
                or not os.path.lexists(paths.TOP / rel)):
            continue
        assert os.path.lexists(student / rel), rel
    for rel in ("Makefile", "harness/lab.py", "harness/pksmtb/labs.py", "rootfs/init",
                "linux/source.conf", "linux/prepare.sh", "pksm/patches/series"):
        assert (student / rel).is_file(), rel
    # the student's front page, not the instructor's
    front = (student / "labs" / "README.md").read_text()
    assert front == (paths.TOP / "labs" / "STUDENT.md").read_text()
    # every page the handouts and the front page link to is there
    for page in [student / "labs" / "README.md", *student.glob("labs/0*/README.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), (page, target)
    # executables stay executable (make calls some with sh, the harness execs others)
    for rel in ("harness/lab.py", "rootfs/init"):
        assert os.access(student / rel, os.X_OK) == os.access(paths.TOP / rel, os.X_OK), rel


@pytest.mark.parametrize("n", sorted(labs.lab_dirs()))
def test_student_edition_makes_the_same_skeleton(student: Path, n: int) -> None:
    lab = labs.load_lab(n)
    for f in lab.files:
        mine = (student / f.solution).read_text()
        assert f"LAB {n} BEGIN" in mine and f"LAB {n} END" in mine
        assert labs.skeleton(mine, n, f.stubs, str(f.solution)) == \
            labs.skeleton((paths.TOP / f.solution).read_text(), n, f.stubs, str(f.solution))


def test_student_edition_tarball(student: Path) -> None:
    import tarfile
    with tarfile.open(student.with_name(student.name + ".tar.gz")) as tar:
        names = tar.getnames()
    assert f"{edition.NAME}/labs/EDITION" in names
    assert all(n == edition.NAME or n.startswith(edition.NAME + "/") for n in names)
    assert not any(n.startswith(f"{edition.NAME}/harness/tests") for n in names)


def test_leaky_edition_is_caught(tmp_path: Path) -> None:
    """The inspection bites: the tests kept, policy.c's reference and the
    keys of labs 4 and 7 copied as they are, labs/INSTRUCTOR.md let
    through."""
    leaky = tuple(p for p in edition.PRIVATE if p not in ("harness/tests/", "labs/INSTRUCTOR.md"))
    root = edition.build(tmp_path, private=leaky, check=False,
                         verbatim=frozenset({"pksm/mm/pksm/policy.c",
                                             "labs/04-keyhole/answers.toml",
                                             "labs/07-zswap/answers.toml"}))
    found = leaks(root)
    for want in ("harness/tests/test_edition.py: instructor-only path",
                 "pksm/mm/pksm/policy.c: lab 3 reference policy.c region 1",
                 "pksm/mm/pksm/policy.c: lab 3 reference policy.c region 2",
                 "labs/04-keyhole/answers.toml: lab 4 key mapping_holds",
                 "labs/07-zswap/answers.toml: lab 7 key cycled",
                 "labs/07-zswap/answers.toml: lab 7 key under_pressure",
                 "labs/07-zswap/answers.toml: lab 7 reference answers.toml region 1",
                 "labs/INSTRUCTOR.md: instructor-only path",
                 "labs/INSTRUCTOR.md: the instructor mark"):
        assert want in found, (want, found)


def test_edition_refuses_an_unlisted_instructor_page(tmp_path: Path) -> None:
    leaky = tuple(p for p in edition.PRIVATE if p != "labs/INSTRUCTOR.md")
    with pytest.raises(labs.LabError, match="INSTRUCTOR.md carries .* add it to edition.PRIVATE"):
        edition.build(tmp_path, private=leaky)
    assert not (tmp_path / edition.NAME).exists()


def test_with_standins_keeps_markers_and_checks_pairs() -> None:
    text = "a\n  # LAB 7 BEGIN: do it\n  secret\n  # LAB 7 END\nb\n"
    assert edition.with_standins(text, 7, ["x\n\ny"], "f") == \
        "a\n  # LAB 7 BEGIN: do it\n  x\n\n  y\n  # LAB 7 END\nb\n"
    with pytest.raises(labs.LabError, match="1 LAB 7 regions, 2 stand-ins"):
        edition.with_standins(text, 7, ["x", "y"], "f")
    with pytest.raises(labs.LabError, match="END without BEGIN"):
        edition.with_standins("# LAB 7 END\n", 7, ["x"], "f")


def _lab_py(root: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "PKSMTB_LAB_INSTRUCTOR"}
    return subprocess.run([sys.executable, str(root / "harness" / "lab.py"), *args],
                          capture_output=True, text=True, env={**e, **(env or {})})


def test_student_edition_lab_py(student: Path, tmp_path: Path) -> None:
    """In the edition: the skeleton is made, answers are recorded and said
    to be graded by the instructor; a reference, instructor mode and batch
    are refused with exit 2."""
    work = tmp_path / "work"
    r = _lab_py(student, "prepare", "2", "--work", str(work))
    assert r.returncode == 0, r.stderr
    r = _lab_py(student, "check", "2", "--work", str(work), "--json", str(tmp_path / "g.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recorded, graded by the instructor after the deadline" in r.stdout
    for args, env, why in (
            (["check", "2", "--solution"], None, "no reference solutions"),
            (["check", "2", "--instructor", "--work", str(work)], None, "answers are graded by"),
            (["check", "2", "--work", str(work)], {"PKSMTB_LAB_INSTRUCTOR": "1"}, "instructor mode"),
            (["batch", "2", str(tmp_path)], None, "batch grading needs the answer keys"),
            (["dist-student"], None, "student edition already")):
        r = _lab_py(student, *args, env=env)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)


def test_student_edition_make_refuses_reference_and_instructor(student: Path) -> None:
    """Before anything is built (the guard runs first)."""
    for var in ("SOLUTION=1", "INSTRUCTOR=1"):
        r = subprocess.run(["make", "-s", "-C", str(student), "lab-edition-guard", "LAB=3", var],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "SOLUTION=1 and INSTRUCTOR=1 are the instructor's" \
            in r.stderr, r.stderr
    r = subprocess.run(["make", "-s", "-C", str(paths.TOP), "lab-edition-guard", "SOLUTION=1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr      # the instructor's tree has no labs/EDITION


def test_answer_key_is_the_reference_answers_file(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    for n, offered in ((4, labs.LAB4_OFFERED), (6, labs.LAB6_OFFERED), (7, labs.LAB7_OFFERED)):
        key = labs.answer_key(labs.load_lab(n), offered)
        assert key is not None and set(key) == set(offered)
        assert all(v in offered[k] for k, v in key.items())
    ed = tmp_path / "EDITION"
    ed.write_text("student\n")
    monkeypatch.setattr(labs, "EDITION_FILE", ed)
    assert labs.answer_key(labs.load_lab(4), labs.LAB4_OFFERED) is None
    a = labanswers.Answers(tmp_path / "answers.toml", {k: v[0] for k, v in labs.LAB4_OFFERED.items()})
    c = labs.choice_check(labs.load_lab(4), "answers", a, labs.LAB4_OFFERED)
    assert (c.earned, c.shown, c.answers) == (0, "recorded", True)
    assert "graded by the instructor" in c.detail
